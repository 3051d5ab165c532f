"""Every rule of the rule set is specified by a scenario where it fires and one where it does not.

The Gherkin specs in features/ say which rules fire with the steps "rule <ID> fires" and
"rule <ID> does not fire"; the pytest-bdd modules run them. This module reads the feature files
(Scenario Outlines expanded row by row, so a "<rule>" placeholder counts once per Examples row)
and checks the claims against `RULESET.rules`. A rule added without scenarios fails here.

Only a rule that matches every patient cannot have a scenario where it does not fire: a rule whose
positive patterns test nothing on facts every patient has (the `patient` and `pain` facts) and
which has no `unless`. Those rules are found from the rule definitions, not listed by hand, and a
test checks that they really do fire for a patient with nothing but the required fields.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from gherkin.parser import Parser
from gherkin.token_scanner import TokenScanner

from engine import default_triager
from rules import RULESET
from rules.facts import to_facts
from rules.patient import Patient

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ROOT / "features"
TESTS = ROOT / "tests"

FIRES = re.compile(r"^rule (\S+) fires$")
DOES_NOT_FIRE = re.compile(r"^rule (\S+) does not fire$")
MINIMAL_PATIENT = {"id": "coverage", "age": 40, "pain": {"duration_weeks": 1}}

Claims = dict[str, dict[str, list[str]]]


def expanded_steps(text: str, source: str = "<text>") -> list[tuple[str, str]]:
    """(where, step text) for every step a pytest-bdd run executes, Outline placeholders filled in
    from each Examples row; Background steps included."""
    feature = Parser().parse(TokenScanner(text)).get("feature") or {}
    out: list[tuple[str, str]] = []

    def walk(children: list[dict]) -> None:
        for child in children:
            if "rule" in child:
                walk(child["rule"].get("children", []))
            elif "background" in child:
                out.extend((f"{source}: Background", s["text"]) for s in child["background"].get("steps", []))
            elif "scenario" in child:
                scenario = child["scenario"]
                where = f"{source}:{scenario['location']['line']}"
                tables = scenario.get("examples", [])
                if not tables:
                    out.extend((where, s["text"]) for s in scenario["steps"])
                for table in tables:
                    header = [c["value"] for c in (table.get("tableHeader") or {}).get("cells", [])]
                    for row in table.get("tableBody", []):
                        values = dict(zip(header, (c["value"] for c in row["cells"]), strict=False))
                        row_where = f"{source}:{row['location']['line']}"
                        for step in scenario["steps"]:
                            step_text = step["text"]
                            for name, value in values.items():
                                step_text = step_text.replace(f"<{name}>", value)
                            out.append((row_where, step_text))

    walk(feature.get("children", []))
    return out


def claims_in(steps: list[tuple[str, str]]) -> Claims:
    """rule id -> {"fires": [where...], "does not fire": [where...]}."""
    claims: Claims = defaultdict(lambda: {"fires": [], "does not fire": []})
    for where, step in steps:
        if m := FIRES.match(step.strip()):
            claims[m.group(1)]["fires"].append(where)
        elif m := DOES_NOT_FIRE.match(step.strip()):
            claims[m.group(1)]["does not fire"].append(where)
    return dict(claims)


def feature_claims() -> Claims:
    steps: list[tuple[str, str]] = []
    for path in sorted(FEATURES.glob("*.feature")):
        steps += expanded_steps(path.read_text(encoding="utf-8"), path.name)
    return claims_in(steps)


def uncovered(rule_ids: list[str], claims: Claims, unconditional: set[str]) -> dict[str, list[str]]:
    """What each rule lacks: "fires", "does not fire" (not asked of unconditional rules)."""
    missing: dict[str, list[str]] = {}
    for rid in rule_ids:
        c = claims.get(rid, {"fires": [], "does not fire": []})
        lacks = [
            k for k in ("fires", "does not fire") if not c[k] and not (k == "does not fire" and rid in unconditional)
        ]
        if lacks:
            missing[rid] = lacks
    return missing


def always_present_fact_types() -> set[str]:
    """The fact types a patient with only the required fields already has."""
    return {f["type"] for f in to_facts(Patient.model_validate(MINIMAL_PATIENT))}


def unconditional_rules() -> set[str]:
    """Rules that match every patient: no `unless`, and every positive pattern an untested fact
    that every patient has."""
    present = always_present_fact_types()
    return {
        r.id for r in RULESET.rules if not r.unless and all(not p.tests and p.type in present for p in r.when.values())
    }


RULE_IDS = [r.id for r in RULESET.rules]
CLAIMS = feature_claims()
UNCONDITIONAL = unconditional_rules()


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_has_a_scenario_where_it_fires(rule_id: str) -> None:
    """Some scenario in features/ says "rule <ID> fires"."""
    assert CLAIMS.get(rule_id, {}).get("fires"), f"no scenario in features/ where rule {rule_id} fires"


@pytest.mark.parametrize("rule_id", [r for r in RULE_IDS if r not in UNCONDITIONAL])
def test_rule_has_a_scenario_where_it_does_not_fire(rule_id: str) -> None:
    """Some scenario in features/ says "rule <ID> does not fire"."""
    assert CLAIMS.get(rule_id, {}).get("does not fire"), f"no scenario in features/ where rule {rule_id} does not fire"


def test_every_rule_named_in_a_scenario_exists() -> None:
    """A misspelt rule id would make "does not fire" pass without testing anything."""
    unknown = sorted(set(CLAIMS) - set(RULE_IDS))
    assert not unknown, {rid: CLAIMS[rid] for rid in unknown}


def test_unconditional_rules_fire_for_a_patient_with_only_the_required_fields() -> None:
    """The rules exempt from a "does not fire" scenario really fire for every patient."""
    fired = {t.rule for t in default_triager().triage(MINIMAL_PATIENT).trace}
    assert fired >= UNCONDITIONAL, sorted(UNCONDITIONAL - fired)


def test_unconditional_rules_are_few_and_known() -> None:
    """Only the failed-conservative-care tally runs for every patient (the DN4 score needs a DN4 on
    record, rule set 1.2); a new
    unconditional rule must be a deliberate choice, added here with its reason."""
    assert {"CONSERVATIVE-FAILED"} == UNCONDITIONAL


def test_every_feature_file_is_run_by_a_test_module() -> None:
    """A claim in a feature file that no test module binds would never be checked."""
    modules = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.glob("test_*.py"))
    unbound = [
        p.name
        for p in sorted(FEATURES.glob("*.feature"))
        if not re.search(r"scenarios\(\s*[\"']" + re.escape(p.name) + r"[\"']", modules)
    ]
    assert not unbound, unbound


def test_outline_placeholders_are_expanded_row_by_row() -> None:
    """A "<rule>" placeholder in a Scenario Outline counts once per Examples row."""
    text = """Feature: f
  Background:
    Given a 40-year-old male with 3 weeks of forefoot pain

  Scenario: plain
    When the patient is triaged
    Then rule PLAIN-A fires
    And rule PLAIN-B does not fire

  Scenario Outline: outline <n>
    When the patient is triaged
    Then rule <rule> <verdict>

    Examples:
      | n | rule   | verdict       |
      | 1 | OUT-X  | fires         |
      | 2 | OUT-X  | does not fire |
      | 3 | OUT-Y  | fires         |
"""
    claims = claims_in(expanded_steps(text))
    assert {rid: {k: len(v) for k, v in c.items()} for rid, c in claims.items()} == {
        "PLAIN-A": {"fires": 1, "does not fire": 0},
        "PLAIN-B": {"fires": 0, "does not fire": 1},
        "OUT-X": {"fires": 1, "does not fire": 1},
        "OUT-Y": {"fires": 1, "does not fire": 0},
    }


def test_a_rule_added_without_scenarios_is_reported() -> None:
    """The check catches a rule id that no feature mentions, and one that only ever fires."""
    missing = uncovered(RULE_IDS + ["NEW-RULE"], CLAIMS, UNCONDITIONAL)
    assert missing == {"NEW-RULE": ["fires", "does not fire"]}
    only_fires = {"ONLY-FIRES": {"fires": ["x.feature:3"], "does not fire": []}}
    assert uncovered(["ONLY-FIRES"], only_fires, set()) == {"ONLY-FIRES": ["does not fire"]}
