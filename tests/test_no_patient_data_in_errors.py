"""No patient data in errors or logs: a rejection names fields, never the values that were sent.

Patients carrying distinctive identifying strings and numbers are sent in many invalid shapes (the
identifying value valid elsewhere in the patient, or itself the invalid value, or a key); none of
those strings may appear in the InputError, its dict form, the log, or the CLI's stderr or stdout.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import EXIT_INPUT, app
from engine import InferenceError, InputError, Triager
from engine.api import Rule, fact
from tests.strategies import any_patient
from tests.toy import toy_ruleset

NAME = "Zelda Quixote-Fairweather"
MRN = "MRN-88421-ZQF"
BIRTH = "1947-03-12"
DRUG = "Quixotamol"
SECRETS = (NAME, MRN, BIRTH, DRUG, "Zelda", "Quixote", "Fairweather", "88421", "987654", "31337")
triager = Triager()
runner = CliRunner()


def base() -> dict[str, Any]:
    """A valid patient whose id and medication identify her."""
    return {
        "id": f"{NAME} {MRN}",
        "age": 61,
        "sex": "female",
        "weight_kg": 70,
        "height_cm": 160,
        "pain": {"duration_weeks": 16, "neuropathic_features": ["burning"]},
        "prior_treatments": [{"treatment": "metatarsal_pad", "weeks": 8, "response": "none"}],
        "exam_findings": [],
        "comorbidities": [],
        "medications": [f"{DRUG} 5 mg"],
        "red_flags": [],
    }


def with_(path: str, value: Any) -> bytes:
    doc = base()
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    target[last] = value
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def text_of(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False)


SHAPES: dict[str, bytes] = {
    "name as age": with_("age", NAME),
    "mrn as sex": with_("sex", MRN),
    "birth date as duration": with_("pain.duration_weeks", BIRTH),
    "id too long": with_("id", f"{NAME} {MRN} " * 10),
    "id with a control character": with_("id", f"{NAME}\u0007{MRN}"),
    "id as a number": with_("id", 987654321),
    "name as a red flag": with_("red_flags", [NAME]),
    "name as an exam finding": with_("exam_findings", [MRN]),
    "name as a comorbidity": with_("comorbidities", [BIRTH]),
    "name as a treatment": with_("prior_treatments", [{"treatment": NAME, "weeks": 8, "response": "none"}]),
    "name as a response": with_("prior_treatments", [{"treatment": "insoles", "weeks": 8, "response": MRN}]),
    "medication too long": with_("medications", [f"{DRUG} " * 200]),
    "medication with an escape sequence": with_("medications", [f"\u001b[2J{DRUG}"]),
    "medications as an object": with_("medications", {NAME: DRUG}),
    "name as pain": with_("pain", NAME),
    "name as a DN4 item": with_("pain.neuropathic_features", [NAME]),
    "name as pregnant": with_("pregnant", NAME),
    "weight 987654": with_("weight_kg", 987654.321),
    "age 987654": with_("age", 987654),
    "severity 31337": with_("pain.severity", 31337),
    "unknown field holding the name": with_("next_of_kin", NAME),
    "unknown field named by the name": with_(NAME, True),
    "unknown field named by the birth date": with_(f"born {BIRTH}", True),
    "unknown nested field named by the mrn": with_(f"pain.{MRN}", 1),
    "duplicate id": text_of(base()).replace('"age"', f'"id": "{MRN}", "age"', 1).encode(),
    "duplicate key named by the name": text_of(base()).replace('"age"', f'"{NAME}": 1, "{NAME}": 2, "age"', 1).encode(),
    "pregnant male": json.dumps({**base(), "sex": "male", "pregnant": True}).encode(),
    "pain longer than life": json.dumps({**base(), "age": 1, "pain": {"duration_weeks": 31337}}).encode(),
    "NaN weight": text_of(base()).replace('"weight_kg": 70', '"weight_kg": NaN').encode(),
    "truncated inside the name": text_of(base()).encode()[:12],
    "syntax error after the name": text_of(base()).encode()[:-1] + b" " + NAME.encode(),
    "latin-1 bytes": text_of(base()).replace("Zelda", "Zélda").encode("latin-1"),
    "lone surrogate in the name": text_of(base()).replace(NAME, NAME + "\\ud800").encode(),
    "array of the patient": b"[" + text_of(base()).encode() + b"]",
    "the name as the document": json.dumps(NAME).encode(),
    "too large": with_("id", (NAME + " ") * 20_000),
    "nested too deep": with_("medications", json.loads("[" * 40 + json.dumps(NAME) + "]" * 40)),
    "thousands of digits": text_of(base()).replace('"age": 61', '"age": 9' + "8" * 5000).encode(),
}


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_an_input_error_names_no_patient_data(shape, caplog):
    """The InputError (message, problems, dict form) and the log hold none of the identifying values."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InputError) as info:
        triager.triage_json(SHAPES[shape])
    exc = info.value
    text = "\n".join([str(exc), repr(exc), json.dumps(exc.as_dict(), ensure_ascii=False), caplog.text])
    assert leaked(text) == []


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_cli_prints_no_patient_data_when_it_rejects_input(shape):
    """`triage -` rejects the input (exit 2) without repeating any identifying value on stderr or stdout."""
    res = runner.invoke(app, ["triage", "-", "--format", "json"], input=SHAPES[shape])
    assert res.exit_code == EXIT_INPUT
    assert leaked(res.stderr + res.stdout) == []


def test_an_unknown_field_shaped_like_a_field_name_is_still_named():
    """Hiding keys that look like data must not hide a typo: 'agee' is named, with the allowed fields."""
    with pytest.raises(InputError) as info:
        triager.triage_json(with_("agee", 61))
    assert [(p.field, p.problem) for p in info.value.problems] == [("agee", "unknown field")]


tokens = st.from_regex(r"\AZZ[A-Z]{6}[0-9]{4}\Z")


@given(any_patient(), tokens, st.data())
def test_a_token_planted_anywhere_never_appears_in_the_error(p, token, data):
    """A valid patient whose id carries a token, with one field (any) replaced by the token, a list
    of it, or an object keyed by it: if rejected, the error never shows the token."""
    doc = copy.deepcopy(p)
    doc["id"] = f"{token} {doc['id']}"[:128]
    field = data.draw(st.sampled_from(sorted(doc)), label="field")
    doc[field] = data.draw(st.sampled_from([token, [token], {token: token}, {"x": token}]), label="shape")
    try:
        triager.triage(doc)
    except InputError as exc:
        assert token not in str(exc) and token not in json.dumps(exc.as_dict())


def test_an_internal_error_names_no_patient_data():
    """When a rule fails on a patient's value, the internal error names the rule, not the value."""

    def fragile(ctx):
        raise KeyError(ctx.fact("t")["name"])

    toy = Triager(toy_ruleset([Rule("TOY-FRAGILE", "fails on any tag", when={"t": fact("tag")}, action=fragile)]))
    with pytest.raises(InferenceError) as info:
        toy.triage({"id": "a", "score": 1, "tags": [NAME]})
    assert leaked(str(info.value)) == []
