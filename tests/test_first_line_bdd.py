"""features/first_line.feature: first-line conservative care (CLINICAL.md section 2), run by pytest-bdd.

Every step is shared (tests/conftest.py)."""

from pytest_bdd import scenarios

scenarios("first_line.feature")
