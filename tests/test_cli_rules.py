"""`rules`, `rules show ID` and `rules attributes`: the knowledge base a clinician can check."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli import app
from engine.views.explain import GAP_MARK, NOT_DECLARED, PROJECT_ONLY, SOURCE_ATTRIBUTES, basis_gaps, rule_basis
from rules import RULESET

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def run(*args):
    return runner.invoke(app, list(args), env=WIDE)


def rules_json() -> dict:
    res = run("rules", "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# ---------------------------------------------------------------- rules (the table)


def test_rules_lists_every_rule_once_in_rule_set_order():
    """`rules --format json` has one row per rule of RULESET, in order."""
    assert [r["id"] for r in rules_json()["rules"]] == [r.id for r in RULESET.rules]


def test_rules_rows_carry_purpose_conclusions_parameters_and_citations():
    """Each row repeats what the rule declares: purpose, concludes, emits, parameters, citations."""
    rows = {r["id"]: r for r in rules_json()["rules"]}
    for rule in RULESET.rules:
        row = rows[rule.id]
        assert row["purpose"] == rule.purpose
        assert (row["concludes"], row["emits"]) == (list(rule.concludes), list(rule.emits))
        assert (row["parameters"], row["citations"]) == (list(rule.parameters), list(rule.citations))


def test_rules_rows_grade_what_the_rule_emits():
    """LDN-OFFER emits LDN, graded SORT C · very low with its citations."""
    row = next(r for r in rules_json()["rules"] if r["id"] == "LDN-OFFER")
    ev = row["emitted_evidence"]
    assert [(e["intervention"], e["grade"]) for e in ev] == [("low_dose_naltrexone", "SORT C · very low")]
    assert "younger-2013" in ev[0]["citations"]


def test_rules_table_shows_every_rule_id_and_its_basis():
    """The text table names every rule, and says plainly of each uncited rule that it rests on project parameters."""
    res = run("rules")
    assert res.exit_code == 0, res.output
    for rule in RULESET.rules:
        assert rule.id in res.stdout
    project = [r.id for r in RULESET.rules if rule_basis(RULESET, r)["kind"] == "project_parameter"]
    assert res.stdout.count(PROJECT_ONLY) == len(project) > 0


def test_rules_table_marks_each_gap():
    """Each rule with neither citation nor project parameter is marked GAP in the table and listed in the JSON."""
    res = run("rules")
    assert res.stdout.count(GAP_MARK) == len(basis_gaps(RULESET))
    assert rules_json()["gaps"] == basis_gaps(RULESET)


def test_every_rule_rests_on_a_citation_or_a_plainly_stated_project_parameter():
    """Issue 4 done-when: every rule has at least one citation or says plainly that it is a project parameter."""
    rows = rules_json()["rules"]
    for row in rows:
        if row["basis"]["kind"] == "cited":
            assert row["citations"]
        elif row["basis"]["kind"] == "project_parameter":
            assert row["parameters"] and "project parameter" in row["basis"]["text"]
    gaps = [row["id"] for row in rows if row["basis"]["kind"] == "gap"]
    assert not gaps, f"{len(gaps)} rules lack a citation and rest on no project parameter: {', '.join(gaps)}"


# ---------------------------------------------------------------- rules show ID


def test_rules_show_prints_the_full_sources_of_one_rule():
    """`rules show LDN-OFFER`: purpose, patterns, parameter sources and the full fibromyalgia trial citation."""
    res = run("rules", "show", "LDN-OFFER")
    assert res.exit_code == 0, res.output
    out = res.stdout
    for text in (
        "LDN-OFFER",
        "persistent_pain",
        "unless",
        "ldn_follow_up_weeks",
        "project parameter, not evidence",
        "younger-2013",
        "Low-dose naltrexone for the treatment of fibromyalgia",
        "23359310",
        "SORT C · very low",
    ):
        assert text in out, text


def test_rules_show_json_places_the_rule_in_the_chain():
    """PERSISTENT uses the findings of TRIAL-ADEQUATE and feeds LDN-OFFER and the recalcitrance rules."""
    res = run("rules", "show", "PERSISTENT", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["uses_findings_from"] == ["TRIAL-ADEQUATE"]
    assert {"LDN-OFFER", "RECALCITRANT-WEEKS", "RECALCITRANT-MODALITIES"} <= set(d["findings_used_by"])
    assert {p["name"]: p["source"] for p in d["parameters"]}[
        "persistent_pain_weeks"
    ] == "project parameter, not evidence"


def test_rules_show_accepts_any_case():
    """Rule ids are matched case-insensitively: `rules show ldn-offer`."""
    res = run("rules", "show", "ldn-offer", "-f", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["id"] == "LDN-OFFER"


def test_rules_show_an_unknown_id_exits_2_with_the_closest_ids():
    """An unknown rule id: exit 2, the closest ids suggested on stderr, nothing on stdout."""
    res = run("rules", "show", "LDN-OFER")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "LDN-OFFER" in res.stderr


# ---------------------------------------------------------------- rules attributes


def attributes() -> dict:
    res = run("rules", "attributes", "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_attributes_name_the_rule_set_version_and_digest():
    """Source attributes start with the rule set's name, version and digest."""
    attrs = {a["name"]: a["value"] for a in attributes()["ruleset"]}
    assert (attrs["name"], attrs["version"], attrs["digest"]) == (RULESET.name, RULESET.version, RULESET.digest)


def test_attributes_report_each_hti1_attribute_or_not_declared():
    """developer, funding, intended use, release and revision dates: the declared value or 'not declared'."""
    data = attributes()
    attrs = {a["name"]: a["value"] for a in data["ruleset"]}
    for key, _ in SOURCE_ATTRIBUTES:
        declared = RULESET.attributes.get(key)
        assert attrs[key] == (str(declared) if declared else NOT_DECLARED)
    assert data["missing"] == [k for k, _ in SOURCE_ATTRIBUTES if not RULESET.attributes.get(k)]


def test_attributes_list_the_patient_attributes_each_rule_reads():
    """Every patient attribute a rule declares it reads appears with that rule; unread ones say so."""
    use = {u["attribute"]: u for u in attributes()["patient_attributes"]}
    for rule in RULESET.rules:
        for path in rule.reads_patient:
            top = path.split(".")[0]
            assert rule.id in use[top]["rules"], (rule.id, path)
            assert path in use[top]["paths"]
    assert set(use) == set(RULESET.patient_model.model_fields)


def test_attributes_grade_and_cite_each_intervention():
    """Each intervention: its grade and citations, and the rules that emit it."""
    items = {i["intervention"]: i for i in attributes()["interventions"]}
    assert set(items) == set(RULESET.interventions)
    ldn = items["low_dose_naltrexone"]
    assert ldn["grade"] == "SORT C · very low"
    assert "younger-2013" in [c["id"] for c in ldn["citations"]]
    assert "LDN-OFFER" in ldn["rules"] and "LDN-CI-OPIOID" in ldn["rules"]


def test_attributes_text_shows_not_declared():
    """The text view prints the attributes table with 'not declared' where the rule set is silent."""
    res = run("rules", "attributes")
    assert res.exit_code == 0, res.output
    assert "release date" in res.stdout
    if not RULESET.attributes.get("release_date"):
        assert NOT_DECLARED in res.stdout
