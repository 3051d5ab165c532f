"""What may change for a forefoot pain patient: the facts the "what would change this decision"
search (engine.kernel.changes) may change, and how a change is said. Clinical knowledge, declared
once; the engine decides, on each changed patient, what is recommended.

Changeable, each a kind of change:

* `wait` — time passes: the pain lasts longer, first-line trials under way go on with the response
  they have, a procedure is longer ago, a stopped medication has been stopped for longer. The
  waits tried are the ones at which a time threshold is crossed (persistent and recalcitrant pain,
  an adequate trial, the effect of pulsed radiofrequency judged).
* `trial` — a first-line modality recommended now and not yet tried is started now and brings no
  benefit (response none) over an adequate trial, or over the weeks that take the pain to a
  threshold.
* `end` — a first-line trial under way with a partial response ends without benefit, at an
  adequate length (one without benefit so far ends so by waiting).
* `dn4` — the DN4 (re)assessed reaches its cutoff ("the DN4 reaches 4/10"): the items added are
  not named, because the change is the score, not a symptom.
* `stop` — an opioid is stopped (or, stopped recently, stays stopped) for the opioid-free days; a
  drug that suggests opioid use (a naloxone kit, a drug for opioid-induced constipation) is
  stopped once current opioid use is checked.
* `confirm` — a medication the rule set does not recognise is confirmed not to be an opioid
  (it then no longer counts for the opioid check: the changed patient lists it no more).
* `finding` — an examination finding that a surgical referral treats is found (never removed).
* `retrieve` — a part of the record that could not be retrieved is retrieved, holding nothing new.
* `pregnancy` — the pregnancy status is recorded (not pregnant).

Never changed, because they cannot be: age, sex, red flags, conditions (liver failure, opioid use
disorder...), an escalation's or a procedure's outcome, full-dose naltrexone (the prescriber's
decision), a finding that is present. Thresholds come from the rule set's parameters (a site's
values included).

Time is counted in days from now (`wait`); every step happens at a fixed time from now, so a set
of steps gives the same patient in any order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

from engine.api import ChangeKind, ChangeSpec, ChangeState, RuleSet, Step

from .medications import OPIOID_CLASSES, classify
from .pathway.common import days, weeks
from .vocabulary import ADJUNCT, DN4_EXAM_ITEMS, DN4_ITEMS, FIRST_LINE, PROCEDURES

#: Searched for: the escalations.
CATEGORIES = ("adjunct", "interventional", "surgical_referral")
#: First-line modalities a trial may be started of, in the order they are proposed.
TRIALS = ("metatarsal_pad", "insoles", "calf_stretching", "footwear_modification", "activity_modification")
#: Examination findings that a surgical referral treats, and how the text names them.
FINDINGS = {
    "plantar_plate_instability": "plantar plate instability",
    "flexible_toe_deformity": "a flexible lesser-toe deformity",
    "gastrocnemius_tightness": "gastrocnemius tightness",
}
#: Parts of the record, retrieved (holding nothing new), in words.
SECTIONS = {
    "medications": "the medication list is retrieved (no opioid in it)",
    "comorbidities": "the conditions are retrieved (no opioid dependence or liver disease)",
    "red_flags": "the red flags are retrieved (none)",
    "prior_treatments": "the treatments already tried are retrieved (none recorded)",
    "exam_findings": "the examination findings are retrieved (nothing new)",
    "pain.neuropathic_features": "the DN4 record is retrieved",
}
#: Drug classes that suggest opioids are in use (stopped once current opioid use is checked).
POSSIBLE_OPIOID = ("opioid_antagonist", "opioid_induced_constipation")
#: The longest wait proposed: two years.
HORIZON_DAYS = 104 * 7
#: A medication name is cut to this many characters in the text (the edits hold it whole).
NAME_CHARS = 60


def _p(ruleset: RuleSet, name: str) -> Any:
    return ruleset.parameters[name].value


def _num(x: float) -> float | int:
    """A number for the changed patient: two decimals, an integer when it is whole."""
    r = round(float(x), 2)
    return int(r) if r == int(r) else r


def _ceil_days(weeks_: float) -> int:
    return max(0, math.ceil(round(weeks_ * 7, 6)))


# ------------------------------------------------------------------ reading the patient


def _treatments(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(p.get("prior_treatments") or [])


def _tried(p: Mapping[str, Any]) -> set[str]:
    return {t["treatment"] for t in _treatments(p)}


def _under_way(ruleset: RuleSet, t: Mapping[str, Any]) -> bool:
    """A trial that goes on with time (its weeks grow): first-line or LDN, helping or not yet
    judged; a procedure's weeks since it was done grow too."""
    code, r, w = t["treatment"], t["response"], t["weeks"]
    if code in PROCEDURES:
        return True
    if r in ("partial", "resolved"):
        return True
    if r != "none":
        return False
    if code in FIRST_LINE:
        return w < _p(ruleset, "adequate_trial_weeks")
    if code in ADJUNCT:
        return w < _p(ruleset, "ldn_benefit_review_weeks")
    return False


def _med(m: Any) -> dict[str, Any]:
    """A medication entry as a dict (a plain name is `{"name": name}`), a copy."""
    return {"name": m} if isinstance(m, str) else dict(m)


def _medications(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_med(m) for m in p.get("medications") or []]


def _subject(m: Mapping[str, Any]) -> str:
    """How a step names a medication: its name as written, else its RxNorm code."""
    return str(m.get("name") or f"RxNorm {m.get('rxnorm')}")


def _class(m: Mapping[str, Any]) -> str:
    return classify(m.get("name"), m.get("rxnorm")).drug_class


def _stopped(m: Mapping[str, Any]) -> bool:
    return m.get("status") == "stopped"


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _dn4(ruleset: RuleSet, pain: Mapping[str, Any]) -> tuple[list[str], list[str], int, int, bool]:
    """(items present, items that may be added, cutoff, total, interview only)."""
    interview = pain.get("dn4_examined") is False
    pool = [i for i in DN4_ITEMS if not (interview and i in DN4_EXAM_ITEMS)]
    items = [i for i in pool if i in (pain.get("neuropathic_features") or [])]
    if interview:
        return (
            items,
            [i for i in pool if i not in items],
            _p(ruleset, "dn4_interview_cutoff"),
            _p(ruleset, "dn4_interview_items_total"),
            True,
        )
    return (
        items,
        [i for i in pool if i not in items],
        _p(ruleset, "dn4_neuropathic_cutoff"),
        _p(ruleset, "dn4_items_total"),
        False,
    )


# ------------------------------------------------------------------ when each step happens (days from now)


def _at(ruleset: RuleSet, original: Mapping[str, Any], s: Step) -> int:
    if s.kind == "wait":
        return int(s.amount)
    if s.kind == "trial":
        return _ceil_days(s.amount)
    if s.kind == "end":
        t = next(t for t in _treatments(original) if t["treatment"] == s.subject)
        return _ceil_days(_p(ruleset, "adequate_trial_weeks") - t["weeks"])
    if s.kind == "stop":
        free = _p(ruleset, "opioid_free_days")
        return max(
            [
                max(0, math.ceil(free - (m.get("stopped_days_ago") or 0))) if _stopped(m) else math.ceil(free)
                for m in _medications(original)
                if _subject(m) == s.subject and _class(m) in OPIOID_CLASSES
            ],
            default=0,
        )
    return 0


# ------------------------------------------------------------------ the changed patient


def apply(ruleset: RuleSet, original: Mapping[str, Any], steps: tuple[Step, ...]) -> tuple[dict[str, Any], float]:
    """The patient after `steps` (a set: any order gives the same patient), and the days it takes."""
    p: dict[str, Any] = copy.deepcopy(dict(original))
    clock = max((_at(ruleset, original, s) for s in steps), default=0)
    by_kind: dict[str, dict[str, Step]] = {}
    for s in steps:
        by_kind.setdefault(s.kind, {})[s.subject] = s
    later = clock / 7
    pain = p["pain"]
    pain["duration_weeks"] = _num(pain["duration_weeks"] + later)
    ends = by_kind.get("end", {})
    treatments = []
    for t in _treatments(original):
        t = dict(t)
        if t["treatment"] in ends:
            t["weeks"] = _num(t["weeks"] + _at(ruleset, original, ends[t["treatment"]]) / 7)
            t["response"] = "none"
        elif clock and _under_way(ruleset, t):
            t["weeks"] = _num(t["weeks"] + later)
        treatments.append(t)
    for code, s in sorted(by_kind.get("trial", {}).items()):
        treatments.append({"treatment": code, "weeks": _num(s.amount), "response": "none"})
    if treatments or "prior_treatments" in p:
        p["prior_treatments"] = treatments
    if "medications" in p:
        stop, confirm = by_kind.get("stop", {}), by_kind.get("confirm", {})
        meds: list[Any] = []
        for m in p["medications"]:
            d = _med(m)
            subject = _subject(d)
            if subject in confirm and _class(d) == "unrecognised":
                continue
            if _stopped(d):
                d["stopped_days_ago"] = _num(d["stopped_days_ago"] + clock)
            elif subject in stop and _class(d) in (*OPIOID_CLASSES, *POSSIBLE_OPIOID):
                d["status"], d["stopped_days_ago"] = "stopped", _num(clock)
            meds.append(m if isinstance(m, str) and d == {"name": m} else d)
        p["medications"] = meds
    if "dn4" in by_kind:
        items, more, cutoff, _, _ = _dn4(ruleset, pain)
        now = set(pain.get("neuropathic_features") or []) | set(more[: max(0, cutoff - len(items))])
        pain["neuropathic_features"] = [i for i in DN4_ITEMS if i in now]
    for code in sorted(by_kind.get("finding", {})):
        p["exam_findings"] = [*(p.get("exam_findings") or []), code]
    if "retrieve" in by_kind:
        left = [s for s in p.get("not_retrieved") or [] if s not in by_kind["retrieve"]]
        if left:
            p["not_retrieved"] = left
        else:
            p.pop("not_retrieved", None)
    if "pregnancy" in by_kind:
        p["pregnant"] = False
    return p, clock


# ------------------------------------------------------------------ the steps each kind proposes


def _propose_wait(s: ChangeState) -> Iterable[Step]:
    r, o = s.ruleset, s.original
    d0 = o["pain"]["duration_weeks"]
    targets = [(_p(r, "persistent_pain_weeks") - d0), (_p(r, "recalcitrant_trial_weeks") - d0)]
    for t in _treatments(o):
        if not _under_way(r, t):
            continue
        if t["treatment"] in FIRST_LINE:
            targets += [_p(r, "adequate_trial_weeks") - t["weeks"], _p(r, "recalcitrant_trial_weeks") - t["weeks"]]
        elif t["treatment"] == "pulsed_radiofrequency":
            targets.append(_p(r, "prf_review_weeks") - t["weeks"])
    for n in sorted({_ceil_days(w) for w in targets if w > 0}):
        if s.wait < n <= HORIZON_DAYS:
            yield Step("wait", "", n)


def _propose_trial(s: ChangeState) -> Iterable[Step]:
    r = s.ruleset
    d0 = s.original["pain"]["duration_weeks"]
    adequate = _p(r, "adequate_trial_weeks")
    failing = sum(
        t["weeks"]
        for t in _treatments(s.original)
        if t["treatment"] in FIRST_LINE and t["weeks"] >= adequate and t["response"] in _p(r, "failed_trial_responses")
    )
    recalcitrant = _p(r, "recalcitrant_trial_weeks")
    lengths = sorted(
        {
            math.ceil(x * 10) / 10
            for x in (
                adequate,
                _p(r, "persistent_pain_weeks") - d0,
                recalcitrant - d0,
                recalcitrant - failing,
                recalcitrant,
            )
            if x >= adequate
        }
    )
    tried = _tried(s.patient)
    for code in TRIALS:
        if code not in tried and s.result.recommended(code) is not None:
            for n in lengths:
                if n * 7 <= HORIZON_DAYS:
                    yield Step("trial", code, n)


def _propose_end(s: ChangeState) -> Iterable[Step]:
    # a trial under way without benefit ends so by waiting (`wait`); one with a partial response
    # may be judged without benefit
    for t in sorted(_treatments(s.original), key=lambda t: t["treatment"]):
        if t["treatment"] in FIRST_LINE and t["response"] == "partial" and _under_way(s.ruleset, t):
            yield Step("end", t["treatment"])


def _propose_dn4(s: ChangeState) -> Iterable[Step]:
    items, more, cutoff, _, _ = _dn4(s.ruleset, s.original["pain"])
    if len(items) < cutoff <= len(items) + len(more):
        yield Step("dn4", "", cutoff)


def _propose_stop(s: ChangeState) -> Iterable[Step]:
    free = _p(s.ruleset, "opioid_free_days")
    out: list[str] = []
    for m in _medications(s.original):
        c = _class(m)
        if _stopped(m):
            if c in OPIOID_CLASSES and (m.get("stopped_days_ago") or 0) < free:
                out.append(_subject(m))
        elif c in (*OPIOID_CLASSES, *POSSIBLE_OPIOID):
            out.append(_subject(m))
    for name in sorted(set(out)):
        yield Step("stop", name)


def _propose_confirm(s: ChangeState) -> Iterable[Step]:
    free = _p(s.ruleset, "opioid_free_days")
    out = [
        _subject(m)
        for m in _medications(s.original)
        if _class(m) == "unrecognised" and (not _stopped(m) or (m.get("stopped_days_ago") or 0) < free)
    ]
    for name in sorted(set(out)):
        yield Step("confirm", name)


def _propose_finding(s: ChangeState) -> Iterable[Step]:
    present = set(s.original.get("exam_findings") or [])
    for code in FINDINGS:
        if code not in present:
            yield Step("finding", code)


def _propose_retrieve(s: ChangeState) -> Iterable[Step]:
    for section in sorted(s.original.get("not_retrieved") or []):
        if section in SECTIONS:
            yield Step("retrieve", section)


def _propose_pregnancy(s: ChangeState) -> Iterable[Step]:
    if s.original.get("pregnant") is None and s.original.get("sex", "unknown") != "male":
        yield Step("pregnancy")


TIME = ("pain.duration_weeks", "prior_treatments")
KINDS = (
    ChangeKind("wait", (*TIME, "medications"), _propose_wait, once=True),
    # one new trial and one trial ended at most: a longer trial does what two side by side would
    ChangeKind("trial", TIME, _propose_trial, once=True),
    ChangeKind("end", TIME, _propose_end, once=True),
    ChangeKind("stop", ("medications",), _propose_stop),
    ChangeKind("confirm", ("medications",), _propose_confirm),
    ChangeKind("dn4", ("pain.neuropathic_features", "pain.dn4_assessed", "pain.dn4_examined"), _propose_dn4),
    ChangeKind("finding", ("exam_findings",), _propose_finding),
    ChangeKind("retrieve", ("not_retrieved",), _propose_retrieve),
    ChangeKind("pregnancy", ("pregnant",), _propose_pregnancy),
)


# ------------------------------------------------------------------ in words


def _label(ruleset: RuleSet, code: str) -> str:
    label = ruleset.interventions[code].label
    return label[0].lower() + label[1:]


def _from_now(n: float) -> str:
    """'7 days', '2 weeks', '20 days', '7.4 weeks'."""
    n = int(n)
    if n % 7 == 0 and n >= 14:
        return weeks(n // 7)
    return days(n) if n < 28 else weeks(round(n / 7, 1))


def _weeks(x: float) -> str:
    """Weeks in a text, to one decimal ('12.1 weeks'): the edits hold the exact value."""
    return weeks(round(float(x), 1))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _a(text: str) -> str:
    return ("an " if text[:1] in "aeiou" else "a ") + text


def describe(s: ChangeState) -> str:
    """The change set as a condition in a clinician's words, short enough for a line under the
    withheld entry ("an option if: <this>"): what is found, how long the pain lasts by then and in
    how long (while it may still decide), what fails, then the rest."""
    r, o, p = s.ruleset, s.original, s.patient
    kinds = {st.kind for st in s.steps}
    timed = bool(s.wait) and bool(kinds & {"wait", "trial", "end"})
    # the pain's duration is named while it may still decide (below the recalcitrant weeks)
    pain_matters = o["pain"]["duration_weeks"] < _p(r, "recalcitrant_trial_weeks")
    parts: list[str] = []
    for st in s.steps:
        if st.kind == "finding":
            parts.append(f"{FINDINGS[st.subject]} is found on examination")
    if timed and pain_matters:
        clause = f"pain reaches {_weeks(p['pain']['duration_weeks'])} (in {_from_now(s.wait)})"
        going = _going(s) if "wait" in kinds else []
        parts.append(clause + (" with " + _join(going) if going else ""))
    elif "wait" in kinds:
        parts += _going(s)
    for st in s.steps:
        if st.kind == "trial":
            after = "" if _ceil_days(st.amount) >= s.wait else f" after {_weeks(st.amount)}"
            parts.append(f"{_a(_label(r, st.subject))} trial started now fails{after}")
        elif st.kind == "end":
            t = next(t for t in _treatments(p) if t["treatment"] == st.subject)
            parts.append(
                f"the {_label(r, st.subject)} trial ends without benefit at {_weeks(t['weeks'])}"
                if _at(r, o, st)
                else f"the {_label(r, st.subject)} trial is judged without benefit"
            )
    for st in s.steps:
        if st.kind == "dn4":
            _, _, cutoff, total, interview = _dn4(r, o["pain"])
            parts.append(f"{'the DN4 interview' if interview else 'the DN4'} reaches {cutoff}/{total}")
        elif st.kind == "stop":
            meds = [m for m in _medications(o) if _subject(m) == st.subject]
            name = _short(st.subject)
            if not any(_class(m) in OPIOID_CLASSES for m in meds):
                parts.append(f"current opioid use is checked (none) and {name} is stopped")
            else:
                stopped = all(_stopped(m) for m in meds if _class(m) in OPIOID_CLASSES)
                wait = f"in {_from_now(_at(r, o, st))}; " if stopped else ""
                parts.append(
                    f"{name} has been stopped for {days(_p(r, 'opioid_free_days'))} ({wait}the label: 7-10 "
                    "opioid-free days)"
                )
        elif st.kind == "confirm":
            parts.append(f"'{_short(st.subject)}' is confirmed not to be an opioid")
        elif st.kind == "retrieve":
            parts.append(SECTIONS[st.subject])
        elif st.kind == "pregnancy":
            parts.append("the pregnancy status is recorded (not pregnant)")
    if not parts:
        return f"pain reaches {_weeks(p['pain']['duration_weeks'])} (in {_from_now(s.wait)})"
    text = _join(parts)
    if timed and not pain_matters:
        text += f"; in {_from_now(s.wait)}"
    return text


def _going(s: ChangeState) -> list[str]:
    """The trials under way that go on while time passes, with the response they keep."""
    r = s.ruleset
    ended = {st.subject for st in s.steps if st.kind == "end"}
    done, going = [], []
    for t in sorted(_treatments(s.original), key=lambda t: t["treatment"]):
        if t["treatment"] in ended or not _under_way(r, t):
            continue
        if t["treatment"] in FIRST_LINE and t["response"] in ("none", "partial"):
            going.append(
                f"{_label(r, t['treatment'])} continued "
                f"({'no benefit' if t['response'] == 'none' else 'partial response'})"
            )
        elif t["treatment"] == "pulsed_radiofrequency" and t["weeks"] < _p(r, "prf_review_weeks"):
            done.append(
                f"{_label(r, t['treatment'])} is judged at {weeks(_p(r, 'prf_review_weeks'))} "
                f"(response {t['response']} so far)"
            )
    return done + going


# ------------------------------------------------------------------ as data


def edits(s: ChangeState) -> list[dict[str, Any]]:
    """The changed facts, from the original patient to the changed one:
    `{"field": path, "to": value}` for a value (the pain's duration also says `wait_weeks`);
    `{"field": list, "add" | "remove": code}` for a list of codes;
    `{"field": "prior_treatments", "treatment": code, "to": entry}` and
    `{"field": "medications", "name": name, "to": entry | None}` (None: no longer listed) for entries."""
    o, p = s.original, s.patient
    out: list[dict[str, Any]] = []
    if p["pain"]["duration_weeks"] != o["pain"]["duration_weeks"]:
        out.append({"field": "pain.duration_weeks", "to": p["pain"]["duration_weeks"], "wait_weeks": _num(s.wait / 7)})
    before_dn4 = list(o["pain"].get("neuropathic_features") or [])
    after_dn4 = list(p["pain"].get("neuropathic_features") or [])
    if after_dn4 != before_dn4:
        out.append({"field": "pain.neuropathic_features", "to": after_dn4})
    before = {t["treatment"]: t for t in _treatments(o)}
    for t in sorted(_treatments(p), key=lambda t: t["treatment"]):
        if before.get(t["treatment"]) != t:
            out.append({"field": "prior_treatments", "treatment": t["treatment"], "to": dict(t)})
    after_meds = {}
    for m in p.get("medications") or []:
        d = _med(m)
        after_meds.setdefault(_subject(d), []).append(m)
    done: set[str] = set()
    for m in sorted(o.get("medications") or [], key=lambda m: _subject(_med(m))):
        d = _med(m)
        subject = _subject(d)
        if subject in done:
            continue
        done.add(subject)
        now = after_meds.get(subject, [])
        was = [x for x in o.get("medications") or [] if _subject(_med(x)) == subject]
        if now != was:
            key = "name" if d.get("name") else "rxnorm"
            value = d.get("name") or d.get("rxnorm")
            out.append({"field": "medications", key: value, "to": now[0] if len(now) == 1 else (now or None)})
    for field_ in ("exam_findings", "not_retrieved"):
        a, b = list(o.get(field_) or []), list(p.get(field_) or [])
        out += [{"field": field_, "add": c} for c in sorted(b) if c not in a]
        out += [{"field": field_, "remove": c} for c in sorted(a) if c not in b]
    if p.get("pregnant") != o.get("pregnant"):
        out.append({"field": "pregnant", "to": p.get("pregnant")})
    return out


CHANGES = ChangeSpec(
    categories=CATEGORIES,
    kinds=KINDS,
    apply=apply,
    describe=describe,
    edits=edits,
    max_changes=3,
    alternatives=3,
    budget=300,
)

__all__ = ["CHANGES"]
