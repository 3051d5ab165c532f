"""features/weight_management.feature."""

from pytest_bdd import scenarios

scenarios("weight_management.feature")
