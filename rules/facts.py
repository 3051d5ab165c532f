"""From a validated patient to the flat facts the rules match on.

Lists are put in a canonical order first, so the facts (and so the trace and the result) do not
depend on the order the caller listed things in. Medications are classified here (by RxNorm code
and by name, `rules/medications.py`); deciding what a class means (opioid exposure, possible
opioid use) is the rules' job. Nothing here derives a finding: the facts are the input, with
the lookups the rules need (a treatment's line of care, whether a trial's weeks run past the
pain's duration, a medication's class).
"""

from __future__ import annotations

from typing import Any

from .medications import CLASS_RANK, classify, normalise_medication
from .patient import Medication, Patient
from .vocabulary import ADJUNCT, FIRST_LINE, INTERVENTIONAL, PROCEDURES, SURGICAL

_LINE = {
    **{c: "first_line" for c in FIRST_LINE},
    **{c: "adjunct" for c in ADJUNCT},
    **{c: "interventional" for c in INTERVENTIONAL},
    **{c: "surgical" for c in SURGICAL},
}

#: Which patient attribute each field of each input fact comes from ("*": the fact as a whole).
#: The rule set derives from this which patient attributes each rule reads.
FACT_SOURCES: dict[str, dict[str, str]] = {
    "patient": {
        "age": "age",
        "sex": "sex",
        "pregnant": "pregnant",
        "breastfeeding": "breastfeeding",
        "body_measures": "weight_kg",
    },
    "pain": {
        "site": "pain.site",
        "side": "pain.side",
        "duration_weeks": "pain.duration_weeks",
        "severity": "pain.severity",
        "dn4_items": "pain.neuropathic_features",
        "dn4_recorded": "pain.dn4_assessed",
        "dn4_examined": "pain.dn4_examined",
        "*": "pain.site",
    },
    "body": {"weight_kg": "weight_kg", "height_cm": "height_cm", "*": "weight_kg"},
    "treatment": {"*": "prior_treatments"},
    "exam": {"*": "exam_findings"},
    "comorbidity": {"*": "comorbidities"},
    "medication": {"*": "medications"},
    "red_flag": {"*": "red_flags"},
    "record_gap": {"*": "not_retrieved"},
}


def _tri(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _medication_fact(m: Medication) -> dict[str, Any]:
    c = classify(m.name, m.rxnorm)
    name = (m.name or "").strip() or f"RxNorm {m.rxnorm}"
    f: dict[str, Any] = {
        "type": "medication",
        "name": name[:200] + ("…" if len(name) > 200 else ""),
        "drug_class": c.drug_class,
        "matched": list(c.matched),
        "source": c.source[:240],
        "status": m.status,
        "stopped_days": -1 if m.stopped_days_ago is None else m.stopped_days_ago,
    }
    if m.rxnorm:
        f["rxnorm"] = m.rxnorm
    if c.dose_mg is not None:
        f["dose_mg"] = c.dose_mg
    return f


def to_facts(p: Patient) -> list[dict[str, Any]]:
    """The patient as flat facts, in canonical order."""
    pain = p.pain
    facts: list[dict[str, Any]] = [
        {
            "type": "patient",
            "age": p.age,
            "sex": p.sex,
            "pregnant": _tri(p.pregnant),
            "breastfeeding": _tri(p.breastfeeding),
            "body_measures": "complete" if p.weight_kg is not None and p.height_cm is not None else "missing",
        },
        {
            "type": "pain",
            "site": pain.site,
            "side": pain.side or "unknown",
            "duration_weeks": pain.duration_weeks,
            "severity": -1 if pain.severity is None else pain.severity,
            "dn4_items": sorted(pain.neuropathic_features),
            # the DN4 is on record when items are listed or it was assessed (then no items means 0)
            "dn4_recorded": "yes" if pain.neuropathic_features or pain.dn4_assessed else "no",
            "dn4_examined": _tri(pain.dn4_examined),
        },
    ]
    if p.weight_kg is not None and p.height_cm is not None:
        facts.append({"type": "body", "weight_kg": p.weight_kg, "height_cm": p.height_cm})
    for t in sorted(p.prior_treatments, key=lambda t: t.treatment):
        procedure = t.treatment in PROCEDURES
        facts.append(
            {
                "type": "treatment",
                "key": t.treatment,
                "treatment": t.treatment,
                "weeks": t.weeks,
                "response": t.response,
                "line": _LINE[t.treatment],
                "kind": "procedure" if procedure else "trial",
                "exceeds_pain": "yes" if not procedure and t.weeks > pain.duration_weeks else "no",
            }
        )
    for code in sorted(p.exam_findings):
        facts.append({"type": "exam", "key": code, "code": code})
    for code in sorted(p.comorbidities):
        facts.append({"type": "comorbidity", "key": code, "code": code})
    meds: dict[str, dict[str, Any]] = {}
    order = sorted(
        ((normalise_medication(m.name or ""), m) for m in p.medications),
        key=lambda nm: (nm[0], nm[1].name or "", nm[1].rxnorm or "", nm[1].status, nm[1].stopped_days_ago or 0),
    )
    for normalised, m in order:
        key = normalised or f"rxnorm {m.rxnorm}"
        if m.status == "stopped":
            key = f"{key} stopped"
        key = key[:200]
        f = {"key": key, **_medication_fact(m)}
        prior = meds.get(key)
        # the same drug written twice ('Tramadol', 'tramadol' with its RxNorm code): one fact, the
        # reading most dangerous for naltrexone (an opioid over an unrecognised name)
        if prior is None or CLASS_RANK[f["drug_class"]] < CLASS_RANK[prior["drug_class"]]:
            meds[key] = f
    facts.extend(meds[k] for k in sorted(meds))
    for code in sorted(p.red_flags):
        facts.append({"type": "red_flag", "key": code, "code": code})
    for section in sorted(p.not_retrieved):
        facts.append({"type": "record_gap", "key": section, "section": section})
    return facts
