"""`rules check`: the knowledge base checked before any patient meets it (engine/tools/checker.py, cli.py)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from engine import default_triager
from engine.api import Evidence, Parameter
from engine.kernel.loader import digest_of
from engine.tools.checker import (
    check_ruleset,
    fired_rules_in,
    fired_rules_in_features,
    read_snapshot,
    snapshot_text,
)
from rules import RULESET

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "rule_ids.txt"
FEATURES = ROOT / "features"
RULES_DIR = ROOT / "rules"
runner = CliRunner()


def check(ruleset=RULESET, **kw):
    kw.setdefault("snapshot", read_snapshot(SNAPSHOT))
    kw.setdefault("scenario_rules", fired_rules_in_features(FEATURES))
    return check_ruleset(ruleset, **kw)


def messages(report, level="error", check_name=None):
    return [f.message for f in report.findings if f.level == level and (check_name is None or f.check == check_name)]


def without_citation(cid: str):
    return dataclasses.replace(RULESET, citations={k: v for k, v in RULESET.citations.items() if k != cid})


# ------------------------------------------------------------------ the shipped rule set


def test_rules_check_passes_for_the_shipped_rule_set():
    """`rules check` exits 0 and says it passed for the rule set in rules/."""
    res = runner.invoke(app, ["rules", "check"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "passed" in res.stdout.splitlines()[-1]


def test_the_shipped_rule_set_has_no_error():
    """Every check of the shipped rule set (snapshot, features, digest, compile) finds no error."""
    report = check(package_dir=RULES_DIR)
    assert report.errors == []


def test_the_rule_id_snapshot_matches_the_rule_set():
    """tests/rule_ids.txt lists exactly the rule ids of the rule set: none removed, none unrecorded."""
    assert sorted(read_snapshot(SNAPSHOT)) == sorted(r.id for r in RULESET.rules)


def test_rules_check_json_output_is_machine_readable():
    """`--format json` prints the report as one JSON object with the verdict and every finding."""
    res = runner.invoke(app, ["rules", "check", "--format", "json"])
    data = json.loads(res.stdout)
    assert data["passed"] is True and data["errors"] == 0
    assert data["rules"] == len(RULESET.rules)
    assert data["ruleset"]["digest"] == RULESET.digest


# ------------------------------------------------------------------ citations


def test_a_citation_removed_from_the_library_is_an_error_naming_it():
    """Each rule and grade citing a removed library entry is reported, by citation id."""
    report = check(without_citation("naltrexone-label"))
    errors = messages(report, check_name="citations")
    assert errors and all("'naltrexone-label'" in m for m in errors)
    assert any("intervention low_dose_naltrexone" in m for m in errors)
    assert not report.passed()


@pytest.fixture
def broken_module(tmp_path, monkeypatch):
    """An importable rule-set module: the shipped rule set without the naltrexone-label citation."""
    name = f"ruleset_without_citation_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import dataclasses\nfrom rules import RULESET as _R\n"
        "RULESET = dataclasses.replace(_R, citations={k: v for k, v in _R.citations.items() if k != 'naltrexone-label'})\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_rules_check_fails_loudly_when_a_citation_is_removed(broken_module):
    """`rules check --ruleset MODULE` exits 1 and names the missing citation on stderr."""
    res = runner.invoke(app, ["rules", "check", "--ruleset", broken_module])
    assert res.exit_code == 1
    assert "rules check failed" in res.stderr
    assert "'naltrexone-label'" in res.stderr
    assert "FAILED" in res.stdout


def test_rules_check_honours_cds_ruleset_in_a_real_process(broken_module, tmp_path):
    """`CDS_RULESET=MODULE python cli.py rules check` exits 1 naming the citation, with no traceback."""
    env = {**os.environ, "CDS_RULESET": broken_module, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "rules", "check"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "'naltrexone-label'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_citation_nothing_cites_is_only_a_note():
    """A library entry no rule or grade cites is reported as a note, and the check still passes."""
    extra = dataclasses.replace(RULESET, citations={**RULESET.citations, "orphan-2000": {"title": "orphan"}})
    report = check(extra)
    assert any("orphan-2000" in m for m in messages(report, "note", "citations"))
    assert report.passed(strict=True)


# ------------------------------------------------------------------ rule ids


def test_a_rule_id_used_twice_is_an_error():
    """Two rules with one id: an error naming the id."""
    dup = dataclasses.replace(RULESET, rules=RULESET.rules + (RULESET.rules[0],))
    assert any(RULESET.rules[0].id in m and "unique" in m for m in messages(check(dup), check_name="ids"))


def test_a_rule_id_removed_from_the_rule_set_is_an_error():
    """An id in the snapshot but no longer in the rule set fails the check, naming the id."""
    report = check(snapshot=read_snapshot(SNAPSHOT) + ["GONE-RULE"])
    assert any("GONE-RULE" in m and "removed" in m for m in messages(report, check_name="ids"))
    assert not report.passed()


def test_a_new_rule_id_is_a_warning_until_the_snapshot_is_updated():
    """An id missing from the snapshot is a warning: the check passes, but not with --strict."""
    newest = RULESET.rules[-1].id
    report = check(snapshot=[i for i in read_snapshot(SNAPSHOT) if i != newest])
    assert any(newest in m for m in messages(report, "warning", "ids"))
    assert report.passed() and not report.passed(strict=True)


def test_update_snapshot_makes_a_deliberate_removal_pass(tmp_path):
    """A stale snapshot fails; `--update-snapshot` rewrites it from the rule set, and the check passes."""
    snap = tmp_path / "rule_ids.txt"
    snap.write_text(SNAPSHOT.read_text(encoding="utf-8") + "GONE-RULE\n", encoding="utf-8")
    assert runner.invoke(app, ["rules", "check", "--snapshot", str(snap)]).exit_code == 1
    res = runner.invoke(app, ["rules", "check", "--snapshot", str(snap), "--update-snapshot"])
    assert res.exit_code == 0, res.stdout
    assert "GONE-RULE" not in read_snapshot(snap)
    assert snap.read_text(encoding="utf-8") == snapshot_text(RULESET)


# ------------------------------------------------------------------ grades and interventions


def _with_spec(code: str, **changes):
    spec = dataclasses.replace(RULESET.interventions[code], **changes)
    return dataclasses.replace(RULESET, interventions={**RULESET.interventions, code: spec})


def test_a_recommendable_intervention_without_a_grade_is_an_error():
    """An intervention a rule emits, outside urgent referral, must carry an evidence grade."""
    report = check(_with_spec("pulsed_radiofrequency", evidence=None))
    assert any("pulsed_radiofrequency" in m and "no evidence grade" in m for m in messages(report, check_name="grades"))


def test_a_grade_without_a_citation_is_an_error():
    """A grade that cites nothing is no grade: an error."""
    ev = Evidence(sort="C", certainty="low", directness="direct", citations=[])
    report = check(_with_spec("metatarsal_pad", evidence=ev))
    assert any("metatarsal_pad" in m and "no citation" in m for m in messages(report, check_name="grades"))


def test_urgent_referral_needs_no_grade():
    """Urgent referral rests on a red flag, not on a study: no grade is required of it."""
    report = check(_with_spec("urgent_referral", evidence=None))
    assert not [m for m in messages(report, check_name="grades") if "urgent_referral" in m]


def test_an_emitted_intervention_that_does_not_exist_is_an_error():
    """A rule emitting an undefined intervention code is an error naming the code and the rule."""
    rule = dataclasses.replace(RULESET.rules[0], emits=("no_such_intervention",))
    rs = dataclasses.replace(RULESET, rules=(rule,) + RULESET.rules[1:])
    assert any(
        "no_such_intervention" in m and rule.id in m
        for m in messages(check(rs, compile_rules=False), check_name="interventions")
    )


# ------------------------------------------------------------------ parameters


def test_a_parameter_without_a_source_is_an_error():
    """Every parameter says where its value comes from and what it means."""
    name = next(iter(RULESET.parameters))
    p = RULESET.parameters[name]
    rs = dataclasses.replace(RULESET, parameters={**RULESET.parameters, name: dataclasses.replace(p, source=" ")})
    assert any(name in m and "no source" in m for m in messages(check(rs), check_name="parameters"))


def test_a_parameter_used_but_not_defined_is_an_error():
    """A rule declaring a parameter the rule set does not define is an error."""
    name = next(n for r in RULESET.rules for n in r.parameters)
    params = {k: v for k, v in RULESET.parameters.items() if k != name}
    assert any(
        name in m and "not defined" in m
        for m in messages(check(dataclasses.replace(RULESET, parameters=params)), check_name="parameters")
    )


def test_a_parameter_no_rule_declares_is_only_a_note():
    """An unused parameter is noted, not failed."""
    extra = Parameter(
        "unused_threshold", 1, "weeks", "project parameter, not evidence", "test", reviewed=datetime.date.today()
    )
    rs = dataclasses.replace(RULESET, parameters={**RULESET.parameters, "unused_threshold": extra})
    report = check(rs)
    assert any("unused_threshold" in m for m in messages(report, "note", "parameters"))
    assert report.passed(strict=True)


# ------------------------------------------------------------------ scenarios


FEATURE = """\
# rule COMMENTED-OUT fires
Feature: toy
  Background:
    Given a 40-year-old female with 3 weeks of forefoot pain

  Scenario: plain
    When the patient is triaged
    Then rule PLAIN-RULE fires
    And rule NEVER-FIRES does not fire

  Scenario Outline: outline
    When the patient is triaged
    Then rule <rule> fires
    And rule <missing> fires

    Examples:
      | rule       |
      | OUTLINE-A  |
      | OUTLINE-B  |

  Scenario: after the outline
    Then rule LAST-RULE fires
    | not | a table of an outline |
"""


def test_scenario_steps_name_the_rules_they_exercise():
    """Plain steps and every Examples row of an outline count; comments, 'does not fire' steps and
    unfilled placeholders do not."""
    assert fired_rules_in(FEATURE) == {"PLAIN-RULE", "OUTLINE-A", "OUTLINE-B", "LAST-RULE"}


def test_a_rule_no_scenario_exercises_is_a_warning_and_exit_0(tmp_path):
    """Rules without a `rule <ID> fires` step are listed as warnings; the check still exits 0."""
    (tmp_path / "one.feature").write_text(
        f"Feature: f\n  Scenario: s\n    Then rule {RULESET.rules[0].id} fires\n", encoding="utf-8"
    )
    res = runner.invoke(app, ["rules", "check", "--features", str(tmp_path)])
    assert res.exit_code == 0, res.stdout
    assert f"rule {RULESET.rules[1].id} is exercised by no scenario" in res.stdout
    assert f"rule {RULESET.rules[0].id} is exercised by no scenario" not in res.stdout


def test_strict_fails_on_a_rule_no_scenario_exercises(tmp_path):
    """With --strict, an unexercised rule fails the check (exit 1)."""
    (tmp_path / "one.feature").write_text(
        f"Feature: f\n  Scenario: s\n    Then rule {RULESET.rules[0].id} fires\n", encoding="utf-8"
    )
    res = runner.invoke(app, ["rules", "check", "--features", str(tmp_path), "--strict"])
    assert res.exit_code == 1
    assert RULESET.rules[1].id in res.stderr


def test_a_scenario_naming_an_unknown_rule_is_an_error():
    """A step saying a rule fires that the rule set does not have is an error (a renamed rule)."""
    report = check(scenario_rules=fired_rules_in_features(FEATURES) | {"NO-SUCH-RULE"})
    assert any("NO-SUCH-RULE" in m for m in messages(report, check_name="scenarios"))


# ------------------------------------------------------------------ digest


def test_a_stale_digest_is_an_error():
    """A rule set reporting a digest its files do not give fails the check."""
    report = check(dataclasses.replace(RULESET, digest="0" * 64), package_dir=RULES_DIR)
    assert messages(report, check_name="digest")


def test_the_result_carries_the_digest_of_the_rule_files():
    """The digest in every result is the digest of rules/ as it is on disk."""
    result = default_triager().triage({"id": "d", "age": 40, "pain": {"duration_weeks": 1}})
    assert result.ruleset.digest == digest_of(RULES_DIR) == RULESET.digest


@pytest.fixture
def rules_copy(tmp_path) -> Path:
    dest = tmp_path / "rules"
    shutil.copytree(RULES_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_the_digest_changes_when_one_byte_of_a_toml_file_changes(rules_copy):
    """Changing one byte of a data file changes the digest."""
    before = digest_of(rules_copy)
    path = rules_copy / "parameters.toml"
    data = bytearray(path.read_bytes())
    i = data.index(b"value = 6") + len(b"value = ")
    data[i : i + 1] = b"7"
    path.write_bytes(bytes(data))
    assert digest_of(rules_copy) != before


def test_the_digest_changes_when_a_python_rule_file_changes(rules_copy):
    """Editing a rule module changes the digest."""
    before = digest_of(rules_copy)
    with (rules_copy / "pathway.py").open("a", encoding="utf-8") as fh:
        fh.write("\n# a comment is a change\n")
    assert digest_of(rules_copy) != before


def test_the_digest_changes_when_a_rule_file_is_added_or_renamed(rules_copy):
    """A new data file, or a renamed one, changes the digest."""
    before = digest_of(rules_copy)
    (rules_copy / "extra.toml").write_text("", encoding="utf-8")
    added = digest_of(rules_copy)
    (rules_copy / "extra.toml").rename(rules_copy / "other.toml")
    assert len({before, added, digest_of(rules_copy)}) == 3


def test_the_digest_ignores_modification_times(rules_copy):
    """Touching every file (new mtimes, same bytes) leaves the digest unchanged."""
    before = digest_of(rules_copy)
    later = time.time() + 3600
    for path in rules_copy.rglob("*"):
        os.utime(path, (later, later))
    assert digest_of(rules_copy) == before


def test_the_digest_ignores_bytecode_caches_and_other_files(rules_copy):
    """A __pycache__ directory (even with .py files in it) and non-rule files leave the digest unchanged."""
    before = digest_of(rules_copy)
    cache = rules_copy / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "pathway.cpython-311.pyc").write_bytes(b"\x00" * 64)
    (cache / "stray.py").write_text("x = 1\n", encoding="utf-8")
    (rules_copy / "notes.txt").write_text("reviewer notes\n", encoding="utf-8")
    assert digest_of(rules_copy) == before
