"""Words and small helpers the rules of every stage share. No rule lives here, and no rule id is
built here: each rule is written out, with its id as a literal, in the module of its stage."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.api import Context, fact, param

from ..knowledge import RED_FLAGS
from ..vocabulary import ESCALATIONS as ESCALATIONS  # re-exported for the stages
from ..vocabulary import SURGICAL as SURGERY

LDN = "low_dose_naltrexone"
PRF = "pulsed_radiofrequency"

#: Trial statuses under which a first-line modality goes on.
CONTINUE = ("helped", "partial", "short")
#: Trial statuses after which a first-line modality is not simply repeated.
STOP = ("no_benefit", "worsened", "not_tolerated")
#: Worn devices, where a trial without benefit may be a matter of fit or placement.
WORN = ("footwear_modification", "metatarsal_pad", "insoles")

NO_FLAG = {"flag": fact("red_flag")}
#: Red flags that could not be retrieved hold every escalation back, as a red flag would.
RF_GAP = {"rf_gap": fact("record_gap", section="red_flags")}

DN4_CITES = ("bouhassira-2005", "timmerman-2017", "van-seventer-2013")


def dn4_cutoff(version: str) -> Any:
    """The DN4 screening cutoff for the version scored: the full questionnaire's, or the interview's."""
    return param("dn4_neuropathic_cutoff") if version == "full" else param("dn4_interview_cutoff")


def num(x: float) -> str:
    """A number as a clinician writes it: 8, 8.5."""
    return f"{x:g}"


def weeks(x: float) -> str:
    """'1 week', '8 weeks', '8.5 weeks'."""
    return f"{x:g} week" + ("" if x == 1 else "s")


def days(x: float) -> str:
    return f"{x:g} day" + ("" if x == 1 else "s")


def half_up(value: Decimal, places: int = 1) -> Decimal:
    """Decimal rounding half up, as a clinician rounds (24.95 -> 25.0), never binary floating point."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def flag_text(code: str) -> str:
    return str(RED_FLAGS[code]["label"])


def flag_of(ctx: Context, alias: str = "flag") -> str:
    return flag_text(ctx.fact(alias)["code"])


def adjunct_entry() -> str:
    return (
        f"adjuncts are considered from {param('persistent_pain_weeks')} weeks of pain after a failed "
        f"conservative trial of at least {param('adequate_trial_weeks')} weeks"
    )


def first_line_review() -> tuple[float, str]:
    return (param("adequate_trial_weeks"), f"review at {param('adequate_trial_weeks')} weeks: an adequate trial")


#: Findings whose treatment this rule set does not cover: the notice, and the escalations it qualifies.
SCOPE = {
    "interdigital_neuroma_signs": (
        "signs of an interdigital (Morton's) neuroma: its treatment is outside this rule set (assess, e.g. "
        "ultrasound, or refer); the escalations below are for metatarsalgia and may not fit",
        [LDN, PRF, *SURGERY],
    ),
    "rigid_toe_deformity": (
        "a rigid toe deformity: its surgical treatment is outside this rule set (refer for a surgical opinion); "
        "tendon transfer is for a flexible deformity, and the other escalations may not fit",
        [PRF, *SURGERY],
    ),
}


def scope_notes(ctx: Context) -> list[str]:
    """The out-of-scope notices that qualify an escalation (the rule reads all `scope_notice` facts)."""
    return [SCOPE[n["code"]][0] for n in ctx.all("scope_notice")]


def with_scope(details: dict[str, Any], ctx: Context) -> dict[str, Any]:
    notes = scope_notes(ctx)
    if notes:
        details["out_of_scope"] = notes
    return details
