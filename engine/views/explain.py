"""Explanations a professional can check: the derivation behind each output, and the knowledge base.

`explain(result, ruleset, facts)` (or `explain_patient(triager, patient)`) walks a result's trace backwards. Each output label
(`recommend:<code>`, `not_recommended:<code>:<kind>`) was concluded by a trace entry; each label
that entry `used` was either an input fact (a leaf showing its value), a fact concluded by an
earlier entry (recursed into), or a negated pattern (`absent:...`: a leaf saying what was checked
absent, and which rules could have produced it). Every step names its rule, the comparisons it
made (`because`), the parameters and the citations with their grades.

The explanation is plain nested dicts (the JSON of `cli.py explain --format json`):

    Explanation  {patient_id, ruleset, intervention, red_flags, entries: [Entry], unknowns: [Unknown]}
    Entry        {output, intervention, label, status: recommended | not_recommended | not_mentioned,
                  category, strength, evidence, rationale (recommended) | kind, reason (not recommended),
                  derivation: Node | None, could_come_from: [RuleCheck] (not mentioned), unknowns}
    Node         {label, kind: output | finding | fact | absent, text, value (fact, finding),
                  steps: [Step] (output, finding), checked: [RuleCheck] (absent)}
    Step         {rule, purpose, because, parameters, citations, unknowns, premises: [Node]}
    RuleCheck    {rule, purpose, citations, needs: [Need], unless: [Need]}
    Need         {pattern, state: present | none | not checked, found: [labels], absent: Node | None}

The first step of a node is the trace entry that concluded the label; later steps are further
firings that re-derived it (the same output again, or an unkeyed finding derived once more: a
rule that declares it concludes a type and fired without a new conclusion of it). The knowledge
base half (`rule_rows`, `rule_detail`, `source_attributes`) describes rules without a patient.

This module is generic: it knows rules, facts, parameters and citations, never a clinical term.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from engine.kernel.errors import FieldProblem, InputError
from engine.kernel.inference import fact_label
from engine.kernel.models import Result, Unknown
from engine.kernel.rulebase import Parameter, Pattern, Rule, RuleSet, intervention_label
from engine.views.common import evidence_grade, parameter_text

#: Source text of a parameter that is a convention of the rule set, not evidence.
PROJECT_PARAMETER = "project parameter, not evidence"
#: Source attributes a decision-support intervention exposes (ONC HTI-1, 45 CFR 170.315(b)(11)),
#: beyond name, version and digest which every rule set has. Attributes a rule set does not
#: declare in `RuleSet.attributes` are reported as 'not declared'.
SOURCE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("developer", "developer of the intervention"),
    ("funding", "funding source of the intervention's development"),
    ("intended_use", "intended use"),
    ("intended_users", "intended users"),
    ("release_date", "release date"),
    ("revision_date", "revision date (last clinical change)"),
)
NOT_DECLARED = "not declared"
#: What the knowledge-base table says of a rule without citations: plainly a project choice, or a gap.
PROJECT_ONLY = "project parameters only, not evidence"
GAP_MARK = "GAP: no citation"
#: How deep a 'checked absent' leaf follows the rules that could have produced the fact.
ABSENT_DEPTH = 3


class ExplainError(InputError):
    """An intervention code the rule set does not know was asked about (a usage error: exit 2)."""

    def __init__(self, code: str, close: list[str], known: list[str]):
        hint = f"did you mean {', '.join(close)}?" if close else "an intervention code of the rule set"
        super().__init__(
            [FieldProblem("--intervention", f"unknown intervention code {code!r}; {hint}", ", ".join(known))]
        )


# ====================================================================== facts and patterns


def label_type(label: str) -> str:
    return label.split(":", 1)[0]


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fact_text(f: Mapping[str, Any]) -> str:
    """The fields of a fact as 'name value' pairs: 'weeks 8, response none'."""
    parts = []
    for name, value in f.items():
        if name in ("type", "key"):
            continue
        if isinstance(value, (list, tuple)):
            value = "[" + ", ".join(_scalar(v) for v in value) + "]"
        else:
            value = _scalar(value)
        parts.append(f"{name} {value}")
    return ", ".join(parts)


def pattern_matches(p: Pattern, f: Mapping[str, Any]) -> bool:
    """Whether fact `f` matches a resolved pattern: `Pattern.matches`, the one evaluator of tests."""
    return p.matches(f)


# ====================================================================== knowledge lookups


def citation_entry(ruleset: RuleSet, cid: str) -> dict[str, Any]:
    """One citation with a short reference and its grade: {id, short, grade}."""
    c = ruleset.citations.get(cid)
    if c is None:
        return {"id": cid, "short": "not in the citation library", "grade": ""}
    authors = str(c.get("authors", "")).strip()
    first = authors.split(",")[0].strip()
    if first and "," in authors and "et al" not in first:
        first += " et al."
    where = c.get("citation") or c.get("journal") or ""
    year = c.get("year")
    short = " ".join(str(x) for x in (first, year) if x)
    short = ", ".join(x for x in (short, str(where)) if x) or str(c.get("title", cid))
    if c.get("population"):
        short += f" ({c['population']})"
    grade = []
    if c.get("sort_level") is not None:
        grade.append(f"SORT level {c['sort_level']}")
    if c.get("grade_note"):
        grade.append(str(c["grade_note"]))
    return {"id": cid, "short": short, "grade": " · ".join(grade)}


def _shown(v: Any) -> str:
    return ", ".join(map(_scalar, v)) if isinstance(v, (list, tuple)) else _scalar(v)


def parameter_entry(p: Parameter) -> dict[str, Any]:
    """A parameter as explain and `rules show` print it; a site's value stands beside the default."""
    entry: dict[str, Any] = {
        "name": p.name,
        "value": _shown(p.value),
        "unit": p.unit,
        "source": p.source,
        "note": p.note,
    }
    if p.override is not None:
        entry["site"] = {
            "value": _shown(p.value),
            "default": _shown(p.default),
            "reason": p.override.reason,
            "set_by": p.override.set_by,
        }
    return entry


def _rule_or_none(ruleset: RuleSet, rule_id: str) -> Rule | None:
    try:
        return ruleset.rule(rule_id)
    except KeyError:
        return None


def _evidence_entry(ruleset: RuleSet, ev: Any) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {
        "sort": ev.sort,
        "certainty": ev.certainty,
        "directness": ev.directness,
        "citations": [citation_entry(ruleset, c) for c in ev.citations],
    }


# ====================================================================== derivations


class _Walker:
    """Builds derivation nodes from one result's trace, its facts and the rule set."""

    def __init__(self, result: Result, ruleset: RuleSet, facts: Iterable[Mapping[str, Any]] | None):
        self.result = result
        self.ruleset = ruleset
        self.trace = result.trace
        self.facts: dict[str, Mapping[str, Any]] = {}
        for f in facts or ():
            self.facts.setdefault(fact_label(f), f)
        self.first: dict[str, int] = {}
        for i, t in enumerate(self.trace):
            for label in t.concluded:
                self.first.setdefault(label, i)
        #: fact -> its unknowns (a rule's are merged into one per fact; a FHIR mapping's may be several)
        self.unknowns: dict[str, list[Unknown]] = {}
        for u in result.unknowns:
            self.unknowns.setdefault(u.fact, []).append(u)

    # ---------------------------------------------------------------- steps

    def step(self, index: int, path: frozenset[str]) -> dict[str, Any]:
        t = self.trace[index]
        rule = _rule_or_none(self.ruleset, t.rule)
        premises = [self.node(label, index, rule, path) for label in t.used]
        unknowns = [
            self._unknown(u)
            for label in t.concluded
            if label.startswith("unknown:")
            for u in self.unknowns.get(label.split(":", 1)[1], ())
        ]
        return {
            "rule": t.rule,
            "purpose": rule.purpose if rule else "",
            "because": list(t.because),
            "parameters": [
                parameter_entry(self.ruleset.parameters[p])
                for p in (rule.parameters if rule else ())
                if p in self.ruleset.parameters
            ],
            "citations": [citation_entry(self.ruleset, c) for c in (rule.citations if rule else ())],
            "unknowns": unknowns,
            "premises": premises,
        }

    def _unknown(self, u: Unknown) -> dict[str, Any]:
        rule = _rule_or_none(self.ruleset, u.rule)
        return {
            "fact": u.fact,
            "reason": u.reason,
            "blocks": list(u.blocks),
            "rule": u.rule,
            "purpose": rule.purpose if rule else "",
        }

    def rederivations(self, label: str, first: int, output_rule: str | None) -> list[int]:
        """Later trace entries that concluded (or re-derived) `label` after entry `first`."""
        out = []
        ltype = label_type(label)
        for j in range(first + 1, len(self.trace)):
            t = self.trace[j]
            if output_rule is not None:
                if t.rule == output_rule and label in t.concluded:
                    out.append(j)
                continue
            if ":" in label:
                continue  # a keyed fact: a silent firing could have been about another key
            rule = _rule_or_none(self.ruleset, t.rule)
            if rule is None or ltype not in rule.concludes:
                continue
            if not any(label_type(c) == ltype for c in t.concluded):
                out.append(j)
        return out

    # ---------------------------------------------------------------- nodes

    def output(self, label: str, rule_id: str) -> dict[str, Any] | None:
        first = next((i for i, t in enumerate(self.trace) if t.rule == rule_id and label in t.concluded), None)
        if first is None:
            first = self.first.get(label)
        if first is None:
            return None
        path = frozenset({label})
        steps = [self.step(first, path)] + [self.step(j, path) for j in self.rederivations(label, first, rule_id)]
        return {"label": label, "kind": "output", "text": label, "steps": steps}

    def node(self, label: str, at: int, rule: Rule | None, path: frozenset[str]) -> dict[str, Any]:
        if label.startswith("absent:"):
            described = label[len("absent:") :]
            unless = self.ruleset.resolved[rule.id][1] if rule else {}
            pattern = next((p for p in unless.values() if p.describe() == described), None)
            return self.absent(described, pattern, path, ABSENT_DEPTH)
        first = self.first.get(label)
        if first is not None and first < at and label not in path:
            inner = path | {label}
            steps = [self.step(first, inner)] + [
                self.step(j, inner) for j in self.rederivations(label, first, None) if j < at
            ]
            f = self.facts.get(label)
            return {
                "label": label,
                "kind": "finding",
                "text": f"{label}: {fact_text(f)}" if f else label,
                "value": _value(f),
                "steps": steps,
            }
        f = self.facts.get(label)
        if f is None:
            return {"label": label, "kind": "fact", "text": label, "value": None}
        return {"label": label, "kind": "fact", "text": f"{label}: {fact_text(f)}", "value": _value(f)}

    def absent(self, described: str, pattern: Pattern | None, path: frozenset[str], depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {
            "label": "absent:" + described,
            "kind": "absent",
            "text": f"no {described}",
            "checked": [],
        }
        if pattern is None or depth <= 0 or pattern.type in path:
            return node
        inner = path | {pattern.type}
        node["checked"] = [self.rule_check(r, inner, depth - 1) for r in producers(self.ruleset, pattern)]
        return node

    def present(self, p: Pattern) -> tuple[str, list[str]]:
        """('present' | 'none' | 'not checked', labels of the facts matching `p`).

        Derived facts are checked by value when their values were given; otherwise a derived
        type with field tests cannot be checked from the trace alone."""
        found = [label for label, f in self.facts.items() if pattern_matches(p, f)]
        if found:
            return "present", found
        concluded = [label for label in self.first if label_type(label) == p.type and label not in self.facts]
        if concluded and not p.tests:
            return "present", concluded
        if concluded:
            return "not checked", concluded
        return "none", []

    def rule_check(self, rule: Rule, path: frozenset[str], depth: int) -> dict[str, Any]:
        """What `rule` needs, and which of it is present for this patient."""
        needs = []
        when, unless_patterns = self.ruleset.resolved[rule.id]
        for _, p in sorted(when.items()):
            state, found = self.present(p)
            absent = None
            if state == "none" and producers(self.ruleset, p) and depth > 0 and p.type not in path:
                absent = self.absent(p.describe(), p, path, depth)
            needs.append({"pattern": p.describe(), "state": state, "found": found, "absent": absent})
        unless = []
        for _, p in sorted(unless_patterns.items()):
            state, found = self.present(p)
            unless.append({"pattern": p.describe(), "state": state, "found": found, "absent": None})
        return {
            "rule": rule.id,
            "purpose": rule.purpose,
            "citations": [citation_entry(self.ruleset, c) for c in rule.citations],
            "needs": needs,
            "unless": unless,
        }


def _value(f: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return (
        None
        if f is None
        else {k: (list(v) if isinstance(v, tuple) else v) for k, v in f.items() if k not in ("type", "key")}
    )


def producers(ruleset: RuleSet, p: Pattern) -> list[Rule]:
    """Rules that could conclude a fact matching `p`.

    A rule concluding the type is left out only when `p` requires field values (== or in) of
    which none appears among the rule's own pattern values or the interventions it emits, and
    the rule's patterns do name values: such a rule concludes facts about something else.
    """
    wanted: set[Any] = set()
    for _, t in p.tests:
        if t.op == "==":
            wanted.add(t.value)
        elif t.op == "in":
            wanted.update(t.value)
    out = []
    for r in ruleset.rules:
        if p.type not in r.concludes:
            continue
        if wanted:
            named: set[Any] = set(r.emits)
            for q in ruleset.resolved[r.id][0].values():
                for _, t in q.tests:
                    if t.op == "==":
                        named.add(t.value)
                    elif t.op == "in":
                        named.update(t.value)
            if named - set(r.emits) and not (wanted & named):
                continue
        out.append(r)
    return out


def explain(
    result: Result, ruleset: RuleSet, facts: Iterable[Mapping[str, Any]] | None = None, intervention: str | None = None
) -> dict[str, Any]:
    """The derivation of every recommendation and not-recommended entry of `result` (or only
    those about `intervention`), from the input `facts` (`ruleset.to_facts(patient)`; without
    them, fact leaves show labels only) through derived findings to the conclusion.

    An intervention with no entry at all is explained by the rules that could have emitted it
    and what each of them needs. Unknowns are listed with what they block.
    """
    w = _Walker(result, ruleset, facts)
    entries: list[dict[str, Any]] = []
    for rec in result.recommendations:
        if intervention is not None and rec.intervention != intervention:
            continue
        out = f"recommend:{rec.intervention}"
        entries.append(
            {
                "output": out,
                "intervention": rec.intervention,
                "label": intervention_label(ruleset, rec.intervention),
                "status": "recommended",
                "category": rec.category,
                "strength": rec.strength,
                "evidence": _evidence_entry(ruleset, rec.evidence),
                "rationale": list(rec.rationale),
                "rule": rec.rule,
                "derivation": w.output(out, rec.rule),
                "unknowns": [],
            }
        )
    for n in result.not_recommended:
        if intervention is not None and n.intervention != intervention:
            continue
        out = f"not_recommended:{n.intervention}:{n.kind}"
        entries.append(
            {
                "output": out,
                "intervention": n.intervention,
                "label": intervention_label(ruleset, n.intervention),
                "status": "not_recommended",
                "kind": n.kind,
                "reason": n.reason,
                "rule": n.rule,
                "derivation": w.output(out, n.rule),
                "unknowns": [],
            }
        )
    if intervention is not None and not entries:
        entries.append(
            {
                "output": None,
                "intervention": intervention,
                "label": intervention_label(ruleset, intervention),
                "status": "not_mentioned",
                "derivation": None,
                "unknowns": [],
                "could_come_from": [
                    w.rule_check(r, frozenset(), ABSENT_DEPTH) for r in ruleset.rules if intervention in r.emits
                ],
            }
        )
    unknowns = [w._unknown(u) for u in result.unknowns]
    for e in entries:
        e["unknowns"] = [u for u in unknowns if e["intervention"] in u["blocks"]]
    if intervention is not None:
        unknowns = [u for u in unknowns if intervention in u["blocks"]]
    return {
        "patient_id": result.patient_id,
        "ruleset": result.ruleset.model_dump(mode="json"),
        "intervention": intervention,
        "red_flags": list(result.red_flags),
        "entries": entries,
        "unknowns": unknowns,
    }


def check_intervention(ruleset: RuleSet, intervention: str) -> None:
    """`ExplainError` (an input error naming the option) for a code the rule set does not know."""
    if intervention not in ruleset.interventions:
        close = difflib.get_close_matches(intervention, list(ruleset.interventions), n=3, cutoff=0.5)
        raise ExplainError(intervention, close, list(ruleset.interventions))


def explain_patient(
    triager: Any, patient: Any, intervention: str | None = None, unknowns: Iterable[Mapping[str, Any]] = ()
) -> tuple[Result, dict[str, Any]]:
    """Triage `patient` (dict or model) with `triager` and explain the result, with the values of
    every input and derived fact. The result is the one `triager.triage(patient)` returns, with
    `unknowns` added (those of a source the patient was mapped from, e.g. a FHIR Bundle: each
    `{fact, reason, blocks, rule}`), ordered as the mapping orders them: by fact, then reason.

    Raises `InputError` for an invalid patient and `ExplainError` for an intervention code the
    rule set does not know."""
    ruleset = triager.ruleset
    if intervention is not None:
        check_intervention(ruleset, intervention)
    result, out = triager.triage_run(patient)
    extra = [Unknown(**dict(u)) for u in unknowns]
    if extra:
        merged = sorted([*result.unknowns, *extra], key=lambda u: (u.fact, u.reason))
        result = result.model_copy(update={"unknowns": merged})
    return result, explain(result, ruleset, out.facts, intervention)


# ---------------------------------------------------------------------- walking an explanation


def iter_nodes(node: Mapping[str, Any] | None) -> Iterable[Mapping[str, Any]]:
    """Every node under `node` (itself included), depth first."""
    if not node:
        return
    yield node
    for step in node.get("steps", ()):
        for p in step["premises"]:
            yield from iter_nodes(p)
    for check in node.get("checked", ()):
        for need in check["needs"]:
            yield from iter_nodes(need.get("absent"))


def iter_steps(node: Mapping[str, Any] | None) -> Iterable[Mapping[str, Any]]:
    """Every step (rule firing) under `node`."""
    for n in iter_nodes(node):
        yield from n.get("steps", ())


def entry_text(entry: Mapping[str, Any]) -> str:
    """All the words of one entry's explanation, flattened (for searching and tests)."""
    parts: list[str] = [str(entry.get(k, "")) for k in ("label", "reason", "strength")]
    parts += entry.get("rationale", [])
    ev = entry.get("evidence")
    if ev:
        parts.append(evidence_grade(ev))
        parts += [f"{c['id']} {c['short']} {c['grade']}" for c in ev["citations"]]
    for n in iter_nodes(entry.get("derivation")):
        parts.append(n["text"])
        for step in n.get("steps", ()):
            parts += [step["rule"], step["purpose"], *step["because"]]
            parts += [f"{c['id']} {c['short']} {c['grade']}" for c in step["citations"]]
            parts += [u["reason"] for u in step["unknowns"]]
        for check in n.get("checked", ()):
            parts += [check["rule"], check["purpose"], *(need["pattern"] for need in check["needs"])]
    for check in entry.get("could_come_from", ()):
        parts += [check["rule"], check["purpose"], *(need["pattern"] for need in check["needs"])]
    parts += [u["reason"] for u in entry.get("unknowns", ())]
    return "\n".join(p for p in parts if p)


# ====================================================================== terminal view

STATUS_STYLE = {"recommended": "bold green", "not_recommended": "bold yellow", "not_mentioned": "bold"}


def entry_heading(entry: Mapping[str, Any]) -> str:
    if entry["status"] == "recommended":
        bits = [entry["category"].replace("_", " "), entry["strength"]]
        grade = evidence_grade(entry.get("evidence"))
        if grade:
            bits.append(grade)
        return f"{entry['label']}: recommended · " + " · ".join(bits)
    if entry["status"] == "not_recommended":
        return f"{entry['label']}: not recommended ({entry['kind'].replace('_', ' ')}) · {entry['reason']}"
    return f"{entry['label']}: neither recommended nor withheld for this patient"


def _cite_line(c: Mapping[str, Any]) -> str:
    return f"{c['id']}: {c['short']}" + (f" — {c['grade']}" if c["grade"] else "")


def _step_text(head: str, step: Mapping[str, Any]) -> Text:
    t = Text()
    t.append(head)
    t.append(step["rule"], style="bold cyan")
    if step["purpose"]:
        t.append(f"  {step['purpose']}", style="dim")
    for line in step["because"]:
        t.append(f"\n  • {line}")
    for p in step["parameters"]:
        t.append(f"\n  parameter {p['name']} = {parameter_text(p)} ({p['source']})", style="dim")
    for c in step["citations"]:
        t.append(f"\n  source {_cite_line(c)}", style="magenta")
    for u in step["unknowns"]:
        t.append(f"\n  unknown {u['fact']}: {u['reason']} (affects {', '.join(u['blocks'])})", style="bold cyan")
    return t


def _add_node(tree: Tree, node: Mapping[str, Any], shown: set[str]) -> None:
    kind = node["kind"]
    if kind == "fact":
        text = Text(node["text"], style="green")
        text.append("  (patient fact)" if node.get("value") is not None else "  (input fact)", style="dim")
        tree.add(text)
        return
    if kind == "absent":
        branch = tree.add(Text.assemble(("checked absent: ", "dim"), (node["text"], "yellow")))
        for check in node.get("checked", ()):
            _add_check(branch, check, shown)
        return
    label = node["label"]
    if label in shown:
        tree.add(Text.assemble((label, "bold"), ("  (derived as shown above)", "dim")))
        return
    shown.add(label)
    steps = node.get("steps", [])
    if not steps:
        tree.add(Text(label, style="bold"))
        return
    branch = tree.add(
        _step_text("", steps[0])
        if kind == "output"
        else Text.assemble((node["text"], "bold"), " ⇐ ", _step_text("", steps[0]))
    )
    for p in steps[0]["premises"]:
        _add_node(branch, p, shown)
    for step in steps[1:]:
        also = branch.add(_step_text("also ⇐ ", step))
        for p in step["premises"]:
            _add_node(also, p, shown)


def _need_text(verb: str, need: Mapping[str, Any]) -> str:
    found = ", ".join(need["found"])
    if need["state"] == "present":
        return f"{verb} {need['pattern']}: present ({found})"
    if need["state"] == "not checked":
        return f"{verb} {need['pattern']}: not checked ({found} concluded; values not given)"
    return f"{verb} {need['pattern']}: none"


def _add_check(tree: Tree, check: Mapping[str, Any], shown: set[str]) -> None:
    head = Text.assemble(("not fired: ", "dim"), (check["rule"], "cyan"), (f"  {check['purpose']}", "dim"))
    branch = tree.add(head)
    for need in check["needs"]:
        sub = branch.add(Text(_need_text("needs", need), style="yellow" if need["state"] == "none" else "dim"))
        for c in (need.get("absent") or {}).get("checked", ()):
            _add_check(sub, c, shown)
    for need in check.get("unless", ()):
        branch.add(Text(_need_text("unless", need), style="dim"))


def entry_tree(entry: Mapping[str, Any]) -> Tree:
    """One entry as a rich Tree: the conclusion at the root, the patient's facts at the leaves."""
    tree = Tree(Text(entry_heading(entry), style=STATUS_STYLE[entry["status"]]), guide_style="dim")
    for line in entry.get("rationale", ()):
        tree.add(Text(f"why: {line}"))
    ev = entry.get("evidence")
    if ev:
        e = tree.add(Text(f"evidence: {evidence_grade(ev)} certainty · {ev['directness']}", style="magenta"))
        for c in ev["citations"]:
            e.add(Text(_cite_line(c), style="magenta"))
    if entry.get("derivation"):
        _add_node(tree, entry["derivation"], set())
    for check in entry.get("could_come_from", ()):
        _add_check(tree, check, set())
    for u in entry.get("unknowns", ()):
        tree.add(Text(f"unknown {u['fact']}: {u['reason']} (rule {u['rule']})", style="bold cyan"))
    return tree


def explanation_view(expl: Mapping[str, Any]) -> Group:
    """The whole explanation for a terminal: one tree per entry, then the unknowns."""
    rs = expl["ruleset"]
    parts: list[Any] = [
        Text.assemble(
            ("Explanation for ", "bold"),
            (expl["patient_id"], "bold"),
            "   ",
            (f"rule set {rs['name']} {rs['version']} · digest {rs['digest'][:12]}", "dim"),
        )
    ]
    if expl["red_flags"]:
        parts.append(Text("red flags: " + ", ".join(expl["red_flags"]), style="bold red"))
    for entry in expl["entries"]:
        parts.append(entry_tree(entry))
    if expl["unknowns"]:
        table = Table(
            title="Not known",
            title_justify="left",
            show_header=True,
            header_style="bold",
            box=None,
            expand=True,
            padding=(0, 1),
        )
        table.add_column("fact")
        table.add_column("blocks")
        table.add_column("why", ratio=4)
        table.add_column("rule")
        for u in expl["unknowns"]:
            table.add_row(u["fact"], ", ".join(u["blocks"]), u["reason"], u["rule"])
        parts.append(table)
    if not expl["entries"]:
        parts.append(Text("nothing was recommended or withheld", style="dim"))
    parts.append(
        Text(
            "Each step names the rule that fired, what it compared and its sources. Decision support "
            "only: it does not replace clinical judgement.",
            style="dim italic",
        )
    )
    return Group(*parts)


# ====================================================================== the knowledge base


def is_project_parameter(p: Parameter) -> bool:
    """A parameter chosen by the project (a convention or a project definition), not evidence."""
    s = p.source.casefold()
    return s.startswith(PROJECT_PARAMETER.split(",")[0]) or "(project definition)" in s


def rule_basis(ruleset: RuleSet, rule: Rule) -> dict[str, Any]:
    """What a rule rests on: {kind: cited | project_parameter | gap, text}.

    cited: it names at least one citation; project_parameter: no citation, and every parameter
    it uses is a project parameter (said plainly); gap: neither, which a maintainer must fix.
    """
    if rule.citations:
        return {"kind": "cited", "text": "cited: " + ", ".join(rule.citations)}
    params = [ruleset.parameters[p] for p in rule.parameters if p in ruleset.parameters]
    if params and len(params) == len(rule.parameters) and all(is_project_parameter(p) for p in params):
        return {
            "kind": "project_parameter",
            "text": "no citation: rests on project parameters, not evidence ("
            + ", ".join(p.name for p in params)
            + ")",
        }
    return {"kind": "gap", "text": f"{GAP_MARK} and not a project parameter"}


def basis_gaps(ruleset: RuleSet) -> list[str]:
    """Ids of rules with neither a citation nor only project parameters behind them."""
    return [r.id for r in ruleset.rules if rule_basis(ruleset, r)["kind"] == "gap"]


def _emitted_grades(ruleset: RuleSet, rule: Rule) -> list[dict[str, Any]]:
    out = []
    for code in rule.emits:
        spec = ruleset.interventions.get(code)
        ev = _evidence_entry(ruleset, spec.evidence) if spec else None
        out.append(
            {
                "intervention": code,
                "grade": evidence_grade(ev) or "not graded",
                "citations": [c["id"] for c in ev["citations"]] if ev else [],
            }
        )
    return out


def rule_row(ruleset: RuleSet, rule: Rule) -> dict[str, Any]:
    """One rule as a row of the knowledge-base table."""
    return {
        "id": rule.id,
        "purpose": rule.purpose,
        "concludes": list(rule.concludes),
        "emits": list(rule.emits),
        "parameters": list(rule.parameters),
        "citations": list(rule.citations),
        "emitted_evidence": _emitted_grades(ruleset, rule),
        "basis": rule_basis(ruleset, rule),
        "reads_patient": list(rule.reads_patient),
    }


def rule_rows(ruleset: RuleSet) -> list[dict[str, Any]]:
    return [rule_row(ruleset, r) for r in ruleset.rules]


def find_rule(ruleset: RuleSet, rule_id: str) -> tuple[Rule | None, list[str]]:
    """The rule with `rule_id` (case-insensitive), or None and the closest ids."""
    ids = [r.id for r in ruleset.rules]
    wanted = rule_id.strip().upper()
    if wanted in ids:
        return ruleset.rule(wanted), []
    return None, difflib.get_close_matches(wanted, ids, n=5, cutoff=0.5)


def rule_detail(ruleset: RuleSet, rule: Rule) -> dict[str, Any]:
    """Everything about one rule, with its full sources and where it sits in the chain."""
    feeds_on = sorted(
        {
            p.id
            for t in set(rule.reads) | set(rule.negates) | set(rule.reads_all)
            for p in ruleset.rules
            if t in p.concludes and p.id != rule.id
        }
    )
    feeds = sorted(
        {
            r.id
            for r in ruleset.rules
            if r.id != rule.id and set(rule.concludes) & (set(r.reads) | set(r.negates) | set(r.reads_all))
        }
    )
    row = rule_row(ruleset, rule)
    row.update(
        {
            "when": {alias: p.describe() for alias, p in sorted(ruleset.resolved[rule.id][0].items())},
            "unless": {alias: p.describe() for alias, p in sorted(ruleset.resolved[rule.id][1].items())},
            "reads_all": list(rule.reads_all),
            "parameters": [
                parameter_entry(ruleset.parameters[p])
                if p in ruleset.parameters
                else {"name": p, "value": "undefined", "unit": "", "source": "", "note": ""}
                for p in rule.parameters
            ],
            "citations": [
                {**citation_entry(ruleset, c), "full": dict(ruleset.citations.get(c, {}))} for c in rule.citations
            ],
            "emitted_evidence": [
                {
                    **g,
                    "citations": [
                        {**citation_entry(ruleset, c), "full": dict(ruleset.citations.get(c, {}))}
                        for c in g["citations"]
                    ],
                }
                for g in _emitted_grades(ruleset, rule)
            ],
            "uses_findings_from": feeds_on,
            "findings_used_by": feeds,
        }
    )
    return row


def patient_attribute_use(ruleset: RuleSet) -> list[dict[str, Any]]:
    """Each top-level field of the input model and the rules that read it (none: not used)."""
    model = ruleset.patient_model
    fields = list(getattr(model, "model_fields", {}))
    use = []
    for name in fields:
        readers = [r.id for r in ruleset.rules if any(a == name or a.startswith(name + ".") for a in r.reads_patient)]
        paths = sorted({a for r in ruleset.rules for a in r.reads_patient if a == name or a.startswith(name + ".")})
        use.append({"attribute": name, "paths": paths, "rules": readers})
    return use


def source_attributes(ruleset: RuleSet) -> dict[str, Any]:
    """ONC HTI-1 style source attributes of the rule set and of each intervention it may recommend."""
    declared = dict(ruleset.attributes)
    attrs = [
        {"name": "name", "title": "name", "value": ruleset.name},
        {"name": "version", "title": "version", "value": ruleset.version},
        {"name": "digest", "title": "digest (sha256 of the rule set's files)", "value": ruleset.digest},
    ]
    for key, title in SOURCE_ATTRIBUTES:
        value = declared.pop(key, None)
        attrs.append({"name": key, "title": title, "value": NOT_DECLARED if value in (None, "") else str(value)})
    for key, value in sorted(declared.items()):
        attrs.append({"name": key, "title": key.replace("_", " "), "value": str(value)})
    interventions = []
    for code, spec in ruleset.interventions.items():
        rules = [r for r in ruleset.rules if code in r.emits]
        reads = sorted({a for r in rules for a in r.reads_patient})
        ev = _evidence_entry(ruleset, spec.evidence)
        interventions.append(
            {
                "intervention": code,
                "label": spec.label,
                "category": spec.category,
                "strength": spec.strength,
                "grade": evidence_grade(ev) or "not graded",
                "directness": ev["directness"] if ev else "",
                "citations": ev["citations"] if ev else [],
                "rules": [r.id for r in rules],
                "patient_attributes": reads,
            }
        )
    return {
        "ruleset": attrs,
        "missing": [a["name"] for a in attrs if a["value"] == NOT_DECLARED],
        "patient_attributes": patient_attribute_use(ruleset),
        "interventions": interventions,
    }


# ---------------------------------------------------------------------- knowledge-base views


def rules_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """The knowledge base as one table: a row per rule."""
    table = Table(show_header=True, header_style="bold", expand=True, show_lines=True)
    table.add_column("rule", style="bold cyan", no_wrap=True)
    table.add_column("purpose", ratio=4)
    table.add_column("concludes / emits", ratio=3)
    table.add_column("parameters", ratio=2)
    table.add_column("citations · basis", ratio=3)
    table.add_column("grade of what it emits", ratio=2)
    for r in rows:
        out = [*r["concludes"], *(f"→ {c}" for c in r["emits"])]
        basis = r["basis"]
        cites = Text(", ".join(r["citations"]))
        if basis["kind"] == "project_parameter":
            cites.append(PROJECT_ONLY, style="yellow")
        elif basis["kind"] == "gap":
            cites.append(GAP_MARK, style="bold red")
        grades = "\n".join(f"{g['intervention']}: {g['grade']}" for g in r["emitted_evidence"])
        table.add_row(r["id"], r["purpose"], "\n".join(out), "\n".join(r["parameters"]), cites, grades)
    return table


def rule_detail_view(d: Mapping[str, Any]) -> Group:
    parts: list[Any] = [Text.assemble((d["id"], "bold cyan"), "  ", d["purpose"])]
    t = Table(show_header=False, box=None, padding=(0, 1), expand=True)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(ratio=1)
    t.add_row("when", "\n".join(f"{a}: {p}" for a, p in d["when"].items()))
    if d["unless"]:
        t.add_row("unless", "\n".join(f"{a}: {p}" for a, p in d["unless"].items()))
    if d["reads_all"]:
        t.add_row("reads all", ", ".join(d["reads_all"]))
    t.add_row("concludes", ", ".join(d["concludes"]) or "-")
    t.add_row("emits", ", ".join(d["emits"]) or "-")
    t.add_row("uses findings of", ", ".join(d["uses_findings_from"]) or "- (patient facts only)")
    t.add_row("its findings feed", ", ".join(d["findings_used_by"]) or "-")
    t.add_row("patient attributes", ", ".join(d["reads_patient"]) or "-")
    t.add_row("basis", Text(d["basis"]["text"], style="bold red" if d["basis"]["kind"] == "gap" else ""))
    parts.append(t)
    if d["parameters"]:
        pt = Table(title="parameters", title_justify="left", header_style="bold", expand=True, box=None, padding=(0, 1))
        pt.add_column("name", overflow="fold", ratio=2)
        pt.add_column("value", ratio=1)
        pt.add_column("source", ratio=2)
        pt.add_column("note", ratio=4)
        for p in d["parameters"]:
            pt.add_row(p["name"], parameter_text(p), p["source"], p["note"])
        parts.append(pt)
    if d["citations"]:
        parts.append(Text("citations", style="bold"))
        for c in d["citations"]:
            parts.append(Text(f"  {_cite_line(c)}", style="magenta"))
            full = c["full"]
            for key in ("title", "design", "n", "finding", "pmid", "doi"):
                if key in full:
                    parts.append(Text(f"      {key}: {full[key]}"))
    for g in d["emitted_evidence"]:
        parts.append(Text(f"evidence for {g['intervention']}: {g['grade']}", style="bold"))
        for c in g["citations"]:
            parts.append(Text(f"  {_cite_line(c)}", style="magenta"))
    return Group(*parts)


def attributes_view(a: Mapping[str, Any]) -> Group:
    t = Table(
        title="Source attributes of the rule set",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 1),
        expand=True,
    )
    t.add_column(style="bold", ratio=1)
    t.add_column(ratio=2, overflow="fold")
    for attr in a["ruleset"]:
        t.add_row(attr["title"], Text(attr["value"], style="bold red" if attr["value"] == NOT_DECLARED else ""))
    pa = Table(
        title="Patient attributes the rules read",
        title_justify="left",
        header_style="bold",
        box=None,
        padding=(0, 1),
        expand=True,
    )
    pa.add_column("attribute", ratio=2, overflow="fold")
    pa.add_column("fields read", ratio=3)
    pa.add_column("rules", ratio=6)
    for u in a["patient_attributes"]:
        pa.add_row(
            u["attribute"],
            ", ".join(u["paths"]) or "-",
            Text(", ".join(u["rules"]) or "not used by any rule", style="" if u["rules"] else "dim"),
        )
    it = Table(title="Interventions", title_justify="left", header_style="bold", box=None, padding=(0, 1), expand=True)
    it.add_column("intervention", ratio=3, overflow="fold")
    it.add_column("grade", ratio=2)
    it.add_column("citations", ratio=3, overflow="fold")
    it.add_column("patient attributes read", ratio=3, overflow="fold")
    for i in a["interventions"]:
        it.add_row(
            i["intervention"],
            i["grade"],
            ", ".join(c["id"] for c in i["citations"]) or "-",
            ", ".join(i["patient_attributes"]),
        )
    return Group(t, pa, it)
