"""Stage 1: derived findings (CLINICAL.md section 3). Each finding is concluded by its own rule and
matched by later rules: BMI, the DN4 screen, trials and their status, failed conservative care,
persistent and recalcitrant pain, and the possibility of pregnancy."""

from __future__ import annotations

from decimal import Decimal

from engine.api import Context, Rule, between, fact, ge, lt, ne, one_of, param

from ..vocabulary import DN4_EXAM_ITEMS
from .common import DN4_CITES, ESCALATIONS, LDN, PRF, SURGERY, dn4_cutoff, half_up, num, weeks

# ------------------------------------------------------------------ BMI


def _bmi(ctx: Context) -> None:
    b = ctx.fact("body")
    w, h = Decimal(str(b["weight_kg"])), Decimal(str(b["height_cm"])) / 100
    value = half_up(w / (h * h))
    ctx.because(f"BMI = {num(b['weight_kg'])} kg / ({h.normalize():f} m)² = {value} (rounded half up to one decimal)")
    ctx.conclude("bmi", value=float(value))


def _bmi_missing(ctx: Context) -> None:
    ctx.unknown(
        "bmi",
        "weight and height are not both recorded, so BMI was not derived and weight management was not evaluated",
        ["weight_management"],
    )


def _bmi_child(ctx: Context) -> None:
    ctx.unknown(
        "bmi",
        f"age {ctx.fact('patient')['age']}: adult BMI cut-offs do not apply under "
        f"{param('bmi_min_age')} (BMI-for-age centiles are not in this rule set); weight management was not "
        "evaluated",
        ["weight_management"],
    )


# ------------------------------------------------------------------ DN4


def _dn4_full(ctx: Context) -> None:
    pain = ctx.fact("pain")
    items = list(pain["dn4_items"])
    total = param("dn4_items_total")
    listed = f" ({', '.join(items)})" if items else " (assessed, no item present)"
    ctx.because(f"DN4 {len(items)}/{total}{listed}")
    ctx.conclude("dn4", score=len(items), total=total, version="full", items=items)


def _dn4_interview(ctx: Context) -> None:
    pain = ctx.fact("pain")
    items = [i for i in pain["dn4_items"] if i not in DN4_EXAM_ITEMS]
    total = param("dn4_interview_items_total")
    listed = f" ({', '.join(items)})" if items else " (assessed, no item present)"
    ctx.because(f"DN4 interview only (no examination items): {len(items)}/{total}{listed}")
    ctx.conclude("dn4", score=len(items), total=total, version="interview", items=items)


def _dn4_unknown(ctx: Context) -> None:
    ctx.unknown(
        "dn4",
        "the DN4 is not recorded (no items listed and not marked as assessed): whether the pain "
        "screens neuropathic is not known; assess the DN4 (an empty list is not read as a score of zero)",
        [LDN],
    )
    ctx.conclude("dn4_unknown")


def _neuropathic(ctx: Context) -> None:
    d = ctx.fact("dn4")
    cutoff = dn4_cutoff(d["version"])
    ctx.because(
        f"DN4 {d['score']}/{d['total']} ≥ {cutoff}: screens positive for a neuropathic component (a "
        "screening tool, not a diagnosis)"
    )
    ctx.conclude("neuropathic_phenotype", score=d["score"], total=d["total"])


# ------------------------------------------------------------------ trials


def _adequate_trial(ctx: Context) -> None:
    t = ctx.fact("trial")
    ctx.because(
        f"{t['treatment']} tried {weeks(t['weeks'])} ≥ {param('adequate_trial_weeks')}, response {t['response']}"
    )
    ctx.conclude(
        "adequate_trial", key=t["treatment"], treatment=t["treatment"], weeks=t["weeks"], response=t["response"]
    )


def _trial_status(ctx: Context) -> None:
    t = ctx.fact("trial")
    adequate = t["weeks"] >= param("adequate_trial_weeks")
    r = t["response"]
    if r == "resolved":
        status = "helped"
    elif r in ("worsened", "not_tolerated"):
        status = r
    elif adequate and r in param("no_benefit_responses"):
        status = "no_benefit"
    elif adequate:
        status = "partial"
    else:
        status = "short"
    ctx.because(f"{t['treatment']}: {weeks(t['weeks'])}, response {r} -> {status}")
    ctx.conclude(
        "trial_status", key=t["treatment"], treatment=t["treatment"], status=status, weeks=t["weeks"], response=r
    )


def _trial_exceeds_pain(ctx: Context) -> None:
    t, pain = ctx.fact("trial"), ctx.fact("pain")
    ctx.because(f"{t['treatment']} {weeks(t['weeks'])} > pain {weeks(pain['duration_weeks'])}")
    ctx.unknown(
        f"trial:{t['treatment']}",
        f"{t['treatment'].replace('_', ' ')} is recorded as tried for {weeks(t['weeks'])}, but the pain has "
        f"lasted {weeks(pain['duration_weeks'])}: probably an entry error; counted as "
        f"{weeks(pain['duration_weeks'])}",
        [PRF, *SURGERY],
    )


def _failed_conservative(ctx: Context) -> None:
    pain = ctx.fact("pain")
    duration = pain["duration_weeks"]
    failed = [t for t in ctx.all("adequate_trial") if t["response"] in param("failed_trial_responses")]
    recorded = sum(t["weeks"] for t in failed)
    counted = min(sum(min(t["weeks"], duration) for t in failed), duration)
    names = sorted(t["treatment"] for t in failed)
    line = (
        f"adequate first-line trials without resolution: {len(names)} ({', '.join(names) or 'none'}), "
        f"{weeks(recorded)} in total"
    )
    if counted < recorded:
        line += (
            f", counted as {weeks(counted)}: weeks are calendar time, at most the pain's duration "
            "(trials may have run side by side)"
        )
    ctx.because(line)
    ctx.conclude(
        "failed_conservative", weeks_total=counted, weeks_recorded=recorded, modalities=len(names), treatments=names
    )


def _persistent(ctx: Context) -> None:
    pain, t = ctx.fact("pain"), ctx.fact("trial")
    ctx.because(
        f"pain {weeks(pain['duration_weeks'])} ≥ {param('persistent_pain_weeks')} despite "
        f"{t['treatment']} for {weeks(t['weeks'])} (response {t['response']})"
    )
    ctx.conclude("persistent_pain", duration_weeks=pain["duration_weeks"])


def _recalcitrant(ctx: Context) -> None:
    f = ctx.fact("failed")
    ctx.because(
        f"persistent, with {weeks(f['weeks_total'])} over {f['modalities']} failed adequate first-line "
        f"trials (recalcitrant from {param('recalcitrant_trial_weeks')} weeks or "
        f"{param('recalcitrant_modalities')} modalities)"
    )
    ctx.conclude("recalcitrant_pain", weeks_total=f["weeks_total"], modalities=f["modalities"])


def _pregnancy_possible(ctx: Context) -> None:
    p = ctx.fact("patient")
    ctx.because(f"sex {p['sex']}, age {p['age']}, pregnancy status not recorded")
    ctx.conclude("pregnancy_unknown")


RULES = [
    Rule(
        "BMI-DERIVE",
        "Derive BMI (kg/m², rounded half up to one decimal) from weight and height in adults.",
        when={"body": fact("body"), "patient": fact("patient", age=ge(param("bmi_min_age")))},
        action=_bmi,
        concludes=("bmi",),
        citations=("who-bmi-2000",),
    ),
    Rule(
        "BMI-UNKNOWN",
        "Say that BMI is unknown when weight or height is missing.",
        when={"patient": fact("patient", body_measures="missing", age=ge(param("bmi_min_age")))},
        action=_bmi_missing,
    ),
    Rule(
        "BMI-CHILD",
        "Say that adult BMI cut-offs are not applied to children.",
        when={"patient": fact("patient", age=lt(param("bmi_min_age")))},
        action=_bmi_child,
    ),
    Rule(
        "DN4-SCORE",
        "Score the full DN4 neuropathic screen: one point per item present (0-10).",
        when={"pain": fact("pain", dn4_recorded="yes", dn4_examined=ne("no"))},
        action=_dn4_full,
        concludes=("dn4",),
        citations=("bouhassira-2005",),
    ),
    Rule(
        "DN4-SCORE-INTERVIEW",
        "Score an interview-only DN4 (the examination was not done) out of 7.",
        when={"pain": fact("pain", dn4_recorded="yes", dn4_examined="no")},
        action=_dn4_interview,
        concludes=("dn4",),
        citations=("bouhassira-2005", "van-seventer-2013"),
    ),
    Rule(
        "DN4-UNKNOWN",
        "No DN4 items and no record that it was assessed: the DN4 is unknown, never an assumed 0/10.",
        when={"pain": fact("pain", dn4_recorded="no")},
        action=_dn4_unknown,
        concludes=("dn4_unknown",),
        citations=("bouhassira-2005",),
    ),
    Rule(
        "DN4-PHENOTYPE",
        "A full DN4 at or above the cutoff gives the neuropathic phenotype (screen, not diagnosis).",
        when={"dn4": fact("dn4", version="full", score=ge(param("dn4_neuropathic_cutoff")))},
        action=_neuropathic,
        concludes=("neuropathic_phenotype",),
        citations=DN4_CITES,
    ),
    Rule(
        "DN4-PHENOTYPE-INTERVIEW",
        "An interview-only DN4 at or above the interview cutoff gives the neuropathic "
        "phenotype (screen, not diagnosis).",
        when={"dn4": fact("dn4", version="interview", score=ge(param("dn4_interview_cutoff")))},
        action=_neuropathic,
        concludes=("neuropathic_phenotype",),
        citations=("van-seventer-2013",),
    ),
    Rule(
        "TRIAL-ADEQUATE",
        "A first-line modality tried long enough is an adequate conservative trial.",
        when={"trial": fact("treatment", line="first_line", weeks=ge(param("adequate_trial_weeks")))},
        action=_adequate_trial,
        concludes=("adequate_trial",),
        citations=("project-pathway",),
    ),
    Rule(
        "TRIAL-STATUS",
        "Classify each first-line modality already tried: helped, partial, short, no benefit, worsened, not tolerated.",
        when={"trial": fact("treatment", line="first_line")},
        action=_trial_status,
        concludes=("trial_status",),
        citations=("project-pathway",),
    ),
    Rule(
        "TRIAL-EXCEEDS-PAIN",
        "A trial recorded as longer than the pain is named as a likely entry error and counted as the pain's duration.",
        when={"trial": fact("treatment", kind="trial", exceeds_pain="yes"), "pain": fact("pain")},
        action=_trial_exceeds_pain,
        citations=("project-pathway",),
    ),
    Rule(
        "CONSERVATIVE-FAILED",
        "Add up the adequate first-line trials that did not resolve the pain, in calendar "
        "weeks: at most the pain's duration.",
        when={"pain": fact("pain")},
        action=_failed_conservative,
        reads_all=("adequate_trial",),
        concludes=("failed_conservative",),
        citations=("project-pathway",),
    ),
    Rule(
        "PERSISTENT",
        "Pain beyond the persistence threshold despite an adequate, unsuccessful conservative trial is persistent.",
        when={
            "pain": fact("pain", duration_weeks=ge(param("persistent_pain_weeks"))),
            "trial": fact("adequate_trial", response=one_of(param("failed_trial_responses"))),
        },
        action=_persistent,
        concludes=("persistent_pain",),
    ),
    Rule(
        "RECALCITRANT-WEEKS",
        "Persistent pain after enough calendar weeks of failed adequate first-line trials is recalcitrant.",
        when={
            "persistent": fact("persistent_pain"),
            "failed": fact("failed_conservative", weeks_total=ge(param("recalcitrant_trial_weeks"))),
        },
        action=_recalcitrant,
        concludes=("recalcitrant_pain",),
    ),
    Rule(
        "RECALCITRANT-MODALITIES",
        "Persistent pain after enough different failed adequate modalities is recalcitrant.",
        when={
            "persistent": fact("persistent_pain"),
            "failed": fact("failed_conservative", modalities=ge(param("recalcitrant_modalities"))),
        },
        action=_recalcitrant,
        concludes=("recalcitrant_pain",),
    ),
    Rule(
        "PREGNANCY-POSSIBLE",
        "A patient who could be pregnant and whose pregnancy status is not recorded.",
        when={
            "patient": fact(
                "patient",
                pregnant="unknown",
                sex=one_of("female", "other", "unknown"),
                age=between(param("childbearing_age_min"), param("childbearing_age_max")),
            )
        },
        action=_pregnancy_possible,
        concludes=("pregnancy_unknown",),
    ),
]

__all__ = ["ESCALATIONS", "RULES"]
