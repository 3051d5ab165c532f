"""How long the FHIR mapper takes per Bundle (issue "FHIR as EHRs code it", point 8).

    python -m bench.fhir_mapping            # median µs per Bundle for each tests/fhir example
    python -m bench.fhir_mapping --rounds 2000

Not a test: it prints figures (no timing assertion anywhere in the test suite). For each example
Bundle of tests/fhir/ it reports the median time of `FhirMapper.map` (the default path, which
checks the types of the fields it reads on the parsed JSON) and, when the mapper offers it, of
the strict path (`strict=True`: full fhir.resources validation first, as `triage --strict-fhir`
does). Mapping only: the triage itself is not timed here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/fhir_mapping.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.channels.fhir import default_mapper

FHIR_DIR = Path(__file__).resolve().parents[1] / "tests" / "fhir"
EXAMPLES = ("neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid")


def typical_bundle() -> dict:
    """A 34-entry Bundle as an EHR sends it: opioid-user plus problems, drugs and procedures it codes."""
    data = json.loads((FHIR_DIR / "opioid-user.json").read_text(encoding="utf-8"))
    pid = data["entry"][0]["resource"]["id"]
    subject = {"reference": f"Patient/{pid}"}
    icd, sct, rx = (
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://snomed.info/sct",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
    )
    extra = []
    for i, (system, code) in enumerate(
        [
            (icd, "I10"),
            (sct, "38341003"),
            (icd, "E78.5"),
            (icd, "K21.9"),
            (icd, "E11.9"),
            (icd, "M79.7"),
            (sct, "195967001"),
            (icd, "Z79.4"),
        ]
    ):
        extra.append(
            {
                "resourceType": "Condition",
                "id": f"extra-c{i}",
                "subject": subject,
                "clinicalStatus": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                },
                "code": {"coding": [{"system": system, "code": code}]},
                "recordedDate": "2024-05-01",
            }
        )
    for i, (code, text) in enumerate(
        [
            ("197361", "amlodipine 5 MG Oral Tablet"),
            ("314076", "lisinopril 10 MG Oral Tablet"),
            ("617312", "atorvastatin 20 MG Oral Tablet"),
            ("197517", "clarithromycin 500 MG"),
            ("860975", "metformin hydrochloride 500 MG"),
            ("198211", "simvastatin 40 MG"),
        ]
    ):
        extra.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"extra-m{i}",
                "status": "active",
                "subject": subject,
                "medicationCodeableConcept": {"coding": [{"system": rx, "code": code}], "text": text},
                "effectivePeriod": {"start": "2024-01-01"},
            }
        )
    for i in range(2):
        extra.append(
            {
                "resourceType": "Observation",
                "id": f"extra-o{i}",
                "status": "final",
                "subject": subject,
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "valueQuantity": {
                    "value": 70 + i,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
                "effectiveDateTime": "2025-01-10",
            }
        )
    data["entry"] += [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in extra]
    return data


def _median_us(fn, rounds: int) -> float:
    for _ in range(min(50, rounds)):  # warm caches and lazy imports
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="timed runs per Bundle (default 1000)")
    args = parser.parse_args(argv)
    mapper = default_mapper()
    strict = "strict" in inspect.signature(mapper.map).parameters
    print(f"{'bundle':<24}{'entries':>8}{'default µs':>12}{'strict µs':>12}")
    medians, strict_medians = [], []
    bundles = {name: json.loads((FHIR_DIR / f"{name}.json").read_text(encoding="utf-8")) for name in EXAMPLES}
    bundles["typical (opioid-user+16)"] = typical_bundle()
    for name, data in bundles.items():
        default = _median_us(lambda data=data: mapper.map(data), args.rounds)
        medians.append(default)
        line = f"{name:<24}{len(data.get('entry', [])):>8}{default:>12.1f}"
        if strict:
            full = _median_us(lambda data=data: mapper.map(data, strict=True), max(50, args.rounds // 10))
            strict_medians.append(full)
            line += f"{full:>12.1f}"
        print(line)
    summary = f"{'median of medians':<32}{statistics.median(medians):>12.1f}"
    if strict_medians:
        summary += f"{statistics.median(strict_medians):>12.1f}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
