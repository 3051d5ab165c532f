"""Stage 3: first-line conservative care (CLINICAL.md section 2).

Each modality has an offer, a continue, a not-repeated and, unless it is protective, its red-flag
suppression; the indication gates every one of them (a past trial never creates an indication).
Footwear and activity modification are the baseline of every plan: without a red flag they are
always recommended, as "continue and optimise" after a trial without benefit. Every first-line
recommendation says when to review it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.api import Context, Pattern, Rule, fact, ge, lt, ne, one_of, param

from ..knowledge import INTERVENTIONS
from .common import CONTINUE, NO_FLAG, STOP, WORN, first_line_review, flag_of, flag_text, weeks

Why = Callable[[Context], list[str]]


def _tried(code: str, statuses: tuple[str, ...] | None = None) -> Pattern:
    if statuses is None:
        return fact("trial_status", treatment=code)
    return fact("trial_status", treatment=code, status=one_of(*statuses))


def _cites(code: str) -> tuple[str, ...]:
    ev = INTERVENTIONS[code].evidence
    return tuple(ev.citations) if ev else ()


def _red_flag_note(ctx: Context) -> dict[str, Any]:
    flags = [flag_text(f["code"]) for f in ctx.all("red_flag")]
    if not flags:
        return {}
    return {
        "red_flag_note": f"red flag ({', '.join(flags)}): as a protective measure only, until the urgent assessment"
    }


# ------------------------------------------------------------------ actions (built per modality; ids are not)


def offer(code: str, why: Why, protective: bool = False) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        details = _red_flag_note(ctx) if protective else {}
        ctx.recommend(code, why(ctx), details=details, review=first_line_review())

    return act


def keep(code: str, protective: bool = False) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        t = ctx.fact("tried")
        advice = {
            "helped": "it resolved the pain: continue",
            "partial": "partial response: continue and optimise",
            "short": f"shorter than an adequate trial ({param('adequate_trial_weeks')} weeks): continue",
        }
        details = {"status": "continue", "advice": advice[t["status"]], **(_red_flag_note(ctx) if protective else {})}
        ctx.recommend(
            code,
            [f"tried {weeks(t['weeks'])}, response {t['response']}; {advice[t['status']]}"],
            details=details,
            review=first_line_review(),
        )

    return act


def stop(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        t = ctx.fact("tried")
        fit = " (check fit or placement)" if code in WORN else ""
        why_not = {
            "no_benefit": f"no benefit from an adequate trial, so not simply repeated{fit}; counts toward "
            "failed conservative care",
            "worsened": "pain worsened with it: not repeated",
            "not_tolerated": "not tolerated: not repeated",
        }[t["status"]]
        ctx.withhold(code, "not_indicated", f"tried {weeks(t['weeks'])}, response {t['response']}; {why_not}")

    return act


def optimise(code: str, what: str) -> Callable[[Context], None]:
    """The baseline modalities: after a trial without benefit, continue and optimise (or change)."""

    def act(ctx: Context) -> None:
        t = ctx.fact("tried")
        advice = {
            "no_benefit": f"no benefit from {weeks(t['weeks'])}: continue and optimise ({what})",
            "worsened": f"pain worsened with the change tried: change the approach ({what})",
            "not_tolerated": f"the change tried was not tolerated: change the approach ({what})",
        }[t["status"]]
        ctx.recommend(
            code,
            [
                f"tried {weeks(t['weeks'])}, response {t['response']}; {advice}",
                "baseline of every plan: kept alongside any escalation",
            ],
            details={"status": "optimise", "advice": advice, **_red_flag_note(ctx)},
            review=first_line_review(),
        )

    return act


def suppressed(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        ctx.withhold(code, "suppressed", f"red flag ({flag_of(ctx)}): not started until the urgent assessment")

    return act


def suppressed_continue(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        ctx.withhold(
            code, "suppressed", f"red flag ({flag_of(ctx)}): review after the urgent assessment before continuing"
        )

    return act


def no_indication(code: str, missing: Callable[[Context], str]) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        t = ctx.fact("tried")
        ctx.withhold(
            code,
            "not_indicated",
            f"{missing(ctx)}: not indicated, whatever was tried before (tried "
            f"{weeks(t['weeks'])}, response {t['response']})",
        )

    return act


def _pain(ctx: Context) -> list[str]:
    return ["forefoot pain: first-line conservative care"]


# ------------------------------------------------------------------ weight management


def _weight_why(ctx: Context) -> list[str]:
    out = [f"BMI {ctx.fact('bmi')['value']:.1f} ≥ {param('bmi_overweight'):.1f}"]
    if ctx.all("pregnancy_unknown"):
        out.append("pregnancy status not recorded: confirm it first (no weight-loss advice in pregnancy)")
    return out


def _weight_offer(ctx: Context) -> None:
    details: dict[str, Any] = {}
    if ctx.all("pregnancy_unknown"):
        details["caution"] = "pregnancy status is not recorded: confirm it before weight-loss advice"
    ctx.recommend("weight_management", _weight_why(ctx), details=details, review=first_line_review())


def _weight_keep(ctx: Context) -> None:
    keep("weight_management")(ctx)


def _weight_pregnant(ctx: Context) -> None:
    ctx.withhold(
        "weight_management",
        "not_indicated",
        f"pregnant: BMI {ctx.fact('bmi')['value']:.1f} is not "
        "interpreted and weight-loss advice is not given in pregnancy; revisit after delivery",
    )


def _weight_pregnant_continue(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.withhold(
        "weight_management",
        "not_indicated",
        f"pregnant: weight management (tried {weeks(t['weeks'])}) "
        "is paused; weight-loss advice is not given in pregnancy; revisit after delivery",
    )


def _weight_pregnancy_unknown(ctx: Context) -> None:
    ctx.unknown(
        "pregnancy",
        "pregnancy status is not recorded for a patient who could be pregnant: confirm it "
        "(no weight-loss advice in pregnancy)",
        ["weight_management"],
    )


def _bmi_below(ctx: Context) -> str:
    return f"BMI {ctx.fact('bmi')['value']:.1f} is below {param('bmi_overweight'):.1f}"


WEIGHT = "weight_management"
BMI_HIGH = {"bmi": fact("bmi", value=ge(param("bmi_overweight"))), "patient": fact("patient", pregnant=ne("yes"))}

RULES = [
    # footwear: baseline and protective
    Rule(
        "FL-FOOTWEAR",
        "Footwear modification for everyone with forefoot pain (protective, also under a red flag).",
        when={"pain": fact("pain")},
        unless={"tried": _tried("footwear_modification")},
        action=offer("footwear_modification", _pain, protective=True),
        reads_all=("red_flag",),
        emits=("footwear_modification",),
        citations=_cites("footwear_modification"),
    ),
    Rule(
        "FL-FOOTWEAR-CONTINUE",
        "Footwear modification already helping or not yet tried long enough: continue.",
        when={"tried": _tried("footwear_modification", CONTINUE)},
        action=keep("footwear_modification", protective=True),
        reads_all=("red_flag",),
        emits=("footwear_modification",),
        citations=_cites("footwear_modification"),
    ),
    Rule(
        "FL-FOOTWEAR-TRIED",
        "Footwear modification without benefit is still the baseline: continue and optimise.",
        when={"tried": _tried("footwear_modification", STOP)},
        action=optimise("footwear_modification", "wide toe box, low heel, stiff or rocker sole; check the fit"),
        reads_all=("red_flag",),
        emits=("footwear_modification",),
        citations=(*_cites("footwear_modification"), "project-pathway"),
    ),
    # activity: baseline and protective
    Rule(
        "FL-ACTIVITY",
        "Less high-impact forefoot load for everyone with forefoot pain (protective, also under a red flag).",
        when={"pain": fact("pain")},
        unless={"tried": _tried("activity_modification")},
        action=offer("activity_modification", _pain, protective=True),
        reads_all=("red_flag",),
        emits=("activity_modification",),
        citations=_cites("activity_modification"),
    ),
    Rule(
        "FL-ACTIVITY-CONTINUE",
        "Activity modification already helping or not yet tried long enough: continue.",
        when={"tried": _tried("activity_modification", CONTINUE)},
        action=keep("activity_modification", protective=True),
        reads_all=("red_flag",),
        emits=("activity_modification",),
        citations=_cites("activity_modification"),
    ),
    Rule(
        "FL-ACTIVITY-TRIED",
        "Activity modification without benefit is still the baseline: continue and optimise.",
        when={"tried": _tried("activity_modification", STOP)},
        action=optimise("activity_modification", "less running, jumping and standing on hard floors"),
        reads_all=("red_flag",),
        emits=("activity_modification",),
        citations=_cites("activity_modification"),
    ),
    # metatarsal pad
    Rule(
        "FL-PAD",
        "A metatarsal pad, placed just proximal to the painful heads.",
        when={"pain": fact("pain")},
        unless={"tried": _tried("metatarsal_pad"), **NO_FLAG},
        action=offer("metatarsal_pad", _pain),
        emits=("metatarsal_pad",),
        citations=_cites("metatarsal_pad"),
    ),
    Rule(
        "FL-PAD-CONTINUE",
        "A metatarsal pad already helping or not yet tried long enough: continue.",
        when={"tried": _tried("metatarsal_pad", CONTINUE)},
        unless=NO_FLAG,
        action=keep("metatarsal_pad"),
        emits=("metatarsal_pad",),
        citations=_cites("metatarsal_pad"),
    ),
    Rule(
        "FL-PAD-TRIED",
        "A metatarsal pad tried adequately without benefit, made worse or not tolerated: not simply repeated.",
        when={"tried": _tried("metatarsal_pad", STOP)},
        action=stop("metatarsal_pad"),
        emits=("metatarsal_pad",),
        citations=_cites("metatarsal_pad"),
    ),
    Rule(
        "FL-PAD-RF",
        "A metatarsal pad is not started while a red flag awaits assessment.",
        when={"pain": fact("pain"), **NO_FLAG},
        unless={"tried": _tried("metatarsal_pad")},
        action=suppressed("metatarsal_pad"),
        emits=("metatarsal_pad",),
        citations=_cites("metatarsal_pad"),
    ),
    Rule(
        "FL-PAD-CONTINUE-RF",
        "A metatarsal pad under way is reviewed after the red flag is assessed.",
        when={"tried": _tried("metatarsal_pad", CONTINUE), **NO_FLAG},
        action=suppressed_continue("metatarsal_pad"),
        emits=("metatarsal_pad",),
        citations=_cites("metatarsal_pad"),
    ),
    # insoles: rheumatoid arthritis
    Rule(
        "FL-INSOLES",
        "Simple insoles for forefoot pain in rheumatoid arthritis.",
        when={"ra": fact("comorbidity", code="rheumatoid_arthritis")},
        unless={"tried": _tried("insoles"), **NO_FLAG},
        action=offer(
            "insoles", lambda c: ["rheumatoid arthritis: simple insoles have trial evidence for forefoot pain"]
        ),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    Rule(
        "FL-INSOLES-CONTINUE",
        "Insoles in rheumatoid arthritis already helping or not yet tried long enough: continue.",
        when={"tried": _tried("insoles", CONTINUE), "ra": fact("comorbidity", code="rheumatoid_arthritis")},
        unless=NO_FLAG,
        action=keep("insoles"),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    Rule(
        "FL-INSOLES-TRIED",
        "Insoles tried adequately without benefit, made worse or not tolerated: not simply repeated.",
        when={"tried": _tried("insoles", STOP)},
        action=stop("insoles"),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    Rule(
        "FL-INSOLES-NO-INDICATION",
        "Insoles tried without rheumatoid arthritis: the past trial creates no indication.",
        when={"tried": _tried("insoles", CONTINUE)},
        unless={"ra": fact("comorbidity", code="rheumatoid_arthritis")},
        action=no_indication(
            "insoles",
            lambda c: (
                "no rheumatoid arthritis recorded (simple insoles are "
                "recommended here for rheumatoid arthritis, where trials exist)"
            ),
        ),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    Rule(
        "FL-INSOLES-RF",
        "Insoles are not started while a red flag awaits assessment.",
        when={"ra": fact("comorbidity", code="rheumatoid_arthritis"), **NO_FLAG},
        unless={"tried": _tried("insoles")},
        action=suppressed("insoles"),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    Rule(
        "FL-INSOLES-CONTINUE-RF",
        "Insoles under way are reviewed after the red flag is assessed.",
        when={"tried": _tried("insoles", CONTINUE), "ra": fact("comorbidity", code="rheumatoid_arthritis"), **NO_FLAG},
        action=suppressed_continue("insoles"),
        emits=("insoles",),
        citations=_cites("insoles"),
    ),
    # calf stretching: gastrocnemius tightness
    Rule(
        "FL-STRETCH",
        "Calf stretching when gastrocnemius tightness is found.",
        when={"tight": fact("exam", code="gastrocnemius_tightness")},
        unless={"tried": _tried("calf_stretching"), **NO_FLAG},
        action=offer("calf_stretching", lambda c: ["gastrocnemius tightness on examination"]),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    Rule(
        "FL-STRETCH-CONTINUE",
        "Calf stretching with tightness, already helping or not yet long enough: continue.",
        when={"tried": _tried("calf_stretching", CONTINUE), "tight": fact("exam", code="gastrocnemius_tightness")},
        unless=NO_FLAG,
        action=keep("calf_stretching"),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    Rule(
        "FL-STRETCH-TRIED",
        "Calf stretching tried adequately without benefit, made worse or not tolerated: not simply repeated.",
        when={"tried": _tried("calf_stretching", STOP)},
        action=stop("calf_stretching"),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    Rule(
        "FL-STRETCH-NO-INDICATION",
        "Calf stretching tried without gastrocnemius tightness: the past trial creates no indication.",
        when={"tried": _tried("calf_stretching", CONTINUE)},
        unless={"tight": fact("exam", code="gastrocnemius_tightness")},
        action=no_indication("calf_stretching", lambda c: "no gastrocnemius tightness recorded on examination"),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    Rule(
        "FL-STRETCH-RF",
        "Calf stretching is not started while a red flag awaits assessment.",
        when={"tight": fact("exam", code="gastrocnemius_tightness"), **NO_FLAG},
        unless={"tried": _tried("calf_stretching")},
        action=suppressed("calf_stretching"),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    Rule(
        "FL-STRETCH-CONTINUE-RF",
        "Calf stretching under way is reviewed after the red flag is assessed.",
        when={
            "tried": _tried("calf_stretching", CONTINUE),
            "tight": fact("exam", code="gastrocnemius_tightness"),
            **NO_FLAG,
        },
        action=suppressed_continue("calf_stretching"),
        emits=("calf_stretching",),
        citations=_cites("calf_stretching"),
    ),
    # callus debridement: plantar callus
    Rule(
        "FL-CALLUS",
        "Callus debridement when plantar callus is found.",
        when={"callus": fact("exam", code="plantar_callus")},
        unless={"tried": _tried("callus_debridement"), **NO_FLAG},
        action=offer("callus_debridement", lambda c: ["plantar callus on examination"]),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    Rule(
        "FL-CALLUS-CONTINUE",
        "Callus debridement with callus, already helping or not yet long enough: continue.",
        when={"tried": _tried("callus_debridement", CONTINUE), "callus": fact("exam", code="plantar_callus")},
        unless=NO_FLAG,
        action=keep("callus_debridement"),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    Rule(
        "FL-CALLUS-TRIED",
        "Callus debridement tried adequately without benefit, made worse or not tolerated: not simply repeated.",
        when={"tried": _tried("callus_debridement", STOP)},
        action=stop("callus_debridement"),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    Rule(
        "FL-CALLUS-NO-INDICATION",
        "Callus debridement tried without a plantar callus: the past trial creates no indication.",
        when={"tried": _tried("callus_debridement", CONTINUE)},
        unless={"callus": fact("exam", code="plantar_callus")},
        action=no_indication("callus_debridement", lambda c: "no plantar callus recorded on examination"),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    Rule(
        "FL-CALLUS-RF",
        "Callus debridement is not started while a red flag awaits assessment.",
        when={"callus": fact("exam", code="plantar_callus"), **NO_FLAG},
        unless={"tried": _tried("callus_debridement")},
        action=suppressed("callus_debridement"),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    Rule(
        "FL-CALLUS-CONTINUE-RF",
        "Callus debridement under way is reviewed after the red flag is assessed.",
        when={
            "tried": _tried("callus_debridement", CONTINUE),
            "callus": fact("exam", code="plantar_callus"),
            **NO_FLAG,
        },
        action=suppressed_continue("callus_debridement"),
        emits=("callus_debridement",),
        citations=_cites("callus_debridement"),
    ),
    # weight management: BMI at or above the threshold, not in pregnancy
    Rule(
        "FL-WEIGHT",
        "Weight management when BMI is at or above the overweight threshold (not in pregnancy).",
        when=dict(BMI_HIGH),
        unless={"tried": _tried(WEIGHT), **NO_FLAG},
        action=_weight_offer,
        reads_all=("pregnancy_unknown",),
        emits=(WEIGHT,),
        citations=_cites(WEIGHT),
    ),
    Rule(
        "FL-WEIGHT-CONTINUE",
        "Weight management with a BMI at or above the threshold, already helping or not yet long enough: continue.",
        when={"tried": _tried(WEIGHT, CONTINUE), **BMI_HIGH},
        unless=NO_FLAG,
        action=_weight_keep,
        emits=(WEIGHT,),
        citations=_cites(WEIGHT),
    ),
    Rule(
        "FL-WEIGHT-TRIED",
        "Weight management tried adequately without benefit, made worse or not tolerated: not simply repeated.",
        when={"tried": _tried(WEIGHT, STOP)},
        action=stop(WEIGHT),
        emits=(WEIGHT,),
        citations=_cites(WEIGHT),
    ),
    Rule(
        "FL-WEIGHT-NO-INDICATION",
        "Weight management tried with a BMI below the threshold: the past trial creates no indication.",
        when={"tried": _tried(WEIGHT, CONTINUE), "bmi": fact("bmi", value=lt(param("bmi_overweight")))},
        action=no_indication(WEIGHT, _bmi_below),
        emits=(WEIGHT,),
        citations=("who-bmi-2000",),
    ),
    Rule(
        "FL-WEIGHT-RF",
        "Weight management is not started while a red flag awaits assessment.",
        when={**BMI_HIGH, **NO_FLAG},
        unless={"tried": _tried(WEIGHT)},
        action=suppressed(WEIGHT),
        emits=(WEIGHT,),
        citations=_cites(WEIGHT),
    ),
    Rule(
        "FL-WEIGHT-CONTINUE-RF",
        "Weight management under way is reviewed after the red flag is assessed.",
        when={"tried": _tried(WEIGHT, CONTINUE), **BMI_HIGH, **NO_FLAG},
        action=suppressed_continue(WEIGHT),
        emits=(WEIGHT,),
        citations=_cites(WEIGHT),
    ),
    Rule(
        "FL-WEIGHT-PREGNANT",
        "No weight-loss advice in pregnancy, whatever the BMI.",
        when={"bmi": fact("bmi", value=ge(param("bmi_overweight"))), "patient": fact("patient", pregnant="yes")},
        unless={"tried": _tried(WEIGHT, CONTINUE)},
        action=_weight_pregnant,
        emits=(WEIGHT,),
        citations=("who-bmi-2000", "project-pathway"),
    ),
    Rule(
        "FL-WEIGHT-PREGNANT-CONTINUE",
        "Weight management under way is paused in pregnancy.",
        when={"tried": _tried(WEIGHT, CONTINUE), "patient": fact("patient", pregnant="yes")},
        action=_weight_pregnant_continue,
        emits=(WEIGHT,),
        citations=("project-pathway",),
    ),
    Rule(
        "FL-WEIGHT-PREGNANCY-UNKNOWN",
        "Weight advice for a patient who could be pregnant and whose pregnancy status "
        "is not recorded names that unknown.",
        when={"bmi": fact("bmi", value=ge(param("bmi_overweight"))), "possible": fact("pregnancy_unknown")},
        action=_weight_pregnancy_unknown,
        citations=("project-pathway",),
    ),
]
