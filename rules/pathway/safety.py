"""Stage 2: the safety screen (CLINICAL.md sections 1 and 3): red flags and their urgent referral,
opioid exposure and possible opioid use from the medication list and the conditions, medications
that could not be classified, parts of the record that could not be retrieved, and findings whose
treatment this rule set does not cover."""

from __future__ import annotations

from typing import Any

from engine.api import Context, Rule, fact, ge, lt, one_of, param

from ..knowledge import RED_FLAGS
from ..medications import OPIOID_CLASSES as OPIOIDS
from .common import ESCALATIONS, LDN, SCOPE, SURGERY, days, flag_of, flag_text

# ------------------------------------------------------------------ red flags


def _urgent(ctx: Context) -> None:
    flags = sorted(f["code"] for f in ctx.all("red_flag"))
    actions: list[dict[str, Any]] = []
    citations: list[str] = []
    for code in flags:
        rf = RED_FLAGS[code]
        actions.append(
            {
                "red_flag": rf["label"],
                "action": rf["action"],
                "who": rf["who"],
                "when": rf["when"],
                "basis": rf["basis"],
            }
        )
        citations += [c for c in rf["citations"] if c not in citations]
    rationale = [f"red flag: {flag_of(ctx)}: {RED_FLAGS[ctx.fact('flag')['code']]['when']}"]
    ctx.recommend(
        "urgent_referral",
        rationale,
        details={
            "red_flags": [RED_FLAGS[c]["label"] for c in flags],
            "now": [f"{RED_FLAGS[c]['label']}: {RED_FLAGS[c]['summary']}" for c in flags],
            "actions": actions,
        },
        citations=citations,
    )


def _suppress_escalation(ctx: Context) -> None:
    for code in ESCALATIONS:
        ctx.withhold(
            code, "suppressed", f"red flag ({flag_of(ctx)}): urgent assessment first; routine escalation is stopped"
        )


# ------------------------------------------------------------------ record gaps

_GAP_TEXT = {
    "medications": ("the medication list could not be retrieved: opioid use is not known", [LDN]),
    "comorbidities": (
        "the conditions could not be retrieved: opioid dependence and liver disease are not known",
        [LDN],
    ),
    "red_flags": ("the red flags could not be retrieved: confirm there is none before any escalation", ESCALATIONS),
    "prior_treatments": (
        "the treatments already tried could not be retrieved: whether conservative care failed is not known",
        ESCALATIONS,
    ),
    "exam_findings": (
        "the examination findings could not be retrieved",
        [*SURGERY, "calf_stretching", "callus_debridement"],
    ),
    "pain.neuropathic_features": ("the DN4 could not be retrieved", [LDN]),
}


def _record_gap(ctx: Context) -> None:
    g = ctx.fact("gap")
    text, blocks = _GAP_TEXT[g["section"]]
    ctx.unknown(f"record:{g['section']}", text + " (a failed search is not 'none')", list(blocks))


def _gap_red_flags(ctx: Context) -> None:
    for code in ESCALATIONS:
        ctx.withhold(
            code,
            "deferred",
            "the red flags could not be retrieved from the record: confirm there is no red flag before any escalation",
        )


# ------------------------------------------------------------------ opioids


def _kind(drug_class: str) -> str:
    return "a partial opioid agonist" if drug_class == "opioid_partial_agonist" else "an opioid"


def _named(m: Any) -> str:
    """What decided the class: the name or code the classification's source starts with."""
    return str(m["source"]).split(":", 1)[0] or ", ".join(m["matched"])


def _agent(m: Any) -> str:
    """The medication as the reason names it: its name, with its RxNorm code when one was sent."""
    code = m.get("rxnorm")
    return f"{m['name']} (RxNorm {code})" if code and code not in m["name"] else str(m["name"])


def _opioid_med(ctx: Context) -> None:
    m = ctx.fact("med")
    ctx.because(f"medication '{m['name']}' contains {_named(m)}: {_kind(m['drug_class'])} ({m['source']})")
    ctx.conclude(
        "opioid_exposure",
        key=m["key"],
        agent=_agent(m),
        source="medication",
        drug_class=m["drug_class"],
        stopped_days=-1,
    )


def _opioid_recent(ctx: Context) -> None:
    m = ctx.fact("med")
    free = param("opioid_free_days")
    ctx.because(
        f"medication '{m['name']}' contains {_named(m)}: {_kind(m['drug_class'])}, stopped "
        f"{days(m['stopped_days'])} ago < {free} opioid-free days"
    )
    ctx.conclude(
        "opioid_exposure",
        key=m["key"],
        agent=_agent(m),
        source="stopped",
        drug_class=m["drug_class"],
        stopped_days=m["stopped_days"],
    )


def _opioid_history(ctx: Context) -> None:
    m = ctx.fact("med")
    ctx.because(
        f"medication '{m['name']}' ({_named(m)}) stopped {days(m['stopped_days'])} ago: "
        f"at least {param('opioid_free_days')} opioid-free days"
    )
    ctx.conclude("opioid_history", key=m["key"], agent=m["name"], stopped_days=m["stopped_days"])


def _opioid_condition(ctx: Context) -> None:
    c = ctx.fact("condition")
    text = {
        "opioid_use_disorder": "opioid use disorder (opioid dependence, including methadone or buprenorphine "
        "maintenance)",
        "long_term_opioid_use": "long-term (current) use of opioid analgesics recorded as a condition",
    }[c["code"]]
    ctx.because(text)
    ctx.conclude(
        "opioid_exposure", key=c["code"], agent=text, source="condition", drug_class="condition", stopped_days=-1
    )


def _possible_opioid(ctx: Context) -> None:
    m = ctx.fact("med")
    why = (
        "an opioid antagonist on its own (kept for opioid overdose)"
        if m["drug_class"] == "opioid_antagonist"
        else "a drug for opioid-induced constipation"
    )
    ctx.because(f"medication '{m['name']}' is {why}: opioids are probably in use")
    ctx.conclude("possible_opioid_use", key=m["key"], agent=m["name"], why=why)


def _unrecognised_med(ctx: Context) -> None:
    m = ctx.fact("med")
    ctx.conclude("unverified_medication", key=m["key"], name=m["name"])
    stopped = f" (stopped {days(m['stopped_days'])} ago)" if m["status"] == "stopped" else ""
    ctx.unknown(
        f"medication:{m['key']}",
        f"'{m['name']}'{stopped} is not a medication this rule set recognises: "
        "it was not checked for opioid content; confirm it is not an opioid before naltrexone",
        [LDN],
    )


# ------------------------------------------------------------------ out of scope


def _out_of_scope(ctx: Context) -> None:
    code = ctx.fact("exam")["code"]
    text, affects = SCOPE[code]
    ctx.notice(code, text, list(affects))
    ctx.conclude("scope_notice", key=code, code=code)


RULES = [
    Rule(
        "RF-URGENT",
        "Any red flag: urgent referral, naming for each flag what to do, who to and how fast.",
        when={"flag": fact("red_flag")},
        action=_urgent,
        reads_all=("red_flag",),
        emits=("urgent_referral",),
        citations=("project-pathway",),
    ),
    Rule(
        "RF-SUPPRESS-ESCALATION",
        "Any red flag stops every escalation (adjunct, interventional, surgical).",
        when={"flag": fact("red_flag")},
        action=_suppress_escalation,
        emits=ESCALATIONS,
        citations=("project-pathway",),
    ),
    Rule(
        "RECORD-GAP",
        "A part of the record that could not be retrieved is unknown, never 'none'.",
        when={"gap": fact("record_gap")},
        action=_record_gap,
        citations=("project-pathway",),
    ),
    Rule(
        "RECORD-GAP-RED-FLAGS",
        "Red flags that could not be retrieved hold back every escalation until checked.",
        when={"gap": fact("record_gap", section="red_flags")},
        action=_gap_red_flags,
        emits=ESCALATIONS,
        citations=("project-pathway",),
    ),
    Rule(
        "OPIOID-MEDICATION",
        "Any opioid agonist or partial agonist taken now is opioid exposure.",
        when={"med": fact("medication", status="active", drug_class=one_of(*OPIOIDS))},
        action=_opioid_med,
        concludes=("opioid_exposure",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-RECENTLY-STOPPED",
        "An opioid stopped fewer than the opioid-free days ago is still opioid exposure "
        "(naltrexone needs 7-10 opioid-free days).",
        when={
            "med": fact(
                "medication", status="stopped", drug_class=one_of(*OPIOIDS), stopped_days=lt(param("opioid_free_days"))
            )
        },
        action=_opioid_recent,
        concludes=("opioid_exposure",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-STOPPED-CLEAR",
        "An opioid stopped at least the opioid-free days ago is history, not exposure.",
        when={
            "med": fact(
                "medication", status="stopped", drug_class=one_of(*OPIOIDS), stopped_days=ge(param("opioid_free_days"))
            )
        },
        action=_opioid_history,
        concludes=("opioid_history",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-USE-DISORDER",
        "Opioid use disorder (dependence, maintenance therapy) is opioid exposure.",
        when={"condition": fact("comorbidity", code="opioid_use_disorder")},
        action=_opioid_condition,
        concludes=("opioid_exposure",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-LONG-TERM-USE",
        "Long-term opioid use recorded as a condition (ICD-10-CM Z79.891) is opioid exposure.",
        when={"condition": fact("comorbidity", code="long_term_opioid_use")},
        action=_opioid_condition,
        concludes=("opioid_exposure",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-POSSIBLE-ANTAGONIST",
        "An opioid antagonist on its own (a naloxone kit, nalmefene) suggests opioids are in use.",
        when={"med": fact("medication", status="active", drug_class="opioid_antagonist")},
        action=_possible_opioid,
        concludes=("possible_opioid_use",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OPIOID-POSSIBLE-CONSTIPATION",
        "A drug for opioid-induced constipation suggests opioids are in use.",
        when={"med": fact("medication", status="active", drug_class="opioid_induced_constipation")},
        action=_possible_opioid,
        concludes=("possible_opioid_use",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "MEDICATION-UNRECOGNISED",
        "Say which medications taken now could not be checked for opioid content.",
        when={"med": fact("medication", status="active", drug_class="unrecognised")},
        action=_unrecognised_med,
        concludes=("unverified_medication",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "MEDICATION-UNRECOGNISED-STOPPED",
        "A medication stopped within the opioid-free days that could not be checked for opioid content.",
        when={
            "med": fact(
                "medication", status="stopped", drug_class="unrecognised", stopped_days=lt(param("opioid_free_days"))
            )
        },
        action=_unrecognised_med,
        concludes=("unverified_medication",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "OUT-OF-SCOPE-NEUROMA",
        "Signs of an interdigital (Morton's) neuroma: its treatment is outside this rule set.",
        when={"exam": fact("exam", code="interdigital_neuroma_signs")},
        action=_out_of_scope,
        concludes=("scope_notice",),
        citations=("project-pathway",),
    ),
    Rule(
        "OUT-OF-SCOPE-RIGID-TOE",
        "A rigid toe deformity: its treatment is outside this rule set.",
        when={"exam": fact("exam", code="rigid_toe_deformity")},
        action=_out_of_scope,
        concludes=("scope_notice",),
        citations=("project-pathway",),
    ),
]

__all__ = ["RULES", "flag_text"]
