"""Clinic-scale benchmark of the triage engine (issue 5): `python -m bench`. Not part of the tests."""
