"""Issue 11, done when: in a seeded cohort of 3,000 random patients (bench/cohort.py: rich treatment
histories, procedures already done, red flags, records not retrieved), every recommended first-line
modality has its indication, every plan without a red flag has footwear and activity advice, and no
recommendation is for a procedure already done (CLINICAL.md 1.2, sections 2 and 5). The indications
are computed here from the patient's own input, independently of the rules."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from bench.cohort import cohort
from engine import Result, default_triager

SURGERY = ("gastrocnemius_recession", "plantar_plate_repair", "tendon_transfer")
PRF = "pulsed_radiofrequency"


def bmi(p: dict[str, Any]) -> Decimal | None:
    if "weight_kg" not in p or "height_cm" not in p:
        return None
    h = Decimal(str(p["height_cm"])) / 100
    return (Decimal(str(p["weight_kg"])) / (h * h)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def indicated(code: str, p: dict[str, Any]) -> bool:
    """The indication of a first-line modality, read from the patient (a past trial never counts)."""
    exam, comorbidities = set(p.get("exam_findings", [])), set(p.get("comorbidities", []))
    if code == "weight_management":
        b = bmi(p)
        return b is not None and b >= 25 and p["age"] >= 18 and p.get("pregnant") is not True
    if code == "callus_debridement":
        return "plantar_callus" in exam
    if code == "calf_stretching":
        return "gastrocnemius_tightness" in exam
    if code == "insoles":
        return "rheumatoid_arthritis" in comorbidities
    return code in ("footwear_modification", "metatarsal_pad", "activity_modification")  # forefoot pain itself


@pytest.fixture(scope="module")
def triaged() -> list[tuple[dict[str, Any], Result]]:
    t = default_triager()
    return [(p, t.triage(p)) for p in cohort(3000, seed=20261130)]


def test_the_cohort_is_rich_in_treatment_histories(triaged) -> None:
    """The property is not vacuous: many patients tried first-line care, some had procedures done,
    some have red flags."""
    tried = sum(bool(p["prior_treatments"]) for p, _ in triaged)
    procedures = sum(any(t["treatment"] in (PRF, *SURGERY) for t in p["prior_treatments"]) for p, _ in triaged)
    flagged = sum(bool(p["red_flags"]) for p, _ in triaged)
    assert tried > 2000 and procedures > 300 and flagged > 150, (tried, procedures, flagged)


def test_every_recommended_first_line_modality_has_its_indication(triaged) -> None:
    wrong = [
        (p["id"], r.intervention, r.rule)
        for p, result in triaged
        for r in result.recommendations
        if r.category == "first_line" and not indicated(r.intervention, p)
    ]
    assert wrong == []


def test_every_plan_without_a_red_flag_has_footwear_and_activity_advice(triaged) -> None:
    missing = [
        p["id"]
        for p, result in triaged
        if not p["red_flags"]
        and not {"footwear_modification", "activity_modification"} <= {r.intervention for r in result.recommendations}
    ]
    assert missing == []


def test_no_recommendation_is_for_a_procedure_already_done(triaged) -> None:
    """A surgical procedure already done is never offered again. Pulsed radiofrequency is offered again
    only as CLINICAL.md section 4 allows: done 12 weeks ago or more, with a benefit (partial or
    resolved) that has faded, and always by the rule that says so (PRF-REPEAT)."""
    wrong = []
    for p, result in triaged:
        done = {t["treatment"]: t for t in p["prior_treatments"]}
        for r in result.recommendations:
            if r.intervention in SURGERY and r.intervention in done:
                wrong.append((p["id"], r.intervention))
            if r.intervention == PRF and PRF in done:
                t = done[PRF]
                if not (r.rule == "PRF-REPEAT" and t["weeks"] >= 12 and t["response"] in ("partial", "resolved")):
                    wrong.append((p["id"], PRF, t))
    assert wrong == []
