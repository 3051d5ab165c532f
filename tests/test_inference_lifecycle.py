"""The kept state node (issue: speed): each pooled session keeps its durable-rules state node from
one patient to the next, retracting every fact a triage asserted instead of deleting the state.

Pinned here: it decides exactly as deleting the state does (`Engine(reuse_states=False)`, the
reference lifecycle; the 20,005-patient comparison is in test_speed_identity.py), memory stays
flat, and each edge of durable-rules 2.0.28
(../shared/DURABLE.md) stays closed under the new lifecycle: one state node per ruleset (the
1024 cap and the 32-bit session-id hash), fact ids reused across patients, no delete_state with
pending actions, and no state deleted before an action initialised its context.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from pathlib import Path

import durable_rules_engine
import orjson
import pytest

from engine import InferenceError, Triager
from engine.api import Rule, fact
from engine.kernel.inference import MAX_FACTS, Engine
from tests.toy import chain_rules, toy_ruleset

ROOT = Path(__file__).resolve().parents[1]


def toy(rules=None, **engine_options) -> Triager:
    """A toy triager on the kept-state lifecycle (`reuse_states=True`), unless told otherwise."""
    t = Triager(toy_ruleset(rules or chain_rules()))
    t.engine = Engine(t.ruleset, **{"reuse_states": True, **engine_options})
    return t


def reference(t: Triager) -> Triager:
    """The same rule set with the reference lifecycle: the state deleted after every triage."""
    ref = Triager(t.ruleset)
    ref.engine = Engine(t.ruleset, reuse_states=False)
    return ref


def _child(code: str) -> str:
    """Run `code` in a fresh interpreter, so that a crash in the C core fails a test rather than the run."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    return done.stdout


# ---------------------------------------------------------------- the same decisions


def test_a_kept_state_decides_as_a_deleted_one_for_the_toy_chain_in_any_order():
    t = toy()
    ref = reference(t)
    patients = [{"id": f"p{i}", "score": i % 9, "blocked": i % 3 == 0, "tags": [f"t{i % 5}"]} for i in range(300)]
    for p in patients:
        assert t.triage(p).model_dump_json() == ref.triage(p).model_dump_json()
    assert t.engine.states_created == 1
    assert t.engine.fallbacks == 0


@pytest.mark.slow
def test_memory_stays_flat_over_100000_triages_on_kept_states():
    from bench.cohort import cohort
    from tests.test_api_concurrency import _rss_bytes

    def rss_mb() -> float:
        return _rss_bytes() / 2**20

    t = Triager()
    t.engine = Engine(t.ruleset, reuse_states=True)  # kept states whatever the build's default
    payloads = [orjson.dumps(p) for p in cohort(2000, seed=11)]
    for b in payloads * 2:
        t.triage_json(b)
    gc.collect()
    start = rss_mb()
    for i in range(100_000):
        t.triage_json(payloads[i % len(payloads)])
    gc.collect()
    assert rss_mb() - start < 5.0
    assert t.engine.fallbacks == 0
    assert t.engine.live_sessions() == 0


# ---------------------------------------------------------------- the lifecycle itself


def test_after_a_triage_the_state_is_kept_empty_and_nothing_is_left_to_fire():
    t = toy()
    t.triage({"id": "x", "score": 7, "blocked": True, "tags": ["a", "b"]})
    (s,) = t.engine._idle
    assert durable_rules_engine.get_facts(s._handle, "1") == "[]"
    assert durable_rules_engine.get_state(s._handle, "1")  # the node itself is kept
    assert t.engine.kept_states() == 1
    assert t.engine.live_sessions() == 0


def test_the_state_node_is_created_once_and_recycled_after_a_fixed_number_of_triages():
    t = toy(recycle_after=10)
    for i in range(35):
        t.triage({"id": f"p{i}", "score": i % 10})
    assert t.engine.states_created == 4  # triages 1-10, 11-20, 21-30, 31-35
    assert t.engine.sessions_created == 1
    assert t.engine.fallbacks == 0


def test_a_failed_triage_deletes_the_state_after_draining_and_the_next_one_starts_afresh():
    def boom(ctx):
        if ctx.fact("s")["score"] == 3:
            raise ValueError("broken rule")
        ctx.recommend("treat", ["ok"])

    t = toy([Rule("TOY-BOOM", "explodes on 3", when={"s": fact("subject")}, action=boom, emits=("treat",))])
    assert t.triage({"id": "a", "score": 4}).recommended("treat") is not None
    assert t.engine.states_created == 1
    with pytest.raises(InferenceError, match="TOY-BOOM"):
        t.triage({"id": "x", "score": 3})
    assert t.engine.kept_states() == 0  # deleted, not cleared
    assert t.triage({"id": "y", "score": 4}).recommended("treat") is not None
    assert t.engine.states_created == 2
    assert t.engine.live_sessions() == 0


def test_an_interrupted_triage_deletes_the_state_and_the_engine_goes_on():
    calls = []

    def interrupt(ctx):
        calls.append(1)
        if ctx.fact("s")["score"] == 1:
            raise KeyboardInterrupt

    t = toy([Rule("TOY-INT", "interrupts", when={"s": fact("subject")}, action=interrupt)])
    with pytest.raises(KeyboardInterrupt):
        t.triage({"id": "x", "score": 1})
    assert t.triage({"id": "y", "score": 2}).trace[0].rule == "TOY-INT"
    assert t.engine.fallbacks == 0


# ---------------------------------------------------------------- DURABLE.md's edges, re-pinned


def test_one_state_node_per_ruleset_whatever_the_threads_so_the_session_cap_is_never_near():
    """8 threads at once: no crash, results equal to the serial ones, no session left live. More than
    1024 live sessions crash durable: each pooled session is its own ruleset with one constant session
    id, so a ruleset holds one state node at most, and the pool stays small."""
    t = toy()
    patients = [{"id": f"p{i}", "score": i % 9, "blocked": i % 4 == 0} for i in range(400)]
    serial = [t.triage(p).model_dump_json() for p in patients]
    out: list[list[str]] = [[] for _ in range(8)]

    def work(k):
        out[k] = [t.triage(p).model_dump_json() for p in patients]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(o == serial for o in out)
    assert t.engine.sessions_created <= 9
    assert t.engine.kept_states() <= t.engine.sessions_created
    assert t.engine.live_sessions() == 0
    for s in t.engine._idle:
        with pytest.raises(Exception):
            durable_rules_engine.get_state(s._handle, "0")  # no state under any other session id


def test_patients_whose_ids_collide_in_durables_hash_share_nothing_on_a_kept_state():
    """'patient-332789' and 'patient-529192' shared one durable session: patient ids never reach
    durable, and the kept state holds nothing of the previous patient."""
    t = toy()
    a = t.triage({"id": "patient-332789", "score": 9, "blocked": True})
    b = t.triage({"id": "patient-529192", "score": 9})
    c = t.triage({"id": "patient-332789", "score": 1})
    assert [n.kind for n in a.withheld("treat")] == ["contraindicated"]
    assert b.recommended("treat") is not None and not b.withheld("treat")
    assert c.recommended("treat") is None and c.trace == []
    assert t.engine.states_created == 1


def test_fact_ids_are_reused_on_a_kept_state_without_being_taken_for_duplicates():
    """Fact identity is the id (a 32-bit hash): f1..f512 serve every patient, so each retraction
    must really forget them, or the next patient's facts would be taken for duplicates (FactError)
    or matched as the previous patient's."""
    seen = []
    t = toy(
        [
            Rule(
                "TOY-HIT",
                "the probe tag",
                when={"t": fact("tag", name="hit")},
                action=lambda c: seen.append(c.fact("t")["name"]),
            )
        ]
    )
    for round_ in range(4):
        tags = [f"r{round_}-t{i}" for i in range(MAX_FACTS - 2)]
        tags.insert(round_ * 100, "hit")  # at a different fact id each round
        seen.clear()
        t.triage({"id": "x", "score": 1, "tags": tags})
        assert seen == ["hit"]
        seen.clear()
        t.triage({"id": "x", "score": 1, "tags": tags[:5]})
        assert seen == (["hit"] if "hit" in tags[:5] else [])
    assert t.engine.states_created == 1
    assert t.engine.fallbacks == 0


def test_a_state_that_cannot_be_proved_empty_is_drained_without_running_and_deleted():
    """delete_state with pending actions segfaults. Here retraction is sabotaged so that it opens a
    stratum again instead: actions are pending when the wrapper checks. It must complete them
    without running a single action, delete the state, count a fallback, and go on correctly."""
    out = _child(
        "import durable_rules_engine as real\n"
        "from engine import Triager\n"
        "from engine.api import Rule, fact\n"
        "from engine.kernel import inference\n"
        "from tests.toy import toy_ruleset\n"
        "ran = []\n"
        "rules = [Rule('TOY-SEEN', 'seen', when={'s': fact('subject')}, action=lambda c: ran.append(1))]\n"
        "t = Triager(toy_ruleset(rules))\n"
        "t.engine = inference.Engine(t.ruleset, reuse_states=True)\n"
        "class Sabotaged:\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(real, name)\n"
        "    def retract_facts(self, handle, text):\n"
        '        return real.assert_fact(handle, \'{"id":"again","sid":"1","type":"$gate","stratum":0}\')\n'
        "inference._dre = Sabotaged()\n"
        "for i in range(50):\n"
        "    ran.clear()\n"
        "    r = t.triage({'id': 'p', 'score': i})\n"
        "    assert ran == [1] and [e.rule for e in r.trace] == ['TOY-SEEN'], ran\n"
        "inference._dre = real\n"
        "assert t.triage({'id': 'p', 'score': 1}).trace[0].rule == 'TOY-SEEN'\n"
        "print(t.engine.fallbacks, t.engine.states_created, t.engine.live_sessions())\n"
    )
    assert out.split() == ["50", "51", "0"]


def test_a_state_in_which_no_rule_ever_fires_is_deleted_safely_however_it_is_recycled():
    """durable's deleteStateNode frees an action context that createStateNode never initialised: a
    state deleted before any action ran is an invalid free. Every new state node runs the wrapper's
    `_session_open` first, whether it is kept, recycled after every triage or after a few."""
    out = _child(
        "from engine import Triager\n"
        "from engine.kernel.inference import Engine\n"
        "from tests.toy import toy_ruleset, chain_rules\n"
        "import pydantic, rich  # heap churn, as in a real process\n"
        "for options in ({'reuse_states': False}, {'reuse_states': True, 'recycle_after': 1},\n"
        "                {'reuse_states': True, 'recycle_after': 3},\n"
        "                {'reuse_states': True}):\n"
        "    t = Triager(toy_ruleset(chain_rules()))\n"
        "    t.engine = Engine(t.ruleset, **options)\n"
        "    for i in range(1500):\n"
        "        assert t.triage({'id': 'p', 'score': i % 3}).trace == []\n"
        "    print(t.engine.states_created)\n"
    )
    assert out.split() == ["1500", "1500", "500", "2"]


def test_a_triage_in_which_a_rule_fires_too_often_to_retract_safely_deletes_its_state():
    """Retracting a fact that took part in completed activations makes durable-rules scan past a
    freed frame's 16 message slots (valgrind shows the reads); the scan stays inside the rule's own
    frame pool only while the rule fired at most 7 - (its positive patterns) times. Beyond that the
    wrapper deletes the state (its agenda has drained) instead of retracting."""
    t = toy([Rule("TOY-EACH", "each tag", when={"t": fact("tag")}, action=lambda c: None)])
    assert t.engine.plans["TOY-EACH"].safe_firings == 6
    t.triage({"id": "x", "score": 1, "tags": [f"t{i}" for i in range(6)]})
    assert (t.engine.unsafe_to_retract, t.engine.kept_states()) == (0, 1)
    r = t.triage({"id": "x", "score": 1, "tags": [f"t{i}" for i in range(7)]})
    assert len(r.trace) == 7
    assert (t.engine.unsafe_to_retract, t.engine.kept_states()) == (1, 0)
    t.triage({"id": "x", "score": 1, "tags": ["a"]})
    assert (t.engine.states_created, t.engine.kept_states(), t.engine.fallbacks) == (2, 1, 0)
