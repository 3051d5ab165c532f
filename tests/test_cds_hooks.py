"""CDS Hooks 2.0 cards from a triage result (engine/views/cds_hooks.py, `triage --format cds-hooks`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import load_example
from typer.testing import CliRunner

from cli import app
from engine import Result, default_triager
from engine.views.cds_hooks import CARD_NAMESPACE, card_uuid, cards

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


def test_every_summary_is_under_140_characters() -> None:
    """CDS Hooks: a card summary is shorter than 140 characters (long ones are cut with an ellipsis)."""
    summaries = [c["summary"] for c in all_cards()]
    assert summaries and all(0 < len(s) < 140 for s in summaries)
    assert any(s.endswith("…") for s in summaries)  # the opioid contraindication is long


def test_urgent_referral_is_critical() -> None:
    """The urgent referral for a red flag is the first card, indicator critical, naming the red flag."""
    first = response("red-flag-charcot")["cards"][0]
    assert first["indicator"] == "critical"
    assert entry(first)["intervention"] == "urgent_referral"
    assert "Charcot" in first["summary"]


def test_contraindication_is_a_warning() -> None:
    """An opioid user's LDN contraindication is a warning card."""
    warnings = [c for c in response("opioid-user")["cards"] if c["indicator"] == "warning"]
    assert [entry(c)["intervention"] for c in warnings] == ["low_dose_naltrexone"]
    assert "opioid" in warnings[0]["detail"]


def test_other_cards_are_info() -> None:
    """Only urgent referrals are critical and only contraindications are warnings; everything else is info."""
    for c in all_cards():
        kind = entry(c)["type"]
        expected = ("critical" if entry(c).get("category") == "urgent_referral" else
                    "warning" if kind == "contraindication" else "info")
        assert c["indicator"] == expected


@pytest.mark.parametrize("name", EXAMPLES)
def test_one_card_per_recommendation(name: str) -> None:
    """Each recommendation of the result is one card, in the result's order."""
    result = triaged(name)
    recs = [entry(c)["intervention"] for c in cards(result, default_triager().ruleset)["cards"]
            if entry(c)["type"] == "recommendation"]
    assert recs == [r.intervention for r in result.recommendations]


def test_withheld_options_are_listed_not_silent() -> None:
    """Every deferred, not-indicated or suppressed option appears in one 'not offered now' card with its reason."""
    result = triaged("new-onset")
    withheld = next(c for c in cards(result, default_triager().ruleset)["cards"] if entry(c)["type"] == "withheld")
    expected = {n.intervention for n in result.not_recommended if n.kind != "contraindicated"}
    assert set(entry(withheld)["interventions"]) == expected and expected


def test_unknowns_get_a_card() -> None:
    """A result with unknowns gets an info card listing them and what they block."""
    patient = load_example("new-onset")
    del patient["weight_kg"]
    c = next(c for c in cards(default_triager().triage(patient), default_triager().ruleset)["cards"]
             if entry(c)["type"] == "unknowns")
    assert "weight" in c["detail"] and c["indicator"] == "info"


def test_uuid_is_stable_for_the_same_patient_and_rule() -> None:
    """The same patient gives the same card uuids; uuids are unique within a response and are uuid5."""
    first = [c["uuid"] for c in response("opioid-user")["cards"]]
    again = [c["uuid"] for c in response("opioid-user")["cards"]]
    assert first == again and len(set(first)) == len(first)
    rec = response("opioid-user")["cards"][0]
    assert rec["uuid"] == str(uuid.uuid5(CARD_NAMESPACE, "\x1f".join(
        ("example-opioid-user", entry(rec)["rule"], entry(rec)["intervention"]))))


def test_uuid_differs_between_patients() -> None:
    """Another patient id gives other uuids for the same rule and intervention."""
    assert card_uuid("a", "FL-PAD", "metatarsal_pad") != card_uuid("b", "FL-PAD", "metatarsal_pad")


def test_source_has_label_and_url() -> None:
    """Every card names its source: the rule set with its version, and an absolute URL."""
    ruleset = default_triager().ruleset
    for c in all_cards():
        assert c["source"]["label"] == f"{ruleset.name} {ruleset.version}"
        assert c["source"]["url"].startswith(("https://", "http://"))


def test_detail_carries_grade_rationale_and_citations() -> None:
    """A recommendation's detail is markdown with its SORT and GRADE grade, why, and its sources."""
    result = triaged("rheumatoid")
    insoles = next(c for c in cards(result, default_triager().ruleset)["cards"]
                   if entry(c).get("intervention") == "insoles")
    rec = result.recommended("insoles")
    assert f"SORT {rec.evidence.sort}" in insoles["detail"] and "GRADE low" in insoles["detail"]
    assert "**Why:**" in insoles["detail"] and "**Sources:**" in insoles["detail"]
    assert "Bartolo" in insoles["detail"]


def test_links_point_to_the_cited_studies() -> None:
    """Links go to PubMed for a study with a PMID and to doi.org for one with only a DOI."""
    pad = next(c for c in response("new-onset")["cards"] if entry(c).get("intervention") == "metatarsal_pad")
    assert {"label": pad["links"][0]["label"], "url": "https://pubmed.ncbi.nlm.nih.gov/17147793/",
            "type": "absolute"} in pad["links"]
    footwear = next(c for c in response("new-onset")["cards"] if entry(c).get("intervention") == "footwear_modification")
    assert any(link["url"] == "https://doi.org/10.1016/j.otsr.2016.06.020" for link in footwear["links"])


def test_clinician_may_decline_recommendations_and_warnings() -> None:
    """Recommendation and contraindication cards offer override reasons as Codings (system, code, display)."""
    for c in response("opioid-user")["cards"]:
        if entry(c)["type"] in ("recommendation", "contraindication"):
            assert c["overrideReasons"]
            assert all({"system", "code", "display"} <= set(r) for r in c["overrideReasons"])


def test_markdown_in_data_is_escaped() -> None:
    """Underscores in data (here a seed file name in a citation) are escaped, so they do not turn into emphasis."""
    c = next(c for c in response("new-onset")["cards"] if entry(c).get("intervention") == "footwear_modification")
    assert "000\\_f8b009c20034cc42" in c["detail"]
    assert "000_f8b009c20034cc42" not in c["detail"]


def test_cli_prints_a_cds_hooks_response() -> None:
    """`triage FILE --format cds-hooks` prints {"cards": [...]} and nothing else on stdout."""
    res = runner.invoke(app, ["triage", "-", "--format", "cds-hooks"], input=json.dumps(load_example("opioid-user")))
    assert res.exit_code == 0
    assert json.loads(res.stdout) == response("opioid-user")
