"""engine/views/explain.py and engine/views/markdown.py, and the `explain` command: derivations a clinician can check."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from engine import InputError, Result, default_triager
from engine.api import Rule, fact, ge
from engine.kernel.triage import Triager
from engine.views.explain import (
    ExplainError,
    basis_gaps,
    entry_text,
    explain,
    explain_patient,
    iter_nodes,
    iter_steps,
    pattern_matches,
    rule_basis,
    source_attributes,
)
from engine.views.markdown import esc, explanation_markdown, result_markdown
from tests.conftest import example_path, load_example
from tests.toy import chain_rules, toy_ruleset

EXAMPLES = ["neuropathic-persistent", "opioid-user", "new-onset", "red-flag-charcot", "rheumatoid"]
LDN = "low_dose_naltrexone"
runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def explained(name_or_patient, intervention: str | None = None) -> tuple[Result, dict]:
    patient = load_example(name_or_patient) if isinstance(name_or_patient, str) else name_or_patient
    return explain_patient(default_triager(), patient, intervention)


def only_entry(expl: dict, status: str | None = None) -> dict:
    entries = [e for e in expl["entries"] if status is None or e["status"] == status]
    assert len(entries) == 1, [(e["intervention"], e["status"]) for e in expl["entries"]]
    return entries[0]


def step_of(entry: dict, rule: str) -> dict:
    steps = [s for s in iter_steps(entry["derivation"]) if s["rule"] == rule]
    assert steps, sorted({s["rule"] for s in iter_steps(entry["derivation"])})
    return steps[0]


def bare_patient(**extra) -> dict:
    p = {
        "id": "t",
        "age": 50,
        "sex": "female",
        "pain": {"site": "forefoot", "side": "left", "duration_weeks": 4, "neuropathic_features": []},
        "prior_treatments": [],
        "exam_findings": [],
        "comorbidities": [],
        "medications": [],
        "red_flags": [],
    }
    p.update(extra)
    return p


# ---------------------------------------------------------------- the LDN chain (issue 4 done-when)


def test_ldn_chain_runs_from_the_dn4_score_to_the_neuropathic_phenotype():
    """neuropathic-persistent: DN4 4/10 ≥ 4 gives the neuropathic phenotype, under the LDN recommendation."""
    _, expl = explained("neuropathic-persistent", LDN)
    entry = only_entry(expl, "recommended")
    step = step_of(entry, "DN4-PHENOTYPE")
    assert any("DN4 4/10 ≥ 4" in b for b in step["because"]), step["because"]
    assert step_of(entry, "DN4-SCORE")["premises"][0]["label"] == "pain"


def test_ldn_chain_names_the_8_week_pad_trial_without_benefit_and_16_weeks_of_pain():
    """The persistent-pain step that first concluded it rests on the 8-week metatarsal pad trial (response none)."""
    _, expl = explained("neuropathic-persistent", LDN)
    node = next(n for n in iter_nodes(only_entry(expl)["derivation"]) if n["label"] == "persistent_pain")
    first = node["steps"][0]
    assert first["rule"] == "PERSISTENT"
    assert "pain.duration_weeks 16 ≥ 12" in first["because"]
    assert any("metatarsal_pad for 8 weeks (response none)" in b for b in first["because"]), first["because"]
    trial = next(p for p in first["premises"] if p["label"] == "adequate_trial:metatarsal_pad")
    assert trial["steps"][0]["premises"][0]["value"]["weeks"] == 8


def test_a_finding_re_derived_by_later_firings_lists_them_after_the_first():
    """PERSISTENT fires once per failed adequate trial: the later firings are kept as further derivations."""
    result, expl = explained("neuropathic-persistent", LDN)
    node = next(n for n in iter_nodes(only_entry(expl)["derivation"]) if n["label"] == "persistent_pain")
    firings = [t for t in result.trace if t.rule == "PERSISTENT"]
    assert len(node["steps"]) == len(firings) == 3
    assert [s["because"] for s in node["steps"]] == [t.because for t in firings]


def test_ldn_explanation_shows_opioid_exposure_and_liver_contraindication_checked_absent():
    """No opioid exposure and no acute hepatitis or liver failure: each contraindication rule is shown not fired, and why."""
    _, expl = explained("neuropathic-persistent", LDN)
    absent = next(n for n in iter_nodes(only_entry(expl)["derivation"]) if n["label"] == "absent:ldn_contraindication")
    checks = {c["rule"]: c for c in absent["checked"]}
    assert set(checks) == {"LDN-CI-OPIOID", "LDN-CI-LIVER"}
    opioid = checks["LDN-CI-OPIOID"]["needs"][0]
    assert (opioid["pattern"], opioid["state"]) == ("opioid_exposure", "none")
    assert {c["rule"] for c in opioid["absent"]["checked"]} == {
        "OPIOID-MEDICATION",
        "OPIOID-RECENTLY-STOPPED",
        "OPIOID-USE-DISORDER",
        "OPIOID-LONG-TERM-USE",
    }
    liver = checks["LDN-CI-LIVER"]["needs"][0]
    assert liver["state"] == "none" and "liver_failure" in liver["pattern"]


def test_ldn_explanation_grades_it_sort_c_and_cites_the_fibromyalgia_trial():
    """The LDN entry is an adjunct, SORT C, citing younger-2013 (women with fibromyalgia), also on the LDN-OFFER step."""
    _, expl = explained("neuropathic-persistent", LDN)
    entry = only_entry(expl)
    assert (entry["category"], entry["evidence"]["sort"]) == ("adjunct", "C")
    younger = next(c for c in entry["evidence"]["citations"] if c["id"] == "younger-2013")
    assert "fibromyalgia" in younger["short"] and "SORT level 3" in younger["grade"]
    assert "younger-2013" in [c["id"] for c in step_of(entry, "LDN-OFFER")["citations"]]


def test_opioid_user_explanation_names_tramadol_as_the_opioid_that_blocks_ldn():
    """opioid-user: LDN contraindicated by LDN-CI-OPIOID, from opioid_exposure:tramadol, from the medication tramadol."""
    _, expl = explained("opioid-user", LDN)
    entry = only_entry(expl, "not_recommended")
    assert (entry["kind"], entry["rule"]) == ("contraindicated", "LDN-CI-OPIOID")
    exposure = entry["derivation"]["steps"][0]["premises"][0]
    assert exposure["label"] == "opioid_exposure:tramadol"
    leaf = exposure["steps"][0]["premises"][0]
    assert (leaf["kind"], leaf["label"], leaf["value"]["drug_class"]) == (
        "fact",
        "medication:tramadol",
        "opioid_agonist",
    )
    assert "tramadol" in entry["reason"]


# ---------------------------------------------------------------- structure, for every example


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_entry_of_the_result_is_explained(name):
    """One entry per recommendation and per not-recommended entry, each with a derivation."""
    result, expl = explained(name)
    outputs = [e["output"] for e in expl["entries"]]
    assert outputs == (
        [f"recommend:{r.intervention}" for r in result.recommendations]
        + [f"not_recommended:{n.intervention}:{n.kind}" for n in result.not_recommended]
    )
    assert all(e["derivation"] is not None for e in expl["entries"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_step_is_the_trace_entry_that_concluded_its_label(name):
    """Every derived node's first step is the first firing that concluded it, by the entry's own rule for outputs."""
    result, expl = explained(name)
    for entry in expl["entries"]:
        root = entry["derivation"]
        firing = next(t for t in result.trace if t.rule == entry["rule"] and entry["output"] in t.concluded)
        assert root["steps"][0]["because"] == firing.because
        for node in iter_nodes(root):
            if node["kind"] == "finding":
                first = next(t for t in result.trace if node["label"] in t.concluded)
                assert (node["steps"][0]["rule"], node["steps"][0]["because"]) == (first.rule, first.because)


@pytest.mark.parametrize("name", EXAMPLES)
def test_fact_leaves_are_the_patients_own_facts(name):
    """Every fact leaf is an input fact of this patient (never a derived one), shown with its value."""
    triager = default_triager()
    patient = triager.validate(load_example(name))
    inputs = {f"{f['type']}:{f['key']}" if "key" in f else f["type"] for f in triager.ruleset.to_facts(patient)}
    _, expl = explained(name)
    leaves = [n for e in expl["entries"] for n in iter_nodes(e["derivation"]) if n["kind"] == "fact"]
    assert leaves
    for leaf in leaves:
        assert leaf["label"] in inputs
        assert leaf["value"] is not None


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_explanation_is_plain_json(name):
    """The explanation round-trips through JSON unchanged (what `explain --format json` prints)."""
    _, expl = explained(name)
    assert json.loads(json.dumps(expl, ensure_ascii=False)) == expl


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_explained_result_is_the_triage_result(name):
    """explain_patient runs the same triage as Triager.triage: the result it explains is identical."""
    result, _ = explained(name)
    assert result == default_triager().triage(load_example(name))


def test_intervention_filter_keeps_only_that_interventions_entries():
    """--intervention keeps the entries about that code and drops every other."""
    _, expl = explained("red-flag-charcot", "pulsed_radiofrequency")
    assert {e["intervention"] for e in expl["entries"]} == {"pulsed_radiofrequency"}
    assert {e["kind"] for e in expl["entries"]} == {"suppressed", "deferred"}


def test_suppression_by_a_red_flag_rests_on_the_red_flag_fact():
    """red-flag-charcot: escalation suppressed by RF-SUPPRESS-ESCALATION, whose premise is red_flag:suspected_charcot."""
    _, expl = explained("red-flag-charcot", "pulsed_radiofrequency")
    entry = next(e for e in expl["entries"] if e["kind"] == "suppressed")
    step = entry["derivation"]["steps"][0]
    assert step["rule"] == "RF-SUPPRESS-ESCALATION"
    assert [p["label"] for p in step["premises"]] == ["red_flag:suspected_charcot"]


def test_an_unknown_intervention_code_is_an_input_error_naming_the_option():
    """A code the rule set does not know is rejected (exit 2 in the CLI), with the closest codes."""
    with pytest.raises(ExplainError) as exc:
        explained("opioid-user", "low_dose_naltrexon")
    assert isinstance(exc.value, InputError)
    assert exc.value.problems[0].field == "--intervention"
    assert "low_dose_naltrexone" in exc.value.problems[0].problem


def test_an_intervention_without_any_entry_is_explained_by_the_rules_that_could_emit_it():
    """insoles for a patient without rheumatoid arthritis: FL-INSOLES did not fire, its comorbidity is absent."""
    _, expl = explained("neuropathic-persistent", "insoles")
    entry = only_entry(expl, "not_mentioned")
    check = next(c for c in entry["could_come_from"] if c["rule"] == "FL-INSOLES")
    assert [(n["pattern"], n["state"]) for n in check["needs"]] == [
        ("comorbidity(code = rheumatoid_arthritis)", "none")
    ]


def test_an_intervention_with_no_entry_rests_only_on_rules_that_emit_it():
    """could_come_from lists exactly the rules that declare they emit the intervention."""
    _result, expl = explained("neuropathic-persistent", "insoles")
    rules = default_triager().ruleset.rules
    assert [c["rule"] for c in only_entry(expl)["could_come_from"]] == [r.id for r in rules if "insoles" in r.emits]


# ---------------------------------------------------------------- unknowns


def test_an_assumed_dn4_of_zero_is_an_unknown_attached_to_ldn():
    """new-onset lists no neuropathic features and no DN4 assessment: the DN4 is unknown (never an assumed
    0/10), shown on LDN."""
    _, expl = explained("new-onset", LDN)
    entry = only_entry(expl)
    assert [u["fact"] for u in entry["unknowns"]] == ["dn4"]
    assert [u["fact"] for u in expl["unknowns"]] == ["dn4"]
    assert "the DN4 is not recorded" in entry["unknowns"][0]["reason"]


def test_the_dn4_score_step_carries_the_unknown_it_raised():
    """The DN4-UNKNOWN firing that concluded 'unknown:dn4' carries that unknown wherever it appears; with
    persistent pain LDN waits for the DN4 (LDN-DEFERRED-DN4), never 'not indicated' on an assumed 0/10."""
    _, expl = explained(
        bare_patient(
            pain={"site": "forefoot", "side": "left", "duration_weeks": 20, "neuropathic_features": []},
            prior_treatments=[{"treatment": "metatarsal_pad", "weeks": 8, "response": "none"}],
        ),
        LDN,
    )
    entry = only_entry(expl)
    assert entry["rule"] == "LDN-DEFERRED-DN4"
    step = step_of(entry, "DN4-UNKNOWN")
    assert [u["fact"] for u in step["unknowns"]] == ["dn4"]


def test_missing_weight_and_height_show_bmi_unknown_blocking_weight_management():
    """No weight or height: weight management is neither offered nor withheld; the BMI unknown says why."""
    _, expl = explained(bare_patient(), "weight_management")
    entry = only_entry(expl, "not_mentioned")
    assert [(u["fact"], u["rule"]) for u in entry["unknowns"]] == [("bmi", "BMI-UNKNOWN")]
    weight = next(c for c in entry["could_come_from"] if c["rule"] == "FL-WEIGHT")
    bmi = weight["needs"][0]
    assert bmi["state"] == "none"
    assert "BMI-DERIVE" in [c["rule"] for c in bmi["absent"]["checked"]]


def test_unknowns_not_blocking_the_asked_intervention_are_left_out():
    """With --intervention, only the unknowns that block that intervention are listed."""
    _, expl = explained("new-onset", "metatarsal_pad")
    assert expl["unknowns"] == []


# ---------------------------------------------------------------- generic engine (toy rule set)


def test_explain_works_for_any_rule_set_without_facts():
    """The toy rule set: TOY-TREAT from 'high' from the subject fact; without facts the leaves carry no value."""
    t = Triager(toy_ruleset(chain_rules()))
    result = t.triage({"id": "a", "score": 7})
    expl = explain(result, t.ruleset)
    entry = only_entry(expl)
    assert entry["derivation"]["steps"][0]["rule"] == "TOY-TREAT"
    high = entry["derivation"]["steps"][0]["premises"][0]
    assert high["label"] == "high" and high["steps"][0]["rule"] == "TOY-HIGH"
    assert high["steps"][0]["premises"][0] == {"label": "subject", "kind": "fact", "text": "subject", "value": None}


def test_pattern_matching_follows_each_test_operator():
    """pattern_matches applies ≥, in and equality the way durable-rules matches them."""
    from engine.api import one_of

    p = fact("treatment", weeks=ge(6), response=one_of("none", "partial"), line="first_line")
    base = {"type": "treatment", "weeks": 6, "response": "none", "line": "first_line"}
    assert pattern_matches(p, base)
    assert not pattern_matches(p, {**base, "weeks": 5.9})
    assert not pattern_matches(p, {**base, "response": "resolved"})
    assert not pattern_matches(p, {**base, "type": "other"})
    assert not pattern_matches(p, {k: v for k, v in base.items() if k != "weeks"})


def _toy_with(rule: Rule, parameters: dict) -> object:
    from dataclasses import replace

    return replace(toy_ruleset([rule]), parameters=parameters, citations={"toy-cite": {"title": "toy"}})


def test_a_rule_with_a_citation_is_cited():
    """rule_basis: a rule naming a citation is 'cited'."""
    r = Rule("TOY-A", "a", when={"s": fact("subject")}, action=lambda c: None, citations=("toy-cite",))
    assert rule_basis(_toy_with(r, {}), r)["kind"] == "cited"


def test_a_rule_resting_only_on_project_parameters_says_so():
    """rule_basis: no citation, every parameter a project parameter: 'project_parameter', said plainly."""
    from engine.api import Parameter, ge, param

    r = Rule("TOY-A", "a", when={"s": fact("subject", score=ge(param("cut")))}, action=lambda c: None)
    rs = _toy_with(r, {"cut": Parameter("cut", 5, "points", "project parameter, not evidence", "chosen")})
    basis = rule_basis(rs, r)
    assert basis["kind"] == "project_parameter" and "not evidence" in basis["text"]


def test_a_rule_with_neither_citation_nor_project_parameter_is_a_gap():
    """rule_basis: a rule with an evidence-sourced parameter but no citation, or nothing at all, is a gap."""
    from engine.api import Parameter, ge, param

    r = Rule("TOY-A", "a", when={"s": fact("subject", score=ge(param("cut")))}, action=lambda c: None)
    rs = _toy_with(r, {"cut": Parameter("cut", 5, "points", "Some guideline 2020", "from a guideline")})
    assert rule_basis(rs, r)["kind"] == "gap"
    bare = Rule("TOY-B", "b", when={"s": fact("subject")}, action=lambda c: None)
    assert basis_gaps(_toy_with(bare, {})) == ["TOY-B"]


def test_undeclared_source_attributes_are_reported_not_declared():
    """source_attributes: what RuleSet.attributes leaves out is 'not declared' and listed as missing."""
    from dataclasses import replace

    rs = replace(toy_ruleset(chain_rules()), attributes={"developer": "toy team"})
    attrs = {a["name"]: a["value"] for a in source_attributes(rs)["ruleset"]}
    assert attrs["developer"] == "toy team"
    assert attrs["release_date"] == "not declared"
    assert "release_date" in source_attributes(rs)["missing"]
    assert "developer" not in source_attributes(rs)["missing"]


def test_patient_attributes_read_by_no_rule_are_listed_as_unused():
    """patient_attribute_use: every input field, with the rules that read it (none for an unread field)."""
    r = Rule("TOY-A", "a", when={"s": fact("subject")}, action=lambda c: None)
    use = {u["attribute"]: u["rules"] for u in source_attributes(toy_ruleset([r]))["patient_attributes"]}
    assert use["score"] == ["TOY-A"]
    assert use["tags"] == []


# ---------------------------------------------------------------- markdown


def test_markdown_escapes_text_that_would_become_markup():
    """esc: emphasis, HTML, links and table pipes are escaped; whitespace collapses to one line."""
    assert esc("a*b* <i>x</i> [l](u) |c|\nd") == r"a\*b\* \<i\>x\</i\> \[l\](u) \|c\| d"


def test_a_free_text_medication_name_cannot_inject_markup_into_the_report():
    """An unrecognised medication named '<b>x*</b>' appears escaped in the triage markdown."""
    result = default_triager().triage(bare_patient(medications=["<b>zz*</b>"]))
    text = result_markdown(result, default_triager().ruleset)
    assert "<b>" not in text and r"\<b\>zz\*\</b\>" in text


def test_triage_markdown_has_the_recommendations_withheld_unknowns_and_references():
    """The clinical-note report: each recommendation with its grade, each withheld entry, unknowns
    (beside the entry they affect, else in their own section), references."""
    patient = load_example("new-onset")
    del patient["weight_kg"]
    result = default_triager().triage(patient)
    text = result_markdown(result, default_triager().ruleset)
    for heading in ("### Recommended", "### Not recommended", "### Not known", "### References"):
        assert heading in text
    ldn = text.split("- **Low-dose naltrexone (LDN)**", 1)[1].split("\n- **", 1)[0]
    assert "**not known**: " in ldn
    assert "**Metatarsal pad** (first-line care; recommended; SORT B · low)" in text
    assert "**Low-dose naltrexone (LDN)**: deferred: " in text
    assert all(f"`{cid}`:" in text for cid in result.citations)


def test_markdown_and_explanation_write_grades_alike():
    """The markdown report's grade wording is the explanation's: 'SORT C · very low'."""
    from engine.views import explain as ex
    from engine.views import markdown as md

    ev = {"sort": "C", "certainty": "very_low"}
    assert md.evidence_grade(ev) == ex.evidence_grade(ev) == "SORT C · very low"
    assert md.evidence_grade(None) == ex.evidence_grade(None) == ""


def test_explanation_markdown_nests_the_chain_under_the_entry():
    """The LDN explanation in markdown: the DN4-PHENOTYPE step nested under LDN-OFFER, the pad trial below PERSISTENT."""
    _, expl = explained("neuropathic-persistent", LDN)
    lines = explanation_markdown(expl).splitlines()
    offer = next(i for i, line in enumerate(lines) if line.startswith("- by `LDN-OFFER`"))
    pheno = next(line for line in lines[offer:] if "`DN4-PHENOTYPE`" in line)
    assert pheno.startswith("  - neuropathic_phenotype")
    assert any(line.startswith("      - metatarsal_pad tried 8 weeks ≥ 6") for line in lines)


# ---------------------------------------------------------------- the explain command


def run(*args, input=None):
    return runner.invoke(app, list(args), env=WIDE, input=input)


def test_explain_command_prints_the_ldn_chain_as_a_tree():
    """`explain neuropathic-persistent.json --intervention low_dose_naltrexone`: the done-when of issue 4."""
    res = run("explain", str(example_path("neuropathic-persistent")), "--intervention", LDN)
    assert res.exit_code == 0, res.output
    out = res.stdout
    for text in (
        "DN4 4/10 ≥ 4",
        "neuropathic_phenotype",
        "metatarsal_pad tried 8 weeks ≥ 6, response none",
        "pain.duration_weeks 16 ≥ 12",
        "needs opioid_exposure: none",
        "LDN-CI-LIVER",
        "SORT C",
        "younger-2013",
        "fibromyalgia",
        "LDN-OFFER",
    ):
        assert text in out, text


def test_explain_command_json_is_the_explanation():
    """--format json prints the same tree as nested objects, and nothing else on stdout."""
    res = run("explain", str(example_path("opioid-user")), "-i", LDN, "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data == explained("opioid-user", LDN)[1]
    assert "tramadol" in entry_text(data["entries"][0])


def test_explain_command_markdown():
    """--format markdown prints the explanation as a markdown section per entry."""
    res = run("explain", str(example_path("opioid-user")), "-i", LDN, "-f", "markdown")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("## Explanation: example-opioid-user")
    assert "medication:tramadol" in res.stdout


def test_explain_command_reads_stdin():
    """FILE '-' reads the patient from stdin."""
    res = run("explain", "-", "-i", LDN, "-f", "json", input=example_path("opioid-user").read_text())
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["entries"][0]["kind"] == "contraindicated"


def test_explain_command_rejects_an_unknown_intervention_with_exit_2():
    """An unknown --intervention code: exit 2, the option named on stderr, nothing on stdout."""
    res = run("explain", str(example_path("opioid-user")), "-i", "ldn")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "--intervention" in res.stderr


def test_explain_command_rejects_an_invalid_patient_with_the_field_path():
    """An invalid patient: exit 2 with the field path, never a traceback, nothing on stdout."""
    bad = json.dumps(bare_patient(age=-3))
    res = run("explain", "-", input=bad)
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "age" in res.stderr and "Traceback" not in res.stderr


def test_triage_command_markdown():
    """`triage --format markdown` prints the clinical-note report on stdout."""
    res = run("triage", str(example_path("neuropathic-persistent")), "--format", "markdown")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("## Triage: example-neuropathic-persistent")
    assert "**Low-dose naltrexone (LDN)** (adjuncts; may be considered; SORT C · very low)" in res.stdout


def test_explain_command_reads_a_fhir_bundle():
    """`explain` accepts a FHIR R4 Bundle as `triage` does: the same derivation as the patient file."""
    from tests.conftest import ROOT

    bundle = ROOT / "tests" / "fhir" / "opioid-user.json"
    res = run("explain", str(bundle), "-i", LDN, "-f", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["entries"][0]["kind"] == "contraindicated"
    assert "tramadol" in entry_text(data["entries"][0])


def test_explain_of_a_fhir_bundle_lists_the_mappings_unknowns():
    """What the FHIR mapping could not settle is listed among the explanation's unknowns."""
    from tests.conftest import ROOT

    bundle = json.loads((ROOT / "tests" / "fhir" / "neuropathic-persistent.json").read_text())
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:0b7a5c3e-1111-4a4a-9c9c-000000000001",
            "resource": {
                "resourceType": "MedicationStatement",
                "status": "active",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "999999999"}]
                },
                "subject": {"reference": bundle["entry"][0]["fullUrl"]},
            },
        }
    )
    res = run("explain", "-", "-f", "json", input=json.dumps(bundle))
    assert res.exit_code == 0, res.output
    assert "medication:rxnorm 999999999" in {u["fact"] for u in json.loads(res.stdout)["unknowns"]}


def test_explain_rejects_a_triage_only_format():
    res = run("explain", str(example_path("opioid-user")), "-f", "html")
    assert res.exit_code == 2 and "--format" in res.stderr


def test_two_mapping_unknowns_of_one_fact_are_both_explained() -> None:
    """A FHIR mapping can give one fact several unknowns (two unreadable medication statements): the
    explanation lists each of them once, as the result does, and loses none (it once showed the last
    one twice)."""
    extra = [
        {
            "fact": "fhir:medications",
            "reason": f"a MedicationStatement for drug {k} has a status this table does not know",
            "blocks": ["low_dose_naltrexone"],
            "rule": "FHIR-MAP",
        }
        for k in ("A", "B")
    ]
    result, expl = explain_patient(default_triager(), load_example("neuropathic-persistent"), unknowns=extra)
    shown = [u["reason"] for u in expl["unknowns"] if u["fact"] == "fhir:medications"]
    assert shown == [u.reason for u in result.unknowns if u.fact == "fhir:medications"]
    assert shown == [e["reason"] for e in extra]
    [ldn] = [e for e in expl["entries"] if e["intervention"] == "low_dose_naltrexone"]
    assert [u["reason"] for u in ldn["unknowns"] if u["fact"] == "fhir:medications"] == shown
