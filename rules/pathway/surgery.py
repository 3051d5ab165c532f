"""Stage 5: surgical referral (CLINICAL.md section 5): only for recalcitrant pain, only with no red
flag, each for its own examination finding; a procedure already done is not offered again."""

from __future__ import annotations

from collections.abc import Callable

from engine.api import Context, Rule, fact, one_of, param

from .common import NO_FLAG, RF_GAP, weeks, with_scope

#: what each procedure treats, as the reason names it
TREATS = {
    "gastrocnemius_recession": "gastrocnemius tightness",
    "plantar_plate_repair": "plantar plate instability",
    "tendon_transfer": "flexible lesser-toe deformity",
}
STRETCH_FAILED = ("no_benefit", "worsened")
EXAM_GAP = {"exam_gap": fact("record_gap", section="exam_findings")}


def offer(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        r = ctx.fact("recalcitrant")
        why = [
            f"recalcitrant pain: {weeks(r['weeks_total'])} over {r['modalities']} failed adequate first-line trials",
            f"{TREATS[code]} on examination",
        ]
        if code == "gastrocnemius_recession":
            s = ctx.fact("stretch")
            why.append(f"calf stretching tried {weeks(s['weeks'])} without benefit (response {s['response']})")
        ctx.recommend(code, [*why, "no red flag recorded"], details=with_scope({}, ctx))

    return act


def absent(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        ctx.withhold(code, "not_indicated", f"no {TREATS[code]} recorded on examination")

    return act


def deferred(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        ctx.withhold(
            code,
            "deferred",
            f"{TREATS[code]} is present but pain is not recalcitrant; surgical referral "
            "is considered only after failed conservative care",
        )

    return act


def done(code: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        t = ctx.fact("done")
        ctx.withhold(
            code,
            "not_indicated",
            f"already done {weeks(t['weeks'])} ago (response {t['response']}): refer "
            "back for a surgical review instead",
        )

    return act


def _stretch_first(ctx: Context) -> None:
    tried = [t for t in ctx.all("trial_status") if t["treatment"] == "calf_stretching"]
    so_far = {
        "helped": "it helped: keep stretching",
        "partial": "partial response: keep stretching",
        "short": "tried {w} so far: continue to an adequate trial",
        "not_tolerated": "not tolerated after {w}: discuss alternatives; referral is not automatic",
    }
    now = so_far[tried[0]["status"]].format(w=weeks(tried[0]["weeks"])) if tried else "not tried yet"
    ctx.withhold(
        "gastrocnemius_recession",
        "deferred",
        "referral needs an adequate trial of calf stretching (at least "
        f"{weeks(param('adequate_trial_weeks'))}) without benefit; calf stretching: {now}",
    )


FINDING = {
    "gastrocnemius_recession": "gastrocnemius_tightness",
    "plantar_plate_repair": "plantar_plate_instability",
    "tendon_transfer": "flexible_toe_deformity",
}


def _exam_gap(ctx: Context) -> None:
    present = {e["code"] for e in ctx.all("exam")}
    for code in TREATS:
        if FINDING[code] not in present:  # a finding that was retrieved decides by itself
            ctx.withhold(
                code,
                "deferred",
                f"the examination findings could not be retrieved: examine for {TREATS[code]} before deciding",
            )


G, P, T = "gastrocnemius_recession", "plantar_plate_repair", "tendon_transfer"
TIGHT = {"exam": fact("exam", code="gastrocnemius_tightness")}
PLATE = {"exam": fact("exam", code="plantar_plate_instability")}
FLEX = {"exam": fact("exam", code="flexible_toe_deformity")}
STRETCH = {"stretch": fact("trial_status", treatment="calf_stretching", status=one_of(*STRETCH_FAILED))}
CITES = ("besse-2017",)
NOT_RECALCITRANT = {"recalcitrant": fact("recalcitrant_pain")}


def _done(code: str) -> dict:
    return {"done": fact("treatment", treatment=code)}


RULES = [
    # gastrocnemius recession
    Rule(
        "SURG-GASTROC",
        "Recalcitrant pain with gastrocnemius tightness after failed calf stretching, no red flag: "
        "refer to consider gastrocnemius recession.",
        when={"recalcitrant": fact("recalcitrant_pain"), **TIGHT, **STRETCH},
        unless={**NO_FLAG, **RF_GAP, **_done(G)},
        action=offer(G),
        emits=(G,),
        reads_all=("scope_notice",),
        citations=(*CITES, "gastrocnemius-release-2016"),
    ),
    Rule(
        "SURG-GASTROC-NO-FINDING",
        "No gastrocnemius tightness on examination: gastrocnemius recession is not indicated.",
        when={"pain": fact("pain")},
        unless={**TIGHT, **_done(G), **EXAM_GAP},
        action=absent(G),
        emits=(G,),
        citations=CITES,
    ),
    Rule(
        "SURG-GASTROC-DEFERRED",
        "Gastrocnemius tightness but pain not recalcitrant: gastrocnemius recession is deferred.",
        when=dict(TIGHT),
        unless={**NOT_RECALCITRANT, **_done(G)},
        action=deferred(G),
        emits=(G,),
        citations=CITES,
    ),
    Rule(
        "SURG-GASTROC-STRETCH-FIRST",
        "Gastrocnemius tightness: an adequate failed trial of calf stretching comes first.",
        when=dict(TIGHT),
        unless={**STRETCH, **_done(G)},
        action=_stretch_first,
        emits=(G,),
        reads_all=("trial_status",),
        citations=CITES,
    ),
    Rule(
        "SURG-GASTROC-DONE",
        "Gastrocnemius recession already done: not offered again; refer back for review.",
        when=_done(G),
        action=done(G),
        emits=(G,),
        citations=("project-pathway",),
    ),
    # plantar plate repair
    Rule(
        "SURG-PLATE",
        "Recalcitrant pain with plantar plate instability, no red flag: refer to consider plantar plate repair.",
        when={"recalcitrant": fact("recalcitrant_pain"), **PLATE},
        unless={**NO_FLAG, **RF_GAP, **_done(P)},
        action=offer(P),
        emits=(P,),
        reads_all=("scope_notice",),
        citations=CITES,
    ),
    Rule(
        "SURG-PLATE-NO-FINDING",
        "No plantar plate instability on examination: plantar plate repair is not indicated.",
        when={"pain": fact("pain")},
        unless={**PLATE, **_done(P), **EXAM_GAP},
        action=absent(P),
        emits=(P,),
        citations=CITES,
    ),
    Rule(
        "SURG-PLATE-DEFERRED",
        "Plantar plate instability but pain not recalcitrant: plantar plate repair is deferred.",
        when=dict(PLATE),
        unless={**NOT_RECALCITRANT, **_done(P)},
        action=deferred(P),
        emits=(P,),
        citations=CITES,
    ),
    Rule(
        "SURG-PLATE-DONE",
        "Plantar plate repair already done: not offered again; refer back for review.",
        when=_done(P),
        action=done(P),
        emits=(P,),
        citations=("project-pathway",),
    ),
    # tendon transfer
    Rule(
        "SURG-TENDON",
        "Recalcitrant pain with a flexible toe deformity, no red flag: refer to consider tendon transfer.",
        when={"recalcitrant": fact("recalcitrant_pain"), **FLEX},
        unless={**NO_FLAG, **RF_GAP, **_done(T)},
        action=offer(T),
        emits=(T,),
        reads_all=("scope_notice",),
        citations=CITES,
    ),
    Rule(
        "SURG-TENDON-NO-FINDING",
        "No flexible toe deformity on examination: tendon transfer is not indicated.",
        when={"pain": fact("pain")},
        unless={**FLEX, **_done(T), **EXAM_GAP},
        action=absent(T),
        emits=(T,),
        citations=CITES,
    ),
    Rule(
        "SURG-TENDON-DEFERRED",
        "Flexible toe deformity but pain not recalcitrant: tendon transfer is deferred.",
        when=dict(FLEX),
        unless={**NOT_RECALCITRANT, **_done(T)},
        action=deferred(T),
        emits=(T,),
        citations=CITES,
    ),
    Rule(
        "SURG-TENDON-DONE",
        "Tendon transfer already done: not offered again; refer back for review.",
        when=_done(T),
        action=done(T),
        emits=(T,),
        citations=("project-pathway",),
    ),
    # examination not retrieved
    Rule(
        "SURG-EXAM-NOT-RETRIEVED",
        "Examination findings that could not be retrieved: surgical options wait for an examination.",
        when={"gap": fact("record_gap", section="exam_findings")},
        action=_exam_gap,
        emits=(G, P, T),
        reads_all=("exam",),
        citations=("project-pathway",),
    ),
]
