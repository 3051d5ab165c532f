"""features/ldn_contraindications.feature: LDN contraindications and cautions, run by pytest-bdd."""

from pytest_bdd import scenarios, then

from engine import Result

scenarios("ldn_contraindications.feature")


@then("LDN is offered with no caution")
def ldn_without_caution(result: Result) -> None:
    """LDN is recommended and its details list no caution."""
    rec = result.recommended("low_dose_naltrexone")
    assert rec is not None
    assert rec.details.get("cautions") == [], rec.details.get("cautions")
