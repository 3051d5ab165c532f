"""features/findings.feature: the derived findings of CLINICAL.md section 3, run by pytest-bdd.

Every step is shared (tests/conftest.py)."""

from pytest_bdd import scenarios

scenarios("findings.feature")
