"""Fuzzing the JSON entry point: whatever arrives, the engine answers with a result or an `InputError`.

`Triager().triage_json` and the CLI (`triage -`) are fed arbitrary bytes, arbitrary JSON, valid
patients with bytes flipped, and valid patients with one field replaced by an arbitrary JSON
value. No other exception may escape, and the CLI exits 0 or 2, never with a traceback. The budget
is the hypothesis profile's (tests/strategies.py): `ci` by default, `HYPOTHESIS_PROFILE=long` for
a longer run.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import EXIT_INPUT, EXIT_OK, app
from engine import InputError, Result, Triager
from tests.strategies import any_patient

triager = Triager()
runner = CliRunner()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and ±Infinity included: json.dumps writes them as NaN/Infinity
    st.text(max_size=40),
    st.sampled_from(["", "tramadol", "metatarsal_pad", "suspected_charcot", "burning", "none", "\ufeff", "\ud800"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)


def triage_or_reject(data: bytes | str) -> Result | InputError:
    """The one contract of the entry point: a Result, or an InputError with at least one problem."""
    try:
        return triager.triage_json(data)
    except InputError as exc:
        assert exc.problems and all(p.field and p.problem for p in exc.problems)
        return exc


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


# ------------------------------------------------------------------ paths into a document


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) to a value inside `doc`, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


def deleted(doc: Any, path: tuple) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return doc


# ------------------------------------------------------------------ the fuzz


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_result_or_an_input_error(data):
    """Any bytes at all: a result or an InputError, nothing else."""
    triage_or_reject(data)


@given(json_values)
def test_arbitrary_json_gives_a_result_or_an_input_error(value):
    """Any JSON document (NaN, huge integers and odd strings included): a result or an InputError."""
    triage_or_reject(dumps(value))


@given(any_patient(), st.data())
def test_a_valid_patient_with_one_value_replaced_gives_a_result_or_an_input_error(p, data):
    """Replace any one value of a valid patient (the root, a field, a list item) by arbitrary JSON."""
    path = data.draw(st.sampled_from(paths(p)), label="path")
    doc = replaced(p, path, data.draw(json_values, label="value"))
    triage_or_reject(dumps(doc))


@given(any_patient(), st.data())
def test_a_valid_patient_with_a_field_removed_or_added_gives_a_result_or_an_input_error(p, data):
    """Delete any one key or list item, or add an arbitrary key anywhere: a result or an InputError."""
    containers = [q for q in paths(p) if isinstance(_at(p, q), (dict, list))]
    where = data.draw(st.sampled_from(containers), label="container")
    target = _at(p, where)
    if target and data.draw(st.booleans(), label="delete"):
        key = data.draw(st.sampled_from(list(target) if isinstance(target, dict) else range(len(target))), label="key")
        doc = deleted(p, where + (key,))
    elif isinstance(target, dict):
        doc = replaced(p, where + (data.draw(st.text(max_size=12), label="new key"),), data.draw(json_values))
    else:
        doc = replaced(p, where, target + [data.draw(json_values, label="new item")])
    triage_or_reject(dumps(doc))


def _at(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@given(any_patient(), st.data())
def test_a_valid_patient_with_bytes_corrupted_gives_a_result_or_an_input_error(p, data):
    """Flip, insert or delete a few bytes of a valid patient's JSON: a result or an InputError."""
    raw = bytearray(dumps(p).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        i = data.draw(st.integers(0, len(raw)), label="at")
        op = data.draw(st.sampled_from(("flip", "insert", "delete")), label="op")
        byte = data.draw(st.integers(0, 255), label="byte")
        if op == "insert" or i == len(raw):
            raw[i:i] = bytes([byte])
        elif op == "flip":
            raw[i] = byte
        else:
            del raw[i]
    triage_or_reject(bytes(raw))


@given(st.one_of(st.binary(max_size=512), json_values.map(lambda v: dumps(v).encode("utf-8", "surrogatepass"))))
def test_the_cli_exits_0_or_2_and_never_shows_a_traceback(data):
    """`triage - --format json` on arbitrary input: exit 0 with a JSON result, or exit 2 with the
    problems on stderr and nothing on stdout; never a traceback."""
    res = runner.invoke(app, ["triage", "-", "--format", "json"], input=data)
    assert res.exit_code in (EXIT_OK, EXIT_INPUT), (res.exit_code, res.stderr, res.exception)
    assert "Traceback" not in res.stderr
    if res.exit_code == EXIT_OK:
        assert "patient_id" in json.loads(res.stdout)
    else:
        assert res.stdout == "" and "input rejected" in res.stderr
