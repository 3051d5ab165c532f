"""features/pulsed_radiofrequency.feature: ultrasound-guided pulsed radiofrequency, run by pytest-bdd.

Every step is shared (tests/conftest.py)."""

from pytest_bdd import scenarios

scenarios("pulsed_radiofrequency.feature")
