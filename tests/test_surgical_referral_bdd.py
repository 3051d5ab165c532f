"""features/surgical_referral.feature: surgical referral (CLINICAL.md section 5), run by pytest-bdd.

Every step is shared (tests/conftest.py)."""

from pytest_bdd import scenarios

scenarios("surgical_referral.feature")
