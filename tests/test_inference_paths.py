"""The wrapper's shortcuts (issue: speed) give what the long way gives.

* A rule's `conclude(...)` builds its fact in one pass (`_normalise_fields`): the same fact, key
  order and errors as `normalise_fact({"type": ..., **fields, "key": key})`.
* durable-rules is sent only the fields some pattern tests (plus type, id and session id): the
  rules read the whole fact from the wrapper's copy, so what they see is unchanged.
"""

from __future__ import annotations

import json

import pytest

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
