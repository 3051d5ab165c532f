"""From a validated patient to the flat facts the rules match on.

Lists are put in a canonical order first, so the facts (and so the trace and the result) do not
depend on the order the caller listed things in. Medication names are classified here from
drugs.toml; deciding what a class means (opioid exposure) is the rules' job.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .patient import Patient
from .vocabulary import ADJUNCT, FIRST_LINE, INTERVENTIONAL, SURGICAL

_HERE = Path(__file__).parent
_LINE = {**{c: "first_line" for c in FIRST_LINE}, **{c: "adjunct" for c in ADJUNCT},
         **{c: "interventional" for c in INTERVENTIONAL}, **{c: "surgical" for c in SURGICAL}}
#: When a name matches several classes, the most dangerous for naltrexone wins.
CLASS_PRIORITY = ("opioid_agonist", "opioid_partial_agonist", "opioid_antagonist", "non_opioid")
OPIOID_CLASSES = ("opioid_agonist", "opioid_partial_agonist")


@lru_cache(maxsize=1)
def _drug_patterns() -> dict[str, re.Pattern[str]]:
    data = tomllib.loads((_HERE / "drugs.toml").read_text(encoding="utf-8"))
    out = {}
    for cls in CLASS_PRIORITY:
        names = sorted({normalise_medication(n) for n in data[cls]["names"]}, key=len, reverse=True)
        out[cls] = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b")
    return out


def normalise_medication(name: str) -> str:
    """Lower case, every run of other characters one space, letters and digits kept apart:
    'Oxycodone/APAP 5-325mg' -> 'oxycodone apap 5 325 mg'; 'Tylenol #3' -> 'tylenol 3'."""
    text = re.sub(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", " ", name.casefold())
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def classify_medication(name: str) -> tuple[str, list[str]]:
    """(drug class, matched names) for a free-text medication name; 'unrecognised' when none match."""
    text = normalise_medication(name)
    for cls, pattern in _drug_patterns().items():
        found = sorted(set(pattern.findall(text)))
        if found:
            return cls, found
    return "unrecognised", []


#: Which patient attribute each field of each input fact comes from ("*": the fact as a whole).
#: The rule set derives from this which patient attributes each rule reads.
FACT_SOURCES: dict[str, dict[str, str]] = {
    "patient": {"age": "age", "sex": "sex", "pregnant": "pregnant", "breastfeeding": "breastfeeding",
                "body_measures": "weight_kg"},
    "pain": {"site": "pain.site", "side": "pain.side", "duration_weeks": "pain.duration_weeks",
             "severity": "pain.severity", "dn4_items": "pain.neuropathic_features",
             "dn4_assessed": "pain.dn4_assessed", "*": "pain.site"},
    "body": {"weight_kg": "weight_kg", "height_cm": "height_cm", "*": "weight_kg"},
    "treatment": {"*": "prior_treatments"},
    "exam": {"*": "exam_findings"},
    "comorbidity": {"*": "comorbidities"},
    "medication": {"*": "medications"},
    "red_flag": {"*": "red_flags"},
}


def _tri(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def to_facts(p: Patient) -> list[dict[str, Any]]:
    """The patient as flat facts, in canonical order."""
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
            "site": p.pain.site,
            "side": p.pain.side or "unknown",
            "duration_weeks": p.pain.duration_weeks,
            "severity": -1 if p.pain.severity is None else p.pain.severity,
            "dn4_items": sorted(p.pain.neuropathic_features),
            "dn4_assessed": _tri(p.pain.dn4_assessed),
        },
    ]
    if p.weight_kg is not None and p.height_cm is not None:
        facts.append({"type": "body", "weight_kg": p.weight_kg, "height_cm": p.height_cm})
    for t in sorted(p.prior_treatments, key=lambda t: t.treatment):
        facts.append({"type": "treatment", "key": t.treatment, "treatment": t.treatment, "weeks": t.weeks,
                      "response": t.response, "line": _LINE[t.treatment]})
    for code in sorted(p.exam_findings):
        facts.append({"type": "exam", "key": code, "code": code})
    for code in sorted(p.comorbidities):
        facts.append({"type": "comorbidity", "key": code, "code": code})
    meds: dict[str, dict[str, Any]] = {}
    for m in sorted(p.medications, key=lambda m: (normalise_medication(m.name or ""), m.name or "", m.rxnorm or "")):
        name = (m.name or f"RxNorm {m.rxnorm}").strip()
        key = normalise_medication(name) or name.casefold()
        if key in meds:
            continue  # the same drug typed twice ('Tramadol', 'tramadol'): one fact
        cls, matched = classify_medication(name)
        meds[key] = {"type": "medication", "key": key, "name": name, "drug_class": cls, "matched": matched}
    facts.extend(meds.values())
    for code in sorted(p.red_flags):
        facts.append({"type": "red_flag", "key": code, "code": code})
    return facts
