"""Safety invariants of the forefoot pain rule set, over generated valid patients (hypothesis).

The budget and seed come from the hypothesis profile (tests/strategies.py): `ci` by default,
`HYPOTHESIS_PROFILE=long` for a longer run with fresh seeds.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine import Result, default_triager
from rules.vocabulary import ADJUNCT, ESCALATIONS, INTERVENTIONAL, SURGICAL
from tests.conftest import load_example
from tests.strategies import (
    OPIOIDS,
    any_patient,
    empty_patient,
    flagged_patient,
    full_patient,
    holds_ldn,
    ldn_candidates,
    liver_stop,
    medication,
    opioid_exposed,
    opioid_medication,
    patients,
)

LDN = ADJUNCT[0]
ESCALATION_CATEGORIES = ("adjunct", "interventional", "surgical_referral")
LISTS = ("prior_treatments", "exam_findings", "comorbidities", "medications", "red_flags")


def triage(p: dict[str, Any]) -> Result:
    return default_triager().triage(p)


def as_json(result: Result) -> str:
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False)


def concluded(result: Result, fact: str) -> bool:
    return any(c == fact or c.startswith(fact + ":") for t in result.trace for c in t.concluded)


# ------------------------------------------------------------------ naltrexone


@given(patients(medications=st.lists(st.one_of(opioid_medication(), medication), min_size=1, max_size=8)))
@example(full_patient())
def test_ldn_is_never_recommended_with_opioid_exposure(p):
    """An opioid among the medications (any case, any combination) or opioid use disorder: no LDN,
    and LDN is listed as contraindicated."""
    r = triage(p)
    if opioid_exposed(p):
        assert r.recommended(LDN) is None
        assert any(n.kind == "contraindicated" for n in r.withheld(LDN))


@given(
    patients(
        comorbidities=st.lists(
            st.sampled_from(("acute_hepatitis", "liver_failure", "hepatic_impairment", "diabetes", "fibromyalgia")),
            unique=True,
            min_size=1,
        )
    )
)
def test_ldn_is_never_recommended_in_acute_hepatitis_or_liver_failure(p):
    """Acute hepatitis or liver failure: no LDN, and LDN is listed as contraindicated."""
    r = triage(p)
    if liver_stop(p):
        assert r.recommended(LDN) is None
        assert any(n.kind == "contraindicated" for n in r.withheld(LDN))


@given(ldn_candidates(st.lists(medication, max_size=6)), st.lists(opioid_medication(), min_size=1, max_size=3))
def test_an_opioid_is_what_withholds_ldn_from_an_otherwise_eligible_patient(p, opioids):
    """On the LDN path (persistent, DN4 ≥ 4, no red flag), LDN is offered without opioids and
    withheld as soon as any opioid is added: the invariant above is not vacuous."""
    clean = dict(
        p, medications=[m for m in p["medications"] if not opioid_exposed({"medications": [m]}) and not holds_ldn(m)]
    )
    assert triage(clean).recommended(LDN) is not None
    exposed = dict(clean, medications=clean["medications"] + opioids)
    assert triage(exposed).recommended(LDN) is None


@pytest.mark.parametrize("name", sorted(OPIOIDS))
def test_every_opioid_name_in_the_drug_vocabulary_withholds_ldn(name):
    """Each opioid name of the test oracle, as a clinic might type it (title case), withholds LDN from an
    LDN candidate as contraindicated."""
    p = load_example("neuropathic-persistent")
    p["medications"] = [name.title()]
    r = triage(p)
    assert r.recommended(LDN) is None
    assert any(n.kind == "contraindicated" for n in r.withheld(LDN))


# ------------------------------------------------------------------ red flags


@given(flagged_patient())
@example(full_patient())
def test_a_red_flag_stops_every_escalation(p):
    """Any red flag: nothing adjunct, interventional or surgical is recommended."""
    r = triage(p)
    assert [x.intervention for x in r.recommendations if x.category in ESCALATION_CATEGORIES] == []


@given(flagged_patient())
@example(full_patient())
def test_a_red_flag_always_brings_urgent_referral(p):
    """Any red flag: urgent referral is recommended, first, with the red flags in the result."""
    r = triage(p)
    assert r.recommendations[0].intervention == "urgent_referral"
    assert r.red_flags == sorted(p["red_flags"])


@given(any_patient())
@example(empty_patient())
def test_urgent_referral_only_with_a_red_flag(p):
    """No red flag: no urgent referral."""
    p = dict(p, red_flags=[])
    assert triage(p).recommended("urgent_referral") is None


# ------------------------------------------------------------------ every result


@given(any_patient())
@example(empty_patient())
@example(full_patient())
def test_every_recommendation_is_graded_and_cited(p):
    """Each recommendation has a SORT grade, a certainty and at least one citation that resolves
    in the result's citation library; urgent referral instead states its reason."""
    r = triage(p)
    for rec in r.recommendations:
        if rec.intervention == "urgent_referral":
            assert rec.rationale and all(line.strip() for line in rec.rationale)
            continue
        assert rec.evidence is not None, rec.intervention
        assert rec.evidence.sort in ("A", "B", "C")
        assert rec.evidence.certainty in ("high", "moderate", "low", "very_low")
        assert rec.evidence.citations
        assert set(rec.evidence.citations) <= set(r.citations)


@given(any_patient())
@example(empty_patient())
@example(full_patient())
def test_no_intervention_is_both_recommended_and_not_recommended(p):
    """An intervention is recommended, or not recommended, never both."""
    r = triage(p)
    assert not {x.intervention for x in r.recommendations} & {n.intervention for n in r.not_recommended}


@given(any_patient())
@example(empty_patient())
@example(full_patient())
def test_interventional_and_surgical_options_only_for_recalcitrant_pain(p):
    """Pulsed radiofrequency and every surgery are recommended only when the trace concluded recalcitrant_pain."""
    r = triage(p)
    escalated = [x.intervention for x in r.recommendations if x.intervention in INTERVENTIONAL + SURGICAL]
    if escalated:
        assert concluded(r, "recalcitrant_pain"), escalated


@given(any_patient())
@example(empty_patient())
@example(full_patient())
def test_every_escalation_is_accounted_for(p):
    """LDN, PRF and each surgery appear in every result: recommended, or not recommended with a reason."""
    r = triage(p)
    for code in ESCALATIONS:
        assert r.recommended(code) is not None or r.withheld(code), code
    for n in r.not_recommended:
        assert n.reason.strip()


# ------------------------------------------------------------------ invariance


def _shuffled(p: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    q = copy.deepcopy(p)
    for name in LISTS:
        q[name] = data.draw(st.permutations(q[name]), label=name)
    q["pain"]["neuropathic_features"] = data.draw(st.permutations(q["pain"]["neuropathic_features"]), label="dn4")
    return q


@given(any_patient(), st.data())
def test_result_is_invariant_under_reordering_every_list(p, data):
    """Listing treatments, findings, comorbidities, medications, red flags or DN4 items in another
    order gives the same result, byte for byte."""
    assert as_json(triage(_shuffled(p, data))) == as_json(triage(p))


@given(any_patient(), st.data())
def test_result_is_invariant_under_adding_an_unrelated_medication(p, data):
    """Adding metformin (not an opioid, not in any rule) anywhere in the list changes nothing,
    byte for byte, trace included."""
    where = data.draw(st.integers(0, len(p["medications"])), label="position")
    q = copy.deepcopy(p)
    q["medications"].insert(where, "metformin")
    assert as_json(triage(q)) == as_json(triage(p))


@given(any_patient())
def test_unrelated_medications_never_change_what_is_recommended(p):
    """Adding metformin never changes the result outside the trace: what is recommended or
    withheld, why, with which evidence, and what is unknown."""
    q = copy.deepcopy(p)
    q["medications"].append("metformin")
    a, b = triage(p), triage(q)
    assert a.model_dump(exclude={"trace"}) == b.model_dump(exclude={"trace"})
