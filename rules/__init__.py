"""The forefoot pain (metatarsalgia) rule set: knowledge, not machinery.

Version: bump `VERSION` and record the clinical change in CHANGELOG.md whenever a
recommendation can change for some patient.
"""

from engine.api import RuleSet, digest_of

from .changes import CHANGES
from .facts import FACT_SOURCES, to_facts
from .knowledge import CITATIONS, HERE, INTERVENTIONS, PARAMETERS, RED_FLAGS
from .pathway import RULES
from .patient import Patient

NAME = "forefoot-pain-pathway"
VERSION = "1.2.2"

RULESET = RuleSet(
    name=NAME,
    version=VERSION,
    digest=digest_of(HERE),
    rules=RULES,
    interventions=INTERVENTIONS,
    citations=CITATIONS,
    parameters=PARAMETERS,
    patient_model=Patient,
    to_facts=to_facts,
    patient_id=lambda p: p.id,
    flags=lambda p: list(p.red_flags),
    categories={
        "urgent_referral": "Urgent referral",
        "first_line": "First-line care",
        "adjunct": "Adjuncts",
        "interventional": "Interventional",
        "surgical_referral": "Surgical referral",
    },
    ungraded_categories=("urgent_referral",),
    changes=CHANGES,
    fact_sources=FACT_SOURCES,
    table_citations={"red_flags.toml": tuple(sorted({c for f in RED_FLAGS.values() for c in f["citations"]}))},
    labels={code: str(v["label"]) for code, v in RED_FLAGS.items()},
    wording={
        "flags_title": "Red flags",
        "flag": "red flag",
        "flags_stop": "urgent assessment first: routine escalation is stopped",
        "flag_category": "urgent_referral",
    },
    attributes={
        "developer": "forefoot-cds project (founding engineers)",
        "funding": "none declared",
        "intended_use": "decision support for clinicians treating adult forefoot pain (metatarsalgia); supports, does not replace, clinical judgement",
        "intended_users": "clinicians (podiatrists, physicians, physiotherapists) and clinic workflow scripts acting for them",
        "release_date": "2026-11-26",
        "revision_date": "2026-11-26",
    },
)

__all__ = ["NAME", "RULESET", "VERSION", "Patient"]
