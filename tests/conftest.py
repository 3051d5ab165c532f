"""Shared Given/When/Then steps for the Gherkin specs in features/.

A scenario builds a patient step by step (Given), triages it once (When) and checks the result
(Then). Interventions, kinds, categories and rule ids are written as the codes of CONTRACT.md.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from engine import Result, default_triager

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = ROOT.parent / "shared" / "examples"
LOCAL_EXAMPLES = ROOT / "tests" / "examples"


def example_path(name: str) -> Path:
    """../shared/examples/NAME.json where it exists (CI lays shared/ beside the clone), else the copy in tests/."""
    shared = SHARED_EXAMPLES / f"{name}.json"
    return shared if shared.exists() else LOCAL_EXAMPLES / f"{name}.json"


def load_example(name: str) -> dict[str, Any]:
    return json.loads(example_path(name).read_text(encoding="utf-8"))


def csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# ------------------------------------------------------------------ Given


@given(parsers.parse("a {age:d}-year-old {sex:w} with {weeks:g} weeks of forefoot pain"), target_fixture="patient")
def new_patient(age: int, sex: str, weeks: float) -> dict[str, Any]:
    """A patient with nothing else known: no treatments, findings, comorbidities or medications."""
    return {
        "id": "scenario",
        "age": age,
        "sex": sex,
        "pain": {"site": "forefoot", "side": "right", "duration_weeks": weeks, "neuropathic_features": []},
        "prior_treatments": [],
        "exam_findings": [],
        "comorbidities": [],
        "medications": [],
        "red_flags": [],
    }


@given(parsers.parse('the example patient "{name}"'), target_fixture="patient")
def example_patient(name: str) -> dict[str, Any]:
    """One of the shared example patients, as written."""
    return copy.deepcopy(load_example(name))


@given(parsers.parse("neuropathic features {items}"))
def neuropathic(patient: dict, items: str) -> None:
    """DN4 items, comma-separated: 'burning, tingling'."""
    patient["pain"]["neuropathic_features"] = csv(items)


@given("the DN4 was assessed")
def dn4_assessed(patient: dict) -> None:
    patient["pain"]["dn4_assessed"] = True


@given(parsers.parse("{treatment:w} tried for {weeks:g} weeks with response {response:w}"))
def tried(patient: dict, treatment: str, weeks: float, response: str) -> None:
    patient["prior_treatments"].append({"treatment": treatment, "weeks": weeks, "response": response})


@given(parsers.parse("the examination finds {finding:w}"))
def exam(patient: dict, finding: str) -> None:
    patient["exam_findings"].append(finding)


@given(parsers.parse("comorbidity {code:w}"))
def comorbidity(patient: dict, code: str) -> None:
    patient["comorbidities"].append(code)


@given(parsers.parse('medication "{name}"'))
def medication(patient: dict, name: str) -> None:
    patient["medications"].append(name)


@given(parsers.parse("red flag {code:w}"))
def red_flag(patient: dict, code: str) -> None:
    patient["red_flags"].append(code)


@given(parsers.parse("weight {weight:g} kg and height {height:g} cm"))
def body(patient: dict, weight: float, height: float) -> None:
    patient["weight_kg"], patient["height_cm"] = weight, height


@given(parsers.parse("the patient is {state:w}"))
def status(patient: dict, state: str) -> None:
    """pregnant, breastfeeding, not_pregnant, or a sex (female, male, other)."""
    if state == "not_pregnant":
        patient["pregnant"] = False
    elif state in ("female", "male", "other"):
        patient["sex"] = state
    else:
        patient[state] = True


# ------------------------------------------------------------------ When


@when("the patient is triaged", target_fixture="result")
def triaged(patient: dict) -> Result:
    """Triage through the embedding API, exactly as a clinic script would."""
    return default_triager().triage(patient)


# ------------------------------------------------------------------ Then


def _withheld(result: Result, intervention: str, kind: str | None = None):
    return [n for n in result.not_recommended if n.intervention == intervention and (kind is None or n.kind == kind)]


@then(parsers.parse("{intervention:w} is recommended"))
def is_recommended(result: Result, intervention: str) -> None:
    assert result.recommended(intervention) is not None, [r.intervention for r in result.recommendations]


@then(parsers.parse("{intervention:w} is recommended as {category:w}"))
def is_recommended_as(result: Result, intervention: str, category: str) -> None:
    rec = result.recommended(intervention)
    assert rec is not None, [r.intervention for r in result.recommendations]
    assert rec.category == category


@then(parsers.parse("{intervention:w} is not recommended"))
def is_not_recommended(result: Result, intervention: str) -> None:
    assert result.recommended(intervention) is None


@then(parsers.parse("{intervention:w} is not recommended as {kind:w}"))
def withheld_as(result: Result, intervention: str, kind: str) -> None:
    assert result.recommended(intervention) is None
    assert _withheld(result, intervention, kind), [(n.intervention, n.kind) for n in result.not_recommended]


@then(parsers.parse('{intervention:w} is not recommended as {kind:w} because "{text}"'))
def withheld_because(result: Result, intervention: str, kind: str, text: str) -> None:
    entries = _withheld(result, intervention, kind)
    assert entries, [(n.intervention, n.kind) for n in result.not_recommended]
    assert any(text in n.reason for n in entries), [n.reason for n in entries]


@then(parsers.parse("{intervention:w} is not withheld as {kind:w}"))
def not_withheld_as(result: Result, intervention: str, kind: str) -> None:
    assert not _withheld(result, intervention, kind)


@then(parsers.parse("{intervention:w} is not mentioned"))
def not_mentioned(result: Result, intervention: str) -> None:
    assert result.recommended(intervention) is None
    assert not _withheld(result, intervention)


@then(parsers.parse("rule {rule} fires"))
def rule_fires(result: Result, rule: str) -> None:
    assert rule in {t.rule for t in result.trace}, [t.rule for t in result.trace]


@then(parsers.parse("rule {rule} does not fire"))
def rule_does_not_fire(result: Result, rule: str) -> None:
    assert rule not in {t.rule for t in result.trace}


def _concluded(result: Result) -> set[str]:
    return {c.split(":")[0] for t in result.trace for c in t.concluded}


@then(parsers.parse("the finding {name:w} is concluded"))
def finding_concluded(result: Result, name: str) -> None:
    assert name in _concluded(result), sorted(_concluded(result))


@then(parsers.parse("the finding {name:w} is not concluded"))
def finding_not_concluded(result: Result, name: str) -> None:
    assert name not in _concluded(result)


@then(parsers.parse('the trace explains "{text}"'))
def trace_explains(result: Result, text: str) -> None:
    lines = [b for t in result.trace for b in t.because]
    assert any(text in b for b in lines), lines


@then(parsers.parse("the evidence for {intervention:w} is SORT {sort:w} with {certainty:w} certainty"))
def evidence_grade(result: Result, intervention: str, sort: str, certainty: str) -> None:
    rec = result.recommended(intervention)
    assert rec is not None and rec.evidence is not None
    assert (rec.evidence.sort, rec.evidence.certainty) == (sort, certainty)


@then(parsers.parse("the evidence for {intervention:w} cites {citation}"))
def evidence_cites(result: Result, intervention: str, citation: str) -> None:
    rec = result.recommended(intervention)
    assert rec is not None and rec.evidence is not None
    assert citation in rec.evidence.citations
    assert citation in result.citations


@then(parsers.parse('the details of {intervention:w} mention "{text}"'))
def details_mention(result: Result, intervention: str, text: str) -> None:
    rec = result.recommended(intervention)
    assert rec is not None
    assert text in json.dumps(rec.details, ensure_ascii=False), rec.details


@then(parsers.parse('the rationale of {intervention:w} mentions "{text}"'))
def rationale_mentions(result: Result, intervention: str, text: str) -> None:
    rec = result.recommended(intervention)
    assert rec is not None
    assert any(text in line for line in rec.rationale), rec.rationale


@then(parsers.parse("{fact} is listed as unknown"))
def unknown_listed(result: Result, fact: str) -> None:
    assert fact in {u.fact for u in result.unknowns}, [u.fact for u in result.unknowns]


@then(parsers.parse("{fact} is not listed as unknown"))
def unknown_not_listed(result: Result, fact: str) -> None:
    assert fact not in {u.fact for u in result.unknowns}


@then("no escalation is recommended")
def no_escalation(result: Result) -> None:
    assert not [r for r in result.recommendations if r.category in ("adjunct", "interventional", "surgical_referral")]


@then(parsers.parse("the red flags are {codes}"))
def red_flags_are(result: Result, codes: str) -> None:
    assert result.red_flags == sorted(csv(codes))


@then(parsers.parse('the strength of {intervention:w} is "{strength}"'))
def strength_is(result: Result, intervention: str, strength: str) -> None:
    """The recommendation's strength wording, e.g. "may be considered" for LDN and PRF."""
    rec = result.recommended(intervention)
    assert rec is not None, [r.intervention for r in result.recommendations]
    assert rec.strength == strength


@then("no intervention is both recommended and not recommended")
def never_both(result: Result) -> None:
    """A withheld intervention is never also offered, whatever the reasons."""
    both = {r.intervention for r in result.recommendations} & {n.intervention for n in result.not_recommended}
    assert not both, sorted(both)


@pytest.fixture
def triager():
    return default_triager()


# ------------------------------------------------------------------ rule set 1.2 steps


@given(parsers.parse('medication "{name}" stopped {days:g} days ago'))
def medication_stopped(patient: dict, name: str, days: float) -> None:
    """A medication recorded as stopped, with the days since (the structured form of CONTRACT.md)."""
    patient["medications"].append({"name": name, "status": "stopped", "stopped_days_ago": days})


@given(parsers.parse("medication coded RxNorm {code:w} with no name"))
def medication_code_only(patient: dict, code: str) -> None:
    """A medication sent as an RxNorm code only, as e-prescribing sends it."""
    patient["medications"].append({"rxnorm": code})


@given(parsers.parse('medication "{name}" coded RxNorm {code:w}'))
def medication_coded(patient: dict, name: str, code: str) -> None:
    patient["medications"].append({"name": name, "rxnorm": code})


@given(parsers.parse("the record could not retrieve {section}"))
def not_retrieved(patient: dict, section: str) -> None:
    """A part of the record a source failed to fetch (CONTRACT.md `not_retrieved`)."""
    patient.setdefault("not_retrieved", []).append(section)


@given("the DN4 was done by interview only")
def dn4_interview_only(patient: dict) -> None:
    patient["pain"]["dn4_examined"] = False
    patient["pain"]["dn4_assessed"] = True


@then(parsers.parse('no result says "{text}"'))
def no_result_says(result: Result, text: str) -> None:
    """Nothing the clinician reads (rationale, details, reasons, unknowns, notices) says `text`."""
    data = result.model_dump(mode="json")
    readable = json.dumps(
        [data["recommendations"], data["not_recommended"], data["unknowns"], data["notices"]], ensure_ascii=False
    )
    assert text not in readable


@then(parsers.parse("the review of {intervention:w} is at {weeks:g} weeks"))
def review_at(result: Result, intervention: str, weeks: float) -> None:
    rec = result.recommended(intervention)
    assert rec is not None and rec.review is not None, rec
    assert rec.review.weeks == weeks, rec.review


@then(parsers.parse('a notice "{code}" names {intervention:w} and says "{text}"'))
def notice_names(result: Result, code: str, intervention: str, text: str) -> None:
    notices = [n for n in result.notices if n.code == code]
    assert notices, [n.code for n in result.notices]
    assert intervention in notices[0].affects and text in notices[0].text, notices[0]


@then("no notice is given")
def no_notice(result: Result) -> None:
    assert result.notices == []


@then(parsers.parse("the unknown {fact} affects {intervention:w}"))
def unknown_affects(result: Result, fact: str, intervention: str) -> None:
    found = [u for u in result.unknowns if u.fact == fact]
    assert found and intervention in found[0].blocks, [(u.fact, u.blocks) for u in result.unknowns]


@then(parsers.parse("the first-line plan has {codes}"))
def first_line_plan_has(result: Result, codes: str) -> None:
    have = {r.intervention for r in result.recommendations if r.category == "first_line"}
    assert set(csv(codes)) <= have, sorted(have)


@given("no neuropathic features are listed")
def no_neuropathic(patient: dict) -> None:
    patient["pain"]["neuropathic_features"] = []
    patient["pain"].pop("dn4_assessed", None)
