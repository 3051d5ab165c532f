"""features/what_would_change.feature: what would change a withheld escalation, run by pytest-bdd.

The changes are searched through the embedding API (`engine.what_would_change`), and each answer
is checked by applying its edits to the patient (tests/test_changes.py's applier) and triaging again.
"""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, scenarios, then, when

from engine import Result, default_triager, what_would_change
from tests.test_changes import apply_edits

scenarios("what_would_change.feature")


@when("the patient is triaged with what would change", target_fixture="result")
def triaged_with_changes(patient: dict[str, Any]) -> Result:
    t = default_triager()
    return what_would_change(t, patient, t.triage(patient))


def _changes(result: Result, intervention: str) -> list | None:
    entries = [n for n in result.not_recommended if n.intervention == intervention]
    assert entries, [n.intervention for n in result.not_recommended]
    return entries[0].what_would_change


@then(parsers.parse('the nearest change for {intervention:w} is "{text}"'))
def nearest_change(result: Result, intervention: str, text: str) -> None:
    changes = _changes(result, intervention)
    assert changes, changes
    assert changes[0].text == text, [c.text for c in changes]


@then(parsers.parse("every change for {intervention:w}, applied to the patient, makes it recommended"))
def every_change_works(result: Result, patient: dict[str, Any], intervention: str) -> None:
    changes = _changes(result, intervention)
    assert changes, changes
    for c in changes:
        assert default_triager().triage(apply_edits(patient, c.edits)).recommended(intervention) is not None, c


@then(parsers.parse("no change within the pathway makes {intervention:w} an option"))
def no_change(result: Result, intervention: str) -> None:
    assert _changes(result, intervention) == []
