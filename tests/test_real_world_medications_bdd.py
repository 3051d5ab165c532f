"""features/real_world_medications.feature: medications and records as clinics and EHRs send them
(CLINICAL.md section 3, rule set 1.2), run by pytest-bdd."""

from pytest_bdd import scenarios

scenarios("real_world_medications.feature")
