"""FHIR as EHRs code it: the codes, dates, statuses and failed searches of rules/fhir_map.toml.

Each test maps a Bundle (one of tests/fhir/, plus the resources the case needs) and asserts the
patient the mapper builds, or what it reports as unknown. Reference date of every example
Bundle: 2025-01-15.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_fhir import (
    FHIR_DIR,
    ICD,
    LOCAL,
    RXNORM,
    add,
    bundle,
    condition,
    drop,
    fields_of,
    mapped,
    observation,
    statement,
)
from typer.testing import CliRunner

from cli import app
from engine import InputError, RuleSetError
from engine.channels.fhir import (
    NotApplicable,
    bundle_from_prefetch,
    default_mapper,
    is_failed_search,
    load_mapping,
)
from rules.fhir import code_list

SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
RULES = Path(__file__).resolve().parents[1] / "rules"
SHARED_OUD = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "opioid-value-sets" / "opioid-misuse-disorders.json"
)
runner = CliRunner()


def comorbidities(code: str, system: str = ICD, b: dict[str, Any] | None = None) -> list[str]:
    return mapped(add(b or bundle(), condition(code, system))).patient.get("comorbidities", [])


def reasons(m, fact: str | None = None) -> list[str]:
    return [u["reason"] for u in m.unknowns if fact is None or u["fact"] == fact]


def procedure(
    system: str, code: str, outcome: tuple[str, str] | None, status: str = "completed", **performed: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        **performed,
    }
    if outcome:
        res["outcome"] = {"coding": [{"system": outcome[0], "code": outcome[1]}]}
    return res


def request(concept: dict[str, Any], status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept,
        **extra,
    }


def outcome(severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "exception"}]}


def failed_search(rtype: str | None) -> dict[str, Any]:
    """A searchset Bundle holding only an OperationOutcome, as a server answers a failed search."""
    res: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": outcome(), "search": {"mode": "outcome"}}],
    }
    if rtype:
        res["link"] = [{"relation": "self", "url": f"https://ehr.example.org/fhir/{rtype}?patient=x"}]
    return res


def tramadol(**extra: Any) -> dict[str, Any]:
    return {
        "coding": [{"system": RXNORM, "code": "835603"}],
        "text": "tramadol hydrochloride 50 MG Oral Tablet",
        **extra,
    }


# ------------------------------------------------------------------ liver disease


@pytest.mark.parametrize(
    ("code", "system", "expected"),
    [
        ("B15.9", ICD, ["acute_hepatitis"]),
        ("B15.0", ICD, ["acute_hepatitis", "liver_failure"]),
        ("B16.9", ICD, ["acute_hepatitis"]),
        ("B17.10", ICD, ["acute_hepatitis"]),
        ("B17.11", ICD, ["acute_hepatitis", "liver_failure"]),
        ("B18.2", ICD, ["hepatic_impairment"]),
        ("B19.20", ICD, ["acute_hepatitis"]),  # ambiguous: the hard stop
        ("B19.21", ICD, ["acute_hepatitis", "liver_failure"]),
        ("K70.0", ICD, ["hepatic_impairment"]),
        ("K70.11", ICD, ["acute_hepatitis"]),  # alcoholic hepatitis: ambiguous, the hard stop
        ("K70.30", ICD, ["hepatic_impairment"]),
        ("K70.41", ICD, ["liver_failure"]),
        ("K71.10", ICD, ["liver_failure"]),
        ("K71.2", ICD, ["acute_hepatitis"]),
        ("K71.50", ICD, ["hepatic_impairment"]),
        ("K71.9", ICD, ["acute_hepatitis"]),
        ("K72.00", ICD, ["liver_failure"]),
        ("K72.11", ICD, ["liver_failure"]),
        ("K73.9", ICD, ["hepatic_impairment"]),
        ("K74.60", ICD, ["hepatic_impairment"]),
        ("K75.4", ICD, ["acute_hepatitis"]),
        ("K75.81", ICD, ["hepatic_impairment"]),
        ("K75.9", ICD, ["acute_hepatitis"]),
        ("K76.0", ICD, ["hepatic_impairment"]),
        ("K76.7", ICD, ["liver_failure"]),
        ("K76.82", ICD, ["liver_failure"]),
        ("K7682", ICD, ["liver_failure"]),  # sent without its dot
        ("37871000", SNOMED, ["acute_hepatitis"]),
        ("50711007", SNOMED, ["acute_hepatitis"]),  # hepatitis C, acute or chronic not said
        ("128302006", SNOMED, ["hepatic_impairment"]),
        ("61977001", SNOMED, ["hepatic_impairment"]),
        ("19943007", SNOMED, ["hepatic_impairment"]),
        ("59927004", SNOMED, ["liver_failure"]),
        ("197270009", SNOMED, ["liver_failure"]),
        ("13920009", SNOMED, ["liver_failure"]),
    ],
)
def test_liver_codes_sort_into_hard_stops_and_the_caution(code: str, system: str, expected: list[str]) -> None:
    """ICD-10-CM B15-B19/K70-K77 and SNOMED CT liver codes map to acute_hepatitis, liver_failure or
    hepatic_impairment as CLINICAL.md and the table's notes say."""
    assert comorbidities(code, system) == expected


def test_unspecified_liver_disease_is_a_caution_and_an_unknown() -> None:
    """K76.9 (liver disease, unspecified) is counted as hepatic impairment, and an unknown asks to exclude
    acute hepatitis and liver failure before LDN."""
    m = mapped(add(bundle(), condition("K76.9")))
    assert m.patient["comorbidities"] == ["hepatic_impairment"]
    [reason] = reasons(m, "fhir:comorbidities")
    assert "exclude acute hepatitis and liver failure" in reason


def test_every_ambiguous_liver_row_takes_the_hard_stop_and_says_so() -> None:
    """A row noted AMBIGUOUS maps to a hard stop (acute_hepatitis or liver_failure), never only to the caution."""
    ambiguous = [r for r in load_mapping().conditions if "AMBIGUOUS" in r.note and "comorbidities" in r.to]
    assert len(ambiguous) >= 10
    for r in ambiguous:
        assert r.to["comorbidities"] in ("acute_hepatitis", "liver_failure"), r.code


def test_every_row_says_where_its_code_was_checked() -> None:
    """Every row added for this issue names where its code was checked (`checked` or the code list it came
    from); local codes say they are this project's."""
    m = load_mapping()
    rows = [*m.conditions, *m.procedures.codes, *m.procedures.outcomes]
    new = [
        r
        for r in rows
        if r.system in ("cpt", "hcpcs")
        or r.note
        or r.unknown
        or r.current_weeks
        or "opioid_use_disorder" in r.to.values()
        or r.code.startswith(("B1", "K7", "I70.3", "L97", "E11.52"))
    ]
    assert len(new) > 150
    for r in new:
        assert "checked" in r.source or "; from CDC" in r.source, (r.system, r.code, r.source)


def test_every_icd10cm_row_is_a_code_of_the_cms_tabular_under_its_own_title() -> None:
    """Each ICD-10-CM row's code is a code (or category) of the CMS ICD-10-CM FY2026 tabular, which
    simple-icd-10-cm 1.5.0 ships unchanged, and its source begins with that code and the tabular's
    title, word for word (an annotation may follow in brackets); the table's own rows say they were
    checked there, the rows generated from the CDC value sets name those. The S90-S99 block is a
    prefix of categories, not an item: its categories are checked instead."""
    import simple_icd_10_cm as icd

    rows = [r for r in load_mapping().conditions if r.system == "icd10cm"]
    assert len(rows) > 150
    for r in rows:
        if r.code == "S9":
            assert all(icd.is_valid_item(f"S9{n}") for n in range(10)) and r.source.startswith("ICD-10-CM S90-S99 ")
            continue
        assert icd.is_valid_item(r.code), r.code
        assert r.source.startswith(f"ICD-10-CM {r.code} {icd.get_description(r.code)}"), (r.code, r.source[:120])
        assert "CMS ICD-10-CM FY2026 tabular" in r.source or "; from CDC" in r.source, r.code


def test_no_row_is_silent_about_its_check() -> None:
    """Every non-local row says where its code was checked, or says plainly that it was not re-checked."""
    m = load_mapping()
    rows = [*m.conditions, *m.observations, *m.medications.codes, *m.procedures.codes, *m.procedures.outcomes]
    for r in rows:
        assert "checked" in r.source or r.source.startswith("local code system") or "; from CDC" in r.source, (
            r.system,
            r.code,
        )


# ------------------------------------------------------------------ pregnancy, red flags, findings


@pytest.mark.parametrize(("code", "system"), [("Z34.00", ICD), ("Z33.1", ICD), ("O09.521", ICD), ("77386006", SNOMED)])
def test_pregnancy_condition_sets_pregnant(code: str, system: str) -> None:
    """A current pregnancy Condition (ICD-10-CM Z33.1, Z34.x, O09.x; SNOMED CT 77386006) sets pregnant to true."""
    b = add(drop(bundle("rheumatoid"), "Observation"), condition(code, system, recordedDate="2024-11-20"))
    assert mapped(b).patient["pregnant"] is True


def test_old_pregnancy_condition_without_end_is_unknown_not_pregnant() -> None:
    """A pregnancy Condition recorded 50 weeks ago with no end is not taken as current: pregnancy is unknown."""
    b = add(drop(bundle("rheumatoid"), "Observation"), condition("Z34.90", recordedDate="2024-01-31"))
    m = mapped(b)
    assert "pregnant" not in m.patient
    assert any("more than 42 weeks ago" in r for r in reasons(m, "fhir:pregnant"))


def test_termination_encounter_is_not_pregnancy() -> None:
    """Z33.2 (encounter for elective termination of pregnancy) is deliberately not mapped (and named as not used)."""
    m = mapped(add(drop(bundle("rheumatoid"), "Observation"), condition("Z33.2")))
    assert "pregnant" not in m.patient
    assert "a Condition coded ICD-10-CM Z33.2 was not used" in reasons(m, "fhir:unused")


@pytest.mark.parametrize(
    ("code", "system", "flag"),
    [
        ("M86.9", ICD, "suspected_infection"),
        ("M86.172", ICD, "suspected_infection"),
        ("60168000", SNOMED, "suspected_infection"),
        ("E11.52", ICD, "critical_ischemia"),
        ("E10.52", ICD, "critical_ischemia"),
        ("I96", ICD, "critical_ischemia"),
        ("372070002", SNOMED, "critical_ischemia"),
        ("I70.222", ICD, "critical_ischemia"),
        ("I70.262", ICD, "critical_ischemia"),
        ("I70.362", ICD, "critical_ischemia"),
        ("I70.442", ICD, "critical_ischemia"),
        ("I70.622", ICD, "critical_ischemia"),
        ("L97.412", ICD, "foot_ulcer"),
        ("L97.524", ICD, "foot_ulcer"),
        ("E11.621", ICD, "foot_ulcer"),
        ("E13.621", ICD, "foot_ulcer"),
        ("95345008", SNOMED, "foot_ulcer"),
        ("M14.672", ICD, "suspected_charcot"),
        ("E11.610", ICD, "suspected_charcot"),
        ("E08.610", ICD, "suspected_charcot"),
    ],
)
def test_red_flags_in_icd10cm_and_snomed(code: str, system: str, flag: str) -> None:
    """Osteomyelitis, gangrene, critical limb ischaemia, foot ulcers and Charcot map to their red flag."""
    assert flag in mapped(add(bundle(), condition(code, system))).patient["red_flags"]


_LEGS = ("1", "2", "3", "9")  # right leg, left leg, both legs, unspecified extremity (read as a leg)
_GROUPS = ("I70.2", "I70.3", "I70.4", "I70.5", "I70.6", "I70.7")  # native arteries, then bypass grafts


@pytest.mark.parametrize(
    "code",
    [f"{g}{kind}{leg}" for g in _GROUPS for kind in ("2", "6") for leg in _LEGS]
    + [f"{g}{side}{site}" for g in _GROUPS for side in ("3", "4") for site in ("1", "9")],
)
def test_limb_threatening_atherosclerosis_of_a_leg_is_critical_ischaemia(code: str) -> None:
    """Rest pain, ulceration or gangrene of a leg (or of an unspecified extremity, the protective
    reading), in a native artery or a bypass graft: the critical-ischaemia red flag, and the disease."""
    m = mapped(add(bundle(), condition(code)))
    assert "critical_ischemia" in m.patient["red_flags"], code
    assert "peripheral_arterial_disease" in m.patient["comorbidities"], code


@pytest.mark.parametrize("code", [f"{g}{sub}" for g in _GROUPS for sub in ("28", "5", "68")])
def test_limb_threatening_atherosclerosis_of_another_extremity_is_not_this_pathways_red_flag(code: str) -> None:
    """ICD-10-CM's "other extremity" (I70.x28 rest pain, I70.x5 ulceration, I70.x68 gangrene) is not a
    leg: peripheral arterial disease, not the foot's critical limb ischaemia (before table 1.1.2, I70.x5
    and the I70.x28/I70.x68 leaves took the red flag, and with it stopped every escalation)."""
    m = mapped(add(bundle(), condition(code)))
    assert "critical_ischemia" not in m.patient.get("red_flags", []), code
    assert "peripheral_arterial_disease" in m.patient["comorbidities"], code


def test_diabetic_complication_codes_keep_the_diabetes() -> None:
    """E11.621 is a foot ulcer and type 2 diabetes; E11.52 is gangrene (critical ischaemia) and diabetes."""
    m = mapped(add(add(bundle(), condition("E11.621")), condition("E11.52")))
    assert m.patient["red_flags"] == ["critical_ischemia", "foot_ulcer"]
    assert m.patient["comorbidities"] == ["diabetes"]


def test_callus_is_an_examination_finding() -> None:
    """L84 (corns and callosities) records plantar_callus."""
    assert mapped(add(drop(bundle(), "Observation"), condition("L84"))).patient["exam_findings"] == ["plantar_callus"]


def test_hammer_toe_records_no_flexibility_and_asks_for_the_examination() -> None:
    """M20.41 does not say flexible or rigid: no toe-deformity finding is recorded, and an unknown (blocking a
    tendon transfer) asks for the examination."""
    m = mapped(add(drop(bundle(), "Observation"), condition("M20.41")))
    assert "exam_findings" not in m.patient
    [u] = [u for u in m.unknowns if u["fact"] == "fhir:exam_findings"]
    assert "flexible or rigid" in u["reason"] and "tendon_transfer" in u["blocks"]


# ------------------------------------------------------------------ opioids coded as conditions


def test_every_opioid_misuse_code_maps_to_opioid_use_disorder() -> None:
    """Each SNOMED CT and ICD-10-CM code of opioid-misuse-disorders.json (via rules/data) gives opioid_use_disorder."""
    codes = code_list(RULES / "data" / "opioid_vocabulary.json", "disorders")
    assert len(codes) == 212 and {c["system"] for c in codes} == {ICD, SNOMED}
    base = bundle()
    for c in codes:
        assert comorbidities(c["code"], c["system"], copy.deepcopy(base)) == ["opioid_use_disorder"], c


def test_long_term_opiate_use_is_its_own_comorbidity() -> None:
    """ICD-10-CM Z79.891 (long term (current) use of opiate analgesic) gives long_term_opioid_use."""
    assert comorbidities("Z79.891") == ["long_term_opioid_use"]


def test_every_code_of_the_shared_misuse_value_set_is_in_the_table() -> None:
    """The opioid misuse and dependence rows come from the generated opioid vocabulary: every code of the
    shared CDC value set is there, none more."""
    if not SHARED_OUD.exists():
        pytest.skip("shared/data is not beside the clone")
    shared = {
        (c["system"], c["code"]) for c in json.loads(SHARED_OUD.read_text(encoding="utf-8"))["expansion"]["contains"]
    }
    listed = {(c["system"], c["code"]) for c in code_list(RULES / "data" / "opioid_vocabulary.json", "disorders")}
    assert listed == shared


def test_code_list_reader_refuses_other_shapes(tmp_path: Path) -> None:
    """rules.fhir.code_list, the one reader of code lists, refuses anything but a list of {system, code, display}."""
    bad = tmp_path / "codes.json"
    bad.write_text(json.dumps([{"system": SNOMED}]), encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"codes\.json"):
        code_list(bad)
    bad.write_text(json.dumps({"codes": []}), encoding="utf-8")
    with pytest.raises(RuleSetError):
        code_list(bad)


def test_a_code_list_key_that_is_missing_is_refused(tmp_path: Path) -> None:
    """A [[code_lists]] entry naming a key the JSON file does not have is refused when the table loads."""
    f = tmp_path / "vocab.json"
    f.write_text(json.dumps({"other": []}), encoding="utf-8")
    with pytest.raises(RuleSetError, match="no key"):
        code_list(f, "disorders")


# ------------------------------------------------------------------ procedures


def test_cpt_gastrocnemius_recession_weeks_since_done_and_snomed_outcome() -> None:
    """CPT 27687 done 10 weeks before the reference date with outcome SNOMED CT 385671000 (unsuccessful):
    gastrocnemius_recession, 10 weeks since it was done, response none."""
    b = add(bundle(), procedure(CPT, "27687", (SNOMED, "385671000"), performedDateTime="2024-11-06"))
    assert mapped(b).patient["prior_treatments"] == [
        {"treatment": "gastrocnemius_recession", "weeks": 10.0, "response": "none"}
    ]


def test_one_off_procedure_with_a_period_counts_from_its_end() -> None:
    """Pulsed radiofrequency over two days ending 2024-12-18: 4 weeks since it was done (not the 2 days it took)."""
    b = add(
        bundle(),
        procedure(
            LOCAL + "intervention",
            "pulsed_radiofrequency",
            (LOCAL + "treatment-response", "partial"),
            performedPeriod={"start": "2024-12-17", "end": "2024-12-18"},
        ),
    )
    assert mapped(b).patient["prior_treatments"] == [
        {"treatment": "pulsed_radiofrequency", "weeks": 4.0, "response": "partial"}
    ]


@pytest.mark.parametrize(
    ("system", "code", "treatment"),
    [
        (HCPCS, "L3020", "insoles"),
        (HCPCS, "L3030", "insoles"),
        (CPT, "11055", "callus_debridement"),
    ],
)
def test_hcpcs_and_cpt_trials_take_their_period(system: str, code: str, treatment: str) -> None:
    """HCPCS foot inserts and CPT callus paring: weeks = performedPeriod; SNOMED CT 385670004 = partial."""
    b = add(
        bundle(),
        procedure(system, code, (SNOMED, "385670004"), performedPeriod={"start": "2024-10-01", "end": "2024-11-26"}),
    )
    assert mapped(b).patient["prior_treatments"] == [{"treatment": treatment, "weeks": 8.0, "response": "partial"}]


def test_successful_procedure_is_resolved() -> None:
    """Outcome SNOMED CT 385669000 (successful) is response resolved."""
    b = add(
        bundle(),
        procedure(HCPCS, "L3030", (SNOMED, "385669000"), performedPeriod={"start": "2024-10-01", "end": "2024-11-26"}),
    )
    assert mapped(b).patient["prior_treatments"][0]["response"] == "resolved"


def test_procedure_codes_that_do_not_name_the_treatment_are_named_not_used() -> None:
    """CPT 28270 (MTP capsulotomy, not a plantar plate repair) and 64999 (unlisted) are named, not guessed."""
    b = add(
        add(bundle(), procedure(CPT, "28270", (SNOMED, "385669000"), performedDateTime="2024-06-01")),
        procedure(CPT, "64999", None, performedDateTime="2024-06-01"),
    )
    m = mapped(b)
    assert "prior_treatments" not in m.patient
    assert "a Procedure coded CPT 28270 was not used" in reasons(m, "fhir:unused")
    assert "a Procedure coded CPT 64999 was not used" in reasons(m, "fhir:unused")


# ------------------------------------------------------------------ medications


def test_opioid_stopped_two_days_ago() -> None:
    """A tramadol statement stopped, its effective period ending two days before the reference date:
    {status stopped, stopped_days_ago 2}, with its name and RxNorm code as written."""
    b = add(
        bundle(), statement(tramadol(), status="stopped", effectivePeriod={"start": "2024-12-01", "end": "2025-01-13"})
    )
    assert mapped(b).patient["medications"] == [
        {
            "name": "tramadol hydrochloride 50 MG Oral Tablet",
            "rxnorm": "835603",
            "status": "stopped",
            "stopped_days_ago": 2,
        }
    ]


def test_active_statement_whose_period_ended_is_stopped() -> None:
    """An 'active' statement whose effective period ended 30 days ago is a stopped medication, 30 days ago."""
    b = add(bundle(), statement(tramadol(), effectivePeriod={"start": "2024-11-01", "end": "2024-12-16"}))
    assert mapped(b).patient["medications"][0] == {
        "name": "tramadol hydrochloride 50 MG Oral Tablet",
        "rxnorm": "835603",
        "status": "stopped",
        "stopped_days_ago": 30,
    }


def test_completed_statement_without_date_is_stopped_today_and_named() -> None:
    """completed with no date: stopped 0 days ago (counts as recent), named in the unknowns."""
    m = mapped(add(bundle(), statement(tramadol(), status="completed")))
    assert m.patient["medications"][0]["stopped_days_ago"] == 0
    assert any("completed with no end date" in r for r in reasons(m, "fhir:medications"))


def test_partial_end_date_is_read_as_its_latest_day() -> None:
    """An end date of 2024-12 is read as 2024-12-31 (the most recent stop): 15 days ago, and named."""
    m = mapped(add(bundle(), statement(tramadol(), status="stopped", effectivePeriod={"end": "2024-12"})))
    assert m.patient["medications"][0]["stopped_days_ago"] == 15
    assert any("partial date" in r for r in reasons(m, "fhir:medications"))


@pytest.mark.parametrize(
    ("status", "kept"),
    [("intended", True), ("on-hold", True), ("unknown", True), ("not-taken", False), ("entered-in-error", False)],
)
def test_statement_statuses(status: str, kept: bool) -> None:
    """intended/on-hold/unknown are active; not-taken and entered-in-error are ignored."""
    meds = mapped(add(bundle(), statement(tramadol(), status=status))).patient.get("medications")
    assert (
        meds == [{"name": "tramadol hydrochloride 50 MG Oral Tablet", "rxnorm": "835603", "status": "active"}]
    ) is kept
    assert (meds is None) is (not kept)


def _dispensed(days: float, status: str = "active") -> dict[str, Any]:
    """A tramadol request whose dispense window ended on 2025-01-10, with `days` of supply."""
    return request(
        tramadol(),
        status=status,
        dispenseRequest={
            "validityPeriod": {"start": "2024-12-01", "end": "2025-01-10"},
            "expectedSupplyDuration": {"value": days, "unit": "days", "system": UCUM, "code": "d"},
        },
    )


def test_request_dispense_window_and_supply() -> None:
    """A request whose dispense window ended 5 days ago with 30 days' supply is still active; with 3 days'
    supply it stopped 2 days ago. A cancelled request is ignored."""
    req = _dispensed
    assert mapped(add(bundle(), req(30))).patient["medications"][0]["status"] == "active"
    assert mapped(add(bundle(), req(3))).patient["medications"][0] == {
        "name": "tramadol hydrochloride 50 MG Oral Tablet",
        "rxnorm": "835603",
        "status": "stopped",
        "stopped_days_ago": 2,
    }
    assert "medications" not in mapped(add(bundle(), req(3, "cancelled"))).patient


def test_reference_display_alone_is_a_medication() -> None:
    """medicationReference with only a display (no Medication in the Bundle) still gives a medication by that name."""
    b = add(bundle(), statement(medicationReference={"display": "Oxycodone 5 mg tablet"}))
    assert mapped(b).patient["medications"] == [{"name": "Oxycodone 5 mg tablet", "status": "active"}]


def test_rxnorm_coding_without_text_gives_the_code_and_the_coding_display() -> None:
    """An RxNorm coding with a display and no text: name from the display, rxnorm from the code (not in the table)."""
    b = add(
        bundle(),
        statement(
            {"coding": [{"system": RXNORM, "code": "1049621", "display": "oxycodone hydrochloride 5 MG Oral Tablet"}]}
        ),
    )
    assert mapped(b).patient["medications"] == [
        {"name": "oxycodone hydrochloride 5 MG Oral Tablet", "rxnorm": "1049621", "status": "active"}
    ]


def test_user_selected_rxnorm_coding_is_passed_on() -> None:
    """Of two RxNorm codings, the one marked userSelected is the rxnorm passed on."""
    b = add(
        bundle(),
        statement(
            {
                "coding": [
                    {"system": RXNORM, "code": "10689"},
                    {"system": RXNORM, "code": "835603", "userSelected": True},
                ],
                "text": "tramadol",
            }
        ),
    )
    assert mapped(b).patient["medications"][0]["rxnorm"] == "835603"


def test_the_mapper_classifies_no_drug() -> None:
    """A name the drug vocabulary does not know is passed on as written, not dropped or judged."""
    b = add(bundle(), statement({"text": "Zaldiar 37.5/325"}))
    assert mapped(b).patient["medications"] == [{"name": "Zaldiar 37.5/325", "status": "active"}]


# ------------------------------------------------------------------ pain duration from partial onsets


def _onset_only(**onset: Any) -> dict[str, Any]:
    b = bundle()
    for e in b["entry"]:
        if e["resource"]["resourceType"] == "Condition":
            e["resource"].pop("onsetDateTime", None)
            e["resource"].update(onset)
    return b


@pytest.mark.parametrize(
    ("onset", "weeks"),
    [
        ({"onsetDateTime": "2024"}, 2.1),  # latest possible: 2024-12-31
        ({"onsetDateTime": "2024-10"}, 10.9),  # latest possible: 2024-10-31
        ({"onsetPeriod": {"start": "2024-10"}}, 10.9),
        (
            {"onsetAge": {"value": 37, "unit": "years", "system": UCUM, "code": "a"}},
            32.7,
        ),  # born 1986-06-01: 2024-05-31
        ({"recordedDate": "2024-11-20"}, 8.0),
    ],
)
def test_partial_onset_takes_the_shortest_duration_and_says_so(onset: dict[str, Any], weeks: float) -> None:
    """A partial onset date, an onset age or the recorded date gives the LATEST possible onset (shortest
    duration, so nothing escalates early), named in the unknowns."""
    m = mapped(_onset_only(**onset))
    assert m.patient["pain"]["duration_weeks"] == weeks
    [reason] = reasons(m, "fhir:pain.duration_weeks")
    assert "shortest possible duration" in reason and "entry[" not in reason


def test_an_onset_age_the_patient_is_still_living_takes_the_shortest_duration() -> None:
    """The patient is 38 on the reference date (born 1986-06-01, Bundle of 2025-01-15): pain that began
    at 38 began on a day between the 38th birthday and today, and is read as beginning today (0 weeks),
    with the conservative-reading unknown."""
    m = mapped(_onset_only(onsetAge={"value": 38, "unit": "years", "system": UCUM, "code": "a"}))
    assert m.patient["pain"]["duration_weeks"] == 0
    [reason] = reasons(m, "fhir:pain.duration_weeks")
    assert "onset given as an age" in reason


@pytest.mark.parametrize(
    ("onset", "element"),
    [
        ({"onsetAge": {"value": 39, "unit": "years", "system": UCUM, "code": "a"}}, "onsetAge"),
        ({"onsetAge": {"value": 200, "unit": "years", "system": UCUM, "code": "a"}}, "onsetAge"),
        ({"onsetAge": {"value": 8000, "unit": "years", "system": UCUM, "code": "a"}}, "onsetAge"),
        ({"onsetAge": {"value": 10**20, "unit": "years", "system": UCUM, "code": "a"}}, "onsetAge"),
        ({"onsetAge": {"value": 1e300, "unit": "years", "system": UCUM, "code": "a"}}, "onsetAge"),
        ({"onsetDateTime": "2025-01-16"}, "onsetDateTime"),
        ({"onsetDateTime": "2030"}, "onsetDateTime"),
        ({"onsetPeriod": {"start": "2025-02"}}, "onsetPeriod.start"),
        ({"recordedDate": "2025-01-16"}, "recordedDate"),
        # an age this table cannot read: the onset is read from the recorded date, as for the duration
        ({"onsetAge": {"value": 3, "unit": "centuries"}, "recordedDate": "2025-01-16"}, "recordedDate"),
    ],
)
def test_an_onset_after_the_reference_date_is_an_entry_error_naming_its_element(
    onset: dict[str, Any], element: str
) -> None:
    """Pain cannot have begun after the reference date (2025-01-15), nor at an age the patient has not
    reached: the mapper names the element and what is allowed, and never reads it as 0 weeks (before
    rule set 1.2.1 an onset age of 200 was read as pain that began today). Ages beyond the calendar
    are refused the same way, never an OverflowError (an internal error, exit 1)."""
    with pytest.raises(InputError) as err:
        mapped(_onset_only(**onset))
    [problem] = err.value.problems
    assert problem.field.endswith(f"(Condition).{element}")
    assert "the reference date" in problem.problem
    cli = runner.invoke(app, ["triage", "-", "--input", "fhir"], input=json.dumps(_onset_only(**onset)))
    assert cli.exit_code == 2, cli.output
    assert element in cli.stderr and "Traceback" not in cli.output


def test_an_onset_on_the_reference_date_is_pain_of_0_weeks() -> None:
    """The boundary: an onset on the reference date itself is read (0 weeks), not refused."""
    m = mapped(_onset_only(onsetDateTime="2025-01-15"))
    assert m.patient["pain"]["duration_weeks"] == 0 and not m.unknowns


@pytest.mark.parametrize("days", [10**6, 10**20, 1e300])
def test_a_supply_beyond_the_calendar_keeps_the_medication_current(days: float) -> None:
    """A dispense window plus a supply that runs past the last date Python can hold: an active request
    stays active and a completed one stopped 0 days ago (an opioid then withholds LDN), never an
    OverflowError."""
    assert mapped(add(bundle(), _dispensed(days))).patient["medications"][0]["status"] == "active"
    stopped = mapped(add(bundle(), _dispensed(days, "completed"))).patient["medications"][0]
    assert stopped["status"] == "stopped" and stopped["stopped_days_ago"] == 0


def test_full_onset_date_is_not_an_unknown() -> None:
    """A full onsetDateTime is used as it is, with no unknown."""
    m = mapped(bundle())
    assert m.patient["pain"]["duration_weeks"] == 3.0 and not m.unknowns


# ------------------------------------------------------------------ failed searches


def test_is_failed_search() -> None:
    """OperationOutcome, or a Bundle of only outcomes, or one reporting an error, is a failed search;
    an empty searchset or a warning beside results is not."""
    ok = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition("E11.9")}]}
    assert is_failed_search(outcome())
    assert is_failed_search(failed_search("MedicationStatement"))
    assert is_failed_search(
        {**ok, "entry": ok["entry"] + [{"resource": outcome("fatal"), "search": {"mode": "outcome"}}]}
    )
    assert not is_failed_search({**ok, "entry": ok["entry"] + [{"resource": outcome("warning")}]})
    assert not is_failed_search({"resourceType": "Bundle", "type": "searchset", "total": 0})
    assert not is_failed_search(ok)
    assert not is_failed_search(bundle())


def _prefetch(name: str = "neuropathic-persistent", **failed: Any) -> dict[str, Any]:
    request_ = json.loads((FHIR_DIR / "hook-request-neuropathic-persistent.json").read_text(encoding="utf-8"))
    assert name == "neuropathic-persistent"
    request_["prefetch"].update(failed)
    return request_["prefetch"]


def test_failed_medication_prefetch_is_not_read_as_no_medications() -> None:
    """prefetch.medicationStatements is an OperationOutcome: medications are not_retrieved, and said so."""
    combined, names = bundle_from_prefetch(_prefetch(medicationStatements=outcome()))
    m = default_mapper().map(combined, names=names)
    assert m.patient["not_retrieved"] == ["medications"]
    assert "the medication search failed (OperationOutcome): medications unknown" in reasons(m, "fhir:medications")


def test_failed_procedure_search_of_only_outcomes() -> None:
    """A procedures searchset holding only an OperationOutcome (mode outcome): prior treatments not retrieved."""
    combined, names = bundle_from_prefetch(_prefetch(procedures=failed_search(None)))
    m = default_mapper().map(combined, names=names)
    assert m.patient["not_retrieved"] == ["prior_treatments"]
    assert any(r.startswith("the procedure search failed") for r in reasons(m, "fhir:prior_treatments"))


def test_failed_observation_search_leaves_dn4_findings_and_measures_unknown() -> None:
    """Observations failed: DN4 items and examination findings not retrieved; weight, height, pain score,
    pregnancy and breastfeeding named unknown."""
    combined, names = bundle_from_prefetch(_prefetch(observations=outcome("fatal")))
    m = default_mapper().map(combined, names=names)
    assert m.patient["not_retrieved"] == ["exam_findings", "pain.neuropathic_features"]
    facts = {u["fact"] for u in m.unknowns}
    assert {"fhir:weight_kg", "fhir:height_cm", "fhir:pain.severity", "fhir:pregnant"} <= facts


def test_failed_condition_search_beside_a_metatarsalgia_condition() -> None:
    """A Bundle with the metatarsalgia Condition and a failed (problem-list) Condition search inside it:
    comorbidities, red flags and exam findings are not retrieved; pregnancy unknown."""
    b = bundle()
    b["entry"].append({"resource": failed_search("Condition")})
    m = mapped(b)
    assert m.patient["not_retrieved"] == ["comorbidities", "exam_findings", "red_flags"]
    assert any("the condition search failed" in r for r in reasons(m, "fhir:pregnant"))


def test_failed_condition_prefetch_cannot_say_scope() -> None:
    """When the only Condition search failed, whether the patient has metatarsalgia is unknown: an input error
    saying so, never 'not applicable'."""
    combined, names = bundle_from_prefetch(_prefetch(conditions=outcome()))
    with pytest.raises(InputError) as exc:
        default_mapper().map(combined, names=names)
    assert not isinstance(exc.value, NotApplicable)
    assert "Condition search failed" in fields_of(exc.value)


def test_failure_that_does_not_say_which_search_counts_for_every_search() -> None:
    """An error OperationOutcome in a Bundle, not saying which search: every searched section is not retrieved."""
    b = bundle()
    b["entry"].append({"resource": outcome()})
    m = mapped(b)
    assert m.patient["not_retrieved"] == [
        "comorbidities",
        "exam_findings",
        "medications",
        "pain.neuropathic_features",
        "prior_treatments",
        "red_flags",
    ]


def test_cli_triages_a_bundle_with_a_failed_search() -> None:
    """`triage bundle.json` with a failed medication search gives a result (exit 0) carrying the unknown."""
    b = bundle("neuropathic-persistent")
    b["entry"].append({"resource": failed_search("MedicationStatement")})
    res = runner.invoke(app, ["triage", "-", "--format", "json"], input=json.dumps(b))
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert any(
        u["reason"] == "the medication search failed (OperationOutcome): medications unknown" for u in out["unknowns"]
    )


# ------------------------------------------------------------------ scope first, unknowns in words


def test_not_applicable_comes_before_every_other_check() -> None:
    """No metatarsalgia Condition: NotApplicable, even with no birth date, no reference date and a malformed entry."""
    b = drop(bundle(), "Condition")
    del b["timestamp"]
    b["entry"][0]["resource"].pop("birthDate")
    b["entry"].append({"resource": {"resourceType": "Nonsense"}})
    b["entry"].append({"resource": condition("E11.9")})
    with pytest.raises(NotApplicable):
        mapped(b)


def test_unused_codes_are_named_in_words_once_each() -> None:
    """Codes the table does not use are named (system and code, no Bundle path), de-duplicated and counted."""
    b = add(add(add(bundle(), condition("12345", SNOMED)), condition("12345", SNOMED)), condition("I10"))
    b = add(b, observation("http://loinc.org", "8867-4", valueQuantity={"value": 70, "system": UCUM, "code": "/min"}))
    b["entry"].append(
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"}}}
    )
    m = mapped(b)
    unused = reasons(m, "fhir:unused")
    assert "a Condition coded SNOMED CT 12345 was not used (2 resources)" in unused
    assert "a Condition coded ICD-10-CM I10 was not used" in unused
    assert "an Observation coded LOINC 8867-4 was not used" in unused
    assert any(r.startswith("an Encounter resource") for r in unused)
    assert all("entry[" not in u["reason"] for u in m.unknowns)
    assert m.unknowns == sorted(m.unknowns, key=lambda u: (u["fact"], u["reason"]))
    assert mapped(b).unknowns == m.unknowns


def test_wrong_type_is_named_by_its_json_path_without_its_value() -> None:
    """A coding code that is a number: the error names Bundle.entry[N].resource (Condition).code.coding[0].code
    and does not echo the value."""
    b = add(bundle(), {"resourceType": "Condition", "code": {"coding": [{"system": ICD, "code": 4242}]}})
    with pytest.raises(InputError) as exc:
        mapped(b)
    n = len(b["entry"]) - 1
    assert f"Bundle.entry[{n}].resource (Condition).code.coding[0].code: must be a string" in fields_of(exc.value)
    assert "4242" not in fields_of(exc.value)


def test_strict_mode_validates_what_the_mapping_does_not_read() -> None:
    """An element the mapping never reads (Condition.note as a string) passes by default and is refused by
    strict=True (the CLI's --strict-fhir), which validates the whole Bundle with fhir.resources."""
    b = add(bundle(), {**condition("E11.9"), "note": "not an array of Annotation"})
    assert mapped(b).patient["comorbidities"] == ["diabetes"]
    with pytest.raises(InputError):
        mapped(b, strict=True)
    res = runner.invoke(app, ["triage", "-", "--strict-fhir"], input=json.dumps(b))
    assert res.exit_code == 2


def test_strict_mode_names_an_r4_type_it_cannot_check_as_r4() -> None:
    """An R4 resource type that R4B dropped (fhir.resources' strict models are R4B) passes the mapping
    and is refused by strict mode as one it cannot check, never as 'not a FHIR R4 resource type'."""
    b = add(bundle(), {"resourceType": "MedicinalProduct", "id": "mp1"})
    assert mapped(b).patient["id"]
    with pytest.raises(InputError) as exc:
        mapped(b, strict=True)
    text = str(exc.value)
    assert "MedicinalProduct is a FHIR R4 resource type that the full validation" in text
    assert "not a FHIR R4 resource type" not in text
    with pytest.raises(InputError, match="not a FHIR R4 resource type"):
        mapped(add(bundle(), {"resourceType": "NotAResource"}), strict=True)


def test_strict_fhir_is_for_fhir_input_only() -> None:
    """--strict-fhir with a CONTRACT.md patient is a usage error (exit 2)."""
    from conftest import load_example

    res = runner.invoke(app, ["triage", "-", "--strict-fhir"], input=json.dumps(load_example("new-onset")))
    assert res.exit_code == 2 and "--strict-fhir" in res.stderr


def test_a_searchset_inside_a_collection_is_read() -> None:
    """A collection Bundle holding a searchset Bundle of MedicationStatements: the statements are read."""
    b = bundle()
    pid = b["entry"][0]["resource"]["id"]
    b["entry"].append(
        {
            "resource": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {**statement(tramadol()), "subject": {"reference": f"Patient/{pid}"}},
                        "search": {"mode": "match"},
                    }
                ],
            }
        }
    )
    assert mapped(b).patient["medications"][0]["rxnorm"] == "835603"
