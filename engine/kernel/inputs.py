"""Turning untrusted bytes into a validated input model, or an `InputError` that names fields.

Messages name the field path and what is allowed; they never repeat the value that was sent,
which may identify a patient.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

import orjson
from pydantic import BaseModel, ValidationError

from engine.kernel.errors import FieldProblem, InputError

#: Largest accepted patient document. A real patient file is about 1 KB.
MAX_INPUT_BYTES = 256 * 1024
#: Deepest accepted nesting of arrays and objects. A patient needs 3.
MAX_DEPTH = 32
#: Largest accepted FHIR document (a Bundle carries far more than a patient file).
FHIR_MAX_BYTES = 4 * 1024 * 1024


def is_fhir(document: Any) -> bool:
    """True when a parsed JSON document is a FHIR resource (it carries `resourceType`)."""
    return isinstance(document, dict) and "resourceType" in document


#: Most problems reported for one document; the rest are counted, not listed.
MAX_PROBLEMS = 20
#: A key that is not shaped like a field name may hold patient data: it is never echoed.
_FIELD_NAME = re.compile(r"^[a-z][A-Za-z0-9_]{0,39}$")
HIDDEN_KEY = "<key>"


def shown_key(key: str) -> str:
    """`key` when it looks like a field name (a lower-case letter, then letters, digits or '_', at
    most 40 characters), else a placeholder: a stray key may be a patient's name or a value typed
    in the wrong place, and error messages never repeat patient data."""
    return key if _FIELD_NAME.match(key) else HIDDEN_KEY


class _Bad:
    """A value the parser met that JSON does not allow (NaN, Infinity) or a key given twice: kept in
    place while parsing so that, once the document is read, the error can name the field path."""

    __slots__ = ("allowed", "problem")

    def __init__(self, problem: str, allowed: str):
        self.problem = problem
        self.allowed = allowed


_DUPLICATE = "\x00duplicate keys"


def _hooks() -> tuple[list[bool], Any, Any]:
    """The parser's hooks for one document, and a flag they raise when they meet something to report."""
    flagged = [False]

    def constant(name: str) -> Any:
        flagged[0] = True
        return _Bad(f"{name} is not a number JSON allows", "a finite number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            flagged[0] = True
            seen: set[str] = set()
            out[_DUPLICATE] = [k for k, _ in items if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
        return out

    return flagged, constant, pairs


def _bad_values(value: Any, path: str, found: list[FieldProblem]) -> None:
    """Every `_Bad` value and duplicate key in a parsed document, by field path."""
    if len(found) >= MAX_PROBLEMS:
        return
    if isinstance(value, _Bad):
        found.append(FieldProblem(path or "(document)", value.problem, value.allowed))
    elif isinstance(value, dict):
        for key in value.get(_DUPLICATE, ()):
            where = f"{path}.{shown_key(key)}" if path else shown_key(key)
            found.append(FieldProblem(where, "the key appears twice in one object", "each key once"))
        for key, v in value.items():
            if key != _DUPLICATE:
                _bad_values(v, f"{path}.{shown_key(key)}" if path else shown_key(key), found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _bad_values(v, f"{path}[{i}]", found)


def _depth_ok(text: str) -> bool:
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return True  # cannot nest deeper than the brackets it has: skip the scan (every ordinary patient)
    depth = 0
    in_string = False
    escape = False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


#: A key's closing quote, white space, then its colon: the fast road cannot count such keys.
_WS_BEFORE_COLON = re.compile(rb'"[ \t\r\n]+:')
#: orjson reads an integer beyond 64 bits as a float (Python's json keeps it exact): a float this
#: large sends the document to the long road.
_BIG_FLOAT = 9.2e18


def _keys_and_depth(node: Any, depth: int = 1) -> int:
    """How many object keys the parsed document holds; -1 when it nests deeper than MAX_DEPTH or
    holds a float of 64-bit integer size or more (it may have been an integer)."""
    if depth > MAX_DEPTH:
        return -1
    if type(node) is dict:
        n = len(node)
        values = node.values()
    else:
        n = 0
        values = node
    for v in values:
        t = type(v)
        if t is dict or t is list:
            k = _keys_and_depth(v, depth + 1)
            if k < 0:
                return -1
            n += k
        elif t is float and not -_BIG_FLOAT < v < _BIG_FLOAT:
            return -1
    return n


def parse_json(data: bytes | str, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """Parse one JSON document strictly: UTF-8 (a leading byte-order mark is allowed), no
    duplicate keys, no NaN or Infinity, bounded size and depth.

    The answer is exactly `parse_json_long`'s (the same document, or the same problems), taking a
    fast road when it can prove them the same: orjson, then the number of keys in the document must
    equal the number of `":` in the text (every key is a string followed by a colon; a duplicate key
    or a `":` inside a string makes them differ) with no space before any colon, no float of 64-bit
    integer size (orjson reads integers beyond 64 bits as floats) and the depth within bounds.
    Any doubt, and any error, takes the long road, whose message names the problem.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) <= max_bytes and b'":' in data and not data.startswith(b"\xef\xbb\xbf"):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if (
            type(doc) in (dict, list)
            and not _WS_BEFORE_COLON.search(data)
            and _keys_and_depth(doc) == data.count(b'":')
        ):
            return doc
    return parse_json_long(data, max_bytes=max_bytes)


def parse_json_long(data: bytes | str, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """`parse_json` the long way (Python's json with hooks): the reference the fast road is tested
    against, and the road that words every problem."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) > max_bytes:
        # The CLI reads at most max_bytes + 1 bytes, so the true size is unknown here: say "larger than".
        raise InputError(
            [
                FieldProblem(
                    "(document)",
                    f"the input is larger than {max_bytes} bytes",
                    f"at most {max_bytes} bytes (a patient is about 1 KB)",
                )
            ]
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            [FieldProblem("(document)", f"not valid UTF-8 (byte offset {exc.start})", "UTF-8 text")]
        ) from None
    if not text.strip():
        raise InputError([FieldProblem("(document)", "the input is empty", "one JSON object")])
    if not _depth_ok(text):
        raise InputError(
            [FieldProblem("(document)", f"nested deeper than {MAX_DEPTH} levels", f"at most {MAX_DEPTH} levels")]
        )
    flagged, constant, pairs = _hooks()
    try:
        document = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            [
                FieldProblem(
                    "(document)",
                    f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    "one JSON object",
                )
            ]
        ) from None
    except RecursionError:
        raise InputError([FieldProblem("(document)", "nested too deeply", f"at most {MAX_DEPTH} levels")]) from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits(), 4300 digits)
        raise InputError(
            [
                FieldProblem(
                    "(document)",
                    "not valid JSON for a patient: a number has thousands of digits",
                    "numbers of ordinary size",
                )
            ]
        ) from None
    if flagged[0]:
        found: list[FieldProblem] = []
        _bad_values(document, "", found)
        if found:
            raise InputError(found)
    return document


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shown_key(str(part))
    return out or "(document)"


def _submodel(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at `loc` (None when it cannot be followed)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        f = current.model_fields.get(part)
        if f is None:
            return None
        current = _inner_model(f.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    if get_origin(annotation) is None:
        return None
    return None


def problems_from(exc: ValidationError, model: type[BaseModel]) -> list[FieldProblem]:
    """One `FieldProblem` per pydantic error, without the offending values."""
    problems: list[FieldProblem] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        allowed = None
        if kind == "extra_forbidden":
            parent = _submodel(model, loc[:-1])
            msg = (
                "unknown field"
                if shown_key(str(loc[-1])) != HIDDEN_KEY
                else ("unknown field (its name is not shown: it is not shaped like a field name)")
            )
            if parent is not None:
                allowed = ", ".join(sorted(parent.model_fields))
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "literal_error":
            expected = (err.get("ctx") or {}).get("expected", "")
            msg = "unknown code"
            allowed = str(expected).replace("'", "")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = "must be a JSON object"
        else:
            msg = err["msg"]
            ctx = err.get("ctx") or {}
            if "error" in ctx:
                msg = str(ctx["error"])
        problems.append(FieldProblem(_path(loc), msg, allowed))
    if len(problems) > MAX_PROBLEMS:
        hidden = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS] + [
            FieldProblem("(document)", f"{hidden} more problems not listed", "fix the ones above first")
        ]
    return problems


def validate(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate parsed JSON against `model`, raising `InputError` with field paths."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise InputError(
            [FieldProblem("(document)", f"a patient must be a JSON object, not {_json_kind(data)}", "one JSON object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from(exc, model)) from None


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, (int, float)):
        return "a number"
    if data is None:
        return "null"
    return type(data).__name__
