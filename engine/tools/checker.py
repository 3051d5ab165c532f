"""Static checks of a rule set: the knowledge base checked before any patient meets it.

`check_ruleset` returns a `Report` of findings, each an error (the rule set must not ship), a
warning (a gap to close; an error under `strict`) or a note. It knows no clinical term: it reads
a `RuleSet`, a snapshot of rule ids, and the Gherkin feature files that specify the rules.

Checks:

* ``ids``: rule ids are unique; versus the committed snapshot, a removed id is an error (ids are
  cited in traces and audits, so removing one must be deliberate: update the snapshot), an added
  id a warning (add it to the snapshot).
* ``citations``: every citation id of a rule or an intervention grade resolves in the library;
  a library entry nothing cites is a note.
* ``grades``: every intervention a rule may recommend has a grade (SORT, certainty, directness and
  at least one citation); urgent referral is exempt (it rests on a red flag, stated as its reason).
* ``interventions``: every intervention a rule emits exists.
* ``parameters``: every parameter a rule uses is defined, and every parameter has a source and a
  note; a parameter no rule declares is a note.
* ``scenarios``: every rule is exercised by at least one Gherkin step ``rule <ID> fires``
  (Scenario Outline rows expanded); a rule without one is a warning.
* ``digest``: the digest the rule set reports is the digest of its files now.
* ``compile``: the rule set compiles for the inference engine (strata, patterns).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.kernel.loader import digest_of
from engine.kernel.models import Evidence
from engine.kernel.rulebase import RuleSet

Level = Literal["error", "warning", "note"]
#: Categories whose recommendations need no evidence grade.
UNGRADED_CATEGORIES = ("urgent_referral",)
FIRES_STEP = re.compile(r"^rule\s+(\S+)\s+fires\s*$")
_STEP_KEYWORDS = ("Given ", "When ", "Then ", "And ", "But ", "* ")
_PLACEHOLDER = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True)
class Finding:
    """One result of a check: its level, which check, and what to do about it."""

    level: Level
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "check": self.check, "message": self.message}


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



def _grades(spec: Any) -> list[tuple[str, Any]]:
    """An intervention's grade and its variants, each with how to name it in a message."""
    return [("grade", spec.evidence)] + [(f"grade variant {k!r}", v) for k, v in spec.evidence_variants.items()]

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
        values = dict(zip(header or [], row))
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
                step = line[len(kw):].strip()
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


def _grade_problems(ev: Evidence | None) -> list[str]:
    if ev is None:
        return ["no evidence grade"]
    out = []
    if not ev.sort:
        out.append("no SORT grade")
    if not ev.certainty:
        out.append("no certainty")
    if not ev.directness.strip():
        out.append("no directness")
    if not ev.citations:
        out.append("no citation")
    return out


def check_ruleset(
    ruleset: RuleSet,
    *,
    snapshot: Iterable[str] | None = None,
    scenario_rules: set[str] | None = None,
    package_dir: str | Path | None = None,
    compile_rules: bool = True,
) -> Report:
    """Run every check on `ruleset`.

    `snapshot`: the committed rule ids (None: not compared, a warning). `scenario_rules`: rule ids
    that some scenario says fire (None: not checked, a warning). `package_dir`: the rule set's
    directory, to recompute its digest (None: not checked, a note).
    """
    report = Report(rules=len(ruleset.rules))
    ids = [r.id for r in ruleset.rules]

    # ids: unique, and stable against the snapshot
    for rid in sorted({i for i in ids if ids.count(i) > 1}):
        report.add("error", "ids", f"rule id {rid} is used by {ids.count(rid)} rules; each id must be unique")
    if snapshot is None:
        report.add("warning", "ids", "no snapshot of rule ids to compare with: write one with --update-snapshot")
    else:
        known = set(snapshot)
        for rid in sorted(known - set(ids)):
            report.add("error", "ids", f"rule id {rid} was removed (it is in the snapshot): rule ids are cited in "
                       "traces and audits; if the removal is deliberate, update the snapshot with --update-snapshot")
        for rid in sorted(set(ids) - known):
            report.add("warning", "ids", f"rule id {rid} is new (not in the snapshot): add it with --update-snapshot")

    # citations resolve
    cited: set[str] = set()
    for r in ruleset.rules:
        for cid in r.citations:
            cited.add(cid)
            if cid not in ruleset.citations:
                report.add("error", "citations", f"rule {r.id} cites {cid!r}, which is not in the citation library")
    for code, spec in ruleset.interventions.items():
        grades = _grades(spec)
        for what, ev in grades:
            for cid in (ev.citations if ev is not None else []):
                cited.add(cid)
                if cid not in ruleset.citations:
                    report.add("error", "citations",
                               f"intervention {code}: its {what} cites {cid!r}, which is not in the citation library")
    for cid in sorted(set(ruleset.citations) - cited):
        report.add("note", "citations", f"citation {cid} is in the library but cited by no rule or grade")

    # emitted interventions exist and, where they can be recommended, are graded
    emitted: dict[str, list[str]] = {}
    for r in ruleset.rules:
        for code in r.emits:
            emitted.setdefault(code, []).append(r.id)
    for code, rule_ids in sorted(emitted.items()):
        spec = ruleset.interventions.get(code)
        if spec is None:
            report.add("error", "interventions",
                       f"rules {', '.join(rule_ids)} emit {code!r}, which is not a defined intervention")
            continue
        if spec.category in UNGRADED_CATEGORIES:
            continue
        grades = _grades(spec)
        for what, ev in grades:
            for problem in _grade_problems(ev):
                report.add("error", "grades", f"intervention {code} (emitted by {', '.join(rule_ids)}): its {what} "
                           f"has {problem}; every recommendation needs SORT, certainty, directness and a citation")

    # parameters defined and documented
    used_params: set[str] = set()
    for r in ruleset.rules:
        for name in r.parameters:
            used_params.add(name)
            if name not in ruleset.parameters:
                report.add("error", "parameters", f"rule {r.id} uses parameter {name!r}, which is not defined")
    for name, p in sorted(ruleset.parameters.items()):
        missing = [what for what, text in (("source", p.source), ("note", p.note)) if not str(text or "").strip()]
        if missing:
            report.add("error", "parameters", f"parameter {name} has no {' and no '.join(missing)}: say where the "
                       "value comes from ('project parameter, not evidence' is an honest source) and what it means")
        if not str(p.unit or "").strip():
            report.add("warning", "parameters", f"parameter {name} has no unit")
    for name in sorted(set(ruleset.parameters) - used_params):
        report.add("note", "parameters", f"parameter {name} is declared by no rule")

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
        if ruleset.digest != now:
            report.add("error", "digest", f"the rule set reports digest {ruleset.digest[:12]}... but its files give "
                       f"{now[:12]}...: the digest must be computed from the files (engine.api.digest_of)")

    # compiles
    if compile_rules:
        from engine.kernel.inference import compile_rules as _compile

        try:
            _compile(ruleset)
        except Exception as exc:  # noqa: BLE001 - reported as a finding
            report.add("error", "compile", f"the rule set does not compile: {exc}")
    return report
