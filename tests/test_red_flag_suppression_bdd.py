"""features/red_flag_suppression.feature: red flags suppress every escalation, run by pytest-bdd.

Every step is shared (tests/conftest.py)."""

from pytest_bdd import scenarios

scenarios("red_flag_suppression.feature")
