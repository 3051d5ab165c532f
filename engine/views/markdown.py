"""Markdown reports to paste into a clinical note: a triage result, and an explanation.

In the order and with the merging of the terminal view (engine.views.common.digest):
recommendations with their grades, reviews and every detail (doses, cautions, the checks before
starting), what was not recommended (one entry per intervention, its reasons merged, and what
would change it), what is not known written next to what it affects, and the references. Text that came from rules or input is escaped so it cannot
turn into markup (emphasis, links, HTML, table cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.kernel.models import Result
from engine.kernel.rulebase import RuleSet
from engine.views.common import (
    DISCLAIMER,
    NO_CHANGE,
    digest,
    evidence_grade,
    md_escape,
    parameter_text,
    sentence,
    shown_details,
    weeks_text,
)


def esc(text: Any) -> str:
    """Text safe inside markdown paragraphs, list items and table cells (one line): `md_escape`,
    the same escaping as the CDS Hooks cards."""
    return md_escape(text)


def _ref(cid: str, c: Mapping[str, Any]) -> str:
    bits = [str(c[k]) for k in ("authors", "title") if c.get(k)]
    where = c.get("citation") or c.get("journal")
    if where:
        bits.append(str(where))
    for key, prefix in (("pmid", "PMID "), ("doi", "doi:")):
        if c.get(key):
            bits.append(prefix + str(c[key]))
    line = ". ".join(esc(b).rstrip(".") for b in bits)
    return f"- `{cid}`: {line}." + (f" *{esc(c['grade_note'])}*" if c.get("grade_note") else "")


def _ruleset_line(info: Mapping[str, Any]) -> str:
    return f"Rule set {esc(info['name'])} {esc(info['version'])} (digest `{str(info['digest'])[:12]}`)."


def _changes_lines(changes: Any, pad: str) -> list[str]:
    if changes is None:
        return []
    if not changes:
        return [f"{pad}- would change: {NO_CHANGE}"]
    return [f"{pad}- would be an option if: {esc(c.text)}" for c in changes]


def _note_line(note: Any, pad: str) -> str:
    if note.kind == "unknown":
        return f"{pad}- **not known**: {esc(note.text)}"
    if note.kind == "notice":
        return f"{pad}- **note**: {esc(note.text)}"
    return f"{pad}- {esc(note.title)}: {esc(note.text)}"


def result_markdown(result: Result, ruleset: RuleSet | None = None) -> str:
    """The triage result as a short markdown report, in the order and with the merging of the
    terminal view: the flag; each recommendation with its grade, review, every detail (dose,
    cautions, checks before starting) and what is not known about it; each withheld intervention
    once, all its reasons merged, with what would change it; the unknowns that affect no listed
    entry; the references."""
    d = digest(result, ruleset)
    out: list[str] = [f"## Triage: {esc(result.patient_id)}", ""]
    if d.banner:
        flags = ", ".join(label for _, label in d.flags)
        out += [
            f"**{esc(sentence(d.flag_word))}: {esc(flags)}.**"
            + (f" {esc(sentence(d.flags_stop))}." if d.flags_stop else ""),
            "",
        ]
    for n in d.notices:
        out += [f"**Note:** {esc(n)}", ""]
    out += ["### Recommended", ""]
    if not d.plan:
        out.append("- nothing")
    for item in d.plan:
        r = item.rec
        head = f"- **{esc(item.label)}** ({esc(item.category.lower())}; {esc(r.strength)}"
        head += f"; {item.grade})" if item.grade else ")"
        if r.evidence is not None:
            head += " [" + ", ".join(f"`{c}`" for c in r.evidence.citations) + "]"
        out.append(head)
        if r.review is not None:
            out.append(f"  - review in {esc(weeks_text(r.review.weeks))}: {esc(r.review.text)}")
        out.append(f"  - why: {esc('; '.join(r.rationale))}")
        out += [f"  - {esc(key)}: {esc(value)}" for key, value in shown_details(r)]
        for n in item.notes:
            if n.kind != "detail":
                out.append(_note_line(n, "  "))
        if r.evidence is not None:
            out.append(f"  - evidence: {esc(r.evidence.directness)}")
    out.append("")
    if d.withheld:
        out += ["### Not recommended", ""]
        for w in d.withheld:
            out.append(f"- **{esc(w.label)}**: {esc(w.merged)}")
            for n in w.notes:
                out.append(_note_line(n, "  "))
            out += _changes_lines(w.changes, "  ")
        out.append("")
    if d.unknowns or d.quiet_unknowns:
        out += ["### Not known", ""]
        for u in d.unknowns:
            out.append(f"- {esc(u.text)} (affects {esc(', '.join(u.affects))})")
        for text in d.quiet_unknowns:
            out.append(f"- {esc(text)}")
        out.append("")
    if result.citations:
        out += ["### References", ""]
        out += [_ref(cid, c) for cid, c in result.citations.items()]
        out.append("")
    out += [f"*{_ruleset_line(result.ruleset.model_dump())} {DISCLAIMER}*", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------- explanation


def _step_lines(step: Mapping[str, Any], depth: int, head: str) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}- {head}`{step['rule']}`: {esc(step['purpose'])}"]
    for b in step["because"]:
        lines.append(f"{pad}  - {esc(b)}")
    for p in step["parameters"]:
        lines.append(f"{pad}  - parameter `{p['name']}` = {esc(parameter_text(p))} ({esc(p['source'])})")
    if step["citations"]:
        lines.append(
            f"{pad}  - sources: "
            + "; ".join(
                f"`{c['id']}` {esc(c['short'])}" + (f" ({esc(c['grade'])})" if c["grade"] else "")
                for c in step["citations"]
            )
        )
    for u in step["unknowns"]:
        lines.append(f"{pad}  - **unknown** `{esc(u['fact'])}`: {esc(u['reason'])}")
    return lines


def _node_lines(node: Mapping[str, Any], depth: int, shown: set[str]) -> list[str]:
    pad = "  " * depth
    if node["kind"] == "fact":
        return [f"{pad}- patient fact: {esc(node['text'])}"]
    if node["kind"] == "absent":
        lines = [f"{pad}- checked absent: {esc(node['text'])}"]
        for check in node.get("checked", ()):
            lines += _check_lines(check, depth + 1)
        return lines
    if node["label"] in shown:
        return [f"{pad}- {esc(node['text'])} (derived as shown above)"]
    shown.add(node["label"])
    lines: list[str] = []
    steps = node.get("steps", [])
    for i, step in enumerate(steps):
        # the first step at the node's depth, further derivations nested under it
        at = depth if i == 0 else depth + 1
        if i == 0:
            head = "by " if node["kind"] == "output" else f"{esc(node['text'])} ⇐ "
        else:
            head = "also by " if node["kind"] == "output" else "also ⇐ "
        lines += _step_lines(step, at, head)
        for p in step["premises"]:
            lines += _node_lines(p, at + 1, shown)
    return lines


def _check_lines(check: Mapping[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}- not fired: `{check['rule']}`: {esc(check['purpose'])}"]
    for need in check["needs"]:
        state = need["state"] + (f" ({', '.join(need['found'])})" if need["found"] else "")
        lines.append(f"{pad}  - needs {esc(need['pattern'])}: {esc(state)}")
        for c in (need.get("absent") or {}).get("checked", ()):
            lines += _check_lines(c, depth + 2)
    return lines


def _entry_heading(e: Mapping[str, Any]) -> str:
    if e["status"] == "recommended":
        grade = evidence_grade(e.get("evidence"))
        return f"### {esc(e['label'])}: recommended ({e['category'].replace('_', ' ')}; {esc(e['strength'])}" + (
            f"; {grade})" if grade else ")"
        )
    if e["status"] == "not_recommended":
        return f"### {esc(e['label'])}: not recommended ({e['kind'].replace('_', ' ')})"
    return f"### {esc(e['label'])}: neither recommended nor withheld"


def explanation_markdown(expl: Mapping[str, Any]) -> str:
    """An explanation (engine.views.explain.explain) as nested markdown lists, one section per entry."""
    out = [f"## Explanation: {esc(expl['patient_id'])}", ""]
    if expl["red_flags"]:
        out += [f"**Red flags: {esc(', '.join(expl['red_flags']))}.**", ""]
    for e in expl["entries"]:
        out += [_entry_heading(e), ""]
        if e["status"] == "not_recommended":
            out.append(f"- reason: {esc(e['reason'])}")
        for line in e.get("rationale", ()):
            out.append(f"- why: {esc(line)}")
        ev = e.get("evidence")
        if ev:
            out.append(f"- evidence: {evidence_grade(ev)} certainty; {esc(ev['directness'])}")
            for c in ev["citations"]:
                out.append(f"  - `{c['id']}` {esc(c['short'])}" + (f": {esc(c['grade'])}" if c["grade"] else ""))
        if e.get("derivation"):
            out += _node_lines(e["derivation"], 0, set())
        for check in e.get("could_come_from", ()):
            out += _check_lines(check, 0)
        for u in e.get("unknowns", ()):
            out.append(f"- **unknown** `{esc(u['fact'])}`: {esc(u['reason'])}")
        out.append("")
    if expl["unknowns"]:
        out += ["### Not known", ""]
        for u in expl["unknowns"]:
            out.append(
                f"- `{esc(u['fact'])}` (affects {esc(', '.join(u['blocks']))}; rule `{u['rule']}`): {esc(u['reason'])}"
            )
        out.append("")
    out += [f"*{_ruleset_line(expl['ruleset'])} {DISCLAIMER}*", ""]
    return "\n".join(out)
