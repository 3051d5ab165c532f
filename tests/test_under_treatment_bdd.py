"""features/under_treatment.feature: patients already under treatment (CLINICAL.md sections 1-5,
rule set 1.2), run by pytest-bdd."""

from pytest_bdd import scenarios

scenarios("under_treatment.feature")
