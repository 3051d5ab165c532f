"""The wrapper's shortcuts (issue: speed) give what the long way gives.

* A rule's `conclude(...)` builds its fact in one pass (`_normalise_fields`): the same fact, key
  order and errors as `normalise_fact({"type": ..., **fields, "key": key})`.
* durable-rules is sent only the fields some pattern tests (plus type, id and session id): the
  rules read the whole fact from the wrapper's copy, so what they see is unchanged.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Triager
from engine.api import Rule, fact, ge
from engine.kernel import inference
from engine.kernel.errors import FactError
from engine.kernel.inference import _normalise_fields, compile_rules, normalise_fact
from tests.toy import chain_rules, toy_ruleset

CASES = [
    ({}, None),
    ({"a": "x", "n": 3, "f": 2.50001, "g": 2.0, "b": True, "l": ["x", 1.23456, 7]}, None),
    ({"v": 1e-05}, "k"),
    ({"t": ("a", "b")}, 12),
    ({"e": []}, 1.5),
    ({"big": 2**60}, None),
    ({"huge": 1e21}, None),
    ({"nan": float("nan")}, None),
    ({"s": "x" * 300}, None),
    ({"none": None}, None),
    ({"d": {"a": 1}}, None),
    ({"$x": 1}, None),
    ({"id": "mine"}, None),
    ({f"k{i}": i for i in range(70)}, None),
    ({"a": 1}, "k" * 300),
    ({"a": 1}, ["x", "y"]),
    ({"a": 1}, None),
]


@pytest.mark.parametrize("fields,key", CASES)
def test_a_concluded_fact_is_built_as_normalise_fact_builds_it(fields, key):
    raw = {"type": "finding", **fields}
    if key is not None:
        raw["key"] = key
    try:
        want = normalise_fact(raw)
    except FactError as exc:
        with pytest.raises(FactError) as got:
            _normalise_fields("finding", fields, key)
        assert str(got.value) == str(exc)
        return
    got = _normalise_fields("finding", fields, key)
    assert got == want
    assert list(got) == list(want)
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


def test_conclude_with_a_type_field_keeps_the_dict_semantics():
    """`{"type": type_, **fields}`: a field named type overrides it (an odd rule, but the same fact)."""

    def odd(ctx):
        ctx.conclude("high", type="other", score=1)

    t = Triager(toy_ruleset([Rule("TOY-ODD", "odd", when={"s": fact("subject")}, action=odd, concludes=("high",))]))
    assert t.triage({"id": "x", "score": 1}).trace[0].concluded == ["other"]


def test_durable_is_sent_only_the_fields_its_patterns_test():
    def keep(ctx):
        ctx.conclude("high", score=ctx.fact("s")["score"], note="not tested by any pattern")

    rules = [
        Rule("TOY-HIGH", "high", when={"s": fact("subject", score=ge(5))}, action=keep, concludes=("high",)),
        *chain_rules()[1:],
    ]
    t = Triager(toy_ruleset(rules))
    assert t.engine.compiled.tested == {"subject": ("score",), "blocker": (), "high": (), "block": ()}
    sent: list[dict] = []
    real = inference._dre

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def assert_fact(self, handle, text):
            sent.append(json.loads(text))
            return real.assert_fact(handle, text)

        def assert_facts(self, handle, text):
            sent.extend(json.loads(text))
            return real.assert_facts(handle, text)

    inference._dre = Spy()
    try:
        r = t.triage({"id": "x", "score": 7, "tags": ["a"]})
    finally:
        inference._dre = real
    facts = [f for f in sent if "type:$gate" not in f and "type:$open" not in f]
    assert facts == [  # the type travels as a property of its own name (`type_marker`)
        {"type:subject": 1, "score": 7, "id": "f1", "sid": "1"},
        {"type:tag": 1, "id": "f2", "sid": "1"},
        {"type:high": 1, "id": "f3", "sid": "1"},
    ]
    assert r.recommended("treat") is not None
    assert [e.rule for e in r.trace] == ["TOY-HIGH", "TOY-TREAT"]


def test_the_tested_fields_of_the_real_rule_set_cover_every_pattern():
    t = Triager()
    compiled = compile_rules(t.ruleset)
    for r in t.ruleset.rules:
        when, unless = t.ruleset.resolved[r.id]
        for p in (*when.values(), *unless.values()):
            assert {n for n, _ in p.tests} <= set(compiled.tested[p.type]), r.id


# ---------------------------------------------------------------- normalising, value by value


def _normalise_reference(raw):
    """The value-by-value reading of `normalise_fact` (the wrapper's loop until this change):
    every value through the scalar check, so every float rounded to four decimals, lists copied
    item by item."""
    from collections.abc import Mapping

    if not isinstance(raw, Mapping):
        raise FactError("a fact must be a mapping")
    ftype = raw.get("type")
    if type(ftype) is not str or not ftype:
        raise FactError("a fact needs a non-empty string 'type'")

    def scalar(value, key):  # one value, as the wrapper's scalar check (unchanged) gives it
        return inference._normalise_scalar(value, ftype, key)

    out, leaves = {}, 2
    for key, value in raw.items():
        if type(key) is not str or not key or key in ("id", "sid") or key[0] == "$" or key.startswith("type:"):
            raise FactError(f"fact {ftype}: key {key!r} is reserved or not a name")
        if type(value) in (list, tuple):
            out[key] = [scalar(v, key) for v in value]
            leaves += len(value) or 1
        elif value is None:
            raise FactError(f"fact {ftype}.{key}: None is not allowed; leave the field out")
        else:
            out[key] = scalar(value, key)
            leaves += 1
    if leaves > inference.MAX_FACT_PROPERTIES:
        raise FactError(f"fact {ftype}: {leaves} properties with id and sid, at most {inference.MAX_FACT_PROPERTIES}")
    return out


_SCALARS = st.one_of(
    st.text(max_size=3),
    st.text(min_size=250, max_size=260),
    st.booleans(),
    st.integers(min_value=-(2**54), max_value=2**54),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e16, max_value=1e16),
    st.integers(min_value=-(2**20), max_value=2**20).map(lambda n: n / 16),  # binary-exact decimals
    st.decimals(min_value=-1000, max_value=1000, places=5, allow_nan=False).map(float),
    st.sampled_from([0.0, -0.0, 1e-05, 0.00005, 1e15, -1e15, 1e15 - 1, 9.99995, 0.0625, 2.0]),
    st.none(),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3), st.tuples(_SCALARS, _SCALARS))
_KEYS = st.one_of(
    st.sampled_from(["a", "b", "score", "key", "id", "sid", "$x", "type:t", "", "weeks"]),
    st.text(min_size=1, max_size=4),
    st.integers(0, 3),
)


def _outcome(fn, *args):
    try:
        got = fn(*args)
    except FactError as exc:
        return ("error", str(exc))
    return ("fact", got, list(got), [type(v) for v in got.values()], [repr(v) for v in got.values()])


@settings(max_examples=1500, deadline=None)
@given(fields=st.dictionaries(_KEYS, _VALUES, max_size=8), width=st.integers(0, 70))
def test_normalise_fact_gives_what_the_value_by_value_reading_gives(fields, width):
    """Same fact (values, key order, types: 2 is not 2.0, -0.0 becomes 0) or the same error, for
    every kind of value: the one-pass normaliser takes shortcuts (binary-exact floats, lists of
    text), never a different answer."""
    raw = {"type": "finding", **fields}
    raw.update({f"w{i}": i for i in range(width)})
    assert _outcome(normalise_fact, raw) == _outcome(_normalise_reference, raw)
    if "type" not in fields and "key" not in fields and all(type(k) is str for k in fields):
        # and a conclusion with the same fields is the same fact (or the same error)
        key = raw.pop("key", None)
        body = {k: v for k, v in raw.items() if k != "type"}
        whole = {"type": "finding", **body, **({} if key is None else {"key": key})}
        assert _outcome(_normalise_fields, "finding", body, key) == _outcome(_normalise_reference, whole)


# ---------------------------------------------------------------- ordering the result


def _one_rule(action, emits=("treat", "other")):
    return Triager(toy_ruleset([Rule("TOY-ACT", "acts", when={"s": fact("subject")}, action=action, emits=emits)]))


def test_a_withheld_kind_that_is_not_one_of_the_four_fails_the_triage_naming_the_rule():
    """The result is ordered by looking each kind up; a kind outside the four is named, not a KeyError."""

    def odd(ctx):
        ctx.recommend("other", ["fine"])
        ctx.withhold("treat", "maybe", "an odd kind")

    for build in ("model", "data"):
        t = _one_rule(odd)
        with pytest.raises(inference.InferenceError, match=r"TOY-ACT.*'maybe' is not one of contraindicated"):
            t.triage({"id": "x", "score": 1}) if build == "model" else t.triage_data({"id": "x", "score": 1})


def test_a_recommendation_in_a_category_the_rule_set_lacks_fails_the_triage_naming_the_rule():
    def rec(ctx):
        ctx.withhold("other", "bogus", "checked first")  # a bad kind and a bad category: the kind is named
        ctx.recommend("treat", ["fine"])

    t = _one_rule(rec)
    t.ruleset.interventions["treat"] = dataclasses.replace(t.ruleset.interventions["treat"], category="nowhere")
    with pytest.raises(inference.InferenceError, match=r"'bogus' is not one of"):
        t.triage({"id": "x", "score": 1})

    def rec_only(ctx):
        ctx.recommend("treat", ["fine"])

    t = _one_rule(rec_only)
    t.ruleset.interventions["treat"] = dataclasses.replace(t.ruleset.interventions["treat"], category="nowhere")
    with pytest.raises(inference.InferenceError, match=r"TOY-ACT.*category 'nowhere' is not a category"):
        t.triage({"id": "x", "score": 1})


def test_an_intervention_both_recommended_and_withheld_fails_the_triage():
    def both(ctx):
        ctx.recommend("treat", ["yes"])
        ctx.withhold("treat", "deferred", "and no")

    with pytest.raises(inference.InferenceError, match="recommended and not recommended at once: treat"):
        _one_rule(both).triage({"id": "x", "score": 1})


def test_the_result_cites_what_every_fired_rule_and_every_recommendation_rests_on():
    def rec(ctx):
        ctx.recommend("treat", ["yes"])

    rule = Rule("TOY-ACT", "acts", when={"t": fact("tag")}, action=rec, emits=("treat",), citations=("rule-cite",))
    rs = toy_ruleset([rule])
    rs.citations["rule-cite"] = {"title": "rule"}
    r = Triager(rs).triage({"id": "x", "score": 1, "tags": ["a", "b"]})  # fires twice
    assert list(r.citations) == ["rule-cite", "toy-cite"]
    assert [e.rule for e in r.trace] == ["TOY-ACT", "TOY-ACT"]


# ---------------------------------------------------------------- matches read once


def test_a_match_text_is_read_once_and_what_it_says_is_the_same_when_read_again(monkeypatch):
    """On the vendored build a match names facts by id only, so the same text recurs across
    patients and is kept once parsed (`Engine.matches`). With the store off every text is parsed:
    results, trace included, are the same."""
    from bench.cohort import cohort

    patients = list(cohort(300))
    t = Triager()
    assert all(s._id_matches for s in t.engine._idle_sessions()) == inference.ID_MATCHES
    kept = [t.triage(p).model_dump_json() for p in patients]
    if inference.ID_MATCHES:
        assert 0 < len(t.engine.matches) <= inference._MAX_MATCHES
        for text, (rule_id, plan, when) in list(t.engine.matches.items())[:80]:
            ((rid, whole),) = json.loads(text).items()
            assert rid == rule_id
            if plan is None:
                assert rule_id == "_session_open" and when == ()
                continue
            assert plan is t.engine.plans[rule_id]
            assert [(alias, fid) for alias, fid, _ in when] == [(alias, whole[alias]["id"]) for alias, _ in plan.when]
            assert set(whole) == {alias for alias, _, _ in when} | {"stratum_gate"}
    monkeypatch.setattr(inference, "_MAX_MATCHES", 0)
    t = Triager()
    assert [t.triage(p).model_dump_json() for p in patients] == kept
    assert t.engine.matches == {}


def test_the_store_of_match_texts_is_bounded(monkeypatch):
    from bench.cohort import cohort

    monkeypatch.setattr(inference, "_MAX_MATCHES", 25)
    t = Triager()
    for p in cohort(100):
        t.triage(p)
    assert len(t.engine.matches) == (25 if inference.ID_MATCHES else 0)


def test_whole_fact_matches_are_never_stored(monkeypatch):
    """A session without id-only matches (upstream's whole facts: the text carries patient values)
    parses every match and stores none."""
    from bench.cohort import cohort

    monkeypatch.setattr(inference, "ID_MATCHES", False)
    t = Triager()
    assert not any(s._id_matches for s in t.engine._idle_sessions())
    whole = [t.triage(p).model_dump_json() for p in cohort(50)]
    assert t.engine.matches == {}
    monkeypatch.undo()
    assert [Triager().triage(p).model_dump_json() for p in cohort(50)] == whole


def test_a_match_naming_a_fact_the_wrapper_never_sent_fails_the_triage(monkeypatch):
    """A stored reading is as strict as a fresh one: an alias the match lacks, or an id the wrapper
    never issued, fails the triage closed (InferenceError), stored or not."""
    t = Triager(toy_ruleset(chain_rules()))
    real = inference._dre

    class Lying:
        def __getattr__(self, name):
            fn = getattr(real, name)
            if name == "complete_and_start_action" or name == "start_action_for_state":

                def lie(*a):
                    r = fn(*a)
                    if isinstance(r, str) and r:
                        return r.replace('"f1"', '"f999"')
                    if r and isinstance(r, (tuple, list)) and isinstance(r[1], str):
                        return (r[0], r[1].replace('"f1"', '"f999"'), *r[2:])
                    return r

                return lie
            return fn

    monkeypatch.setattr(inference, "_dre", Lying())
    with pytest.raises(inference.InferenceError, match="KeyError"):
        t.triage({"id": "x", "score": 7})


def test_a_tested_field_that_cannot_be_written_as_utf8_fails_before_any_state_exists():
    """A lone surrogate in a field some pattern tests cannot be sent to durable-rules: FactError,
    raised while the facts are registered (before the session holds a state), not a crash in
    the C core; a fact type no pattern names is sent as its type alone."""
    rule = Rule("TOY-TAG", "tag", when={"t": fact("tag", name="a")}, action=lambda c: None)
    engine = Triager(toy_ruleset([rule])).engine
    with pytest.raises(FactError, match="could not be serialised as UTF-8 JSON"):
        engine.run([{"type": "tag", "key": "x", "name": "\ud800"}])
    assert engine.live_sessions() == 0
    out = engine.run([{"type": "untested", "note": "\ud800"}, {"type": "tag", "key": "a", "name": "a"}])
    assert out.fired == ["TOY-TAG"] and out.facts[0]["note"] == "\ud800"
