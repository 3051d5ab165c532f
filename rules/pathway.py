"""The forefoot pain pathway (../shared/CLINICAL.md) as forward-chaining rules.

patient facts -> derived findings -> eligibility -> safety blocks -> recommendations,
not-recommended entries and unknowns. Each rule concludes named facts that later rules match;
the engine orders them into strata so every blocking fact exists before its absence is tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from engine.api import Context, Pattern, Rule, between, fact, ge, lt, ne, one_of, param

from .facts import OPIOID_CLASSES
from .knowledge import INTERVENTIONS
from .vocabulary import ESCALATIONS

RED_FLAG_TEXT = {
    "suspected_stress_fracture": "suspected stress fracture",
    "suspected_infection": "suspected infection",
    "suspected_charcot": "suspected Charcot neuroarthropathy",
    "critical_ischemia": "critical limb ischaemia",
    "suspected_tumor": "suspected tumour",
    "acute_trauma": "acute trauma",
    "foot_ulcer": "foot ulceration",
}
DN4_CITES = ("bouhassira-2005", "timmerman-2017", "van-seventer-2013")
def _adjunct_entry() -> str:
    return (f"adjuncts are considered from {param('persistent_pain_weeks')} weeks of pain after a failed conservative "
            f"trial of at least {param('adequate_trial_weeks')} weeks")


def _w(x: float) -> str:
    """A number as a clinician writes it: 8, 8.5."""
    return f"{x:g}"


def _weeks(x: float) -> str:
    """'1 week', '8 weeks', '8.5 weeks'."""
    return f"{x:g} week" + ("" if x == 1 else "s")


def _flag(ctx: Context, alias: str = "flag") -> str:
    return RED_FLAG_TEXT[ctx.fact(alias)["code"]]


# ------------------------------------------------------------------ derived findings


def _bmi(ctx: Context) -> None:
    b = ctx.fact("body")
    value = round(b["weight_kg"] / (b["height_cm"] / 100) ** 2, 1)
    ctx.because(f"BMI = {_w(b['weight_kg'])} kg / ({b['height_cm'] / 100:g} m)² = {value}")
    ctx.conclude("bmi", value=value)


def _bmi_missing(ctx: Context) -> None:
    ctx.unknown("bmi", "weight_kg and height_cm are not both given, so BMI was not derived and weight "
                "management was not evaluated", ["weight_management"])


def _bmi_child(ctx: Context) -> None:
    ctx.unknown("bmi", f"age {ctx.fact('patient')['age']}: adult BMI cut-offs do not apply under "
                f"{param('bmi_min_age')} (BMI-for-age centiles are not in this rule set); weight "
                "management was not evaluated", ["weight_management"])


def _dn4(ctx: Context) -> None:
    pain = ctx.fact("pain")
    items = list(pain["dn4_items"])
    total = param("dn4_items_total")
    listed = f" ({', '.join(items)})" if items else ""
    ctx.because(f"DN4 {len(items)}/{total}{listed}")
    ctx.conclude("dn4", score=len(items), items=items)
    if not items and pain["dn4_assessed"] != "yes":
        ctx.unknown("dn4", f"no neuropathic features are listed: DN4 is taken as 0/{total}, which is an "
                    "assumption unless the DN4 was assessed (set pain.dn4_assessed)", ["low_dose_naltrexone"])


def _neuropathic(ctx: Context) -> None:
    d = ctx.fact("dn4")
    ctx.because(f"DN4 {d['score']}/{param('dn4_items_total')} ≥ {param('dn4_neuropathic_cutoff')}: "
                "screens positive for a neuropathic component (a screening tool, not a diagnosis)")
    ctx.conclude("neuropathic_phenotype", score=d["score"])


def _adequate_trial(ctx: Context) -> None:
    t = ctx.fact("trial")
    ctx.because(f"{t['treatment']} tried {_weeks(t['weeks'])} ≥ {param('adequate_trial_weeks')}, response {t['response']}")
    ctx.conclude("adequate_trial", key=t["treatment"], treatment=t["treatment"], weeks=t["weeks"], response=t["response"])


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
    ctx.because(f"{t['treatment']}: {_weeks(t['weeks'])}, response {r} -> {status}")
    ctx.conclude("trial_status", key=t["treatment"], treatment=t["treatment"], status=status,
                 weeks=t["weeks"], response=r)


def _failed_conservative(ctx: Context) -> None:
    failed = [t for t in ctx.all("adequate_trial") if t["response"] in param("failed_trial_responses")]
    weeks = sum(t["weeks"] for t in failed)
    names = sorted(t["treatment"] for t in failed)
    ctx.because(f"adequate first-line trials without resolution: {len(names)} ({', '.join(names) or 'none'}), "
                f"{_weeks(weeks)} in total")
    ctx.conclude("failed_conservative", weeks_total=weeks, modalities=len(names), treatments=names)


def _persistent(ctx: Context) -> None:
    pain, t = ctx.fact("pain"), ctx.fact("trial")
    ctx.because(f"pain {_weeks(pain['duration_weeks'])} ≥ {param('persistent_pain_weeks')} despite "
                f"{t['treatment']} for {_weeks(t['weeks'])} (response {t['response']})")
    ctx.conclude("persistent_pain", duration_weeks=pain["duration_weeks"])


def _recalcitrant(ctx: Context) -> None:
    f = ctx.fact("failed")
    ctx.because(f"persistent, with {_weeks(f['weeks_total'])} over {f['modalities']} failed adequate first-line "
                f"trials (recalcitrant from {param('recalcitrant_trial_weeks')} weeks or "
                f"{param('recalcitrant_modalities')} modalities)")
    ctx.conclude("recalcitrant_pain", weeks_total=f["weeks_total"], modalities=f["modalities"])


def _opioid_med(ctx: Context) -> None:
    m = ctx.fact("med")
    kind = "a partial opioid agonist" if m["drug_class"] == "opioid_partial_agonist" else "an opioid agonist"
    ctx.because(f"medication '{m['name']}' contains {', '.join(m['matched'])}: {kind}")
    ctx.conclude("opioid_exposure", key=m["key"], agent=m["name"], source="medication", drug_class=m["drug_class"])


def _opioid_oud(ctx: Context) -> None:
    ctx.because("opioid use disorder recorded (opioid dependence, including methadone or buprenorphine maintenance)")
    ctx.conclude("opioid_exposure", key="opioid_use_disorder", agent="opioid use disorder", source="comorbidity",
                 drug_class="opioid_dependence")


def _unrecognised_med(ctx: Context) -> None:
    m = ctx.fact("med")
    ctx.conclude("unverified_medication", key=m["key"], name=m["name"])
    ctx.unknown(f"medication:{m['key']}", f"medication '{m['name']}' is not in the drug vocabulary: it was not "
                "checked for opioid content; confirm it is not an opioid before naltrexone", ["low_dose_naltrexone"])


DERIVED = [
    Rule("BMI-DERIVE", "Derive BMI (kg/m², one decimal) from weight and height in adults.",
         when={"body": fact("body"), "patient": fact("patient", age=ge(param("bmi_min_age")))},
         action=_bmi, concludes=("bmi",)),
    Rule("BMI-UNKNOWN", "Say that BMI is unknown when weight or height is missing.",
         when={"patient": fact("patient", body_measures="missing", age=ge(param("bmi_min_age")))},
         action=_bmi_missing),
    Rule("BMI-CHILD", "Say that adult BMI cut-offs are not applied to children.",
         when={"patient": fact("patient", age=lt(param("bmi_min_age")))},
         action=_bmi_child),
    Rule("DN4-SCORE", "Score the DN4 neuropathic screen: one point per item present (0-10).",
         when={"pain": fact("pain")}, action=_dn4, concludes=("dn4",),
         citations=("bouhassira-2005",)),
    Rule("DN4-PHENOTYPE", "A DN4 score at or above the cutoff gives the neuropathic phenotype (screen, not diagnosis).",
         when={"dn4": fact("dn4", score=ge(param("dn4_neuropathic_cutoff")))}, action=_neuropathic,
         concludes=("neuropathic_phenotype",),
         citations=DN4_CITES),
    Rule("TRIAL-ADEQUATE", "A first-line modality tried long enough is an adequate conservative trial.",
         when={"trial": fact("treatment", line="first_line", weeks=ge(param("adequate_trial_weeks")))},
         action=_adequate_trial, concludes=("adequate_trial",)),
    Rule("TRIAL-STATUS", "Classify each first-line modality already tried: helped, partial, short, no benefit, worsened, not tolerated.",
         when={"trial": fact("treatment", line="first_line")}, action=_trial_status, concludes=("trial_status",)),
    Rule("CONSERVATIVE-FAILED", "Add up the adequate first-line trials that did not resolve the pain.",
         when={"pain": fact("pain")}, action=_failed_conservative, reads_all=("adequate_trial",),
         concludes=("failed_conservative",)),
    Rule("PERSISTENT", "Pain beyond the persistence threshold despite an adequate, unsuccessful conservative trial is persistent.",
         when={"pain": fact("pain", duration_weeks=ge(param("persistent_pain_weeks"))),
               "trial": fact("adequate_trial", response=one_of(param("failed_trial_responses")))},
         action=_persistent, concludes=("persistent_pain",)),
    Rule("RECALCITRANT-WEEKS", "Persistent pain after enough weeks of failed adequate first-line trials is recalcitrant.",
         when={"persistent": fact("persistent_pain"),
               "failed": fact("failed_conservative", weeks_total=ge(param("recalcitrant_trial_weeks")))},
         action=_recalcitrant, concludes=("recalcitrant_pain",)),
    Rule("RECALCITRANT-MODALITIES", "Persistent pain after enough different failed adequate modalities is recalcitrant.",
         when={"persistent": fact("persistent_pain"),
               "failed": fact("failed_conservative", modalities=ge(param("recalcitrant_modalities")))},
         action=_recalcitrant, concludes=("recalcitrant_pain",)),
    Rule("OPIOID-MEDICATION", "Any opioid agonist or partial agonist among the medications is opioid exposure.",
         when={"med": fact("medication", drug_class=one_of(*OPIOID_CLASSES))}, action=_opioid_med,
         concludes=("opioid_exposure",), citations=("naltrexone-label",)),
    Rule("OPIOID-USE-DISORDER", "Opioid use disorder (dependence, maintenance therapy) is opioid exposure.",
         when={"oud": fact("comorbidity", code="opioid_use_disorder")}, action=_opioid_oud,
         concludes=("opioid_exposure",), citations=("naltrexone-label",)),
    Rule("MEDICATION-UNRECOGNISED", "Say which medications could not be checked for opioid content.",
         citations=("naltrexone-label",),
         when={"med": fact("medication", drug_class="unrecognised")}, action=_unrecognised_med,
         concludes=("unverified_medication",)),
]


# ------------------------------------------------------------------ safety screen


def _urgent(ctx: Context) -> None:
    flags = [RED_FLAG_TEXT[f["code"]] for f in ctx.all("red_flag")]
    ctx.recommend("urgent_referral", [f"red flag: {_flag(ctx)}"], details={"red_flags": flags})


def _suppress_escalation(ctx: Context) -> None:
    for code in ESCALATIONS:
        ctx.withhold(code, "suppressed", f"red flag ({_flag(ctx)}): urgent assessment first; routine escalation is stopped")


SAFETY = [
    Rule("RF-URGENT", "Any red flag: urgent referral.", when={"flag": fact("red_flag")}, action=_urgent,
         citations=("project-pathway",),
         reads_all=("red_flag",),
         emits=("urgent_referral",)),
    Rule("RF-SUPPRESS-ESCALATION", "Any red flag stops every escalation (adjunct, interventional, surgical).",
         citations=("project-pathway",),
         when={"flag": fact("red_flag")}, action=_suppress_escalation, emits=ESCALATIONS),
]


# ------------------------------------------------------------------ first-line care

CONTINUE = ("helped", "partial", "short")
#: Worn devices, where a trial without benefit may be a matter of fit or placement.
WORN = ("footwear_modification", "metatarsal_pad", "insoles")
STOP = ("no_benefit", "worsened", "not_tolerated")


def _first_line(rid: str, code: str, purpose: str, indication: dict[str, Pattern],
                why: Callable[[Context], list[str]], protective: bool,
                evidence_citations: tuple[str, ...] = (), not_when: dict[str, Pattern] | None = None) -> list[Rule]:
    """The rules of one first-line modality: offer, continue, not repeated, and (unless it is a
    protective measure) their suppression by a red flag."""
    tried = {"tried": fact("trial_status", treatment=code)}
    no_flag = {} if protective else {"flag": fact("red_flag")}

    def offer(ctx: Context) -> None:
        details: dict[str, Any] = {}
        if protective:
            flags = [RED_FLAG_TEXT[f["code"]] for f in ctx.all("red_flag")]
            if flags:
                details["red_flag_note"] = (f"red flag ({', '.join(flags)}): as a protective measure only, "
                                            "until the urgent assessment")
        ctx.recommend(code, why(ctx), details=details)

    def keep(ctx: Context) -> None:
        t = ctx.fact("tried")
        advice = {"helped": "it resolved the pain: continue",
                  "partial": "partial response: continue and optimise",
                  "short": f"shorter than an adequate trial ({param('adequate_trial_weeks')} weeks): continue"}
        ctx.recommend(code, [f"tried {_weeks(t['weeks'])}, response {t['response']}; {advice[t['status']]}"],
                      details={"status": "continue", "advice": advice[t["status"]]})

    def stop(ctx: Context) -> None:
        t = ctx.fact("tried")
        fit = " (check fit or placement)" if code in WORN else ""
        why_not = {"no_benefit": f"no benefit from an adequate trial, so not simply repeated{fit}; "
                                 "counts toward failed conservative care",
                   "worsened": "pain worsened with it: not repeated",
                   "not_tolerated": "not tolerated: not repeated"}[t["status"]]
        ctx.withhold(code, "not_indicated", f"tried {_weeks(t['weeks'])}, response {t['response']}; {why_not}")

    def suppressed(ctx: Context) -> None:
        ctx.withhold(code, "suppressed", f"red flag ({_flag(ctx)}): not started until the urgent assessment")

    def suppressed_continue(ctx: Context) -> None:
        ctx.withhold(code, "suppressed", f"red flag ({_flag(ctx)}): review after the urgent assessment before continuing")

    spec_evidence = INTERVENTIONS[code].evidence
    common = dict(emits=(code,), citations=evidence_citations or tuple(spec_evidence.citations if spec_evidence else ()))
    rules = [
        Rule(rid, purpose, when=indication, unless={**tried, **no_flag}, action=offer,
             reads_all=("red_flag",) if protective else (), **common),
        Rule(f"{rid}-CONTINUE", f"{code}: already tried with some benefit or not yet long enough: continue.",
             when={"tried": fact("trial_status", treatment=code, status=one_of(*CONTINUE))},
             unless={**no_flag, **(not_when or {})}, action=keep, **common),
        Rule(f"{rid}-TRIED", f"{code}: tried adequately without benefit, made worse or not tolerated: not simply repeated.",
             when={"tried": fact("trial_status", treatment=code, status=one_of(*STOP))}, action=stop, **common),
    ]
    if not protective:
        rules += [
            Rule(f"{rid}-RF", f"{code}: not started while a red flag awaits assessment.",
                 when={**indication, "flag": fact("red_flag")}, unless=tried, action=suppressed, **common),
            Rule(f"{rid}-CONTINUE-RF", f"{code}: under way, reviewed after the red flag is assessed.",
                 when={"tried": fact("trial_status", treatment=code, status=one_of(*CONTINUE)), "flag": fact("red_flag")},
                 unless=dict(not_when or {}), action=suppressed_continue, **common),
        ]
    return rules


FIRST_LINE_RULES = [
    *_first_line("FL-FOOTWEAR", "footwear_modification", "Footwear modification for everyone with forefoot pain.",
                 {"pain": fact("pain")}, lambda c: ["forefoot pain: first-line conservative care"], protective=True),
    *_first_line("FL-PAD", "metatarsal_pad", "A metatarsal pad, placed just proximal to the painful heads.",
                 {"pain": fact("pain")}, lambda c: ["forefoot pain: first-line conservative care"], protective=False),
    *_first_line("FL-INSOLES", "insoles", "Simple insoles for forefoot pain in rheumatoid arthritis.",
                 {"ra": fact("comorbidity", code="rheumatoid_arthritis")},
                 lambda c: ["rheumatoid arthritis: simple insoles have trial evidence for forefoot pain"], protective=False),
    *_first_line("FL-STRETCH", "calf_stretching", "Calf stretching when gastrocnemius tightness is found.",
                 {"tight": fact("exam", code="gastrocnemius_tightness")},
                 lambda c: ["gastrocnemius tightness on examination"], protective=False),
    *_first_line("FL-ACTIVITY", "activity_modification", "Less high-impact forefoot load for everyone with forefoot pain.",
                 {"pain": fact("pain")}, lambda c: ["forefoot pain: first-line conservative care"], protective=True),
    *_first_line("FL-WEIGHT", "weight_management", "Weight management when BMI is at or above the overweight threshold (not in pregnancy).",
                 {"bmi": fact("bmi", value=ge(param("bmi_overweight"))), "patient": fact("patient", pregnant=ne("yes"))},
                 lambda c: [f"BMI {c.fact('bmi')['value']:.1f} ≥ {param('bmi_overweight'):.1f}"], protective=False,
                 not_when={"pregnant": fact("patient", pregnant="yes")}),
    *_first_line("FL-CALLUS", "callus_debridement", "Callus debridement when plantar callus is found.",
                 {"callus": fact("exam", code="plantar_callus")},
                 lambda c: ["plantar callus on examination"], protective=False),
]


def _weight_pregnant(ctx: Context) -> None:
    ctx.withhold("weight_management", "not_indicated", f"pregnant: BMI {ctx.fact('bmi')['value']:.1f} is not "
                 "interpreted and weight-loss advice is not given in pregnancy; revisit after delivery")


def _weight_pregnant_continue(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.withhold("weight_management", "not_indicated", f"pregnant: weight management (tried {_weeks(t['weeks'])}) is "
                 "paused; weight-loss advice is not given in pregnancy; revisit after delivery")


FIRST_LINE_RULES += [
    Rule("FL-WEIGHT-PREGNANT", "No weight-loss advice in pregnancy, whatever the BMI.",
         when={"bmi": fact("bmi", value=ge(param("bmi_overweight"))), "patient": fact("patient", pregnant="yes")},
         action=_weight_pregnant, emits=("weight_management",),
         citations=("who-bmi-2000", "project-pathway")),
    Rule("FL-WEIGHT-PREGNANT-CONTINUE", "Weight management under way is paused in pregnancy.",
         when={"tried": fact("trial_status", treatment="weight_management", status=one_of(*CONTINUE)),
               "patient": fact("patient", pregnant="yes")},
         action=_weight_pregnant_continue, emits=("weight_management",), citations=("project-pathway",)),
]


# ------------------------------------------------------------------ escalation: LDN

LDN = "low_dose_naltrexone"


def _ldn_ci_opioid(ctx: Context) -> None:
    e = ctx.fact("exposure")
    if e["source"] == "medication":
        reason = (f"opioid exposure: {e['agent']} is an opioid; naltrexone blocks opioid analgesia and can precipitate "
                  "withdrawal (the label requires 7-10 opioid-free days before starting)")
    else:
        reason = ("opioid use disorder (opioid dependence, including methadone or buprenorphine maintenance): "
                  "naltrexone can precipitate withdrawal")
    ctx.withhold(LDN, "contraindicated", reason)
    ctx.conclude("ldn_contraindication", key=e["key"], reason=reason)


def _ldn_ci_liver(ctx: Context) -> None:
    code = ctx.fact("liver")["code"]
    text = {"acute_hepatitis": "acute hepatitis", "liver_failure": "liver failure"}[code]
    reason = f"{text}: naltrexone hepatotoxicity (contraindicated on older labels; a hard stop in this rule set)"
    ctx.withhold(LDN, "contraindicated", reason)
    ctx.conclude("ldn_contraindication", key=code, reason=reason)


def _caution(key: str, text: str) -> Callable[[Context], None]:
    def act(ctx: Context) -> None:
        ctx.because(text)
        ctx.conclude("ldn_caution", key=key, text=text)
    return act


def _ldn_offer(ctx: Context) -> None:
    d = ctx.fact("dn4")
    persistent = ctx.fact("persistent")
    cautions = [c["text"] for c in ctx.all("ldn_caution")]
    unverified = [m["name"] for m in ctx.all("unverified_medication")]
    details: dict[str, Any] = {
        "cautions": cautions,
        "follow_up": (f"review at {param('ldn_follow_up_weeks')} weeks (titration, side effects); judge benefit at about "
                      f"{param('ldn_benefit_review_weeks')} weeks (expert opinion)"),
    }
    if unverified:
        details["verify_not_opioid"] = unverified
    current = ctx.all("ldn_in_progress")
    if current:
        t = current[0]
        details["in_progress"] = (f"already taking LDN for {_weeks(t['weeks'])} (response {t['response']}): continue the "
                                  f"titration and judge benefit at about {param('ldn_benefit_review_weeks')} weeks")
    rationale = [
        f"persistent pain: {_weeks(persistent['duration_weeks'])} despite an adequate conservative trial",
        f"DN4 {d['score']}/{param('dn4_items_total')} ≥ {param('dn4_neuropathic_cutoff')}: neuropathic phenotype (screen)",
        "no opioid exposure, acute hepatitis or liver failure recorded",
        "evidence is indirect (fibromyalgia, neuropathic corneal pain): no study of LDN in metatarsalgia",
    ]
    ctx.recommend(LDN, rationale, details=details)


def _ldn_in_progress(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.conclude("ldn_in_progress", weeks=t["weeks"], response=t["response"])


def _ldn_child(ctx: Context) -> None:
    age = ctx.fact("patient")["age"]
    ctx.withhold(LDN, "not_indicated", f"age {age}: naltrexone safety and efficacy are not established under "
                 f"{param('ldn_min_age')}; this rule set does not offer LDN to children")
    ctx.conclude("ldn_excluded", key="age", reason="under the minimum age")


def _pregnancy_unknown(ctx: Context) -> None:
    ctx.unknown("pregnancy", "pregnancy status is not recorded for a patient who could be pregnant: confirm it "
                "before naltrexone (a caution in pregnancy)", ["low_dose_naltrexone"])


def _ldn_not_indicated(ctx: Context) -> None:
    d = ctx.fact("dn4")
    ctx.withhold(LDN, "not_indicated", f"DN4 {d['score']}/{param('dn4_items_total')} is below the screening cutoff of "
                 f"{param('dn4_neuropathic_cutoff')}: no neuropathic phenotype")


def _missing_for_persistence(ctx: Context) -> str:
    pain = ctx.fact("pain")
    trials = ctx.all("adequate_trial")
    failed = [t for t in trials if t["response"] in param("failed_trial_responses")]
    missing = []
    if pain["duration_weeks"] < param("persistent_pain_weeks"):
        missing.append(f"pain {_weeks(pain['duration_weeks'])}")
    if not trials:
        missing.append(f"no first-line trial of at least {param('adequate_trial_weeks')} weeks yet")
    elif not failed:
        missing.append("the adequate first-line trials did not fail (" +
                       ", ".join(f"{t['treatment']}: {t['response']}" for t in trials) + ")")
    return "; ".join(missing)


def _ldn_deferred(ctx: Context) -> None:
    ctx.withhold(LDN, "deferred", f"{_missing_for_persistence(ctx)}; {_adjunct_entry()}")


def _escalation_tried(ctx: Context) -> None:
    t = ctx.fact("tried")
    ctx.withhold(t["treatment"], "not_indicated",
                 f"already tried {_weeks(t['weeks'])}, response {t['response']}: not repeated")
    ctx.conclude("escalation_tried", key=t["treatment"], treatment=t["treatment"])


def _tried_rules(prefix: str, code: str, judge_weeks: float, judge_param: str) -> list[Rule]:
    """An escalation already tried and made worse or not tolerated, or tried long enough to judge
    without benefit, is not offered again."""
    common = dict(action=_escalation_tried, emits=(code,), concludes=("escalation_tried",), citations=("project-pathway",))
    return [
        Rule(f"{prefix}-TRIED", f"{code} made pain worse or was not tolerated: not offered again.",
             when={"tried": fact("treatment", treatment=code, response=one_of("worsened", "not_tolerated"))}, **common),
        Rule(f"{prefix}-TRIED-NO-BENEFIT", f"{code} tried long enough to judge, without benefit: not offered again.",
             when={"tried": fact("treatment", treatment=code, response="none", weeks=ge(judge_weeks))}, **common),
    ]


LDN_RULES = [
    Rule("LDN-CI-OPIOID", "Naltrexone is contraindicated with any opioid exposure (blocks analgesia, precipitates withdrawal).",
         when={"exposure": fact("opioid_exposure")}, action=_ldn_ci_opioid, emits=(LDN,),
         concludes=("ldn_contraindication",), citations=("naltrexone-label",)),
    Rule("LDN-CI-LIVER", "Naltrexone is not used in acute hepatitis or liver failure (hard stop in this rule set).",
         when={"liver": fact("comorbidity", code=one_of("acute_hepatitis", "liver_failure"))}, action=_ldn_ci_liver,
         emits=(LDN,), concludes=("ldn_contraindication",), citations=("naltrexone-label",)),
    Rule("LDN-CAUTION-HEPATIC", "Hepatic impairment: LDN with caution (hepatotoxicity warning; check liver tests).",
         when={"hepatic": fact("comorbidity", code="hepatic_impairment")},
         action=_caution("hepatic_impairment", "hepatic impairment: hepatotoxicity warning on the naltrexone label; check liver function before and during treatment"),
         concludes=("ldn_caution",), citations=("naltrexone-label",)),
    Rule("LDN-CAUTION-PREGNANT", "Pregnancy: LDN only after weighing risks (limited safety data).",
         when={"patient": fact("patient", pregnant="yes")},
         action=_caution("pregnant", "pregnancy: limited safety data for naltrexone; weigh benefit and risk with obstetric advice"),
         concludes=("ldn_caution",), citations=("naltrexone-label",)),
    Rule("LDN-CAUTION-BREASTFEEDING", "Breastfeeding: LDN only after weighing risks (passes into milk).",
         when={"patient": fact("patient", breastfeeding="yes")},
         action=_caution("breastfeeding", "breastfeeding: naltrexone passes into breast milk; weigh benefit and risk"),
         concludes=("ldn_caution",), citations=("naltrexone-label",)),
    Rule("LDN-OFFER", "Persistent pain with a neuropathic phenotype, no red flag and no contraindication: LDN may be considered as an adjunct.",
         when={"persistent": fact("persistent_pain"), "neuro": fact("neuropathic_phenotype"), "dn4": fact("dn4")},
         unless={"flag": fact("red_flag"), "blocked": fact("ldn_contraindication"),
                 "tried": fact("escalation_tried", treatment=LDN), "excluded": fact("ldn_excluded")},
         action=_ldn_offer, emits=(LDN,), reads_all=("ldn_caution", "unverified_medication", "ldn_in_progress"),
         citations=("younger-2013", "dieckmann-2017")),
    Rule("LDN-IN-PROGRESS", "LDN already taken and not stopped: a trial in progress.",
         when={"tried": fact("treatment", treatment=LDN, response=one_of("none", "partial", "resolved"))},
         action=_ldn_in_progress, concludes=("ldn_in_progress",),
         citations=("dieckmann-2017",)),
    Rule("LDN-CHILD", "Under the minimum age LDN is not offered (no safety or efficacy data in children).",
         when={"patient": fact("patient", age=lt(param("ldn_min_age")))}, action=_ldn_child, emits=(LDN,),
         concludes=("ldn_excluded",), citations=("naltrexone-label",)),
    Rule("LDN-PREGNANCY-UNKNOWN", "LDN would be considered but pregnancy status is not recorded for a patient who could be pregnant.",
         when={"persistent": fact("persistent_pain"), "neuro": fact("neuropathic_phenotype"),
               "patient": fact("patient", pregnant="unknown", sex=one_of("female", "other", "unknown"),
                               age=between(param("childbearing_age_min"), param("childbearing_age_max")))},
         action=_pregnancy_unknown),
    Rule("LDN-NOT-INDICATED", "Persistent pain without a neuropathic phenotype: LDN is not indicated.",
         when={"persistent": fact("persistent_pain"), "dn4": fact("dn4", score=lt(param("dn4_neuropathic_cutoff")))},
         action=_ldn_not_indicated, emits=(LDN,),
         citations=DN4_CITES),
    Rule("LDN-DEFERRED", "Before pain is persistent, adjuncts are deferred, saying what is missing.",
         when={"pain": fact("pain")}, unless={"persistent": fact("persistent_pain")}, action=_ldn_deferred,
         emits=(LDN,), reads_all=("adequate_trial",)),
]

LDN_RULES += _tried_rules("LDN", LDN, param("ldn_benefit_review_weeks"), "ldn_benefit_review_weeks")


# ------------------------------------------------------------------ escalation: PRF

PRF = "pulsed_radiofrequency"


def _prf_offer(ctx: Context) -> None:
    r = ctx.fact("recalcitrant")
    ctx.recommend(PRF, [f"recalcitrant pain: {_weeks(r['weeks_total'])} over {r['modalities']} failed adequate "
                        "first-line trials", "no red flag recorded",
                        "evidence is a single case report: discuss its uncertainty with the patient"])


def _prf_deferred(ctx: Context) -> None:
    f = ctx.fact("failed")
    ctx.withhold(PRF, "deferred", f"pain is not recalcitrant: {_weeks(f['weeks_total'])} over {f['modalities']} failed "
                 f"adequate first-line trials; interventional options are considered from "
                 f"{param('recalcitrant_trial_weeks')} weeks or {param('recalcitrant_modalities')} modalities of failed "
                 f"conservative care, with persistent pain")


PRF_RULES = [
    Rule("PRF-OFFER", "Recalcitrant pain without a red flag: ultrasound-guided pulsed radiofrequency may be considered.",
         when={"recalcitrant": fact("recalcitrant_pain")},
         unless={"flag": fact("red_flag"), "tried": fact("escalation_tried", treatment=PRF)},
         action=_prf_offer, emits=(PRF,), citations=("prf-2018",)),
    Rule("PRF-DEFERRED", "Before pain is recalcitrant, interventional options are deferred, saying how far it is.",
         when={"failed": fact("failed_conservative")}, unless={"recalcitrant": fact("recalcitrant_pain")},
         action=_prf_deferred, emits=(PRF,)),
    *_tried_rules("PRF", PRF, param("adequate_trial_weeks"), "adequate_trial_weeks"),
]


# ------------------------------------------------------------------ surgical referral

SURGERY = {
    # code: (rule prefix, exam finding, what it treats)
    "gastrocnemius_recession": ("SURG-GASTROC", "gastrocnemius_tightness", "gastrocnemius tightness"),
    "plantar_plate_repair": ("SURG-PLATE", "plantar_plate_instability", "plantar plate instability"),
    "tendon_transfer": ("SURG-TENDON", "flexible_toe_deformity", "flexible lesser-toe deformity"),
}
STRETCH_FAILED = ("no_benefit", "worsened")


def _surgery_rules(code: str) -> list[Rule]:
    prefix, finding, text = SURGERY[code]
    extra_when: dict[str, Pattern] = {}
    if code == "gastrocnemius_recession":
        extra_when = {"stretch": fact("trial_status", treatment="calf_stretching", status=one_of(*STRETCH_FAILED))}

    def offer(ctx: Context) -> None:
        r = ctx.fact("recalcitrant")
        why = [f"recalcitrant pain: {_weeks(r['weeks_total'])} over {r['modalities']} failed adequate first-line trials",
               f"{text} on examination"]
        if extra_when:
            s = ctx.fact("stretch")
            why.append(f"calf stretching tried {_weeks(s['weeks'])} without benefit (response {s['response']})")
        ctx.recommend(code, [*why, "no red flag recorded"])

    def absent(ctx: Context) -> None:
        ctx.withhold(code, "not_indicated", f"no {text} recorded on examination")

    def deferred(ctx: Context) -> None:
        ctx.withhold(code, "deferred", f"{text} is present but pain is not recalcitrant; surgical referral is "
                     "considered only after failed conservative care")

    common = dict(emits=(code,), citations=("besse-2017",))
    rules = [
        Rule(prefix, f"Recalcitrant pain with {text}, no red flag: refer to consider {code}.",
             when={"recalcitrant": fact("recalcitrant_pain"), "exam": fact("exam", code=finding), **extra_when},
             unless={"flag": fact("red_flag")}, action=offer, **common),
        Rule(f"{prefix}-NO-FINDING", f"No {text} on examination: {code} is not indicated.",
             when={"pain": fact("pain")}, unless={"exam": fact("exam", code=finding)}, action=absent, **common),
        Rule(f"{prefix}-DEFERRED", f"{text} present but pain not recalcitrant: {code} is deferred.",
             when={"exam": fact("exam", code=finding)}, unless={"recalcitrant": fact("recalcitrant_pain")},
             action=deferred, **common),
    ]
    if code == "gastrocnemius_recession":
        def stretch_first(ctx: Context) -> None:
            tried = [t for t in ctx.all("trial_status") if t["treatment"] == "calf_stretching"]
            so_far = {"helped": "it helped: keep stretching",
                      "partial": "partial response: keep stretching",
                      "short": "tried {w} so far: continue to an adequate trial",
                      "not_tolerated": "not tolerated after {w}: discuss alternatives; referral is not automatic",
                      }
            now = (so_far[tried[0]["status"]].format(w=_weeks(tried[0]["weeks"])) if tried
                   else "not tried yet")
            ctx.withhold(code, "deferred", "referral needs an adequate trial of calf stretching (at least "
                         f"{_weeks(param('adequate_trial_weeks'))}) without benefit; calf stretching: {now}")
        rules.append(Rule(f"{prefix}-STRETCH-FIRST", "Gastrocnemius tightness: an adequate failed trial of calf stretching comes first.",
                          when={"exam": fact("exam", code=finding)}, unless=extra_when, action=stretch_first,
                          reads_all=("trial_status",),
                          **common))
    return rules


SURGERY_RULES = [r for code in SURGERY for r in _surgery_rules(code)]

RULES: tuple[Rule, ...] = tuple(DERIVED + SAFETY + FIRST_LINE_RULES + LDN_RULES + PRF_RULES + SURGERY_RULES)
