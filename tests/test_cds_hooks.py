"""CDS Hooks 2.0 cards from a triage result (engine/views/cds_hooks.py, `triage --format cds-hooks`): one card
per decision to act on (each red flag, each contraindication, the plan), summaries written to fit."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from conftest import load_example
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import app
from engine import Result, default_triager
from engine.views.cds_hooks import CARD_NAMESPACE, card_uuid, cards
from tests.strategies import any_patient, flagged_patient

EXAMPLES = ("neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid")
runner = CliRunner()


def triaged(name: str, **changes: Any) -> Result:
    patient = {**load_example(name), **changes}
    return default_triager().triage(patient)


def response(name: str, **changes: Any) -> dict[str, Any]:
    return cards(triaged(name, **changes), default_triager().ruleset)


def entry(card: dict[str, Any]) -> dict[str, Any]:
    return card["extension"]["forefoot-cds.entry"]


def all_cards() -> list[dict[str, Any]]:
    return [c for name in EXAMPLES for c in response(name)["cards"]]


def kinds(name: str, **changes: Any) -> list[str]:
    return [entry(c)["type"] for c in response(name, **changes)["cards"]]


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w'-]+", text.replace("\\", "")))


def test_every_summary_is_written_to_fit_140_characters() -> None:
    """CDS Hooks: a summary is shorter than 140 characters; ours are written from whole clauses, so
    the long opioid contraindication is said short, not cut mid-word."""
    summaries = [c["summary"] for c in all_cards()]
    assert summaries and all(0 < len(s) < 140 for s in summaries)
    warning = next(c for c in response("opioid-user")["cards"] if c["indicator"] == "warning")
    assert not warning["summary"].endswith("…")
    assert words(warning["summary"]) <= words(warning["detail"]) | {"contraindicated"}


def test_the_opioid_user_gets_at_most_3_cards() -> None:
    """The opioid user: the LDN contraindication and the plan, nothing else."""
    got = kinds("opioid-user")
    assert len(got) <= 3 and got == ["contraindication", "plan"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_one_card_per_decision(name: str) -> None:
    """A card per red flag, one per contraindicated intervention, one plan; nothing else."""
    result = triaged(name)
    got = kinds(name)
    contraindicated = {n.intervention for n in result.not_recommended if n.kind == "contraindicated"}
    assert got.count("red_flag") == len(result.red_flags)
    assert got.count("contraindication") == len(contraindicated)
    assert got.count("plan") == 1
    assert len(got) == len(result.red_flags) + len(contraindicated) + 1


def test_urgent_referral_is_critical() -> None:
    """The urgent referral for a red flag is the first card, indicator critical, naming the red flag."""
    first = response("red-flag-charcot")["cards"][0]
    assert first["indicator"] == "critical"
    assert entry(first)["intervention"] == "urgent_referral" and entry(first)["flag"] == "suspected_charcot"
    assert "Charcot" in first["summary"]


def test_each_red_flag_has_its_card() -> None:
    """Two red flags: two critical cards, each naming its own flag."""
    res = response("red-flag-charcot", red_flags=["suspected_charcot", "suspected_infection"])
    flags = [entry(c)["flag"] for c in res["cards"] if c["indicator"] == "critical"]
    assert flags == ["suspected_charcot", "suspected_infection"]


def test_the_urgent_referral_card_suggests_a_draft_service_request() -> None:
    """CDS Hooks 2.0 suggestion: a `create` action with a ServiceRequest (draft, proposal, the patient, the
    red flag as its reason, urgent priority)."""
    card = response("red-flag-charcot")["cards"][0]
    assert card["selectionBehavior"] == "at-most-one"
    [suggestion] = card["suggestions"]
    uuid.UUID(suggestion["uuid"])
    [action] = suggestion["actions"]
    sr = action["resource"]
    assert action["type"] == "create" and sr["resourceType"] == "ServiceRequest"
    assert (sr["status"], sr["intent"], sr["priority"]) == ("draft", "proposal", "urgent")
    assert sr["subject"] == {"reference": "Patient/example-red-flag-charcot"}
    assert sr["reasonCode"][0]["coding"][0]["code"] == "suspected_charcot"
    assert "Charcot" in sr["reasonCode"][0]["text"]


def test_an_urgent_recommendation_without_a_red_flag_is_not_dressed_as_one() -> None:
    """A rule set may recommend urgently with no red flag in the result: the card is critical and
    suggests the referral, but names no flag, and its ServiceRequest's reason is text, never a code of
    the flags' code system (before, the intervention's code was sent as a red flag's)."""
    result = triaged("red-flag-charcot")
    unflagged = result.model_copy(update={"red_flags": []})
    card = cards(unflagged, default_triager().ruleset)["cards"][0]
    assert card["indicator"] == "critical"
    assert entry(card)["type"] == "urgent" and entry(card)["flag"] is None
    assert entry(card)["intervention"] == "urgent_referral"
    # framed as the recommendation itself (its rationale may still mention flags: this result's does)
    first_line = card["detail"].splitlines()[0]
    assert first_line == "**Urgent referral.**", first_line
    flagged = cards(result, default_triager().ruleset)["cards"][0]
    assert flagged["detail"].splitlines()[0].startswith("**Red flag")
    sr = card["suggestions"][0]["actions"][0]["resource"]
    assert sr["resourceType"] == "ServiceRequest" and sr["priority"] == "urgent"
    assert "coding" not in sr["reasonCode"][0] and sr["reasonCode"][0]["text"]
    assert sr["reasonCode"][0]["text"] == "; ".join(unflagged.recommendations[0].rationale)
    assert len(card["summary"]) <= 140
    again = cards(unflagged, default_triager().ruleset)["cards"][0]
    assert again["uuid"] == card["uuid"] != cards(result, default_triager().ruleset)["cards"][0]["uuid"]


def test_a_priority_in_the_result_is_the_service_requests_priority() -> None:
    """Where the urgent recommendation gives a FHIR request priority, the ServiceRequest carries it."""
    result = triaged("red-flag-charcot")
    recs = [
        r.model_copy(update={"details": {**r.details, "priority": "stat"}}) if r.category == "urgent_referral" else r
        for r in result.recommendations
    ]
    card = cards(result.model_copy(update={"recommendations": recs}), default_triager().ruleset)["cards"][0]
    assert card["suggestions"][0]["actions"][0]["resource"]["priority"] == "stat"


def test_contraindication_is_a_warning() -> None:
    """An opioid user's LDN contraindication is a warning card."""
    warnings = [c for c in response("opioid-user")["cards"] if c["indicator"] == "warning"]
    assert [entry(c)["intervention"] for c in warnings] == ["low_dose_naltrexone"]
    assert "opioid" in warnings[0]["detail"]


def test_the_plan_card_holds_every_recommendation_the_withheld_options_and_the_unknowns() -> None:
    """The plan: every recommendation but the urgent referral (it has its card), every option not
    offered for another reason than a contraindication, and the unknowns, in words."""
    patient = load_example("new-onset")
    del patient["weight_kg"]
    result = default_triager().triage(patient)
    plan = next(c for c in cards(result, default_triager().ruleset)["cards"] if entry(c)["type"] == "plan")
    assert plan["indicator"] == "info"
    assert entry(plan)["interventions"] == [r.intervention for r in result.recommendations]
    held = {n.intervention for n in result.not_recommended if n.kind != "contraindicated"}
    assert set(entry(plan)["withheld"]) == held and held
    assert "**Not known**" in plan["detail"] and "weight" in plan["detail"]
    assert "prefetch" not in plan["detail"] and "entry\\[" not in plan["detail"]


def test_the_plan_keeps_doses_cautions_and_the_opioid_check() -> None:
    """LDN in the plan card: its dose, its cautions and the opioid check (every medication classified)."""
    patient = {**load_example("neuropathic-persistent"), "pregnant": True, "medications": ["sertraline"]}
    result = default_triager().triage(patient)
    plan = next(c for c in cards(result, default_triager().ruleset)["cards"] if entry(c)["type"] == "plan")
    ldn = plan["detail"].split("**Low-dose naltrexone (LDN)**", 1)[1].split("\n- **", 1)[0]
    assert "dose:" in ldn and "cautions:" in ldn and "opioid check: no opioid exposure recorded" in ldn


def test_other_cards_are_info() -> None:
    """Only red flags are critical and only contraindications are warnings; the plan is info."""
    for c in all_cards():
        expected = {"red_flag": "critical", "contraindication": "warning", "plan": "info"}[entry(c)["type"]]
        assert c["indicator"] == expected


def test_source_url_is_the_readable_pathway_page() -> None:
    """With the service's base URL, every card's source is its pathway page; a report page, when
    given, is the plan's source and a link on it."""
    result = triaged("opioid-user")
    got = cards(result, default_triager().ruleset, base_url="https://cds.example.org/")["cards"]
    assert {c["source"]["url"] for c in got} == {"https://cds.example.org/pathway"}
    got = cards(result, default_triager().ruleset, "https://cds.example.org", report_url="https://cds.example.org/r/1")
    plan = next(c for c in got["cards"] if entry(c)["type"] == "plan")
    assert plan["source"]["url"] == "https://cds.example.org/r/1"
    assert {"label": "Full report", "url": "https://cds.example.org/r/1", "type": "absolute"} in plan["links"]


def test_uuid_is_stable_for_the_same_patient_and_rule() -> None:
    """The same patient gives the same card uuids; uuids are unique within a response and are uuid5."""
    first = [c["uuid"] for c in response("opioid-user")["cards"]]
    again = [c["uuid"] for c in response("opioid-user")["cards"]]
    assert first == again and len(set(first)) == len(first)
    rec = response("opioid-user")["cards"][0]
    assert rec["uuid"] == str(
        uuid.uuid5(CARD_NAMESPACE, "\x1f".join(("example-opioid-user", entry(rec)["rule"], entry(rec)["intervention"])))
    )
    plan = response("opioid-user")["cards"][-1]
    assert plan["uuid"] == card_uuid("example-opioid-user", "PLAN", "*")


def test_uuid_differs_between_patients() -> None:
    """Another patient id gives other uuids for the same rule and intervention."""
    assert card_uuid("a", "FL-PAD", "metatarsal_pad") != card_uuid("b", "FL-PAD", "metatarsal_pad")


def test_source_has_label_and_url() -> None:
    """Every card names its source: the rule set with its version, and an absolute URL."""
    ruleset = default_triager().ruleset
    for c in all_cards():
        assert c["source"]["label"] == f"{ruleset.name} {ruleset.version}"
        assert c["source"]["url"].startswith(("https://", "http://"))


def plan_card(name: str) -> dict[str, Any]:
    return next(c for c in response(name)["cards"] if entry(c)["type"] == "plan")


def test_detail_carries_grade_rationale_and_citations() -> None:
    """A recommendation in the plan's detail: its SORT and GRADE grade, why, and its sources."""
    result = triaged("rheumatoid")
    detail = plan_card("rheumatoid")["detail"]
    rec = result.recommended("insoles")
    insoles = detail.split("**Simple insoles**", 1)[1].split("\n- **", 1)[0]
    assert f"SORT {rec.evidence.sort} · low" in insoles and "why:" in insoles
    assert "**Sources:**" in detail and "Bartolo" in detail


def test_links_point_to_the_cited_studies() -> None:
    """Links go to PubMed for a study with a PMID and to doi.org for one with only a DOI."""
    plan = plan_card("neuropathic-persistent")
    assert {"label": plan["links"][0]["label"], "url": plan["links"][0]["url"], "type": "absolute"} in plan["links"]
    urls = {link["url"] for link in plan["links"]}
    assert "https://pubmed.ncbi.nlm.nih.gov/23359310/" in urls  # younger-2013: PMID
    assert "https://doi.org/10.1016/j.jtos.2020.12.003" in urls  # dieckmann-2021: DOI only


def test_clinician_may_decline_recommendations_and_warnings() -> None:
    """Recommendation and contraindication cards offer override reasons as Codings (system, code, display)."""
    for c in response("opioid-user")["cards"]:
        if entry(c)["type"] in ("plan", "contraindication"):
            assert c["overrideReasons"]
            assert all({"system", "code", "display"} <= set(r) for r in c["overrideReasons"])


def test_markdown_in_data_is_escaped() -> None:
    """Markdown in data (here medication names in a reason) is escaped, so it never turns into emphasis:
    rendered as CommonMark, the names read as written. An underscore inside a word cannot be emphasis
    and is left as it is; one at a word's edge is escaped."""
    from markdown_it import MarkdownIt

    patient = {**load_example("neuropathic-persistent"), "medications": ["sertraline", "my_drug_x 5 mg", "_zz_ *q*"]}
    c = next(
        c
        for c in cards(default_triager().triage(patient), default_triager().ruleset)["cards"]
        if entry(c)["type"] == "plan"
    )
    assert "my_drug_x" in c["detail"] and "\\_zz\\_ \\*q\\*" in c["detail"]
    html = MarkdownIt("commonmark").enable(["strikethrough", "table"]).render(c["detail"])
    assert "<em>" not in html and "my_drug_x" in html and "_zz_ *q*" in html


def test_cli_prints_a_cds_hooks_response() -> None:
    """`triage FILE --format cds-hooks` prints {"cards": [...]} and nothing else on stdout."""
    from engine import what_would_change

    res = runner.invoke(app, ["triage", "-", "--format", "cds-hooks"], input=json.dumps(load_example("opioid-user")))
    assert res.exit_code == 0
    t, patient = default_triager(), load_example("opioid-user")
    # the CLI's default result carries what would change each withheld option (`--no-changes`: it does not)
    assert json.loads(res.stdout) == cards(what_would_change(t, patient, t.triage(patient)), t.ruleset)
    res = runner.invoke(
        app, ["triage", "-", "--format", "cds-hooks", "--no-changes"], input=json.dumps(load_example("opioid-user"))
    )
    assert json.loads(res.stdout) == response("opioid-user")


# ---------------------------------------------------------------- the seeded cohort

OUR_WORDS = {"more", "contraindicated", "Plan", "reason", "now", "offered"}


def _whole_words(card: dict[str, Any]) -> bool:
    """The summary ends on a whole word of the card's own text (never a word cut short)."""
    found = re.findall(r"[\w'-]+", card["summary"].rstrip("…"))
    if not found:
        return False
    last = found[-1]
    text = card["detail"].replace("\\", "")
    return last in OUR_WORDS or re.search(rf"(?<![\w'-]){re.escape(last)}(?![\w'-])", text) is not None


@given(st.one_of(any_patient(), flagged_patient()))
def test_every_card_of_a_seeded_cohort_is_one_decision_with_a_whole_summary(patient: dict[str, Any]) -> None:
    """Property: at most one card per decision (each red flag, each contraindicated option, the plan);
    every summary under 140 characters and ending on a whole word; a critical card offers the
    ServiceRequest; every card's source is a page URL."""
    result = default_triager().triage(patient)
    got = cards(result, default_triager().ruleset, base_url="http://127.0.0.1:8000")["cards"]
    contraindicated = {n.intervention for n in result.not_recommended if n.kind == "contraindicated"}
    assert len(got) <= len(result.red_flags) + len(contraindicated) + 1
    assert [entry(c)["flag"] for c in got if entry(c)["type"] == "red_flag"] == result.red_flags
    for c in got:
        assert 0 < len(c["summary"]) < 140 and _whole_words(c), c["summary"]
        assert c["source"]["url"] == "http://127.0.0.1:8000/pathway"
        if c["indicator"] == "critical":
            assert c["suggestions"][0]["actions"][0]["resource"]["resourceType"] == "ServiceRequest"


def test_what_would_change_is_in_the_cards_that_hold_the_withheld_option() -> None:
    """Where the result carries what_would_change, the plan (and a contraindication card) list every change."""
    from engine.kernel.models import Change

    result = triaged("opioid-user")
    entries = [
        n.model_copy(update={"what_would_change": [Change(text=f"change for {n.intervention}", edits=[])]})
        for n in result.not_recommended
    ]
    got = cards(result.model_copy(update={"not_recommended": entries}), default_triager().ruleset)["cards"]
    warning = next(c for c in got if entry(c)["type"] == "contraindication")
    plan = next(c for c in got if entry(c)["type"] == "plan")
    assert "change for low_dose_naltrexone" in warning["detail"]
    assert "would be an option if: change for metatarsal_pad" in plan["detail"]
