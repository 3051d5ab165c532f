"""One reader of a test outside durable-rules (issue 13): `Test.evaluate`, which explain uses, agrees
with durable-rules for every operator, at, below and above each bound, for the wrong type and for a
missing field. Each case compiles a one-rule rule set and asks durable-rules whether it fires."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import Rule, between, fact, ge, gt, has, le, lt, ne, one_of
from engine.kernel.inference import Engine
from engine.kernel.rulebase import OPS
from engine.kernel.rulebase import Test as Comparison
from tests.toy import toy_ruleset

MISSING = object()

#: (test, the values it is asked about)
CASES: list[tuple[Comparison, list[Any]]] = [
    # A string against a number or a boolean: never equal, never ordered (the vendored build; upstream
    # compared "5" with 5 over a length it never set, so the answer changed from build to build).
    (Comparison("==", 5), [4, 5, 5.0, 6, "5", "5.0", True, MISSING]),
    (Comparison("==", 2.5), [2.5, "2.5", "2.500000", MISSING]),
    (Comparison("==", "5"), [5, 5.0, "5", MISSING]),
    (Comparison("==", True), [True, "true", 1, MISSING]),
    (Comparison("==", "none"), ["none", "None", "", "partial", 0, MISSING]),
    (ne(5), [4, 5, 6, 5.0, "5", "6", MISSING]),
    (ne("yes"), ["yes", "no", "unknown", 1, True, MISSING]),
    (lt(12), [11.9, 12, 12.1, -1, 0, "11", "13", MISSING]),
    (le(12), [11.9, 12, 12.1, MISSING]),
    (gt(24), [23.9, 24, 24.1, MISSING]),
    (ge(6), [5.9, 6, 6.0, 6.1, 0, MISSING]),
    (ge(25.0), [24.9, 24.95, 25, 25.0, 25.1, MISSING]),
    (one_of("none", "partial", "worsened"), ["none", "partial", "worsened", "resolved", "", MISSING]),
    (one_of(1, 2), [0, 1, 2, 3, MISSING]),
    (between(12, 55), [11, 12, 30, 55, 55.5, 56, MISSING]),
    (between(0.5, 0.5), [0.4, 0.5, 0.6, MISSING]),
    (has("burning"), [["burning"], ["tingling", "burning"], ["tingling"], [], MISSING]),
]


def test_every_operator_is_covered() -> None:
    assert {t.op for t, _ in CASES} == set(OPS)


def _fires(test: Comparison, value: Any) -> bool:
    """Whether durable-rules fires a rule whose one pattern is `subject(v <test>)` for a fact with `value`."""
    fired: list[int] = []
    rule = Rule("TOY-EVAL", "evaluate", when={"s": fact("subject", v=test)}, action=lambda c: fired.append(1))
    engine = Engine(toy_ruleset([rule]))
    f: dict[str, Any] = {"type": "subject"}
    if value is not MISSING:
        f["v"] = value
    engine.run([f])
    return bool(fired)


@pytest.mark.parametrize(
    "test, value",
    [(t, v) for t, values in CASES for v in values],
    ids=lambda x: x.describe("v") if isinstance(x, Comparison) else ("missing" if x is MISSING else repr(x)),
)
def test_evaluate_agrees_with_durable_rules(test: Comparison, value: Any) -> None:
    expected = test.evaluate(None if value is MISSING else value)
    assert _fires(test, value) == expected
