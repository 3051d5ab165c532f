"""The durable-rules wrapper: each measured edge of durable-rules 2.0.28 (../shared/DURABLE.md)
is pinned here, so that no patient can reach it."""

from __future__ import annotations

import json
import random
import threading

import pytest

from engine import InferenceError, Triager
from engine.api import Rule, fact
from engine.kernel.errors import FactError, RuleSetError
from engine.kernel.inference import MAX_FACT_PROPERTIES, MAX_FACTS, Engine, compile_rules, normalise_fact, stratify
from tests.toy import chain_rules, toy_ruleset


def toy(rules=None) -> Triager:
    return Triager(toy_ruleset(rules or chain_rules()))


def test_actions_run_on_the_callers_thread_and_no_background_thread_starts():
    """durable's Host starts two timer threads that segfault under concurrency: none may start."""
    seen = []

    def record(ctx):
        seen.append(threading.get_ident())

    before = threading.active_count()
    t = toy([Rule("TOY-REC", "record", when={"s": fact("subject")}, action=record)])
    for _ in range(5):
        t.triage({"id": "a", "score": 1})
    assert seen == [threading.get_ident()] * 5
    assert threading.active_count() == before


def test_no_session_state_outlives_a_triage():
    """The 1024-session cap and the 32-bit session-id hash are never reached: one session, whose
    facts are all retracted after each run (its empty state node is kept: test_inference_lifecycle.py)."""
    t = toy()
    for i in range(3000):
        t.triage({"id": f"patient-{i}", "score": i % 10})
    assert t.engine.live_sessions() == 0
    assert t.engine.sessions_created == 1


def test_patients_whose_ids_collide_in_durables_hash_stay_apart():
    """'patient-332789' and 'patient-529192' shared one durable session: ids never reach durable here."""
    t = toy()
    a = t.triage({"id": "patient-332789", "score": 9})
    b = t.triage({"id": "patient-529192", "score": 1})
    assert a.recommended("treat") is not None
    assert b.recommended("treat") is None
    assert "patient-332789" not in t.engine.compiled.definition_json


def test_a_blocking_fact_derived_late_still_blocks_whatever_the_rule_order():
    """No truth maintenance in durable: a $not checked before the blocker exists would fire wrongly.
    Stratification makes the result independent of definition order."""
    for seed in range(20):
        rules = chain_rules()
        random.Random(seed).shuffle(rules)
        t = toy(rules)
        r = t.triage({"id": "x", "score": 7, "blocked": True})
        assert r.recommended("treat") is None
        assert [n.kind for n in r.withheld("treat")] == ["contraindicated"]
        assert t.triage({"id": "y", "score": 7}).recommended("treat") is not None


def test_stratify_rejects_a_rule_that_negates_what_it_produces():
    def noop(ctx):
        pass

    loop = [
        Rule(
            "LOOP-A", "a unless b", when={"s": fact("subject")}, unless={"b": fact("b")}, action=noop, concludes=("a",)
        ),
        Rule("LOOP-B", "b from a", when={"a": fact("a")}, action=noop, concludes=("b",)),
    ]
    with pytest.raises(RuleSetError, match="negate"):
        stratify(tuple(loop))


def test_an_exception_in_a_rule_fails_the_triage_loudly_and_the_engine_recovers():
    """durable stores action exceptions as a string and goes on; here the triage fails closed."""

    def boom(ctx):
        if ctx.fact("s")["score"] == 3:
            raise ValueError("broken rule")
        ctx.recommend("treat", ["ok"])

    t = toy([Rule("TOY-BOOM", "explodes on 3", when={"s": fact("subject")}, action=boom, emits=("treat",))])
    with pytest.raises(InferenceError, match="TOY-BOOM"):
        t.triage({"id": "x", "score": 3})
    assert t.triage({"id": "y", "score": 4}).recommended("treat") is not None
    assert t.engine.live_sessions() == 0


def test_keyboard_interrupt_inside_a_rule_reaches_the_caller():
    def interrupt(ctx):
        raise KeyboardInterrupt

    t = toy([Rule("TOY-INT", "interrupts", when={"s": fact("subject")}, action=interrupt)])
    with pytest.raises(KeyboardInterrupt):
        t.triage({"id": "x", "score": 1})


def test_floats_never_reach_durable_in_exponent_form():
    """1e-05 and 1e+21 in a fact segfault durable: tiny values are rounded, huge ones refused."""
    assert normalise_fact({"type": "x", "v": 1e-05}) == {"type": "x", "v": 0}
    assert normalise_fact({"type": "x", "v": 16.25}) == {"type": "x", "v": 16.25}
    with pytest.raises(FactError, match="exponent"):
        normalise_fact({"type": "x", "v": 1e21})
    with pytest.raises(FactError, match="NaN"):
        normalise_fact({"type": "x", "v": float("nan")})
    assert toy().triage({"id": "x", "score": 1e-05}).recommended("treat") is None


def test_rule_constants_that_would_be_rounded_are_rejected():
    def noop(ctx):
        pass

    with pytest.raises(RuleSetError, match="exactly"):
        compile_rules(toy_ruleset([Rule("TOY-TINY", "tiny", when={"s": fact("subject", score=1e-05)}, action=noop)]))


def test_facts_are_flat_and_small():
    """253 properties segfault durable; nesting is refused outright."""
    wide = {"type": "x", **{f"k{i}": i for i in range(MAX_FACT_PROPERTIES)}}
    with pytest.raises(FactError, match="properties"):
        normalise_fact(wide)
    with pytest.raises(FactError, match="dict is not allowed"):
        normalise_fact({"type": "x", "inner": {"a": 1}})
    with pytest.raises(FactError, match="reserved"):
        normalise_fact({"type": "x", "id": "mine"})


def test_a_facts_type_travels_as_a_property_of_its_own_name():
    """durable-rules hashes alpha nodes by property name only: `type == X` patterns put every fact
    type in one chain that each fact walked whole. The type goes as `type:X` = 1 instead; a fact
    still matches only the patterns of its own type, and the prefix is reserved."""
    c = compile_rules(toy_ruleset(chain_rules()))
    for rule_id, rule in c.definition.items():
        for pattern in rule["all"]:
            (body,) = pattern.values()
            first = body["$and"][0] if "$and" in body else body
            assert len(first) == 1 and next(iter(first)).startswith("type:"), (rule_id, body)
            assert first[next(iter(first))] == 1
            assert '"type"' not in json.dumps(body), (rule_id, body)
    hits = []
    rules = [
        Rule("TOY-TAG", "tag", when={"t": fact("tag", name="a")}, action=lambda c: hits.append("tag")),
        Rule("TOY-SUBJECT", "subject", when={"s": fact("subject")}, action=lambda c: hits.append("subject")),
    ]
    toy(rules).triage({"id": "x", "score": 1, "tags": ["a", "b"]})
    assert sorted(hits) == ["subject", "tag"]  # one subject, one tag named a: nothing crosses types
    with pytest.raises(FactError, match="reserved"):
        normalise_fact({"type": "x", "type:tag": 1})
    bad = Rule("TOY-BAD", "bad", when={"s": fact("subject", **{"type:tag": 1})}, action=lambda c: None)
    with pytest.raises(RuleSetError, match="reserved"):
        compile_rules(toy_ruleset([bad]))


def test_non_ascii_values_match():
    """Non-ASCII strings match only when serialised with ensure_ascii=False."""
    hits = []
    t = toy([Rule("TOY-TAG", "tag", when={"t": fact("tag", name="métamizole")}, action=lambda c: hits.append(1))])
    t.triage({"id": "x", "score": 1, "tags": ["métamizole", "other"]})
    assert hits == [1]


def test_every_fact_id_in_the_session_range_is_distinct_to_durable():
    """durable compares fact ids by a 32-bit hash: the ids this wrapper hands out never collide."""
    count = []
    t = toy([Rule("TOY-EACH", "each tag", when={"t": fact("tag")}, action=lambda c: count.append(1))])
    tags = [f"t{i}" for i in range(MAX_FACTS - 1)]  # + the subject fact
    t.triage({"id": "x", "score": 1, "tags": tags})
    assert len(count) == MAX_FACTS - 1
    with pytest.raises(FactError, match="more than"):
        t.triage({"id": "x", "score": 1, "tags": tags + ["one-too-many"]})
    assert t.triage({"id": "x", "score": 1, "tags": ["a"]}) is not None


def test_rule_ids_are_ours_and_every_firing_is_traced():
    t = toy()
    r = t.triage({"id": "x", "score": 7, "blocked": True})
    assert set(t.engine.compiled.definition) - {"_session_open"} == {
        "TOY-HIGH",
        "TOY-BLOCK",
        "TOY-TREAT",
        "TOY-BLOCKED",
    }
    assert [e.rule for e in r.trace] == ["TOY-BLOCK", "TOY-HIGH", "TOY-BLOCKED"]
    assert r.trace[1].concluded == ["high"]
    assert r.trace[1].used == ["subject"]


def test_a_rule_may_only_do_what_it_declares():
    t = toy([Rule("TOY-SNEAK", "undeclared", when={"s": fact("subject")}, action=lambda c: c.conclude("secret"))])
    with pytest.raises(InferenceError, match="TOY-SNEAK"):
        t.triage({"id": "x", "score": 1})


def test_an_action_reads_the_parameters_its_rule_uses_and_no_other():
    """param() in an action gives the rule set's value of a parameter the rule's code names; any other
    name (here one the rule set has, built at run time so that the rule set cannot see it) fails the
    triage, naming the rule."""
    from engine.api import param
    from tests.conftest import load_example

    t = Triager()
    plan = t.engine.plans["PERSISTENT"]
    real = plan.action
    got = []

    def reads(ctx):
        got.append(param("persistent_pain_weeks"))
        real(ctx)

    plan.action = reads
    t.triage(load_example("neuropathic-persistent"))
    assert got and set(got) == {t.ruleset.parameter_values["persistent_pain_weeks"]}
    other = "adequate_trial" + "_weeks"

    def strays(ctx):
        param(other)

    plan.action = strays
    with pytest.raises(InferenceError, match=r"PERSISTENT.*adequate_trial_weeks"):
        t.triage(load_example("neuropathic-persistent"))


def test_engine_rejects_an_inconsistent_rule_set():
    bad = toy_ruleset([Rule("TOY-X", "x", when={"s": fact("subject")}, action=lambda c: None, citations=("nope",))])
    with pytest.raises(RuleSetError, match="nope"):
        Engine(bad)


def test_the_compiled_definition_is_plain_json():
    c = compile_rules(toy_ruleset(chain_rules()))
    assert json.loads(c.definition_json) == c.definition


def test_a_session_in_which_no_rule_fires_is_deleted_safely():
    """durable's deleteStateNode frees an action context that createStateNode never initialised:
    deleting a session in which no action ever ran is an invalid free (a segfault, depending on
    the heap). The wrapper's own opening rule makes every new state node run one action first.
    Run in a child process so that a regression shows as a failed test, not a dead test run."""
    import subprocess
    import sys

    code = (
        "from engine import Triager\n"
        "from tests.toy import toy_ruleset, chain_rules\n"
        "import pydantic, rich  # heap churn, as in a real process\n"
        "t = Triager(toy_ruleset(chain_rules()))\n"
        "for i in range(2000):\n"
        "    assert t.triage({'id': 'p', 'score': i % 3}).recommendations == []\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
