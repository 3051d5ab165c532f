"""Build the FHIR R4 Bundle twin of each shared example patient, with fhir.resources.

    python tests/fhir/build_bundles.py          # rewrites tests/fhir/<example>.json

Each Bundle says in FHIR what ../shared/examples/<example>.json says in the CONTRACT.md format.
The codes are written out here by hand (not taken from rules/fhir_map.toml), so the tests
compare two independent statements of the same patient. tests/test_fhir.py checks that the
committed files are exactly what this script builds.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import example_path  # noqa: E402 - after the path is set

EXAMPLES = ("neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid")
#: The moment every example Bundle was "assembled": the reference date for ages and durations.
TIMESTAMP = "2025-01-15T09:00:00Z"
TODAY = date(2025, 1, 15)

LOCAL = "https://forefoot-cds.example/fhir/CodeSystem/"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

#: What each code of the examples is in FHIR.
COMORBIDITY = {
    "diabetes": ("E11.9", "Type 2 diabetes mellitus without complications"),
    "rheumatoid_arthritis": ("M06.9", "Rheumatoid arthritis, unspecified"),
    "peripheral_neuropathy": ("G62.9", "Polyneuropathy, unspecified"),
}
RED_FLAG = {"suspected_charcot": ("M14.671", "Charcot's joint, right ankle and foot")}
SIDE = {
    "left": [("M77.42", "Metatarsalgia, left foot")],
    "right": [("M77.41", "Metatarsalgia, right foot")],
    "both": [("M77.41", "Metatarsalgia, right foot"), ("M77.42", "Metatarsalgia, left foot")],
}
RXCUI = {"tramadol": "10689", "metformin": "6809", "sertraline": "36437", "methotrexate": "6851", "insulin": "5856"}


def birth_date(age: int) -> str:
    """A birthday on 1 June: the patient is `age` on TODAY (15 January)."""
    return date(TODAY.year - age - 1, 6, 1).isoformat()


def ref(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def condition(
    pid: str, rid: str, code: str, display: str, onset: date | None = None, verification: str = "confirmed"
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": verification}]},
        "code": {"coding": [{"system": ICD10CM, "code": code, "display": display}]},
        "subject": ref(pid),
    }
    if onset is not None:
        res["onsetDateTime"] = onset.isoformat()
    return res


def observation(pid: str, rid: str, system: str, code: str, display: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": ref(pid),
        "effectiveDateTime": TODAY.isoformat(),
        **value,
    }


def bundle_for(p: dict[str, Any]) -> dict[str, Any]:
    pid = p["id"]
    res: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "gender": p["sex"], "birthDate": birth_date(p["age"])}
    ]
    onset = TODAY - timedelta(weeks=p["pain"]["duration_weeks"])
    for i, (code, display) in enumerate(SIDE[p["pain"]["side"]]):
        res.append(condition(pid, f"metatarsalgia-{i}", code, display, onset))
    for code in p["comorbidities"]:
        res.append(condition(pid, f"comorbidity-{code.replace('_', '-')}", *COMORBIDITY[code]))
    for code in p["red_flags"]:
        res.append(condition(pid, f"red-flag-{code.replace('_', '-')}", *RED_FLAG[code], verification="provisional"))
    res.append(
        observation(
            pid,
            "pain-severity",
            LOINC,
            "72514-3",
            "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
            valueInteger=p["pain"]["severity"],
        )
    )
    res.append(
        observation(
            pid,
            "body-weight",
            LOINC,
            "29463-7",
            "Body weight",
            valueQuantity={"value": p["weight_kg"], "unit": "kg", "system": UCUM, "code": "kg"},
        )
    )
    res.append(
        observation(
            pid,
            "body-height",
            LOINC,
            "8302-2",
            "Body height",
            valueQuantity={"value": p["height_cm"], "unit": "cm", "system": UCUM, "code": "cm"},
        )
    )
    if "pregnant" in p:
        answer = ("77386006", "Pregnant") if p["pregnant"] else ("60001007", "Not pregnant")
        res.append(
            observation(
                pid,
                "pregnancy-status",
                LOINC,
                "82810-3",
                "Pregnancy status",
                valueCodeableConcept={"coding": [{"system": SNOMED, "code": answer[0], "display": answer[1]}]},
            )
        )
    for item in p["pain"]["neuropathic_features"]:
        res.append(
            observation(
                pid, f"dn4-{item.replace('_', '-')}", LOCAL + "dn4-item", item, f"DN4: {item}", valueBoolean=True
            )
        )
    for finding in p["exam_findings"]:
        res.append(
            observation(
                pid, f"exam-{finding.replace('_', '-')}", LOCAL + "exam-finding", finding, finding, valueBoolean=True
            )
        )
    for name in p["medications"]:
        res.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"med-{name}",
                "status": "active",
                "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": RXCUI[name], "display": name}]},
                "subject": ref(pid),
            }
        )
    end = TODAY - timedelta(weeks=1)
    for t in p["prior_treatments"]:
        start = end - timedelta(weeks=t["weeks"])
        res.append(
            {
                "resourceType": "Procedure",
                "id": f"tried-{t['treatment'].replace('_', '-')}",
                "status": "completed",
                "code": {"coding": [{"system": LOCAL + "intervention", "code": t["treatment"]}]},
                "subject": ref(pid),
                "performedPeriod": {"start": start.isoformat(), "end": end.isoformat()},
                "outcome": {"coding": [{"system": LOCAL + "treatment-response", "code": t["response"]}]},
            }
        )
    data = {
        "resourceType": "Bundle",
        "id": f"bundle-{pid}",
        "type": "collection",
        "timestamp": TIMESTAMP,
        "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in res],
    }
    return Bundle.model_validate(data).model_dump(mode="json", exclude_none=True)


PREFETCH = {
    "conditions": "Condition",
    "observations": "Observation",
    "medicationStatements": "MedicationStatement",
    "medicationRequests": "MedicationRequest",
    "procedures": "Procedure",
}
#: The example whose CDS Hooks patient-view request is committed too (for the README's curl call).
HOOK_EXAMPLE = "neuropathic-persistent"


def hook_request_for(bundle: dict[str, Any]) -> dict[str, Any]:
    """A CDS Hooks patient-view request whose prefetch is the Bundle, split as an EHR would fetch it."""
    patient = bundle["entry"][0]["resource"]
    prefetch: dict[str, Any] = {"patient": patient}
    for key, rtype in PREFETCH.items():
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": bundle["timestamp"]},
            "entry": [
                {**e, "search": {"mode": "match"}} for e in bundle["entry"] if e["resource"]["resourceType"] == rtype
            ],
        }
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://ehr.example.org/fhir",
        "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
        "prefetch": prefetch,
    }


def build_hook_request(name: str = HOOK_EXAMPLE) -> str:
    return json.dumps(hook_request_for(json.loads(build(name))), indent=2, ensure_ascii=False) + "\n"


def build(name: str) -> str:
    example = json.loads(example_path(name).read_text(encoding="utf-8"))
    return json.dumps(bundle_for(example), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name in EXAMPLES:
        (HERE / f"{name}.json").write_text(build(name), encoding="utf-8")
        print(f"wrote tests/fhir/{name}.json")
    (HERE / f"hook-request-{HOOK_EXAMPLE}.json").write_text(build_hook_request(), encoding="utf-8")
    print(f"wrote tests/fhir/hook-request-{HOOK_EXAMPLE}.json")


if __name__ == "__main__":
    main()
