"""FHIR R4 input: Bundles mapped by code to the patient of CONTRACT.md (engine/channels/fhir.py, rules/fhir_map.toml)."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, get_args

import pytest
from conftest import load_example
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from cli import app
from engine import InputError, RuleSetError, default_triager
from engine.channels.fhir import (
    FhirMapper,
    NotApplicable,
    bundle_from_prefetch,
    default_mapper,
    load_mapping,
    mapping_from,
    triage_bundle,
)
from rules.fhir import FHIR_MAPPING

FHIR_DIR = Path(__file__).resolve().parent / "fhir"


def _builder() -> Any:
    """tests/fhir/build_bundles.py, loaded by path (a package named `fhir` would shadow fhir.resources)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_bundles", FHIR_DIR / "build_bundles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BUILD = _builder()
EXAMPLES, build = _BUILD.EXAMPLES, _BUILD.build
LOCAL = "https://forefoot-cds.example/fhir/CodeSystem/"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
runner = CliRunner()


def bundle(name: str = "new-onset") -> dict[str, Any]:
    return json.loads((FHIR_DIR / f"{name}.json").read_text(encoding="utf-8"))


def add(b: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    pid = next(e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
    resource = {"subject": {"reference": f"Patient/{pid}"}, **resource}
    b["entry"].append({"resource": resource})
    return b


def drop(b: dict[str, Any], resource_type: str) -> dict[str, Any]:
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] != resource_type]
    return b


def condition(
    code: str, system: str = ICD, clinical: str | None = "active", verification: str | None = "confirmed", **extra: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Condition", "code": {"coding": [{"system": system, "code": code}]}, **extra}
    if clinical:
        res["clinicalStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        }
    if verification:
        res["verificationStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]
        }
    return res


def observation(system: str, code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        **value,
    }


def statement(concept: dict[str, Any] | None = None, status: str = "active", **extra: Any) -> dict[str, Any]:
    res = {"resourceType": "MedicationStatement", "status": status, **extra}
    if concept is not None:
        res["medicationCodeableConcept"] = concept
    return res


def procedure(code: str, start: str, end: str | None, outcome: str | None, status: str = "completed") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "status": status,
        "code": {"coding": [{"system": LOCAL + "intervention", "code": code}]},
        "performedPeriod": {"start": start, **({"end": end} if end else {})},
    }
    if outcome:
        res["outcome"] = {"coding": [{"system": LOCAL + "treatment-response", "code": outcome}]}
    return res


def mapped(b: dict[str, Any], **kw: Any):
    return default_mapper().map(b, **kw)


def fields_of(err: InputError) -> str:
    return " | ".join(f"{p.field}: {p.problem}" for p in err.problems)


# ------------------------------------------------------------------ the example Bundles


@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_bundle_is_what_the_builder_makes(name: str) -> None:
    """tests/fhir/<example>.json is exactly what tests/fhir/build_bundles.py builds from the example."""
    assert (FHIR_DIR / f"{name}.json").read_text(encoding="utf-8") == build(name)


def test_committed_hook_request_is_what_the_builder_makes() -> None:
    """tests/fhir/hook-request-<example>.json (used by the README's curl call) is what the builder makes."""
    path = FHIR_DIR / f"hook-request-{_BUILD.HOOK_EXAMPLE}.json"
    assert path.read_text(encoding="utf-8") == _BUILD.build_hook_request()


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_bundle_is_valid_fhir(name: str) -> None:
    """Each committed Bundle validates with fhir.resources and holds only the resource types the mapping reads."""
    b = Bundle.model_validate(bundle(name))
    kinds = {e.resource.get_resource_type() for e in b.entry}
    assert kinds <= {"Patient", "Condition", "Observation", "MedicationStatement", "Procedure"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_bundle_triages_like_its_json_form(name: str) -> None:
    """The FHIR twin of a shared example gives the same result, byte for byte, as the example JSON, but
    that a reason naming a medication the Bundle codes also gives its RxNorm code ("tramadol (RxNorm
    10689)"): the Bundle says more than the JSON."""
    t = default_triager()
    from_json = t.triage(load_example(name)).model_dump(mode="json")
    from_fhir = triage_bundle(t, bundle(name)).model_dump(mode="json")
    assert without_codes(from_fhir) == from_json


def without_codes(result: dict) -> dict:
    """`result` with the ' (RxNorm N)' a reason adds for a coded medication taken out."""
    return json.loads(re.sub(r" \(RxNorm [0-9]+\)", "", json.dumps(result, ensure_ascii=False)))


def test_cli_recognises_a_bundle_without_being_told() -> None:
    """`triage FILE --format json` on a Bundle prints the same result as on the example JSON."""
    fhir = runner.invoke(app, ["triage", str(FHIR_DIR / "opioid-user.json"), "--format", "json", "--no-changes"])
    plain = runner.invoke(
        app, ["triage", "-", "--format", "json", "--no-changes"], input=json.dumps(load_example("opioid-user"))
    )
    assert fhir.exit_code == 0, fhir.stderr
    assert without_codes(json.loads(fhir.stdout)) == json.loads(plain.stdout)
    assert "tramadol (RxNorm 10689)" in fhir.stdout
    # what would change each withheld option is searched on the patient the Bundle maps to: the same
    # changes in the same words (the edits keep the medication's RxNorm code from the Bundle)
    fhir = runner.invoke(app, ["triage", str(FHIR_DIR / "opioid-user.json"), "--format", "json", "--changes"])
    plain = runner.invoke(
        app, ["triage", "-", "--format", "json", "--changes"], input=json.dumps(load_example("opioid-user"))
    )

    def texts(out: str) -> dict:
        return {
            n["intervention"]: [c["text"] for c in n["what_would_change"]]
            for n in json.loads(out)["not_recommended"]
            if "what_would_change" in n
        }

    assert texts(fhir.stdout) == texts(plain.stdout)
    assert texts(fhir.stdout)["low_dose_naltrexone"]


def test_cli_input_fhir_rejects_a_contract_patient() -> None:
    """`--input fhir` with a CONTRACT.md patient exits 2 saying a Bundle was expected."""
    res = runner.invoke(app, ["triage", "-", "--input", "fhir"], input=json.dumps(load_example("new-onset")))
    assert res.exit_code == 2
    assert "Bundle" in res.stderr


def test_cli_as_of_is_for_fhir_only() -> None:
    """`--as-of` with a CONTRACT.md patient is a usage error (exit 2), not silently ignored."""
    res = runner.invoke(app, ["triage", "-", "--as-of", "2025-01-01"], input=json.dumps(load_example("new-onset")))
    assert res.exit_code == 2
    assert "--as-of" in res.stderr


# ------------------------------------------------------------------ reference date and Patient


def test_age_is_computed_at_the_bundle_timestamp() -> None:
    """Age comes from birthDate at Bundle.timestamp (38 for new-onset on 2025-01-15)."""
    assert mapped(bundle()).patient["age"] == 38


def test_as_of_overrides_the_bundle_timestamp() -> None:
    """An explicit as-of date moves ages and durations: a year later the patient is a year older."""
    m = mapped(bundle(), as_of=date(2026, 1, 15))
    assert m.patient["age"] == 39
    assert m.patient["pain"]["duration_weeks"] == pytest.approx(3 + 365 / 7, abs=0.05)


def test_meta_last_updated_is_the_fallback_reference_date() -> None:
    """Without a timestamp, Bundle.meta.lastUpdated is the reference date."""
    b = bundle()
    del b["timestamp"]
    b["meta"] = {"lastUpdated": "2026-01-15T00:00:00Z"}
    assert mapped(b).patient["age"] == 39


def test_no_reference_date_is_refused() -> None:
    """A Bundle with neither timestamp nor meta.lastUpdated (and no as-of) is refused, never dated by the clock."""
    b = bundle()
    del b["timestamp"]
    with pytest.raises(InputError) as exc:
        mapped(b)
    assert "Bundle.timestamp" in fields_of(exc.value)


def test_partial_birth_date_that_fixes_the_age_is_accepted() -> None:
    """A birthDate of only a year and month is enough when the age is the same for every day of that month."""
    b = bundle()
    b["entry"][0]["resource"]["birthDate"] = "1986-06"
    assert mapped(b).patient["age"] == 38


def test_partial_birth_date_that_leaves_the_age_open_is_refused() -> None:
    """A birthDate of only a year is refused when the age could be either of two values."""
    b = bundle()
    b["entry"][0]["resource"]["birthDate"] = "1986"
    with pytest.raises(InputError) as exc:
        mapped(b)
    assert "birthDate" in fields_of(exc.value)


def test_two_patients_are_refused() -> None:
    """A Bundle must describe exactly one Patient."""
    b = bundle()
    b["entry"].append({"resource": {"resourceType": "Patient", "id": "someone-else"}})
    with pytest.raises(InputError, match="Patient"):
        mapped(b)


def test_resource_of_another_patient_is_refused() -> None:
    """A resource whose subject is another patient is refused, naming it by its place in the Bundle."""
    b = bundle()
    b["entry"].append({"resource": {**condition("E11.9"), "subject": {"reference": "Patient/someone-else"}}})
    with pytest.raises(InputError) as exc:
        mapped(b)
    assert f"Bundle.entry[{len(b['entry']) - 1}].resource (Condition).subject" in fields_of(exc.value)
    assert "someone-else" not in fields_of(exc.value)


# ------------------------------------------------------------------ Conditions


def test_icd10_codes_match_by_prefix_and_can_mean_two_things() -> None:
    """E11.42 (type 2 diabetes with polyneuropathy) gives both diabetes and peripheral neuropathy."""
    m = mapped(add(bundle(), condition("E11.42")))
    assert m.patient["comorbidities"] == ["diabetes", "peripheral_neuropathy"]


def test_icd10_codes_match_without_dots() -> None:
    """An ICD-10-CM code sent without its dot (E1142) matches like E11.42."""
    assert mapped(add(bundle(), condition("E1142"))).patient["comorbidities"] == ["diabetes", "peripheral_neuropathy"]


def test_snomed_codes_match_exactly() -> None:
    """SNOMED CT 69896004 maps to rheumatoid arthritis; an unlisted SNOMED code maps to nothing."""
    m = mapped(
        add(
            add(bundle(), condition("69896004", "http://snomed.info/sct")),
            condition("6989600", "http://snomed.info/sct"),
        )
    )
    assert m.patient["comorbidities"] == ["rheumatoid_arthritis"]


def test_display_text_alone_maps_nothing() -> None:
    """A Condition with only a display saying 'rheumatoid arthritis' (no mapped code) adds no comorbidity."""
    res = {
        "resourceType": "Condition",
        "code": {
            "text": "rheumatoid arthritis",
            "coding": [{"system": "http://example.org/local", "code": "RA", "display": "Rheumatoid arthritis"}],
        },
    }
    assert "comorbidities" not in mapped(add(bundle(), res)).patient


def test_resolved_condition_is_not_counted() -> None:
    """A comorbidity with clinicalStatus resolved is not a current comorbidity."""
    assert "comorbidities" not in mapped(add(bundle(), condition("B16.9", clinical="resolved"))).patient


def test_condition_without_clinical_status_counts() -> None:
    """A Condition without clinicalStatus is taken as current (errs towards caution)."""
    assert mapped(add(bundle(), condition("K72.00", clinical=None))).patient["comorbidities"] == ["liver_failure"]


def test_provisional_red_flag_counts() -> None:
    """A provisional Charcot diagnosis is a red flag: suspicion is what the flag means."""
    m = mapped(add(bundle(), condition("M14.672", verification="provisional")))
    assert m.patient["red_flags"] == ["suspected_charcot"]


def test_provisional_comorbidity_is_unknown_not_counted() -> None:
    """An unconfirmed acute hepatitis is not counted, and is reported as unknown with what it blocks."""
    m = mapped(add(bundle(), condition("B17.10", verification="unconfirmed")))
    assert "comorbidities" not in m.patient
    assert [u["fact"] for u in m.unknowns] == ["fhir:comorbidities"]
    assert "low_dose_naltrexone" in m.unknowns[0]["blocks"]


def test_refuted_red_flag_is_ignored() -> None:
    """A refuted stress fracture is no red flag."""
    assert "red_flags" not in mapped(add(bundle(), condition("M84.374A", verification="refuted"))).patient


def test_red_flag_reaches_the_rules() -> None:
    """A FHIR red flag triages to an urgent referral, like the JSON code would."""
    result = triage_bundle(default_triager(), add(bundle(), condition("S92.301A")))
    assert result.recommended("urgent_referral") is not None


def test_patient_without_metatarsalgia_is_out_of_scope() -> None:
    """No metatarsalgia Condition: the Bundle is out of scope (NotApplicable), and the CLI exits 2."""
    b = drop(bundle(), "Condition")
    with pytest.raises(NotApplicable):
        mapped(b)
    res = runner.invoke(app, ["triage", "-"], input=json.dumps(b))
    assert res.exit_code == 2
    assert "metatarsalgia" in res.stderr


def test_both_feet_give_side_both() -> None:
    """Metatarsalgia of the right foot and of the left foot together give side 'both'."""
    assert mapped(bundle("opioid-user")).patient["pain"]["side"] == "both"


def test_pain_duration_is_the_longest_recorded() -> None:
    """Two metatarsalgia onsets: the pain has lasted since the earlier one."""
    b = add(bundle(), condition("M77.42", onsetDateTime="2024-10-16"))
    assert mapped(b).patient["pain"]["duration_weeks"] == 13.0


def test_pain_duration_observation_is_used() -> None:
    """A pain-duration Observation (local code, UCUM wk) gives the duration when the onset is missing."""
    b = bundle()
    for e in b["entry"]:
        e["resource"].pop("onsetDateTime", None)
    add(
        b,
        observation(LOCAL + "observation", "pain-duration", valueQuantity={"value": 20, "system": UCUM, "code": "wk"}),
    )
    assert mapped(b).patient["pain"]["duration_weeks"] == 20.0


def test_no_pain_duration_is_refused_naming_what_to_give() -> None:
    """Without an onset or a pain-duration Observation the patient cannot be built: the error names the field."""
    b = bundle()
    for e in b["entry"]:
        e["resource"].pop("onsetDateTime", None)
    with pytest.raises(InputError) as exc:
        triage_bundle(default_triager(), b)
    assert "pain.duration_weeks" in fields_of(exc.value)


# ------------------------------------------------------------------ Observations


def test_weight_in_pounds_is_converted_to_kg() -> None:
    """A body weight in UCUM [lb_av] is converted to kg (one decimal)."""
    b = drop(bundle(), "Observation")
    add(b, observation("http://loinc.org", "29463-7", valueQuantity={"value": 180, "system": UCUM, "code": "[lb_av]"}))
    assert mapped(b).patient["weight_kg"] == 81.6


def test_weight_in_an_unknown_unit_is_unknown() -> None:
    """A body weight in a unit the table does not convert is not guessed: it is an unknown blocking weight management."""
    b = drop(bundle(), "Observation")
    add(
        b, observation("http://loinc.org", "29463-7", valueQuantity={"value": 12, "system": UCUM, "code": "[stone_av]"})
    )
    m = mapped(b)
    assert "weight_kg" not in m.patient
    assert m.unknowns[0]["fact"] == "fhir:weight_kg" and m.unknowns[0]["blocks"] == ["weight_management"]


def test_latest_pain_severity_wins() -> None:
    """Two pain scores: the one with the latest effective time is used."""
    b = drop(bundle(), "Observation")
    add(b, observation("http://loinc.org", "72514-3", valueInteger=8, effectiveDateTime="2025-01-10"))
    add(b, observation("http://loinc.org", "72514-3", valueInteger=3, effectiveDateTime="2024-12-01"))
    assert mapped(b).patient["pain"]["severity"] == 8


def test_undated_conflicting_pain_scores_are_unknown() -> None:
    """Two different undated pain scores cannot be ordered: neither is used, and that is reported."""
    b = drop(bundle(), "Observation")
    add(b, observation("http://loinc.org", "72514-3", valueInteger=8))
    add(b, observation("http://loinc.org", "72514-3", valueInteger=3))
    m = mapped(b)
    assert "severity" not in m.patient["pain"]
    assert m.unknowns[0]["fact"] == "fhir:pain.severity"


def test_preliminary_observation_is_not_used() -> None:
    """A preliminary pain score is not used, and is reported as unknown."""
    b = drop(bundle(), "Observation")
    add(b, {**observation("http://loinc.org", "72514-3", valueInteger=8), "status": "preliminary"})
    m = mapped(b)
    assert "severity" not in m.patient["pain"] and m.unknowns[0]["reason"].endswith("not used")


def test_pregnancy_status_is_read_from_its_coded_answer() -> None:
    """LOINC 82810-3 answered with LOINC LA15173-0 (pregnant) sets pregnant to true."""
    b = drop(bundle("rheumatoid"), "Observation")
    add(
        b,
        observation(
            "http://loinc.org",
            "82810-3",
            valueCodeableConcept={"coding": [{"system": "http://loinc.org", "code": "LA15173-0"}]},
        ),
    )
    assert mapped(b).patient["pregnant"] is True


def test_all_dn4_items_answered_marks_the_dn4_assessed() -> None:
    """Ten DN4 item Observations, all answered 'no', mean DN4 0/10 assessed (not 'not asked')."""
    b = bundle()
    items = [r.value for r in default_mapper().mapping.observations if r.group == "dn4"]
    for item in items:
        add(
            b,
            observation(
                LOCAL + "dn4-item",
                item,
                valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "373067005"}]},
            ),
        )
    m = mapped(b)
    assert m.patient["pain"]["dn4_assessed"] is True
    assert "neuropathic_features" not in m.patient["pain"]


# ------------------------------------------------------------------ medications


def test_clinical_drug_code_falls_back_to_its_text() -> None:
    """A tramadol tablet coded with an RxNorm clinical-drug code outside the table is classified from its text."""
    b = add(
        bundle("neuropathic-persistent"),
        statement(
            {"coding": [{"system": RXNORM, "code": "835603"}], "text": "tramadol hydrochloride 50 MG Oral Tablet"}
        ),
    )
    result = triage_bundle(default_triager(), b)
    assert any(n.kind == "contraindicated" for n in result.withheld("low_dose_naltrexone"))


def test_medication_keeps_its_text_and_rxnorm_code() -> None:
    """The mapper classifies no drug: an RxNorm-coded oxycodone written "pain pill" is passed on as
    {name: "pain pill", rxnorm: "7804"}, for the rule set to classify by code and name.

    (Changed by the issue "FHIR as EHRs code it": before, the table's ingredient name replaced the text.)
    """
    b = add(bundle(), statement({"coding": [{"system": RXNORM, "code": "7804"}], "text": "pain pill"}))
    assert mapped(b).patient["medications"] == [{"name": "pain pill", "rxnorm": "7804", "status": "active"}]


def test_medication_reference_is_resolved_in_the_bundle() -> None:
    """medicationReference to a Medication entry of the Bundle is mapped through its code (name from the
    table's ingredient when the code has no text or display)."""
    b = bundle()
    b["entry"].append(
        {
            "fullUrl": "Medication/med-1",
            "resource": {
                "resourceType": "Medication",
                "id": "med-1",
                "code": {"coding": [{"system": RXNORM, "code": "6813"}]},
            },
        }
    )
    add(b, statement(medicationReference={"reference": "Medication/med-1"}))
    assert mapped(b).patient["medications"] == [{"name": "methadone", "rxnorm": "6813", "status": "active"}]


def test_rxnorm_code_alone_still_makes_a_medication() -> None:
    """A medication coded only with an RxNorm code outside the table (no text, no display) is passed on
    as {rxnorm}: the rule set, not the mapper, decides whether it is an opioid.

    (Changed by the issue: before, it was dropped and reported as unknown.)
    """
    b = add(bundle(), statement({"coding": [{"system": RXNORM, "code": "999999999"}]}))
    m = mapped(b)
    assert m.patient["medications"] == [{"rxnorm": "999999999", "status": "active"}]
    assert not [u for u in m.unknowns if u["fact"] == "fhir:medications"]


def test_medication_without_code_or_name_is_unknown() -> None:
    """A medication with no name and no RxNorm code was not checked for opioids: an unknown blocking LDN."""
    b = add(bundle(), statement({"coding": [{"system": "http://example.org/drugs", "code": "X1"}]}))
    m = mapped(b)
    assert "medications" not in m.patient
    u = [u for u in m.unknowns if u["fact"] == "fhir:medications"]
    assert u and "low_dose_naltrexone" in u[0]["blocks"] and "opioid" in u[0]["reason"]


def test_stopped_medication_without_a_date_counts_as_recent() -> None:
    """A stopped opioid with no end date is stopped 0 days ago (it still counts), and that reading is named.

    (Changed by the issue: before, a stopped medication was dropped, so a tramadol stopped yesterday was "no opioid".)
    """
    b = add(bundle(), statement({"coding": [{"system": RXNORM, "code": "10689"}]}, status="stopped"))
    m = mapped(b)
    assert m.patient["medications"] == [
        {"name": "tramadol", "rxnorm": "10689", "status": "stopped", "stopped_days_ago": 0}
    ]
    assert any("no end date" in u["reason"] for u in m.unknowns if u["fact"] == "fhir:medications")


def test_unknown_medications_reach_the_result() -> None:
    """The mapping's unknowns appear in the triage result, with the mapping's rule id."""
    b = add(bundle(), statement(medicationReference={"reference": "Medication/not-here"}))
    result = triage_bundle(default_triager(), b)
    mine = [u for u in result.unknowns if u.fact == "fhir:medications"]
    assert mine and mine[0].rule == default_mapper().mapping.table.rule


# ------------------------------------------------------------------ procedures


def test_procedure_gives_weeks_and_response() -> None:
    """A metatarsal-pad Procedure of 8 weeks with outcome 'none' is a prior treatment of 8 weeks, response none."""
    b = add(bundle(), procedure("metatarsal_pad", "2024-10-01", "2024-11-26", "none"))
    assert mapped(b).patient["prior_treatments"] == [{"treatment": "metatarsal_pad", "weeks": 8.0, "response": "none"}]


def test_in_progress_procedure_runs_to_the_reference_date() -> None:
    """An in-progress trial without an end lasts until the reference date."""
    b = add(bundle(), procedure("insoles", "2024-12-18", None, "partial", status="in-progress"))
    assert mapped(b).patient["prior_treatments"][0]["weeks"] == 4.0


def test_procedure_without_outcome_is_unknown() -> None:
    """A trial without a coded outcome is not counted, and is reported as unknown."""
    m = mapped(add(bundle(), procedure("insoles", "2024-10-01", "2024-11-26", None)))
    assert "prior_treatments" not in m.patient
    assert m.unknowns[0]["fact"] == "fhir:prior_treatments"


def test_same_treatment_twice_is_unknown() -> None:
    """Two Procedures for the same treatment are not added up or chosen between: both are reported as unknown."""
    b = add(
        add(bundle(), procedure("insoles", "2024-06-01", "2024-07-01", "none")),
        procedure("insoles", "2024-10-01", "2024-11-26", "partial"),
    )
    m = mapped(b)
    assert "prior_treatments" not in m.patient
    assert "2 times" in m.unknowns[0]["reason"]


# ------------------------------------------------------------------ invalid Bundles


def test_invalid_element_is_named_by_its_place() -> None:
    """An Observation whose valueInteger is not a number is refused, naming the entry and element (fhir.resources)."""
    b = add(bundle(), observation("http://loinc.org", "72514-3", valueInteger="six"))
    with pytest.raises(InputError) as exc:
        mapped(b)
    assert f"Bundle.entry[{len(b['entry']) - 1}].resource (Observation).valueInteger" in fields_of(exc.value)


def test_unknown_resource_type_is_refused() -> None:
    """An entry whose resourceType is not a FHIR resource is refused (never a crash)."""
    b = bundle()
    b["entry"].append({"resource": {"resourceType": "Nonsense"}})
    with pytest.raises(InputError) as exc:
        mapped(b)
    assert "resourceType" in fields_of(exc.value)


def test_value_out_of_range_names_the_fhir_element() -> None:
    """A pain score of 11 is refused by the patient model, and the error names the Observation it came from."""
    b = drop(bundle(), "Observation")
    add(b, observation("http://loinc.org", "72514-3", valueInteger=11))
    with pytest.raises(InputError) as exc:
        triage_bundle(default_triager(), b)
    assert "(Observation).value[x] (pain.severity)" in fields_of(exc.value)


@pytest.mark.parametrize(
    "document", [[], "Bundle", {"resourceType": "Patient"}, {"resourceType": "Bundle", "entry": 3}]
)
def test_non_bundles_are_refused(document: Any) -> None:
    """Arrays, strings, other resources and malformed Bundles are input errors, never crashes."""
    with pytest.raises(InputError):
        mapped(document)


# ------------------------------------------------------------------ the mapping table


def test_mapping_table_loads() -> None:
    """rules/fhir_map.toml is a well-formed, internally consistent mapping table."""
    assert load_mapping().service.id


def test_mapping_table_maps_only_to_codes_the_patient_accepts() -> None:
    """Every value the table can produce is a code the rule set's patient model accepts."""
    from rules import vocabulary as v

    m = load_mapping()
    allowed = {
        "comorbidities": set(get_args(v.Comorbidity)),
        "red_flags": set(get_args(v.RedFlag)),
        "exam_findings": set(get_args(v.ExamFinding)),
        "pain.neuropathic_features": set(get_args(v.DN4Item)),
        "pain.side": set(get_args(v.Side)),
        "pain.site": set(get_args(v.Site)),
        "pregnant": {True},
    }
    for row in m.conditions:
        for fld, value in row.to.items():
            assert value in allowed[fld], (row.code, fld, value)
    sections = set(get_args(v.RecordSection))
    for rtype, spec in m.failed_searches.types.items():
        assert set(spec.sections) <= sections, rtype
    for row in m.observations:
        if row.kind == "presence":
            assert row.value in allowed[row.field], row.code
    assert {r.value for r in m.procedures.codes} <= set(get_args(v.TreatmentCode))
    assert {r.value for r in m.procedures.outcomes} == set(get_args(v.Response))


def test_mapping_table_blocks_only_known_interventions() -> None:
    """What an unmapped value blocks is always an intervention of the rule set."""
    interventions = set(default_triager().ruleset.interventions)
    for spec in load_mapping().fields.values():
        assert set(spec.blocks) <= interventions


def test_mapping_table_medication_names_are_classified() -> None:
    """Every RxNorm ingredient in the table is a name the medication classification recognises."""
    from rules.medications import classify

    for row in load_mapping().medications.codes:
        assert classify(row.name).drug_class != "unrecognised", row.name


def test_malformed_mapping_table_is_a_ruleset_error() -> None:
    """A table row with an unknown code-system alias is refused when the table loads."""
    table = copy.deepcopy(FHIR_MAPPING)
    table["conditions"][0]["system"] = "no-such-system"
    with pytest.raises(RuleSetError, match="no-such-system"):
        mapping_from(table)


def test_mapper_can_be_built_from_a_table() -> None:
    """A FhirMapper built from the table maps like the default one."""
    assert FhirMapper(mapping_from(FHIR_MAPPING)).map(bundle()).patient == mapped(bundle()).patient


# ------------------------------------------------------------------ CDS Hooks prefetch


def test_prefetch_items_become_one_bundle_dated_by_the_searches() -> None:
    """A Patient plus searchset Bundles become one collection Bundle, dated by the latest search timestamp."""
    src = bundle("rheumatoid")
    patient = src["entry"][0]["resource"]
    by_type: dict[str, list] = {}
    for e in src["entry"][1:]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e)
    keys = {
        "conditions": "Condition",
        "observations": "Observation",
        "medicationStatements": "MedicationStatement",
        "medicationRequests": "MedicationRequest",
        "procedures": "Procedure",
    }
    prefetch: dict[str, Any] = {"patient": patient}
    for key, rtype in keys.items():
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": src["timestamp"]},
            "entry": by_type.get(rtype, []),
        }
    combined, names = bundle_from_prefetch(prefetch)
    assert combined["timestamp"] == src["timestamp"]
    assert names[0] == "prefetch.patient"
    assert triage_bundle(default_triager(), combined, names=names) == triage_bundle(default_triager(), src)
