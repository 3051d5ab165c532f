"""Stage 4a: low-dose naltrexone as an adjunct (CLINICAL.md sections 3 and 4).

Offered only for persistent pain with a neuropathic screen, and only when nothing holds it back:
a contraindication (any opioid exposure, acute hepatitis, liver failure), a reason to wait (possible
opioid use, a medication that could not be classified, a naltrexone dose not stated, a part of
the record that could not be retrieved, a DN4 not recorded), or a reason it does not apply
(a child, full-dose naltrexone already). Every reason that applies is listed. A trial of LDN
already under way is continued, never restarted.
"""

from __future__ import annotations

from typing import Any

from engine.api import Context, Rule, fact, ge, lt, one_of, param

from .common import LDN, NO_FLAG, RF_GAP, adjunct_entry, days, dn4_cutoff, weeks, with_scope

LDN_CITES = ("younger-2013", "dieckmann-2017")

# ------------------------------------------------------------------ contraindications and cautions


def _ci_opioid(ctx: Context) -> None:
    e = ctx.fact("exposure")
    free = param("opioid_free_days")
    why = "naltrexone blocks opioid analgesia and can precipitate withdrawal"
    if e["source"] == "medication":
        reason = (
            f"opioid exposure: {e['agent']} is an opioid; {why} (the label requires 7-10 opioid-free days "
            "before starting)"
        )
    elif e["source"] == "stopped":
        left = free - e["stopped_days"]
        reason = (
            f"opioid exposure: {e['agent']} was stopped {days(e['stopped_days'])} ago; naltrexone needs 7-10 "
            f"opioid-free days: not before {days(left)} from now ({free} opioid-free days)"
        )
    else:
        reason = f"opioid exposure: {e['agent']}; {why}"
    ctx.withhold(LDN, "contraindicated", reason)
    ctx.conclude("ldn_contraindication", key=e["key"])


def _ci_liver(ctx: Context) -> None:
    code = ctx.fact("liver")["code"]
    text = {"acute_hepatitis": "acute hepatitis", "liver_failure": "liver failure"}[code]
    reason = f"{text}: naltrexone hepatotoxicity (contraindicated on older labels; a hard stop in this rule set)"
    ctx.withhold(LDN, "contraindicated", reason)
    ctx.conclude("ldn_contraindication", key=code)


def _caution_hepatic(ctx: Context) -> None:
    text = (
        "hepatic impairment: hepatotoxicity warning on the naltrexone label; check liver function before and "
        "during treatment"
    )
    ctx.because(text)
    ctx.conclude("ldn_caution", key="hepatic_impairment", text=text)


def _caution_pregnant(ctx: Context) -> None:
    text = "pregnancy: limited safety data for naltrexone; weigh benefit and risk with obstetric advice"
    ctx.because(text)
    ctx.conclude("ldn_caution", key="pregnant", text=text)


def _caution_breastfeeding(ctx: Context) -> None:
    text = "breastfeeding: naltrexone passes into breast milk; weigh benefit and risk"
    ctx.because(text)
    ctx.conclude("ldn_caution", key="breastfeeding", text=text)


# ------------------------------------------------------------------ reasons to wait


def _hold(ctx: Context, key: str, reason: str) -> None:
    ctx.withhold(LDN, "deferred", reason)
    ctx.conclude("ldn_hold", key=key)


def _possible_opioid(ctx: Context) -> None:
    p = ctx.fact("possible")
    _hold(
        ctx,
        p["key"],
        f"{p['agent']} is {p['why']}: opioids are probably in use; check current opioid use before naltrexone",
    )


def _unverified(ctx: Context) -> None:
    m = ctx.fact("med")
    _hold(
        ctx,
        m["key"],
        f"confirm that '{m['name']}' is not an opioid: it is not a medication this rule set "
        "recognises, so no opioid check could be made",
    )


def _naltrexone_dose(ctx: Context) -> None:
    m = ctx.fact("med")
    _hold(
        ctx,
        m["key"],
        f"'{m['name']}': the naltrexone dose is not stated; confirm it (low-dose naltrexone is "
        "1.5-4.5 mg; 50 mg is the full dose)",
    )


def _not_retrieved(ctx: Context) -> None:
    section = ctx.fact("gap")["section"]
    what = {
        "medications": "the medication list could not be retrieved: confirm no opioid use before naltrexone",
        "comorbidities": "the conditions could not be retrieved: confirm no opioid dependence, acute hepatitis "
        "or liver failure before naltrexone",
    }[section]
    _hold(ctx, f"record:{section}", what)


def _dn4_unknown(ctx: Context) -> None:
    ctx.withhold(
        LDN,
        "deferred",
        "the DN4 is not recorded: assess the DN4 (neuropathic screen); LDN is considered "
        "when it is at or above the cutoff",
    )


# ------------------------------------------------------------------ not indicated


def _full_dose(ctx: Context) -> None:
    m = ctx.fact("med")
    dose = f" ({m['dose_mg']:g} mg)" if m.get("dose_mg") is not None else ""
    ctx.withhold(
        LDN,
        "not_indicated",
        f"already taking naltrexone at full dose: '{m['name']}'{dose}; low-dose "
        "naltrexone would duplicate it: ask the prescriber",
    )
    ctx.conclude("ldn_excluded", key="full_dose", reason="full-dose naltrexone")


def _child(ctx: Context) -> None:
    age = ctx.fact("patient")["age"]
    ctx.withhold(
        LDN,
        "not_indicated",
        f"age {age}: naltrexone safety and efficacy are not established under "
        f"{param('ldn_min_age')}; this rule set does not offer LDN to children",
    )
    ctx.conclude("ldn_excluded", key="age", reason="under the minimum age")


def _not_indicated(ctx: Context) -> None:
    d = ctx.fact("dn4")
    cutoff = dn4_cutoff(d["version"])
    version = "" if d["version"] == "full" else " (interview only)"
    ctx.withhold(
        LDN,
        "not_indicated",
        f"DN4{version} {d['score']}/{d['total']} is below the screening cutoff of {cutoff}: no neuropathic phenotype",
    )


def _missing_for_persistence(ctx: Context) -> str:
    pain = ctx.fact("pain")
    trials = ctx.all("adequate_trial")
    failed = [t for t in trials if t["response"] in param("failed_trial_responses")]
    gap = any(g["section"] == "prior_treatments" for g in ctx.all("record_gap"))
    missing = []
    if pain["duration_weeks"] < param("persistent_pain_weeks"):
        missing.append(f"pain {weeks(pain['duration_weeks'])}")
    if gap and not trials:
        missing.append("the treatments already tried could not be retrieved")
    elif not trials:
        missing.append(f"no first-line trial of at least {param('adequate_trial_weeks')} weeks yet")
    elif not failed:
        missing.append(
            "the adequate first-line trials did not fail ("
            + ", ".join(f"{t['treatment']}: {t['response']}" for t in trials)
            + ")"
        )
    return "; ".join(missing)


def _deferred(ctx: Context) -> None:
    ctx.withhold(LDN, "deferred", f"{_missing_for_persistence(ctx)}; {adjunct_entry()}")


# ------------------------------------------------------------------ in progress, offered


def _in_progress(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.because(
        f"LDN taken {weeks(t['weeks'])}, response {t['response']}: judged at {param('ldn_benefit_review_weeks')} weeks"
    )
    ctx.conclude("ldn_in_progress", weeks=t["weeks"], response=t["response"], judged="no")


def _helping(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.because(f"LDN taken {weeks(t['weeks'])} with response {t['response']}: it helps")
    ctx.conclude("ldn_in_progress", weeks=t["weeks"], response=t["response"], judged="yes")


def _in_progress_medication(ctx: Context) -> None:
    m = ctx.fact("med")
    ctx.because(f"medication '{m['name']}' is low-dose naltrexone")
    ctx.conclude("ldn_in_progress", weeks=-1, response="unknown", judged="no", agent=m["name"])


def _cautions(ctx: Context) -> list[str]:
    out = [c["text"] for c in ctx.all("ldn_caution")]
    if ctx.all("pregnancy_unknown"):
        out.append(
            "pregnancy status is not recorded for a patient who could be pregnant: confirm it before "
            "naltrexone (a caution in pregnancy)"
        )
    return out


def _opioid_check(ctx: Context) -> str:
    history = ctx.all("opioid_history")
    if history:
        return (
            "no current opioid: "
            + ", ".join(f"{h['agent']} stopped {days(h['stopped_days'])} ago" for h in history)
            + f" (at least {param('opioid_free_days')} opioid-free days); every medication was classified"
        )
    return "no opioid exposure recorded, and every medication was classified (none unrecognised)"


def _continue(ctx: Context) -> None:
    t = ctx.fact("current")
    judge = param("ldn_benefit_review_weeks")
    if t["judged"] == "yes":
        head = f"LDN taken {weeks(t['weeks'])} with response {t['response']}: continue (it helps)"
        review = (judge, "review benefit and side effects")
    elif t["weeks"] >= 0:
        head = (
            f"LDN taken {weeks(t['weeks'])} (response so far {t['response']}): continue the titration; judge "
            f"benefit at about {judge} weeks"
        )
        review = (max(judge - t["weeks"], 0), f"judge benefit at {judge} weeks on LDN")
    else:
        head = f"already taking LDN ({t['agent']}): continue the titration; judge benefit at about {judge} weeks on it"
        review = (param("ldn_follow_up_weeks"), f"titration, side effects; judge benefit at {judge} weeks on LDN")
    rationale = [head]
    dn4 = ctx.all("dn4")
    neuro = ctx.all("neuropathic_phenotype")
    if dn4 and not neuro:
        d = dn4[0]
        rationale.append(
            f"DN4 now {d['score']}/{d['total']}, below the cutoff: LDN is current (not a new start); "
            "judge it on its effect"
        )
    rationale.append(_opioid_check(ctx))
    details: dict[str, Any] = {
        "status": "continue",
        "in_progress": head,
        "cautions": _cautions(ctx),
        "dose": "continue the titration: up by 1.5 mg every 1-2 weeks as tolerated to 4.5 mg "
        "at bedtime (not restarted at the lowest dose)",
    }
    ctx.recommend(LDN, rationale, details=with_scope(details, ctx), review=review)


def _offer(ctx: Context) -> None:
    d = ctx.fact("dn4")
    persistent = ctx.fact("persistent")
    cutoff = dn4_cutoff(d["version"])
    version = "" if d["version"] == "full" else " (interview only)"
    details: dict[str, Any] = {
        "cautions": _cautions(ctx),
        "opioid_check": _opioid_check(ctx),
        "follow_up": (
            f"review at {param('ldn_follow_up_weeks')} weeks (titration, side effects); judge benefit at "
            f"about {param('ldn_benefit_review_weeks')} weeks (expert opinion)"
        ),
    }
    rationale = [
        f"persistent pain: {weeks(persistent['duration_weeks'])} despite an adequate conservative trial",
        f"DN4{version} {d['score']}/{d['total']} ≥ {cutoff}: neuropathic phenotype (a screen, not a diagnosis)",
        _opioid_check(ctx) + "; no acute hepatitis or liver failure recorded",
        "evidence is indirect (fibromyalgia, neuropathic corneal pain): no study of LDN in metatarsalgia",
    ]
    ctx.recommend(
        LDN,
        rationale,
        details=with_scope(details, ctx),
        review=(
            param("ldn_follow_up_weeks"),
            f"titration and side effects; judge benefit at {param('ldn_benefit_review_weeks')} weeks",
        ),
    )


def _pregnancy_unknown(ctx: Context) -> None:
    ctx.unknown(
        "pregnancy",
        "pregnancy status is not recorded for a patient who could be pregnant: confirm it "
        "before naltrexone (a caution in pregnancy)",
        [LDN],
    )


def _escalation_tried(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.withhold(
        t["treatment"], "not_indicated", f"already tried {weeks(t['weeks'])}, response {t['response']}: not repeated"
    )
    ctx.conclude("escalation_tried", key=t["treatment"], treatment=t["treatment"])


CI_OR_HOLD = {
    "blocked": fact("ldn_contraindication"),
    "excluded": fact("ldn_excluded"),
    "hold": fact("ldn_hold"),
    **RF_GAP,
}

RULES = [
    Rule(
        "LDN-CI-OPIOID",
        "Naltrexone is contraindicated with any opioid exposure (blocks analgesia, precipitates "
        "withdrawal), including an opioid stopped fewer than the opioid-free days ago.",
        when={"exposure": fact("opioid_exposure")},
        action=_ci_opioid,
        emits=(LDN,),
        concludes=("ldn_contraindication",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-CI-LIVER",
        "Naltrexone is not used in acute hepatitis or liver failure (hard stop in this rule set).",
        when={"liver": fact("comorbidity", code=one_of("acute_hepatitis", "liver_failure"))},
        action=_ci_liver,
        emits=(LDN,),
        concludes=("ldn_contraindication",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-CAUTION-HEPATIC",
        "Hepatic impairment: LDN with caution (hepatotoxicity warning; check liver tests).",
        when={"hepatic": fact("comorbidity", code="hepatic_impairment")},
        action=_caution_hepatic,
        concludes=("ldn_caution",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-CAUTION-PREGNANT",
        "Pregnancy: LDN only after weighing risks (limited safety data).",
        when={"patient": fact("patient", pregnant="yes")},
        action=_caution_pregnant,
        concludes=("ldn_caution",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-CAUTION-BREASTFEEDING",
        "Breastfeeding: LDN only after weighing risks (passes into milk).",
        when={"patient": fact("patient", breastfeeding="yes")},
        action=_caution_breastfeeding,
        concludes=("ldn_caution",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-DEFERRED-POSSIBLE-OPIOID",
        "An opioid antagonist on its own or a drug for opioid-induced constipation: "
        "LDN waits until current opioid use is checked.",
        when={"possible": fact("possible_opioid_use")},
        action=_possible_opioid,
        emits=(LDN,),
        concludes=("ldn_hold",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-DEFERRED-UNRECOGNISED",
        "A medication that could not be classified: LDN waits until it is confirmed not to be an opioid.",
        when={"med": fact("unverified_medication")},
        action=_unverified,
        emits=(LDN,),
        concludes=("ldn_hold",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-DEFERRED-NALTREXONE-DOSE",
        "Naltrexone without a stated dose: LDN waits until the dose is confirmed.",
        when={"med": fact("medication", status="active", drug_class="naltrexone_dose_unknown")},
        action=_naltrexone_dose,
        emits=(LDN,),
        concludes=("ldn_hold",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-DEFERRED-NOT-RETRIEVED",
        "Medications or conditions that could not be retrieved: LDN waits until they are checked.",
        when={"gap": fact("record_gap", section=one_of("medications", "comorbidities"))},
        action=_not_retrieved,
        emits=(LDN,),
        concludes=("ldn_hold",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-DEFERRED-DN4",
        "Persistent pain with the DN4 not recorded: assess the DN4 first (never an assumed 0/10).",
        when={"persistent": fact("persistent_pain"), "dn4": fact("dn4_unknown")},
        unless={"current": fact("ldn_in_progress")},
        action=_dn4_unknown,
        emits=(LDN,),
        citations=("bouhassira-2005",),
    ),
    Rule(
        "LDN-NOT-INDICATED-NALTREXONE",
        "Naltrexone already taken at full dose: LDN is not indicated (ask the prescriber).",
        when={"med": fact("medication", status="active", drug_class="naltrexone_full_dose")},
        action=_full_dose,
        emits=(LDN,),
        concludes=("ldn_excluded",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-CHILD",
        "Under the minimum age LDN is not offered (no safety or efficacy data in children).",
        when={"patient": fact("patient", age=lt(param("ldn_min_age")))},
        action=_child,
        emits=(LDN,),
        concludes=("ldn_excluded",),
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-IN-PROGRESS",
        "LDN already taken, not yet judged: a trial in progress.",
        when={
            "tried": fact(
                "treatment",
                treatment=LDN,
                response=one_of("none", "partial", "resolved"),
                weeks=lt(param("ldn_benefit_review_weeks")),
            )
        },
        action=_in_progress,
        concludes=("ldn_in_progress",),
        citations=("dieckmann-2017",),
    ),
    Rule(
        "LDN-HELPING",
        "LDN taken long enough to judge, with benefit: continued.",
        when={
            "tried": fact(
                "treatment",
                treatment=LDN,
                response=one_of("partial", "resolved"),
                weeks=ge(param("ldn_benefit_review_weeks")),
            )
        },
        action=_helping,
        concludes=("ldn_in_progress",),
        citations=("dieckmann-2017",),
    ),
    Rule(
        "LDN-IN-PROGRESS-MEDICATION",
        "Low-dose naltrexone on the medication list: LDN in progress.",
        when={"med": fact("medication", status="active", drug_class="naltrexone_low_dose")},
        action=_in_progress_medication,
        concludes=("ldn_in_progress",),
        citations=("dieckmann-2017",),
    ),
    Rule(
        "LDN-CONTINUE",
        "LDN under way, no red flag, contraindication or reason to wait: continue the titration, never restart it.",
        when={"current": fact("ldn_in_progress")},
        unless={**NO_FLAG, **CI_OR_HOLD, "tried": fact("escalation_tried", treatment=LDN)},
        action=_continue,
        emits=(LDN,),
        reads_all=(
            "ldn_caution",
            "dn4",
            "neuropathic_phenotype",
            "opioid_history",
            "pregnancy_unknown",
            "scope_notice",
        ),
        citations=("dieckmann-2017", "naltrexone-label"),
    ),
    Rule(
        "LDN-OFFER",
        "Persistent pain with a neuropathic phenotype, no red flag, contraindication or reason to wait: "
        "LDN may be considered as an adjunct.",
        when={"persistent": fact("persistent_pain"), "neuro": fact("neuropathic_phenotype"), "dn4": fact("dn4")},
        unless={
            **NO_FLAG,
            **CI_OR_HOLD,
            "tried": fact("escalation_tried", treatment=LDN),
            "current": fact("ldn_in_progress"),
        },
        action=_offer,
        emits=(LDN,),
        reads_all=("ldn_caution", "opioid_history", "pregnancy_unknown", "scope_notice"),
        citations=("younger-2013", "dieckmann-2017", "naltrexone-label"),
    ),
    Rule(
        "LDN-PREGNANCY-UNKNOWN",
        "LDN would be considered but pregnancy status is not recorded for a patient who could be pregnant.",
        when={
            "persistent": fact("persistent_pain"),
            "neuro": fact("neuropathic_phenotype"),
            "possible": fact("pregnancy_unknown"),
        },
        action=_pregnancy_unknown,
        citations=("naltrexone-label",),
    ),
    Rule(
        "LDN-NOT-INDICATED",
        "Persistent pain without a neuropathic phenotype on the full DN4: LDN is not indicated.",
        when={
            "persistent": fact("persistent_pain"),
            "dn4": fact("dn4", version="full", score=lt(param("dn4_neuropathic_cutoff"))),
        },
        unless={"current": fact("ldn_in_progress")},
        action=_not_indicated,
        emits=(LDN,),
        citations=("bouhassira-2005", "timmerman-2017", "van-seventer-2013"),
    ),
    Rule(
        "LDN-NOT-INDICATED-INTERVIEW",
        "Persistent pain without a neuropathic phenotype on an interview-only DN4: LDN is not indicated.",
        when={
            "persistent": fact("persistent_pain"),
            "dn4": fact("dn4", version="interview", score=lt(param("dn4_interview_cutoff"))),
        },
        unless={"current": fact("ldn_in_progress")},
        action=_not_indicated,
        emits=(LDN,),
        citations=("van-seventer-2013",),
    ),
    Rule(
        "LDN-DEFERRED",
        "Before pain is persistent, adjuncts are deferred, saying what is missing.",
        when={"pain": fact("pain")},
        unless={"persistent": fact("persistent_pain"), "current": fact("ldn_in_progress")},
        action=_deferred,
        emits=(LDN,),
        reads_all=("adequate_trial", "record_gap"),
        citations=("project-pathway",),
    ),
    Rule(
        "LDN-TRIED",
        "LDN made pain worse or was not tolerated: not offered again.",
        when={"tried": fact("treatment", treatment=LDN, response=one_of("worsened", "not_tolerated"))},
        action=_escalation_tried,
        emits=(LDN,),
        concludes=("escalation_tried",),
        citations=("project-pathway",),
    ),
    Rule(
        "LDN-TRIED-NO-BENEFIT",
        "LDN taken long enough to judge, without benefit: not offered again.",
        when={"tried": fact("treatment", treatment=LDN, response="none", weeks=ge(param("ldn_benefit_review_weeks")))},
        action=_escalation_tried,
        emits=(LDN,),
        concludes=("escalation_tried",),
        citations=("project-pathway",),
    ),
]
