"""features/fhir_input.feature: FHIR Bundles as EHRs code them, run by pytest-bdd.

The steps here build on the FHIR twins of the shared examples (tests/fhir/*.json) and triage the
Bundle through `triage_bundle`, exactly as the CLI does; the Then steps are the shared ones of
tests/conftest.py.
"""

from __future__ import annotations

import copy
from typing import Any

from pytest_bdd import given, parsers, scenarios, then, when
from test_fhir import RXNORM, add, bundle, condition, statement

from engine import Result, default_triager
from engine.channels.fhir import triage_bundle

scenarios("fhir_input.feature")

SYSTEMS = {"ICD-10-CM": "http://hl7.org/fhir/sid/icd-10-cm", "SNOMED CT": "http://snomed.info/sct"}
#: The reference date of the example Bundles (their timestamp).
REFERENCE = (2025, 1, 15)


@given(parsers.parse('the FHIR example patient "{name}"'), target_fixture="fhir_bundle")
def fhir_example(name: str) -> dict[str, Any]:
    """tests/fhir/<name>.json, the FHIR twin of a shared example patient."""
    return copy.deepcopy(bundle(name))


@given(parsers.parse("the chart has a condition coded {code} in {system}"))
def coded_condition(fhir_bundle: dict[str, Any], code: str, system: str) -> None:
    add(fhir_bundle, condition(code, SYSTEMS[system]))


@given(parsers.parse('a MedicationStatement for "{text}" (RxNorm {code}) stopped {days:d} days ago'))
def stopped_medication(fhir_bundle: dict[str, Any], text: str, code: str, days: int) -> None:
    from datetime import date, timedelta

    end = date(*REFERENCE) - timedelta(days=days)
    add(
        fhir_bundle,
        statement(
            {"coding": [{"system": RXNORM, "code": code}], "text": text},
            status="stopped",
            effectivePeriod={"start": (end - timedelta(weeks=4)).isoformat(), "end": end.isoformat()},
        ),
    )


@given(parsers.parse("a MedicationStatement coded only RxNorm {code}"))
def rxnorm_only(fhir_bundle: dict[str, Any], code: str) -> None:
    add(fhir_bundle, statement({"coding": [{"system": RXNORM, "code": code}]}))


@given("the medication search failed")
def medication_search_failed(fhir_bundle: dict[str, Any]) -> None:
    """The medication search came back as a searchset holding only an OperationOutcome."""
    fhir_bundle["entry"] = [e for e in fhir_bundle["entry"] if e["resource"]["resourceType"] != "MedicationStatement"]
    fhir_bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [{"relation": "self", "url": "https://ehr.example.org/fhir/MedicationStatement?patient=x"}],
                "entry": [
                    {
                        "resource": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "timeout"}],
                        },
                        "search": {"mode": "outcome"},
                    }
                ],
            }
        }
    )


@when("the Bundle is triaged", target_fixture="result")
def triaged_bundle(fhir_bundle: dict[str, Any]) -> Result:
    return triage_bundle(default_triager(), fhir_bundle)


@then(parsers.parse('the unknowns say "{text}"'))
def unknowns_say(result: Result, text: str) -> None:
    reasons = [u.reason for u in result.unknowns]
    assert any(text in r for r in reasons), reasons
