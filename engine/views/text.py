"""Rendering a result for people: a terminal view (rich) built from the result alone."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.kernel.models import Result
from engine.views.common import category_order, category_title
from engine.kernel.rulebase import RuleSet, code_label, intervention_label

KIND_TITLE = {
    "contraindicated": "contraindicated",
    "suppressed": "suppressed",
    "not_indicated": "not indicated",
    "deferred": "deferred",
}
KIND_STYLE = {"contraindicated": "bold red", "suppressed": "red", "not_indicated": "yellow", "deferred": "cyan"}


def grade(rec: Any) -> str:
    """'SORT C · very low' for a recommendation, '' when it has no graded evidence."""
    ev = rec.evidence
    if ev is None:
        return ""
    return f"SORT {ev.sort} · {ev.certainty.replace('_', ' ')}"


label = intervention_label  # kept under its old name for callers of engine.views.text


def _detail_lines(details: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in details.items():
        if value in ([], {}, "", None):
            continue
        if isinstance(value, list):
            value = "; ".join(map(str, value))
        lines.append(f"{key.replace('_', ' ')}: {value}")
    return lines


def _summary_details(ruleset: RuleSet | None, rec: Any, full: bool) -> list[str]:
    if full:
        return _detail_lines(rec.details)
    show = ruleset.interventions[rec.intervention].show if ruleset and rec.intervention in ruleset.interventions else ()
    return _detail_lines({k: rec.details[k] for k in show if k in rec.details})


def text_view(result: Result, ruleset: RuleSet | None = None, details: bool = False) -> Group:
    """The whole result as rich renderables, compact enough for one screen: red flags, then
    recommendations by category with their grades, then what was not recommended and why,
    then what is not known. `details=True` adds every detail (dosing, sources) of each entry."""
    parts: list[Any] = []
    parts.append(Text.assemble(("Patient ", "bold"), (result.patient_id, "bold"), "   ",
                               (f"rule set {result.ruleset.name} {result.ruleset.version}", "dim")))
    if result.red_flags:
        flags = ", ".join(code_label(ruleset, f) for f in result.red_flags)
        title = ruleset.word("flag", "flag").upper() if ruleset else "FLAG"
        stop = ruleset.word("flags_stop") if ruleset else ""
        parts.append(Panel(Text(f"{title}: {flags}" + (f"\n{stop[:1].upper()}{stop[1:]}." if stop else ""),
                                style="bold red"), border_style="red"))
    table = Table(show_header=True, header_style="bold", expand=True, box=None, padding=(0, 1), show_edge=False)
    table.add_column("Recommended", ratio=2)
    table.add_column("grade", style="magenta", no_wrap=True, min_width=17)
    table.add_column("why", ratio=4)
    for cat in category_order(ruleset, result):
        recs = [r for r in result.recommendations if r.category == cat]
        if not recs:
            continue
        table.add_row(Text(category_title(ruleset, cat), style="bold underline"), "", "")
        for r in recs:
            why = Text("; ".join(r.rationale))
            for line in _summary_details(ruleset, r, details):
                why.append(f"\n{line}", style="dim")
            name = Text(label(ruleset, r.intervention), style="bold green")
            if r.strength != "recommended":
                name.append(f"\n{r.strength}", style="green")
            table.add_row(name, grade(r), why)
    parts.append(table)
    if result.not_recommended:
        table = Table(show_header=True, header_style="bold", expand=True, box=None, padding=(0, 1), show_edge=False)
        table.add_column("Not recommended", ratio=2)
        table.add_column("kind", no_wrap=True, min_width=15)
        table.add_column("why", ratio=4)
        for n in result.not_recommended:
            table.add_row(Text(label(ruleset, n.intervention)), Text(KIND_TITLE[n.kind], style=KIND_STYLE[n.kind]),
                          n.reason)
        parts.append(table)
    if result.unknowns:
        table = Table(show_header=True, header_style="bold", expand=True, box=None, padding=(0, 1), show_edge=False)
        table.add_column("Not known", ratio=2)
        table.add_column("affects", ratio=1)
        table.add_column("why", ratio=4)
        for u in result.unknowns:
            table.add_row(u.fact, ", ".join(u.blocks), u.reason)
        parts.append(table)
    cited = ", ".join(result.citations)
    parts.append(Text(f"Sources: {cited}. Decision support only: it does not replace clinical judgement. "
                      f"Rule set digest {result.ruleset.digest[:12]}.", style="dim italic"))
    return Group(*parts)


def print_text(result: Result, console: Console, ruleset: RuleSet | None = None, details: bool = False) -> None:
    console.print(text_view(result, ruleset, details))
