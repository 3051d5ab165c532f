"""features/examples.feature: what each shared example patient must give (issues 2 and 3), run by pytest-bdd."""

from __future__ import annotations

import copy
from typing import Any

from pytest_bdd import scenarios, then

from cli import result_json
from engine import Result, Triager

scenarios("examples.feature")


def _reversed_lists(value: Any) -> Any:
    """The same patient with every list (at any depth) in reverse order."""
    if isinstance(value, dict):
        return {k: _reversed_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reversed_lists(v) for v in reversed(value)]
    return value


@then("every graded recommendation carries a SORT grade, a GRADE certainty and citations that resolve")
def graded_evidence(result: Result) -> None:
    """Every recommendation but the urgent referral (a safety action, not a graded treatment)
    has SORT, certainty and at least one citation, each present in the result's citation library."""
    graded = [r for r in result.recommendations if r.category != "urgent_referral"]
    assert graded, "no graded recommendation at all"
    for rec in graded:
        assert rec.evidence is not None, rec.intervention
        assert rec.evidence.sort in ("A", "B", "C"), rec.intervention
        assert rec.evidence.certainty in ("high", "moderate", "low", "very_low"), rec.intervention
        assert rec.evidence.citations, rec.intervention
        missing = [c for c in rec.evidence.citations if c not in result.citations]
        assert not missing, (rec.intervention, missing)


@then("triaging it again with a fresh triager gives byte-identical JSON")
def same_json_twice(patient: dict, result: Result) -> None:
    """Two triages of the same input, in two triagers, print the same bytes."""
    again = Triager().triage(copy.deepcopy(patient))
    assert result_json(again).encode("utf-8") == result_json(result).encode("utf-8")


@then("triaging it with every list reversed gives byte-identical JSON")
def order_independent(patient: dict, result: Result) -> None:
    """The order of list items in the input does not change the result."""
    flipped = _reversed_lists(patient)
    assert result_json(Triager().triage(flipped)) == result_json(result)
