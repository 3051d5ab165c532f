"""Issue 3: the safety blocks hold whatever order rules are defined and facts arrive in."""

from __future__ import annotations

import dataclasses
import random

import pytest

from engine import Triager, default_triager
from rules import RULESET
from tests.conftest import load_example

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
EXTRA = [
    # opioid user with 3 weeks of pain: contraindication and deferral both listed
    {
        "id": "a",
        "age": 40,
        "pain": {"duration_weeks": 3, "neuropathic_features": ["burning", "tingling", "numbness", "itching"]},
        "medications": ["Oxycodone/Acetaminophen 5/325"],
    },
    # persistent neuropathic pain with a red flag and liver failure
    {
        "id": "b",
        "age": 60,
        "pain": {"duration_weeks": 30, "neuropathic_features": ["burning", "tingling", "numbness", "itching"]},
        "prior_treatments": [
            {"treatment": "metatarsal_pad", "weeks": 10, "response": "none"},
            {"treatment": "insoles", "weeks": 10, "response": "none"},
            {"treatment": "calf_stretching", "weeks": 10, "response": "worsened"},
        ],
        "exam_findings": ["gastrocnemius_tightness", "plantar_plate_instability", "flexible_toe_deformity"],
        "comorbidities": ["liver_failure"],
        "red_flags": ["suspected_infection", "acute_trauma"],
    },
    # the same without the red flags and liver failure: everything offered
    {
        "id": "c",
        "age": 60,
        "pain": {"duration_weeks": 30, "neuropathic_features": ["burning", "tingling", "numbness", "itching"]},
        "prior_treatments": [
            {"treatment": "metatarsal_pad", "weeks": 10, "response": "none"},
            {"treatment": "insoles", "weeks": 10, "response": "none"},
            {"treatment": "calf_stretching", "weeks": 10, "response": "worsened"},
        ],
        "exam_findings": ["gastrocnemius_tightness", "plantar_plate_instability", "flexible_toe_deformity"],
        "pregnant": True,
        "sex": "female",
    },
]


def decisions(result) -> tuple:
    """What a clinician acts on: recommendations and withheld entries, independent of firing order."""
    recs = sorted((r.intervention, r.category, r.rule, tuple(sorted(r.rationale))) for r in result.recommendations)
    withheld = sorted(
        (n.intervention, n.kind, n.rule, tuple(sorted(n.reason.split("; ")))) for n in result.not_recommended
    )
    unknowns = sorted((u.fact, u.rule) for u in result.unknowns)
    return recs, withheld, unknowns


PATIENTS = [load_example(n) for n in EXAMPLES] + EXTRA


@pytest.mark.parametrize("seed", range(6))
def test_shuffled_rule_definitions_and_fact_order_give_the_same_decisions(seed):
    rng = random.Random(seed)
    rules = list(RULESET.rules)
    rng.shuffle(rules)

    def shuffled_facts(patient):
        facts = RULESET.to_facts(patient)
        rng.shuffle(facts)
        return facts

    shuffled = Triager(dataclasses.replace(RULESET, rules=tuple(rules), to_facts=shuffled_facts))
    reference = default_triager()
    for p in PATIENTS:
        assert decisions(shuffled.triage(p)) == decisions(reference.triage(p)), p["id"]


def test_the_extra_patients_exercise_the_blocks():
    """The shuffled comparison is only meaningful if the blocks actually fire for these patients."""
    t = default_triager()
    a, b, c = (t.triage(p) for p in EXTRA)
    assert {n.kind for n in a.withheld("low_dose_naltrexone")} == {"contraindicated", "deferred"}
    assert {n.kind for n in b.withheld("low_dose_naltrexone")} >= {"contraindicated", "suppressed"}
    assert b.recommended("urgent_referral") is not None
    assert c.recommended("low_dose_naltrexone") is not None
    assert c.recommended("tendon_transfer") is not None
