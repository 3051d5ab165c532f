"""Static checks of a rule set: the knowledge base checked before any patient meets it.

`check_ruleset` returns a `Report` of findings, each an error (the rule set must not ship), a
warning (a gap to close; an error under `strict`) or a note. It knows no clinical term: it reads
a `RuleSet`, a snapshot of rule ids, and the Gherkin feature files that specify the rules.

Checks:

The first five come from `RuleSet.check()`, the one consistency check (the engine runs it when
it loads a rule set); this module adds only what needs the repository (the last four).

* ``ids``: rule ids are unique; versus the committed snapshot, a removed id is an error (ids are
  cited in traces and audits, so removing one must be deliberate: update the snapshot), an added
  id a warning (add it to the snapshot).
* ``citations``: every citation id of a rule or an intervention grade resolves in the library;
  a library entry nothing cites is a note.
* ``grades``: every intervention a rule may recommend has a grade (SORT, certainty, directness and
  at least one citation), except in the rule set's ungraded categories.
* ``interventions``: every intervention a rule emits exists.
* ``parameters``: every parameter a rule uses is defined, and every parameter has a source, a
  note and a reviewed date no older than a year (a warning); a parameter no rule uses is a note.
* ``scenarios``: every rule is exercised by at least one Gherkin step ``rule <ID> fires``
  (Scenario Outline rows expanded); a rule without one is a warning.
* ``digest``: the digest the rule set reports is the digest of its files now.
* ``compile``: the rule set compiles for the inference engine (strata, patterns).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from engine.kernel.loader import digest_of
from engine.kernel.rulebase import Finding, Level, RuleSet

FIRES_STEP = re.compile(r"^rule\s+(\S+)\s+fires\s*$")
_STEP_KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ", "* ")
_PLACEHOLDER = re.compile(r"<([^<>]+)>")


@dataclass
class Report:
    """Every finding of one run of the checks, in check order."""

    findings: list[Finding] = field(default_factory=list)
    rules: int = 0
    exercised: int = 0

    def add(self, level: Level, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))

    def of(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of("warning")

    def passed(self, strict: bool = False) -> bool:
        """No error (and, when `strict`, no warning either)."""
        return not self.errors and not (strict and self.warnings)

    def as_dict(self, strict: bool = False) -> dict:
        return {
            "passed": self.passed(strict),
            "strict": strict,
            "rules": self.rules,
            "rules_exercised_by_scenarios": self.exercised,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.as_dict() for f in self.findings],
        }


# ------------------------------------------------------------------ snapshot of rule ids


def read_snapshot(path: str | Path) -> list[str]:
    """Rule ids from a snapshot file: one per line; blank lines and '#' comments ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def snapshot_text(ruleset: RuleSet) -> str:
    """The snapshot file for `ruleset`: its rule ids, sorted, one per line."""
    head = (
        f"# Rule ids of {ruleset.name}, one per line (sorted). Written by `rules check --update-snapshot`.\n"
        "# `rules check` fails when an id listed here disappears: rule ids are cited in traces and audits,\n"
        "# so a removal must be deliberate (update this file in the same change, and say why).\n"
    )
    return head + "".join(f"{i}\n" for i in sorted({r.id for r in ruleset.rules}))


# ------------------------------------------------------------------ Gherkin


def fired_rules_in(text: str) -> set[str]:
    """Rule ids named by `rule <ID> fires` steps of one feature file.

    Scenario Outline steps with placeholders (`rule <rule> fires`) are expanded with every row of
    the outline's Examples tables. Comments and `does not fire` steps do not count.
    """
    found: set[str] = set()
    outline_steps: list[str] = []
    header: list[str] | None = None
    in_outline = False
    in_examples = False

    def expand(row: list[str]) -> None:
        values = dict(zip(header or [], row, strict=False))
        for step in outline_steps:
            filled = _PLACEHOLDER.sub(lambda m: values.get(m.group(1).strip(), m.group(0)), step)
            m = FIRES_STEP.match(filled)
            if m and not _PLACEHOLDER.search(m.group(1)):
                found.add(m.group(1))

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword = line.split(":", 1)[0].strip() if ":" in line else ""
        if keyword in ("Scenario Outline", "Scenario Template"):
            in_outline, in_examples, outline_steps, header = True, False, [], None
            continue
        if keyword in ("Scenario", "Example", "Background", "Feature", "Rule"):
            in_outline, in_examples = False, False
            continue
        if keyword in ("Examples", "Scenarios"):
            in_examples, header = True, None
            continue
        if line.startswith("|"):
            if in_outline and in_examples:
                cells = [c.strip() for c in line.strip("|").split("|")]
                if header is None:
                    header = cells
                else:
                    expand(cells)
            continue
        for kw in _STEP_KEYWORDS:
            if line.startswith(kw):
                step = line[len(kw) :].strip()
                if in_outline and _PLACEHOLDER.search(step):
                    outline_steps.append(step)
                else:
                    m = FIRES_STEP.match(step)
                    if m:
                        found.add(m.group(1))
                break
    return found


def fired_rules_in_features(features_dir: str | Path) -> set[str]:
    """Rule ids named by `rule <ID> fires` in every `*.feature` file under `features_dir`."""
    found: set[str] = set()
    for path in sorted(Path(features_dir).rglob("*.feature")):
        found |= fired_rules_in(path.read_text(encoding="utf-8"))
    return found


# ------------------------------------------------------------------ the checks


def check_ruleset(
    ruleset: RuleSet,
    *,
    snapshot: Iterable[str] | None = None,
    scenario_rules: set[str] | None = None,
    package_dir: str | Path | None = None,
    compile_rules: bool = True,
    today: date | None = None,
) -> Report:
    """`RuleSet.check()` (the one consistency check: ids, citations, grades, interventions,
    parameters and their review dates), plus what needs the repository: the snapshot of rule ids,
    the Gherkin coverage, the digest of the files, and compilation for the inference engine.

    `snapshot`: the committed rule ids (None: not compared, a warning). `scenario_rules`: rule ids
    that some scenario says fire (None: not checked, a warning). `package_dir`: the rule set's
    directory, to recompute its digest (None: not checked, a note).
    """
    report = Report(rules=len(ruleset.rules))
    report.findings.extend(ruleset.check(today))
    ids = [r.id for r in ruleset.rules]

    # ids: stable against the snapshot
    if snapshot is None:
        report.add("warning", "ids", "no snapshot of rule ids to compare with: write one with --update-snapshot")
    else:
        known = set(snapshot)
        for rid in sorted(known - set(ids)):
            report.add(
                "error",
                "ids",
                f"rule id {rid} was removed (it is in the snapshot): rule ids are cited in "
                "traces and audits; if the removal is deliberate, update the snapshot with --update-snapshot",
            )
        for rid in sorted(set(ids) - known):
            report.add("warning", "ids", f"rule id {rid} is new (not in the snapshot): add it with --update-snapshot")

    # scenarios
    if scenario_rules is None:
        report.add("warning", "scenarios", "no feature files were read, so scenario coverage was not checked")
    else:
        report.exercised = len(set(ids) & scenario_rules)
        for rid in ids:
            if rid not in scenario_rules:
                report.add("warning", "scenarios", f"rule {rid} is exercised by no scenario step 'rule {rid} fires'")
        for rid in sorted(scenario_rules - set(ids)):
            report.add("error", "scenarios", f"a scenario says rule {rid} fires, but the rule set has no such rule")

    # digest
    if package_dir is None:
        report.add("note", "digest", "the rule set is not a package directory: its digest was not recomputed")
    else:
        now = digest_of(package_dir)
        reported = ruleset.digest if ruleset.site is None else ruleset.base_digest
        if reported != now:
            report.add(
                "error",
                "digest",
                f"the rule set reports digest {reported[:12]}... but its files "
                f"give {now[:12]}...: the digest must be computed from the files (engine.api.digest_of)",
            )

    # compiles
    if compile_rules:
        from engine.kernel.inference import compile_rules as _compile

        try:
            _compile(ruleset)
        except Exception as exc:  # noqa: BLE001 - reported as a finding
            report.add("error", "compile", f"the rule set does not compile: {exc}")
    return report
