"""The hostile-input corpus: every case, how it is made, and what its rejection must name.

Each case is a file that `python cli.py triage FILE` must reject with exit code 2 and a message
naming the problem (never a traceback, never a crash, nothing on stdout). Small cases are
committed under tests/hostile/corpus/ and regenerated with

    python tests/hostile/make_corpus.py

Large cases (a 50 MB file, a 1 MB string, 100,000 nested brackets, 10,000 medications, ...) are
never committed: `write_large(directory)` writes them at test time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
#: engine.kernel.inputs.MAX_INPUT_BYTES, repeated so that this script runs without the project installed.
MAX_INPUT_BYTES = 256 * 1024
MB = 1024 * 1024


def valid_patient() -> dict[str, Any]:
    """A valid patient (exit 0): every case below breaks it in exactly one way."""
    return {
        "id": "hostile-base",
        "age": 54,
        "sex": "female",
        "weight_kg": 82,
        "height_cm": 165,
        "pain": {
            "site": "forefoot",
            "side": "left",
            "duration_weeks": 16,
            "severity": 6,
            "neuropathic_features": ["burning", "tingling", "numbness", "electric_shocks"],
        },
        "prior_treatments": [{"treatment": "metatarsal_pad", "weeks": 8, "response": "none"}],
        "exam_findings": ["gastrocnemius_tightness"],
        "comorbidities": [],
        "medications": ["sertraline"],
        "red_flags": [],
        "pregnant": False,
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


VALID = dumps(valid_patient())


def changed(path: str, value: Any) -> bytes:
    """The valid patient with the field at dotted `path` set to `value` (JSON-serialisable)."""
    doc = valid_patient()
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    target[last] = value
    return dumps(doc)


def raw(path: str, literal: str) -> bytes:
    """The valid patient with the field at `path` written as the raw JSON text `literal`
    (for what json.dumps cannot write: NaN, 1e400, duplicate keys, ...)."""
    marker = "\u0000MARK\u0000"
    text = changed(path, marker).decode("utf-8")
    return text.replace(json.dumps(marker), literal).encode("utf-8")


def without(path: str) -> bytes:
    doc = valid_patient()
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    del target[last]
    return dumps(doc)


@dataclass(frozen=True)
class Case:
    """One hostile input: its file name, its bytes, what the rejection must say, and why it is here."""

    name: str
    make: Callable[[], bytes]
    expect: tuple[str, ...]
    what: str
    large: bool = False

    def data(self) -> bytes:
        return self.make()


def _case(
    name: str, data: bytes | Callable[[], bytes], expect: tuple[str, ...], what: str, large: bool = False
) -> Case:
    return Case(name, data if callable(data) else (lambda d=data: d), expect, what, large)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


SMALL: list[Case] = [
    # -- empty and truncated
    _case("empty.json", b"", ("(document)", "empty"), "an empty file"),
    _case("whitespace-only.json", b" \n\t\r\n  ", ("empty",), "only whitespace"),
    _case("bom-only.json", b"\xef\xbb\xbf", ("empty",), "a byte-order mark and nothing else"),
    _case("truncated-object.json", VALID[: len(VALID) // 2], ("not valid JSON",), "a patient cut off half-way"),
    _case(
        "truncated-in-string.json",
        VALID[: VALID.index(b"hostile-base") + 5],
        ("not valid JSON", "Unterminated string"),
        "cut off inside a string",
    ),
    _case("truncated-after-key.json", b'{"id"', ("not valid JSON",), "cut off after the first key"),
    # -- not UTF-8
    _case(
        "latin1.json",
        changed("id", "José").decode().encode("latin-1"),
        ("not valid UTF-8",),
        "Latin-1 bytes (an editor's legacy encoding)",
    ),
    _case("utf16.json", VALID.decode().encode("utf-16"), ("not valid UTF-8",), "UTF-16 with its byte-order mark"),
    _case("invalid-byte.json", b'{"id": "\xff\xfe", "age": 54}', ("not valid UTF-8",), "bytes 0xFF 0xFE in a string"),
    _case("overlong-utf8.json", b'{"id": "\xc0\xaf"}', ("not valid UTF-8",), "an overlong UTF-8 sequence"),
    _case("nul-bytes.json", b"\x00" * 64, ("not valid JSON",), "NUL bytes only"),
    # -- JSON syntax
    _case("trailing-garbage.json", VALID + b"\nx", ("not valid JSON", "Extra data"), "text after the object"),
    _case("two-documents.json", VALID + VALID, ("not valid JSON", "Extra data"), "two patients in one file"),
    _case("comment.json", b"// a patient\n" + VALID, ("not valid JSON",), "a JavaScript comment"),
    _case("single-quotes.json", VALID.replace(b'"', b"'"), ("not valid JSON",), "single-quoted strings"),
    _case("trailing-comma.json", VALID[:-2] + b",\n}", ("not valid JSON",), "a trailing comma"),
    _case("double-bom.json", b"\xef\xbb\xbf\xef\xbb\xbf" + VALID, ("not valid JSON",), "two byte-order marks"),
    # -- duplicate keys
    _case(
        "duplicate-key.json",
        VALID.replace(b'"age": 54,', b'"age": 54,\n "age": 45,'),
        ("age", "appears twice"),
        "age given twice with different values",
    ),
    _case(
        "duplicate-nested-key.json",
        VALID.replace(b'"duration_weeks": 16,', b'"duration_weeks": 16, "duration_weeks": 1,'),
        ("duration_weeks", "appears twice"),
        "a duplicate key inside pain",
    ),
    # -- nulls where values belong
    _case("null-document.json", b"null", ("(document)", "not null"), "the document is null"),
    _case("null-age.json", changed("age", None), ("age:", "integer"), "age is null"),
    _case("null-pain.json", changed("pain", None), ("pain:", "JSON object"), "pain is null"),
    _case("null-duration.json", changed("pain.duration_weeks", None), ("pain.duration_weeks",), "duration is null"),
    _case(
        "null-in-medications.json", changed("medications", [None]), ("medications[0]", "string"), "a null medication"
    ),
    # -- NaN, Infinity and extreme numbers
    _case("nan.json", raw("weight_kg", "NaN"), ("NaN", "not a number JSON allows"), "NaN as a weight"),
    _case(
        "infinity.json",
        raw("pain.duration_weeks", "Infinity"),
        ("Infinity", "not a number JSON allows"),
        "Infinity as a duration",
    ),
    _case("negative-infinity.json", raw("height_cm", "-Infinity"), ("-Infinity",), "-Infinity as a height"),
    _case("tiny-number-age.json", raw("age", "1e-05"), ("age:", "integer"), "1e-05 as an age"),
    _case(
        "tiny-number-severity.json", raw("pain.severity", "1e-05"), ("pain.severity", "integer"), "1e-05 as a severity"
    ),
    _case(
        "huge-number.json",
        raw("pain.duration_weeks", "1e308"),
        ("pain.duration_weeks", "less than or equal"),
        "1e308 weeks",
    ),
    _case(
        "overflow-number.json", raw("weight_kg", "1e400"), ("weight_kg", "finite"), "1e400 (beyond a float) as a weight"
    ),
    _case("overflow-integer-age.json", raw("age", "1" + "0" * 400), ("age", "less than or equal"), "a 401-digit age"),
    _case(
        "thousands-of-digits.json",
        raw("age", "9" * 5000),
        ("thousands of digits",),
        "a 5000-digit integer (beyond Python's int conversion limit)",
    ),
    # -- arrays where objects belong, objects where lists belong
    _case("array-document.json", b"[" + VALID + b"]", ("(document)", "an array"), "the patient wrapped in an array"),
    _case("empty-array-document.json", b"[]", ("an array",), "an empty array"),
    _case("array-for-pain.json", changed("pain", []), ("pain:", "JSON object"), "pain as an array"),
    _case(
        "array-for-treatment.json",
        changed("prior_treatments", [["metatarsal_pad", 8, "none"]]),
        ("prior_treatments[0]", "JSON object"),
        "a prior treatment as an array",
    ),
    _case(
        "object-for-medications.json",
        changed("medications", {"tramadol": 50}),
        ("medications", "list"),
        "medications as an object",
    ),
    _case(
        "string-for-red-flags.json",
        changed("red_flags", "suspected_charcot"),
        ("red_flags", "list"),
        "red flags as a string",
    ),
    # -- other documents
    _case("number-document.json", b"42", ("a number",), "a bare number"),
    _case("string-document.json", b'"patient"', ("a string",), "a bare string"),
    _case("boolean-document.json", b"true", ("a boolean",), "a bare boolean"),
    _case("empty-object.json", b"{}", ("id", "required field is missing"), "an empty object"),
    # -- unknown fields
    _case(
        "unknown-field.json", changed("nickname", "Jo"), ("nickname", "unknown field"), "a field not in the contract"
    ),
    _case(
        "unknown-nested-field.json",
        changed("pain.location", "ball of foot"),
        ("pain.location", "unknown field"),
        "a field not in the contract, inside pain",
    ),
    _case(
        "unknown-field-like-data.json",
        changed("Jane Doe 1970-01-01", True),
        ("<key>", "unknown field", "not shown"),
        "an unknown key that looks like patient data (not echoed)",
    ),
    _case(
        "many-unknown-fields.json",
        dumps({**valid_patient(), **{f"extra_{i}": i for i in range(200)}}),
        ("unknown field", "more problems not listed"),
        "200 unknown fields (the problem list is capped)",
    ),
    _case("missing-pain.json", without("pain"), ("pain", "required field is missing"), "no pain"),
    _case("missing-duration.json", without("pain.duration_weeks"), ("pain.duration_weeks", "required"), "no duration"),
    # -- wrong types
    _case("string-for-age.json", changed("age", "54"), ("age:", "integer"), "age as a string"),
    _case("float-for-age.json", changed("age", 54.5), ("age:", "integer"), "a fractional age"),
    _case("boolean-for-age.json", changed("age", True), ("age:", "integer"), "true as an age"),
    _case(
        "boolean-for-duration.json",
        changed("pain.duration_weeks", False),
        ("pain.duration_weeks",),
        "false as a duration",
    ),
    _case("number-for-id.json", changed("id", 12345), ("id:", "string"), "a numeric id"),
    _case("string-for-boolean.json", changed("pregnant", "no"), ("pregnant", "boolean"), "'no' as pregnant"),
    _case(
        "number-for-medication.json",
        changed("medications", [50]),
        ("medications[0]", "string"),
        "a number as a medication",
    ),
    # -- out of range
    _case("negative-age.json", changed("age", -1), ("age:", "greater than or equal to 0"), "age -1"),
    _case("age-200.json", changed("age", 200), ("age:", "less than or equal to 120"), "age 200"),
    _case(
        "negative-duration.json",
        changed("pain.duration_weeks", -3),
        ("pain.duration_weeks", "greater than or equal"),
        "-3 weeks of pain",
    ),
    _case(
        "negative-treatment-weeks.json",
        changed("prior_treatments", [{"treatment": "metatarsal_pad", "weeks": -8, "response": "none"}]),
        ("prior_treatments[0].weeks",),
        "a treatment tried for -8 weeks",
    ),
    _case(
        "negative-weight.json",
        changed("weight_kg", -82),
        ("weight_kg", "greater than or equal to 0.5"),
        "a negative weight",
    ),
    _case(
        "zero-height.json",
        changed("height_cm", 0),
        ("height_cm", "greater than or equal to 20"),
        "height 0 (BMI would divide by zero)",
    ),
    _case(
        "severity-11.json",
        changed("pain.severity", 11),
        ("pain.severity", "less than or equal to 10"),
        "severity 11 of 10",
    ),
    _case(
        "pain-longer-than-life.json",
        changed("pain.duration_weeks", 4000),
        ("longer than the patient has been alive",),
        "pain lasting longer than the patient's life",
    ),
    _case(
        "pregnant-male.json",
        dumps({**valid_patient(), "sex": "male", "pregnant": True}),
        ("pregnant is true but sex is male",),
        "a pregnant male",
    ),
    # -- codes and strings
    _case(
        "unknown-red-flag.json",
        changed("red_flags", ["broken_leg"]),
        ("red_flags[0]", "unknown code", "suspected_charcot"),
        "a red flag not in the code list",
    ),
    _case(
        "unknown-treatment.json",
        changed("prior_treatments", [{"treatment": "acupuncture", "weeks": 8, "response": "none"}]),
        ("prior_treatments[0].treatment", "unknown code"),
        "a treatment not in the code list",
    ),
    _case(
        "code-in-upper-case.json",
        changed("exam_findings", ["PLANTAR_CALLUS"]),
        ("exam_findings[0]", "unknown code"),
        "a code in the wrong case",
    ),
    _case(
        "duplicate-code.json",
        changed("red_flags", ["acute_trauma", "acute_trauma"]),
        ("red_flags", "twice"),
        "one red flag listed twice",
    ),
    _case(
        "duplicate-treatment.json",
        changed("prior_treatments", [{"treatment": "insoles", "weeks": 8, "response": "none"}] * 2),
        ("prior_treatments", "listed twice"),
        "one treatment listed twice",
    ),
    _case("empty-id.json", changed("id", ""), ("id:", "at least 1 character"), "an empty id"),
    _case(
        "control-character-in-id.json", changed("id", "pat\u0007ient"), ("id:", "pattern"), "a BEL character in the id"
    ),
    _case(
        "escape-sequence-in-medication.json",
        changed("medications", ["\u001b[31mred"]),
        ("medications[0]", "pattern"),
        "a terminal escape sequence as a medication",
    ),
    _case("lone-surrogate.json", raw("id", '"\\ud800"'), ("id:", "unicode"), "a lone UTF-16 surrogate escape"),
    _case("id-too-long.json", changed("id", "x" * 200), ("id:", "at most 128 characters"), "a 200-character id"),
    _case(
        "deep-nesting-in-field.json",
        raw("medications", (b"[" * 40 + b"]" * 40).decode()),
        ("nested deeper than 32",),
        "40 nested arrays as the medication list",
    ),
]


def _padded_to(size: int) -> bytes:
    """The valid patient, padded with trailing spaces to exactly `size` bytes (valid JSON)."""
    return VALID + b" " * (size - len(VALID))


def _big_file() -> bytes:
    # 50 MB of a medication list that never ends: also the shape of an endless upload
    unit = b'"tramadol", '
    return (
        b'{"id": "x", "age": 40, "pain": {"duration_weeks": 3}, "medications": ['
        + unit * (50 * MB // len(unit))
        + b'"x"]}'
    )


LARGE: list[Case] = [
    # (the default `--input auto` reads up to the FHIR limit before it knows the kind of document,
    # so the limit named for a 50 MB file depends on the input kind: only "larger than" is pinned)
    _case("file-50mb.json", _big_file, ("(document)", "larger than", "bytes"), "a 50 MB file", large=True),
    _case(
        "string-1mb.json",
        lambda: changed("id", "x" * MB),
        (f"larger than {MAX_INPUT_BYTES} bytes",),
        "a 1 MB string as the id",
        large=True,
    ),
    _case(
        "string-200kb.json",
        lambda: changed("id", "é" * 100_000),
        ("id:", "at most 128 characters"),
        "a 200 KB string as the id (under the size limit)",
        large=True,
    ),
    _case(
        "nested-100k-brackets.json",
        lambda: _nested(100_000),
        ("nested deeper than 32",),
        "100,000 nested brackets",
        large=True,
    ),
    _case(
        "nested-100k-unclosed.json",
        lambda: b"[" * 100_000,
        ("nested deeper than 32",),
        "100,000 opening brackets, never closed",
        large=True,
    ),
    _case(
        "nested-100k-in-field.json",
        lambda: raw("pain.duration_weeks", _nested(100_000).decode()),
        ("nested deeper than 32",),
        "100,000 nested brackets as the duration",
        large=True,
    ),
    _case(
        "nested-40k-objects.json",
        lambda: b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        ("nested deeper than 32",),
        "40,000 nested objects (240 KB)",
        large=True,
    ),
    _case(
        "medications-10000.json",
        lambda: changed("medications", ["tramadol"] * 10_000),
        ("medications", "at most 60 items"),
        "10,000 medications",
        large=True,
    ),
    _case(
        "treatments-4000.json",
        lambda: json.dumps(
            {**valid_patient(), "prior_treatments": [{"treatment": "insoles", "weeks": 8, "response": "none"}] * 4000},
            separators=(",", ":"),
        ).encode(),
        ("prior_treatments", "at most 30 items"),
        "4,000 prior treatments (just under the size limit)",
        large=True,
    ),
    _case(
        "unknown-fields-5000.json",
        lambda: dumps({**valid_patient(), **{f"x{i}": i for i in range(5000)}}),
        ("unknown field", "more problems not listed"),
        "5,000 unknown fields",
        large=True,
    ),
    _case(
        "numbers-array-document.json",
        lambda: json.dumps(list(range(20_000))).encode(),
        ("an array",),
        "an array of 20,000 numbers",
        large=True,
    ),
    _case(
        "one-byte-over-limit.json",
        lambda: _padded_to(MAX_INPUT_BYTES + 1),
        (f"larger than {MAX_INPUT_BYTES} bytes",),
        "a valid patient padded to one byte over the limit",
        large=True,
    ),
]

CASES: list[Case] = SMALL + LARGE


def write_small(directory: Path = CORPUS_DIR) -> list[Path]:
    """(Re)write every committed case into `directory`, removing files no case describes."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {c.name for c in SMALL}
    for stale in directory.glob("*.json"):
        if stale.name not in names:
            stale.unlink()
    out = []
    for case in SMALL:
        path = directory / case.name
        path.write_bytes(case.data())
        out.append(path)
    return out


def write_large(directory: Path) -> dict[str, Path]:
    """Write every large case into `directory` (a temporary one: these are never committed)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for case in LARGE:
        path = directory / case.name
        path.write_bytes(case.data())
        out[case.name] = path
    return out


if __name__ == "__main__":
    written = write_small()
    print(f"{len(written)} files written to {CORPUS_DIR}; {len(LARGE)} large cases are generated at test time")
