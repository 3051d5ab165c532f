"""features/ldn_eligibility.feature."""

from pytest_bdd import given, parsers, scenarios

scenarios("ldn_eligibility.feature")


@given(parsers.parse("the patient is aged {age:d}"))
def aged(patient: dict, age: int) -> None:
    patient["age"] = age
