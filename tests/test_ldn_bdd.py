"""features/ldn.feature: low-dose naltrexone as an adjunct (CLINICAL.md section 4), run by pytest-bdd."""

from pytest_bdd import parsers, scenarios, then

from engine import Result

scenarios("ldn.feature")


@then(parsers.parse("the evidence for {intervention:w} is indirect"))
def evidence_indirect(result: Result, intervention: str) -> None:
    """The recommendation says its evidence comes from other populations."""
    rec = result.recommended(intervention)
    assert rec is not None and rec.evidence is not None
    assert rec.evidence.directness.startswith("indirect"), rec.evidence.directness
