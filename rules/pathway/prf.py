"""Stage 4b: ultrasound-guided pulsed radiofrequency (CLINICAL.md section 4): for recalcitrant pain
only. Already done: judged at 3 months; not repeated without benefit; considered again when a
benefit has faded."""

from __future__ import annotations

from engine.api import Context, Rule, fact, ge, lt, one_of, param

from .common import NO_FLAG, PRF, RF_GAP, weeks, with_scope


def _review() -> tuple[float, str]:
    return (param("prf_review_weeks"), f"judge the effect at {param('prf_review_weeks')} weeks (3 months)")


def _offer(ctx: Context) -> None:
    r = ctx.fact("recalcitrant")
    ctx.recommend(
        PRF,
        [
            f"recalcitrant pain: {weeks(r['weeks_total'])} over {r['modalities']} failed adequate first-line trials",
            "no red flag recorded",
            "evidence is a single case report: discuss its uncertainty with the patient",
        ],
        details=with_scope({}, ctx),
        review=_review(),
    )


def _repeat(ctx: Context) -> None:
    t = ctx.fact("done")
    ctx.recommend(
        PRF,
        [
            f"pulsed radiofrequency {weeks(t['weeks'])} ago helped (response {t['response']}) and the "
            "benefit has faded: it may be considered again",
            "recalcitrant pain, no red flag recorded",
            "evidence is a single case report: discuss its uncertainty with the patient",
        ],
        details=with_scope({"status": "repeat"}, ctx),
        review=_review(),
    )


def _done_recent(ctx: Context) -> None:
    t = ctx.fact("done")
    ctx.withhold(
        PRF,
        "deferred",
        f"done {weeks(t['weeks'])} ago (response so far {t['response']}): judge the effect "
        f"at {param('prf_review_weeks')} weeks (3 months) before anything else",
    )


def _done_no_benefit(ctx: Context) -> None:
    t = ctx.fact("done")
    ctx.withhold(
        PRF, "not_indicated", f"done {weeks(t['weeks'])} ago without benefit (response {t['response']}): not repeated"
    )


def _done_harm(ctx: Context) -> None:
    t = ctx.fact("done")
    ctx.withhold(PRF, "not_indicated", f"done {weeks(t['weeks'])} ago, response {t['response']}: not repeated")


def _deferred(ctx: Context) -> None:
    f = ctx.fact("failed")
    ctx.withhold(
        PRF,
        "deferred",
        f"pain is not recalcitrant: {weeks(f['weeks_total'])} over {f['modalities']} failed "
        f"adequate first-line trials; interventional options are considered from "
        f"{param('recalcitrant_trial_weeks')} weeks or {param('recalcitrant_modalities')} modalities of "
        "failed conservative care, with persistent pain",
    )


DONE = {"done": fact("treatment", treatment=PRF)}

RULES = [
    Rule(
        "PRF-OFFER",
        "Recalcitrant pain without a red flag, PRF not done before: ultrasound-guided pulsed "
        "radiofrequency may be considered.",
        when={"recalcitrant": fact("recalcitrant_pain")},
        unless={**NO_FLAG, **RF_GAP, **DONE},
        action=_offer,
        emits=(PRF,),
        reads_all=("scope_notice",),
        citations=("prf-2018",),
    ),
    Rule(
        "PRF-REPEAT",
        "PRF done long enough ago, with a benefit that has faded, and pain still recalcitrant: may be "
        "considered again.",
        when={
            "recalcitrant": fact("recalcitrant_pain"),
            "done": fact(
                "treatment", treatment=PRF, response=one_of("partial", "resolved"), weeks=ge(param("prf_review_weeks"))
            ),
        },
        unless={**NO_FLAG, **RF_GAP},
        action=_repeat,
        emits=(PRF,),
        reads_all=("scope_notice",),
        citations=("prf-2018",),
    ),
    Rule(
        "PRF-DONE-RECENT",
        "PRF done under 3 months ago: judge its effect first.",
        when={
            "done": fact(
                "treatment",
                treatment=PRF,
                response=one_of("none", "partial", "resolved"),
                weeks=lt(param("prf_review_weeks")),
            )
        },
        action=_done_recent,
        emits=(PRF,),
        citations=("prf-2018",),
    ),
    Rule(
        "PRF-TRIED-NO-BENEFIT",
        "PRF done 3 months or more ago without benefit: not repeated.",
        when={"done": fact("treatment", treatment=PRF, response="none", weeks=ge(param("prf_review_weeks")))},
        action=_done_no_benefit,
        emits=(PRF,),
        citations=("project-pathway",),
    ),
    Rule(
        "PRF-TRIED",
        "PRF that made pain worse or was not tolerated: not repeated.",
        when={"done": fact("treatment", treatment=PRF, response=one_of("worsened", "not_tolerated"))},
        action=_done_harm,
        emits=(PRF,),
        citations=("project-pathway",),
    ),
    Rule(
        "PRF-DEFERRED",
        "Before pain is recalcitrant, interventional options are deferred, saying how far it is.",
        when={"failed": fact("failed_conservative")},
        unless={"recalcitrant": fact("recalcitrant_pain")},
        action=_deferred,
        emits=(PRF,),
        citations=("project-pathway",),
    ),
]
