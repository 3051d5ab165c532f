"""features/safety.feature: the red-flag safety screen (CLINICAL.md section 1), run by pytest-bdd."""

from pytest_bdd import scenarios, then

from engine import Result

scenarios("safety.feature")


@then("no red flag is reported")
def no_red_flag(result: Result) -> None:
    """The result's red_flags list is empty."""
    assert result.red_flags == []
