"""What would change a withheld escalation (engine.kernel.changes, rules/changes.py).

Every answer is checked the way a clinician would use it: its `edits` are applied to the patient
by the small applier below (independent of the search's own patient copies) and the engine is run
on the result, which must then recommend the withheld option. Where no change can work the
answer must say so ([]), and where the search was not made or not finished it says nothing (None).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.cohort import cohort
from cli import app
from engine import Result, default_triager, what_would_change
from engine.api import ChangeKind, ChangeSpec, ChangeState, Step
from engine.kernel.triage import Triager
from engine.views.common import NO_CHANGE
from engine.views.markdown import result_markdown
from engine.views.text import compact_lines, plain
from tests.conftest import ROOT, example_path, load_example

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
ESCALATIONS = ("adjunct", "interventional", "surgical_referral")
LDN, PRF = "low_dose_naltrexone", "pulsed_radiofrequency"
SURGERY = ("gastrocnemius_recession", "plantar_plate_repair", "tendon_transfer")
#: the fields an answer may change (rules/changes.py declares these and no others)
CHANGEABLE = {
    "pain.duration_weeks",
    "pain.neuropathic_features",
    "prior_treatments",
    "medications",
    "exam_findings",
    "not_retrieved",
    "pregnant",
}
#: one-off procedures and escalations: a past one's outcome is never changed, none is ever added
PAST = {LDN, PRF, *SURGERY}


# ------------------------------------------------------------------ an independent applier


def apply_edits(patient: dict[str, Any], edits: list[dict[str, Any]]) -> dict[str, Any]:
    """The patient with `edits` applied, read as rules/changes.py documents them."""
    p = copy.deepcopy(patient)
    for e in edits:
        field = e["field"]
        if field == "prior_treatments":
            kept = [t for t in p.get("prior_treatments", []) if t["treatment"] != e["treatment"]]
            p["prior_treatments"] = kept + ([e["to"]] if e["to"] is not None else [])
        elif field == "medications":
            key = "name" if "name" in e else "rxnorm"

            def named(m: Any, key: str = key, e: dict = e) -> bool:
                d = {"name": m} if isinstance(m, str) else m
                return d.get(key) == e[key] and (key == "name" or not d.get("name"))

            kept = [m for m in p.get("medications", []) if not named(m)]
            to = e["to"]
            p["medications"] = kept + ([] if to is None else to if isinstance(to, list) else [to])
        elif "add" in e:
            p[field] = [*p.get(field, []), e["add"]]
        elif "remove" in e:
            p[field] = [x for x in p.get(field, []) if x != e["remove"]]
            if not p[field]:
                del p[field]
        else:
            *path, last = field.split(".")
            obj = p
            for part in path:
                obj = obj[part]
            obj[last] = e["to"]
    return p


def searched(patient: dict[str, Any], budget: int | None = None) -> Result:
    t = default_triager()
    return what_would_change(t, patient, t.triage(patient), budget=budget)


def answers(result: Result) -> dict[str, Any]:
    """{intervention: its what_would_change} for every withheld escalation (the same on each of its entries)."""
    out: dict[str, Any] = {}
    for n in result.not_recommended:
        if default_triager().ruleset.interventions[n.intervention].category in ESCALATIONS:
            assert out.setdefault(n.intervention, n.what_would_change) == n.what_would_change
    return out


def check_answer(patient: dict[str, Any], code: str, changes: list) -> None:
    for c in changes:
        changed = apply_edits(patient, c.edits)
        assert default_triager().triage(changed).recommended(code) is not None, (code, c.text, c.edits)


def check_changeable_only(patient: dict[str, Any], changes: list) -> None:
    """No edit touches a fact the rule set does not declare changeable: not age, sex, a red flag, a
    condition, a finding present, nor a past escalation's or procedure's outcome."""
    for c in changes:
        for e in c.edits:
            assert e["field"] in CHANGEABLE, e
            if e["field"] == "prior_treatments" and e["treatment"] in PAST:
                # a past escalation or procedure is never added and its outcome never changes: only
                # the time since it was done (or taken) grows
                before = next(t for t in patient["prior_treatments"] if t["treatment"] == e["treatment"])
                assert e["to"]["response"] == before["response"] and e["to"]["weeks"] > before["weeks"], e
            if e["field"] == "exam_findings":
                assert "remove" not in e, e
            if e["field"] == "medications" and e["to"] is not None:
                for m in e["to"] if isinstance(e["to"], list) else [e["to"]]:
                    assert m["status"] == "stopped", e
        changed = apply_edits(patient, c.edits)
        for key in ("id", "age", "sex", "weight_kg", "height_cm", "red_flags", "comorbidities", "breastfeeding"):
            assert changed.get(key) == patient.get(key), key


# ------------------------------------------------------------------ the shared examples (the done-when)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_withheld_escalation_of_the_examples_has_an_answer_that_works_when_applied(name):
    """Every withheld escalation of a shared example gets an answer; each change, applied to the
    patient, makes the engine recommend it. The one example where nothing can work is the red flag:
    a suspected Charcot foot stops every escalation until the urgent assessment, and a red flag is not
    a fact the pathway may change (the assessment decides, outside it), so the answer is [] ("no
    change within the pathway would make it an option")."""
    patient = load_example(name)
    got = answers(searched(patient))
    assert got, "every example withholds at least one escalation"
    for code, changes in got.items():
        assert changes is not None, code
        if name == "red-flag-charcot":
            assert changes == [], (code, changes)
            continue
        assert changes, code
        assert len(changes) <= 3
        check_answer(patient, code, changes)
        check_changeable_only(patient, changes)


def _canonical(patient: dict[str, Any]) -> str:
    """A patient with its lists in a fixed order and a medication always an object (as the engine reads it)."""
    p = copy.deepcopy(patient)
    p["medications"] = sorted(
        ({"name": m} if isinstance(m, str) else m for m in p.get("medications", [])),
        key=lambda m: json.dumps(m, sort_keys=True),
    )
    p["prior_treatments"] = sorted(p.get("prior_treatments", []), key=lambda t: t["treatment"])
    for key in ("exam_findings", "comorbidities", "red_flags", "not_retrieved"):
        p[key] = sorted(p.get(key, []))
    p["pain"]["neuropathic_features"] = sorted(p["pain"].get("neuropathic_features", []))
    return json.dumps(p, sort_keys=True)


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_edits_describe_the_changed_patient_the_engine_was_run_on(name):
    """For every changed patient the search triaged (not only the answers), its edits applied to the
    patient give that very patient: nothing is changed that the edits do not say."""
    from engine.kernel.changes import _Search

    t = default_triager()
    patient = load_example(name)
    result = t.triage(patient)
    search = _Search(t, t.ruleset.changes, ChangeState(t.ruleset, patient, (), patient, 0, result), 300)
    search.run(
        [
            n.intervention
            for n in result.not_recommended
            if t.ruleset.interventions[n.intervention].category in ESCALATIONS
        ]
    )
    states = [st for steps, st in search.states.items() if steps]
    assert len(states) == search.runs and (states or name == "red-flag-charcot")
    for st in states:
        assert _canonical(apply_edits(patient, t.ruleset.changes.edits(st))) == _canonical(dict(st.patient)), st.steps


def test_the_examples_answers_in_clinical_words():
    """The nearest change for each example, as the clinician reads it."""
    new_onset = answers(searched(load_example("new-onset")))
    first = new_onset[LDN][0].text
    assert first.startswith("pain reaches 12 weeks (in 9 weeks)") and "metatarsal pad trial" in first
    assert "the DN4 reaches 4/10" in first
    assert new_onset[LDN][0].edits[0] == {"field": "pain.duration_weeks", "to": 12, "wait_weeks": 9}
    opioid = answers(searched(load_example("opioid-user")))
    assert [c.text for c in opioid[LDN]] == ["tramadol has been stopped for 10 days (the label: 7-10 opioid-free days)"]
    assert [c.text for c in opioid["plantar_plate_repair"]] == ["plantar plate instability is found on examination"]
    assert opioid["plantar_plate_repair"][0].edits == [{"field": "exam_findings", "add": "plantar_plate_instability"}]
    rheumatoid = answers(searched(load_example("rheumatoid")))
    assert rheumatoid[LDN][0].text.startswith("pain reaches 12 weeks (in 2 weeks) with footwear modification continued")
    neuropathic = answers(searched(load_example("neuropathic-persistent")))
    assert [c.text for c in neuropathic["tendon_transfer"]] == [
        "a flexible lesser-toe deformity is found on examination"
    ]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_alternatives_come_soonest_first_and_each_once(name):
    """The alternatives of an answer have the fewest changes (the kernel's toy tests check that
    part) and come soonest first; the same changes later (a longer wait) are not another answer."""
    for code, changes in answers(searched(load_example(name))).items():
        waits = [next((e["wait_weeks"] for e in c.edits if "wait_weeks" in e), 0) for c in changes]
        assert waits == sorted(waits), (code, waits)
        assert len({c.text for c in changes}) == len(changes)
        assert len({json.dumps(c.edits, sort_keys=True) for c in changes}) == len(changes)


def test_rheumatoid_pulsed_radiofrequency_comes_at_the_nearest_threshold():
    """Pain of 10 weeks with footwear going on (partial response): a trial started now that fails
    makes the pain recalcitrant in 14 weeks (24 weeks of pain, 24 weeks of failed trials counted);
    waiting alone would take 20 (footwear reaching 24 weeks), so it is not among the nearest three."""
    prf = answers(searched(load_example("rheumatoid")))[PRF]
    assert [next(e["wait_weeks"] for e in c.edits if "wait_weeks" in e) for c in prf] == [14, 14, 14]
    assert (
        next(c.text for c in prf) == "pain reaches 24 weeks (in 14 weeks) and a metatarsal pad trial started now fails"
    )


# ------------------------------------------------------------------ what cannot change


@pytest.mark.parametrize("condition", ["liver_failure", "acute_hepatitis", "opioid_use_disorder"])
def test_a_contraindication_that_cannot_change_gets_no_change(condition):
    """Liver failure, acute hepatitis and opioid use disorder are not changeable facts: LDN gets [],
    while the surgical options of the same patient still get their answers."""
    patient = load_example("neuropathic-persistent")
    patient["comorbidities"] = [condition]
    got = answers(searched(patient))
    assert got[LDN] == []
    assert got["plantar_plate_repair"]


def test_a_child_gets_no_change_for_ldn():
    """LDN is not offered under 18; age is not a fact the search changes."""
    patient = load_example("neuropathic-persistent")
    patient["age"] = 15
    patient["pregnant"] = False
    assert answers(searched(patient))[LDN] == []


def test_full_dose_naltrexone_is_left_to_the_prescriber():
    """Stopping full-dose naltrexone is the prescriber's decision, not a change the search proposes."""
    patient = load_example("neuropathic-persistent")
    patient["medications"] = ["naltrexone 50 mg"]
    got = answers(searched(patient))
    assert got[LDN] == []


# ------------------------------------------------------------------ each kind of change


def test_an_unrecognised_medication_is_confirmed_not_an_opioid():
    patient = load_example("neuropathic-persistent")
    patient["medications"] = ["sertraline", "Quixotamol"]
    got = answers(searched(patient))[LDN]
    assert [c.text for c in got] == ["'Quixotamol' is confirmed not to be an opioid"]
    assert got[0].edits == [{"field": "medications", "name": "Quixotamol", "to": None}]
    check_answer(patient, LDN, got)


def test_an_opioid_stopped_3_days_ago_is_an_option_in_7_days():
    patient = load_example("neuropathic-persistent")
    patient["medications"] = [{"name": "codeine 30 mg", "status": "stopped", "stopped_days_ago": 3}]
    got = answers(searched(patient))[LDN]
    assert got[0].text == "codeine 30 mg has been stopped for 10 days (in 7 days; the label: 7-10 opioid-free days)"
    check_answer(patient, LDN, got)


def test_a_naloxone_kit_is_stopped_once_opioid_use_is_checked():
    patient = load_example("neuropathic-persistent")
    patient["medications"] = ["sertraline", "naloxone nasal spray (kit)"]
    got = answers(searched(patient))[LDN]
    assert got[0].text == "current opioid use is checked (none) and naloxone nasal spray (kit) is stopped"
    check_answer(patient, LDN, got)


def test_a_dn4_below_the_cutoff_reaches_it():
    """A DN4 of 2/10 on record: 'the DN4 reaches 4/10' (the items added are not named in the text)."""
    patient = load_example("neuropathic-persistent")
    patient["pain"]["neuropathic_features"] = ["burning", "tingling"]
    got = answers(searched(patient))[LDN]
    assert [c.text for c in got] == ["the DN4 reaches 4/10"]
    assert "burning" not in got[0].text
    check_answer(patient, LDN, got)


def test_a_record_section_not_retrieved_is_retrieved():
    patient = load_example("neuropathic-persistent")
    patient["not_retrieved"] = ["medications"]
    got = answers(searched(patient))[LDN]
    assert got[0].edits == [{"field": "not_retrieved", "remove": "medications"}]
    check_answer(patient, LDN, got)


def test_pulsed_radiofrequency_done_recently_is_judged_at_12_weeks():
    """PRF done 6 weeks ago with a partial response and pain still recalcitrant: judged at 12 weeks,
    it may be considered again (its benefit having faded): the answer waits the 6 weeks."""
    patient = load_example("opioid-user")
    patient["prior_treatments"].append({"treatment": PRF, "weeks": 6, "response": "partial"})
    got = answers(searched(patient))[PRF]
    assert got[0].text.startswith(
        "ultrasound-guided pulsed radiofrequency is judged at 12 weeks (response partial so far)"
    )
    assert got[0].text.endswith("; in 6 weeks")
    assert {
        "field": "prior_treatments",
        "treatment": PRF,
        "to": {"treatment": PRF, "weeks": 12, "response": "partial"},
    } in got[0].edits
    check_answer(patient, PRF, got)


def test_a_site_threshold_is_respected():
    """A clinic that counts pain as persistent from 10 weeks: the new-onset patient's LDN answer waits 7 weeks."""
    from engine.kernel.rulebase import Override, Site

    site = Site(name="test clinic", overrides={"persistent_pain_weeks": Override(10, "local pathway", "test")})
    t = Triager(site=site)
    patient = load_example("new-onset")
    result = what_would_change(t, patient, t.triage(patient))
    ldn = next(n for n in result.not_recommended if n.intervention == LDN).what_would_change
    assert ldn[0].text.startswith("pain reaches 10 weeks (in 7 weeks)")
    assert t.triage(apply_edits(patient, ldn[0].edits)).recommended(LDN) is not None


# ------------------------------------------------------------------ None, [] and the budget


def test_none_means_not_searched_and_is_left_out_of_the_json():
    """With no budget nothing is searched: every entry keeps None, and the JSON says nothing."""
    result = searched(load_example("new-onset"), budget=0)
    assert all(n.what_would_change is None for n in result.not_recommended)
    assert "what_would_change" not in json.dumps(result.model_dump(mode="json"))
    # a red flag needs no engine run to know that nothing within the pathway changes it
    flagged = searched(load_example("red-flag-charcot"), budget=0)
    assert all(v == [] for v in answers(flagged).values())


def test_first_line_entries_are_not_searched():
    result = searched(load_example("opioid-user"))
    for n in result.not_recommended:
        category = default_triager().ruleset.interventions[n.intervention].category
        assert (n.what_would_change is None) == (category not in ESCALATIONS)


def test_the_answer_does_not_depend_on_the_order_of_input_lists():
    rng = random.Random(3)
    for name in EXAMPLES:
        patient = load_example(name)
        base = searched(patient).model_dump_json()
        for _ in range(2):
            shuffled = copy.deepcopy(patient)
            for key in ("prior_treatments", "exam_findings", "comorbidities", "medications"):
                rng.shuffle(shuffled[key])
            rng.shuffle(shuffled["pain"]["neuropathic_features"])
            assert searched(shuffled).model_dump_json() == base, name


# ------------------------------------------------------------------ a seeded cohort (a property)

#: a small budget keeps the property quick; it holds for any budget
COHORT_BUDGET = 30


@pytest.mark.slow
def test_on_a_seeded_cohort_every_answer_given_works_changes_only_what_may_change_and_is_deterministic():
    """Property over 200 synthetic patients: every change given, applied, makes the engine recommend the
    withheld option; no change touches a fact the rule set does not declare changeable; a second
    search gives the same answers (byte for byte, for every tenth patient)."""
    t = default_triager()
    given = empty = 0
    for i, patient in enumerate(cohort(200, seed=11)):
        result = what_would_change(t, patient, t.triage(patient), budget=COHORT_BUDGET)
        for code, changes in answers(result).items():
            if changes is None:
                continue
            empty += not changes
            given += len(changes)
            check_answer(patient, code, changes)
            check_changeable_only(patient, changes)
        if i % 10 == 0:
            again = what_would_change(t, patient, t.triage(patient), budget=COHORT_BUDGET)
            assert again.model_dump_json() == result.model_dump_json()
    assert given > 400 and empty > 10, (given, empty)


# ------------------------------------------------------------------ the views and the CLI


def test_the_views_say_when_no_change_within_the_pathway_makes_it_an_option():
    t = default_triager()
    result = searched(load_example("red-flag-charcot"))
    screen = plain(compact_lines(result, t.ruleset, 80, 40))
    assert f"→ {NO_CHANGE}" in screen
    assert f"would change: {NO_CHANGE}" in result_markdown(result, t.ruleset)


def test_the_cli_searches_by_default_for_the_clinicians_formats_and_on_request_for_json():
    """The text view searches by default (JSON input and FHIR alike); `--format json`, which scripts read,
    searches when asked with --changes."""
    runner = CliRunner()
    for path in (example_path("opioid-user"), ROOT / "tests" / "fhir" / "opioid-user.json"):
        res = runner.invoke(app, ["triage", str(path), "--format", "json", "--changes"])
        assert res.exit_code == 0, res.output
        ldn = [n for n in json.loads(res.stdout)["not_recommended"] if n["intervention"] == LDN]
        assert ldn[0]["what_would_change"][0]["text"].startswith("tramadol has been stopped for 10 days")
        res = runner.invoke(app, ["triage", str(path), "--format", "json"])
        assert all("what_would_change" not in n for n in json.loads(res.stdout)["not_recommended"])
        text = runner.invoke(app, ["triage", str(path), "--details"])
        assert "tramadol has been stopped for 10 days" in text.stdout


# ------------------------------------------------------------------ the kernel is generic


def test_the_kernel_knows_no_clinical_term():
    source = (ROOT / "engine" / "kernel" / "changes.py").read_text(encoding="utf-8").lower()
    for word in (
        "naltrexone",
        "opioid",
        "pain",
        "dn4",
        "metatars",
        "red flag",
        "weeks",
        "trial",
        "surg",
        "pregnan",
        "tramadol",
        "forefoot",
    ):
        assert word not in source, word


def _toy_rules() -> list:
    """'treat' needs a score of 5 or more and the tag 'x', and no blocker."""
    from engine.api import Rule, fact, ge, lt

    def high(ctx):
        ctx.conclude("high")

    def treat(ctx):
        ctx.recommend("treat", ["high score, tagged"])

    def low(ctx):
        ctx.withhold("treat", "deferred", "score below 5")

    def needs_tag(ctx):
        ctx.withhold("treat", "deferred", "needs the tag x")

    def blocked(ctx):
        ctx.withhold("treat", "contraindicated", "blocked")

    return [
        Rule("TOY-HIGH", "high score", when={"s": fact("subject", score=ge(5))}, action=high, concludes=("high",)),
        Rule("TOY-LOW", "low score", when={"s": fact("subject", score=lt(5))}, action=low, emits=("treat",)),
        Rule(
            "TOY-TREAT",
            "treat",
            when={"h": fact("high"), "t": fact("tag", name="x")},
            unless={"b": fact("blocker")},
            action=treat,
            emits=("treat",),
        ),
        Rule(
            "TOY-NEEDS-TAG",
            "needs the tag",
            when={"h": fact("high")},
            unless={"t": fact("tag", name="x")},
            action=needs_tag,
            emits=("treat",),
        ),
        Rule("TOY-BLOCKED", "blocked", when={"b": fact("blocker")}, action=blocked, emits=("treat",)),
    ]


def _toy_search(budget: int | None = None, **patient: Any) -> list | None:
    """The toy rule set with a change spec: the score may rise by 3 (waiting 10) or by 1 (waiting 1),
    the tag 'x' may be added; 'blocked' is not declared changeable. Returns treat's answer."""
    import dataclasses

    from tests.toy import toy_ruleset

    def raise_score(s: ChangeState) -> list[Step]:
        return [Step("raise", "", 3), Step("raise", "", 1)]

    def tag(s: ChangeState) -> list[Step]:
        return [Step("tag", "x")]

    def apply(ruleset: Any, original: Any, steps: tuple[Step, ...]) -> tuple[dict, float]:
        p = copy.deepcopy(dict(original))
        wait = 0.0
        for st in steps:
            if st.kind == "raise":
                p["score"] += st.amount
                wait = max(wait, 10.0 if st.amount == 3 else 1.0)
            else:
                p["tags"] = [*p.get("tags", []), st.subject]
        return p, wait

    spec = ChangeSpec(
        categories=("first_line",),
        kinds=(ChangeKind("raise", ("score",), raise_score, once=True), ChangeKind("tag", ("tags",), tag)),
        apply=apply,
        describe=lambda s: " + ".join(f"{x.kind} {x.subject or f'{x.amount:g}'}" for x in s.steps),
        edits=lambda s: [{"field": "score", "to": s.patient["score"]}],
    )
    rs = dataclasses.replace(toy_ruleset(_toy_rules(), interventions=("treat",)), changes=spec)
    t = Triager(rs)
    p = {"id": "t", **patient}
    result = what_would_change(t, p, t.triage(p), budget=budget)
    got = {n.intervention: n.what_would_change for n in result.not_recommended}
    assert set(got) == {"treat"}
    return got["treat"]


def test_the_kernel_keeps_the_fewest_changes_then_the_least_wait():
    """Score 4 and tagged: +1 (wait 1) and +3 (wait 10) both work; the same change later is not
    another answer, so one answer, the sooner. Score 4 untagged: two changes are needed (the tag is
    tried only once the score no longer withholds it). Score 2: only +3 works."""
    assert [c.text for c in _toy_search(score=4, tags=["x"])] == ["raise 1"]
    assert [c.text for c in _toy_search(score=4)] == ["raise 1 + tag x"]
    assert [c.text for c in _toy_search(score=2, tags=["x"])] == ["raise 3"]


def test_the_kernel_answers_none_when_the_budget_runs_out_and_nothing_for_an_undeclared_fact():
    """A blocker is not declared changeable: [] without an engine run; a budget too small to reach
    an answer: None (nothing claimed)."""
    assert _toy_search(score=7, tags=["x"], blocked=True, budget=0) == []
    assert _toy_search(score=4, budget=1) is None
    assert _toy_search(score=4, budget=0) is None
