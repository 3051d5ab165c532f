"""The fast paths decide and write exactly what the slow ones do (issue: speed).

Fast: the kept state node (facts retracted after each patient, `Engine(reuse_states=True)`: the
default on the vendored durable-rules, whose retraction is bounded; see engine/kernel/inference.py)
and the result written by orjson
from JSON data built straight from the run (`Triager.triage_data`, `data_json`: the batch path).
Slow, kept in the code as the reference: the state node deleted after every patient
(`Engine(reuse_states=False)`) and the pydantic `Result`, validated and written by pydantic-core.
The API still returns the pydantic model; both ways of writing it must give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pydantic import ValidationError

from bench.cohort import cohort
from engine import Triager
from engine.api import Rule, fact
from engine.channels.batch import run_batch
from engine.kernel.inference import Engine
from engine.kernel.triage import data_json
from tests.conftest import load_example
from tests.test_soak import EXAMPLES
from tests.toy import toy_ruleset


def reference(t: Triager) -> Triager:
    ref = Triager(t.ruleset)
    ref.engine = Engine(t.ruleset, reuse_states=False)
    return ref


def kept(t: Triager) -> Triager:
    """`t` on the kept-state lifecycle."""
    t.engine = Engine(t.ruleset, reuse_states=True)
    return t


def pydantic_json(result) -> bytes:
    return result.__pydantic_serializer__.to_json(result)


def assert_same(fast: Triager, slow: Triager, patients) -> set[str]:
    fired: set[str] = set()
    for p in patients:
        want = pydantic_json(slow.triage(p))
        api = fast.triage(p)  # kept state, pydantic model
        assert pydantic_json(api) == want, p["id"]
        assert data_json(fast.triage_data(p)) == want, p["id"]  # kept state, orjson from data
        fired.update(e.rule for e in api.trace)
    return fired


@pytest.mark.slow
def test_every_result_is_byte_identical_on_20005_patients():
    """The seeded cohort (every rule fires) and the shared examples: trace and result, as JSON."""
    fast = kept(Triager())
    slow = reference(fast)
    patients = [load_example(n) for n in EXAMPLES] + list(cohort(20_000, seed=20240501))
    assert len(patients) == 20_005
    fired = assert_same(fast, slow, patients)
    assert fired == {r.id for r in fast.ruleset.rules}
    assert fast.engine.fallbacks == 0
    assert slow.engine.states_created == len(patients)  # the reference never keeps a state node


def test_results_are_byte_identical_on_a_small_cohort_and_the_examples():
    fast = kept(Triager())
    slow = reference(fast)
    assert_same(fast, slow, [load_example(n) for n in EXAMPLES] + list(cohort(300, seed=99)))
    assert fast.engine.fallbacks == 0


def test_a_result_never_shares_the_rule_sets_citation_entries():
    """The result's citations are copies (validation copies them): changing one changes no other
    result and not the rule set."""
    t = Triager()
    r = t.triage(load_example(EXAMPLES[0]))
    cid = next(iter(r.citations))
    assert r.citations[cid] == t.ruleset.citations[cid] and r.citations[cid] is not t.ruleset.citations[cid]
    r.citations[cid]["title"] = "changed"
    assert t.ruleset.citations[cid]["title"] != "changed"
    assert t.triage(load_example(EXAMPLES[0])).citations[cid]["title"] != "changed"


def test_triage_data_is_the_models_json_dump():
    t = Triager()
    for name in EXAMPLES:
        p = load_example(name)
        assert t.triage_data(p) == t.triage(p).model_dump(mode="json")


def _toy(action, emits=("treat",)) -> Triager:
    return Triager(toy_ruleset([Rule("TOY-R", "r", when={"s": fact("subject")}, action=action, emits=emits)]))


def test_values_beyond_plain_text_are_written_as_pydantic_writes_them():
    """details hold Any: dates, tuples, nested objects, odd floats, non-ASCII and control characters;
    an integer review is a float in the model."""

    def act(ctx):
        ctx.recommend(
            "treat",
            ['é ✓ \u2028 😀 "q" \\ \t'],
            details={
                "when": dt.date(2026, 1, 2),
                "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                "pair": (1, 2.5),
                "nested": {"a": [1e-7, 1e22, -0.0, 100.0]},
                "none": None,
                "big": 2**70,
            },
            review=(6, "review in 6 weeks"),
        )
        ctx.because("because é")

    t = _toy(act)
    r = t.triage({"id": "p-é", "score": 1})
    assert data_json(t.triage_data({"id": "p-é", "score": 1})) == pydantic_json(r)
    assert r.recommendations[0].review.weeks == 6.0


def test_a_value_the_model_would_reject_is_rejected_on_the_data_path_too():
    def act(ctx):
        ctx.recommend("treat", ["fine", 42])  # a rationale that is not text

    t = _toy(act)
    with pytest.raises(ValidationError):
        t.triage({"id": "p", "score": 1})
    with pytest.raises(ValidationError):
        t.triage_data({"id": "p", "score": 1})


def test_the_batch_writes_the_pydantic_bytes_for_every_record():
    t = Triager()
    patients = [load_example(n) for n in EXAMPLES]
    import orjson

    records = [(i, "in.ndjson", orjson.dumps(p), None) for i, p in enumerate(patients, start=1)]
    out = io.BytesIO()
    summary = run_batch(records, out, workers=1)
    assert summary.triaged == len(patients)
    lines = out.getvalue().splitlines()
    assert lines == [pydantic_json(t.triage(p)) for p in patients]
