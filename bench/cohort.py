"""A seeded synthetic cohort that reaches every branch of the forefoot pathway.

Patients are made up from the CONTRACT.md vocabulary (no real person is in them); the same seed
always gives the same cohort. `coverage(results)` says which rules fired and which never did, so
the benchmark can show that the cohort exercises the whole rule set.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any, get_args

from rules.vocabulary import (
    DN4_EXAM_ITEMS,
    ESCALATIONS,
    FIRST_LINE,
    Comorbidity,
    DN4Item,
    ExamFinding,
    RecordSection,
    RedFlag,
    Response,
)

DN4 = get_args(DN4Item)
RESPONSES = get_args(Response)
EXAM = get_args(ExamFinding)
COMORBIDITIES = get_args(Comorbidity)
RED_FLAGS = get_args(RedFlag)
SECTIONS = get_args(RecordSection)
#: opioids (plain, combination, brand, partial agonist), antagonists, common non-opioids, and names the
#: vocabulary does not know (which the pathway must report as unrecognised).
MEDICATIONS = (
    "tramadol",
    "Oxycodone/APAP 5-325mg",
    "buprenorphine/naloxone",
    "codeine 30 mg",
    "Suboxone",
    "naltrexone",
    "ibuprofen",
    "paracetamol",
    "metformin",
    "sertraline",
    "amitriptyline",
    "pregabalin",
    "methotrexate",
    "insulin",
    "atorvastatin",
    "zz-unlisted-drug",
    "métamizole",
    "Zomorph 10 mg",
    "co-codamol 30/500",
    "naloxone nasal spray (kit)",
    "naloxegol 25 mg",
    "LDN 4.5 mg at night",
    "naltrexone 50 mg",
    "benzhydrocodone/APAP",
    "apomorphine",
)
#: structured medications as e-prescribing sends them: codes without text, stopped drugs
STRUCTURED = (
    {"rxnorm": "835605"},
    {"rxnorm": "1049621", "name": "oxycodone hydrochloride 5 MG Oral Tablet"},
    {"rxnorm": "999999999"},
    {"name": "tramadol", "status": "stopped", "stopped_days_ago": 2},
    {"name": "tramadol", "status": "stopped", "stopped_days_ago": 30},
    {"name": "zz-unlisted-drug", "status": "stopped", "stopped_days_ago": 3},
    {"name": "metformin", "status": "stopped", "stopped_days_ago": 5},
)


def _some(rng: random.Random, pool: tuple[str, ...], p_any: float, most: int) -> list[str]:
    if rng.random() >= p_any:
        return []
    return rng.sample(pool, rng.randint(1, most))


def patient(rng: random.Random, i: int) -> dict[str, Any]:
    """One synthetic patient; the id says only where it sits in the cohort."""
    adult = rng.random() < 0.95
    age = rng.randint(18, 92) if adult else rng.randint(9, 17)
    sex = rng.choice(("female", "female", "male", "male", "other", "unknown"))
    p: dict[str, Any] = {"id": f"synthetic-{i:07d}", "age": age, "sex": sex}
    if rng.random() < 0.85:
        p["weight_kg"] = round(rng.uniform(45, 130), 1)
        p["height_cm"] = round(rng.uniform(150, 198), 1)
    # durations cluster around the 6 / 12 / 24-week thresholds so both sides of each are hit
    weeks = rng.choice(
        (
            rng.uniform(0, 6),
            rng.uniform(6, 12),
            rng.uniform(12, 30),
            rng.uniform(30, 200),
            float(rng.choice((6, 12, 24))),
        )
    )
    weeks = min(round(weeks, 1), (age + 1) * 52)
    pain: dict[str, Any] = {"site": "forefoot", "duration_weeks": weeks}
    if rng.random() < 0.8:
        pain["side"] = rng.choice(("left", "right", "both"))
    if rng.random() < 0.8:
        pain["severity"] = rng.randint(0, 10)
    n_dn4 = rng.choice((0, 0, 1, 2, 3, 4, 4, 5, 6, 8))
    pain["neuropathic_features"] = rng.sample(DN4, n_dn4)
    if rng.random() < 0.4:
        pain["dn4_assessed"] = rng.random() < 0.8
    if rng.random() < 0.3:
        pain["dn4_examined"] = rng.random() < 0.5
        if not pain["dn4_examined"]:
            pain["neuropathic_features"] = [i for i in pain["neuropathic_features"] if i not in DN4_EXAM_ITEMS]
    p["pain"] = pain
    p["exam_findings"] = _some(rng, EXAM, 0.6, 3)
    tried = _some(rng, FIRST_LINE, 0.75, 4) + _some(rng, ESCALATIONS, 0.2, 2)
    p["prior_treatments"] = [
        {
            "treatment": t,
            "weeks": float(rng.choice((rng.randint(1, 5), 6, rng.randint(7, 14), rng.randint(15, 30)))),
            "response": rng.choice(RESPONSES),
        }
        for t in tried
    ]
    if rng.random() < 0.02:
        # recalcitrant pain with pulsed radiofrequency done months ago, its benefit faded
        pain["duration_weeks"] = max(pain["duration_weeks"], 30.0)
        done = {"pulsed_radiofrequency", "metatarsal_pad", "footwear_modification", "activity_modification"}
        p["prior_treatments"] = [t for t in p["prior_treatments"] if t["treatment"] not in done] + [
            {"treatment": "metatarsal_pad", "weeks": 10.0, "response": "none"},
            {"treatment": "footwear_modification", "weeks": 10.0, "response": "none"},
            {"treatment": "activity_modification", "weeks": 10.0, "response": "none"},
            {
                "treatment": "pulsed_radiofrequency",
                "weeks": float(rng.randint(12, 40)),
                "response": rng.choice(("partial", "resolved")),
            },
        ]
    if rng.random() < 0.02:
        # insoles under way in rheumatoid arthritis when a red flag appears
        p["prior_treatments"] = [t for t in p["prior_treatments"] if t["treatment"] != "insoles"] + [
            {"treatment": "insoles", "weeks": float(rng.randint(2, 12)), "response": "partial"}
        ]
        p["_ra_flag"] = True
    if "gastrocnemius_tightness" in p["exam_findings"] and "calf_stretching" not in tried and rng.random() < 0.5:
        # the surgical branch needs stretching tried and failed: make it common enough to reach
        p["prior_treatments"].append(
            {
                "treatment": "calf_stretching",
                "weeks": float(rng.randint(6, 30)),
                "response": rng.choice(("none", "worsened", "partial")),
            }
        )
    p["comorbidities"] = _some(rng, COMORBIDITIES, 0.35, 2)
    if p.pop("_ra_flag", False):
        p["comorbidities"] = sorted(set(p["comorbidities"]) | {"rheumatoid_arthritis"})
    p["medications"] = _some(rng, MEDICATIONS, 0.6, 3) + [dict(m) for m in _some(rng, STRUCTURED, 0.15, 2)]
    p["red_flags"] = _some(rng, RED_FLAGS, 0.1, 2)
    if (
        "rheumatoid_arthritis" in p["comorbidities"]
        and any(t["treatment"] == "insoles" for t in p["prior_treatments"])
        and not p["red_flags"]
        and rng.random() < 0.3
    ):
        p["red_flags"] = [rng.choice(RED_FLAGS)]
    if rng.random() < 0.05:
        p["not_retrieved"] = rng.sample(SECTIONS, rng.randint(1, 2))
    if sex != "male" and rng.random() < 0.5:
        p["pregnant"] = 18 <= age <= 45 and rng.random() < 0.15
        if rng.random() < 0.5:
            p["breastfeeding"] = 18 <= age <= 45 and rng.random() < 0.15
    return p


def cohort(n: int, seed: int = 20240501) -> Iterator[dict[str, Any]]:
    """`n` synthetic patients from `seed` (the same seed always gives the same patients)."""
    rng = random.Random(seed)
    for i in range(n):
        yield patient(rng, i)


def coverage(rule_ids: Iterable[str], fired_sets: Iterable[Iterable[str]]) -> tuple[int, int, list[str]]:
    """(rules that fired at least once, rules in the rule set, rules that never fired)."""
    all_ids = list(rule_ids)
    seen: set[str] = set()
    for fired in fired_sets:
        seen.update(fired)
    never = [r for r in all_ids if r not in seen]
    return len(all_ids) - len(never), len(all_ids), never


#: What a patient may hold that the baseline of the side-by-side benchmark (e7691ad, rule set
#: 1.1.0) does not accept: fields and codes added since, and its 100-character medication names.
_NEWER_PAIN_FIELDS = ("dn4_examined",)
_NEWER_FIELDS = ("not_retrieved",)
_NEWER_CODES = {"comorbidities": {"long_term_opioid_use"}, "red_flags": {"foot_ulcer"}}
BASELINE_MEDICATION_NAME = 100


def common_shape(p: dict[str, Any]) -> dict[str, Any]:
    """`p` restricted to the input shape both the current tree and the baseline accept: newer
    fields and codes left out, medications as plain names of at most 100 characters."""
    q = {k: v for k, v in p.items() if k not in _NEWER_FIELDS}
    if "pain" in q:
        q["pain"] = {k: v for k, v in q["pain"].items() if k not in _NEWER_PAIN_FIELDS}
    for field, codes in _NEWER_CODES.items():
        if field in q:
            q[field] = [c for c in q[field] if c not in codes]
    if "medications" in q:
        q["medications"] = [m for m in q["medications"] if isinstance(m, str) and len(m) <= BASELINE_MEDICATION_NAME]
    return q
