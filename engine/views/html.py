"""Self-contained HTML pages: a patient's triage report, and the rule set's pathway.

`report_html(result, ruleset, facts=None)` is one page, with no network access, no script and no
external asset (a Content-Security-Policy forbids loading anything), printable:

* the flag first; the plan (grade, review, why, every detail, what is not known about it);
* what is withheld, once per intervention, each reason under its kind, and what would change it
  (where the result carries `what_would_change`);
* the unknowns that belong to no listed entry, and notices;
* the pathway with this patient's route lit (engine.views.graph): the rules that fired, the facts
  they used and concluded, the options recommended or withheld, the blocks;
* the evidence: every cited study, with its design and grade notes.

`pathway_html(ruleset)` is the whole pathway with its legend and a list of the rules, and no
patient data. Both pages are generated from the result and the rule set; nothing is drawn by hand,
and no clinical term is written here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from engine.kernel.models import Result
from engine.kernel.rulebase import RuleSet
from engine.views import graph
from engine.views.common import (
    DISCLAIMER,
    NO_CHANGE,
    Digest,
    Note,
    digest,
    kind_title,
    sentence,
    shown_details,
    weeks_text,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
:root{--ink:#1f2933;--muted:#52606d;--line:#d9e2ec;--green:#1a7f37;--amber:#9a6700;--red:#d1242f;--blue:#1f6feb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fff}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:17px;margin:26px 0 8px;padding-bottom:3px;border-bottom:2px solid var(--line)}
.meta{color:var(--muted);font-size:13px}
.banner{margin:14px 0;padding:10px 14px;border-radius:6px;background:var(--red);color:#fff;font-weight:bold;font-size:16px}
.glance{list-style:none;margin:12px 0 0;padding:10px 14px;background:#f6f8fa;border:1px solid var(--line);border-radius:6px}
.glance li{margin:2px 0}
.notice{margin:8px 0;padding:8px 12px;border-left:4px solid var(--amber);background:#fff8c5}
table{width:100%;border-collapse:collapse;font-size:14px}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
td.opt{font-weight:bold;width:22%}
td.opt small{display:block;font-weight:normal;color:var(--muted)}
.grade{white-space:nowrap;color:#8250df;font-weight:bold}
.strength{color:var(--green);font-weight:bold}
.kind{font-weight:bold;white-space:nowrap}
.kind-contraindicated,.kind-suppressed{color:var(--red)}
.kind-not_indicated,.kind-deferred{color:var(--amber)}
ul{margin:2px 0;padding-left:18px}
dl{margin:4px 0;display:grid;grid-template-columns:max-content 1fr;gap:1px 10px;font-size:13px}
dt{color:var(--muted)}
dd{margin:0}
.note-unknown,.note-notice{color:#7d4e00}
.change{color:var(--blue)}
.none{color:var(--muted)}
.pathway{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fbfdff}
.pathway svg{display:block}
.fit{margin:0 6px 8px 0;vertical-align:middle}
.fit-label{font-size:13px;color:var(--muted)}
.fit:checked~.pathway svg{width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px;margin:6px 0 10px;color:var(--muted)}
.legend span::before{content:"";display:inline-block;width:18px;height:12px;margin-right:5px;vertical-align:-1px;border:2px solid #9aa5b1;border-radius:3px;background:#fff}
.legend .l-fired::before{background:var(--blue);border-color:#0b4fb3}
.legend .l-fact::before{background:#ddf4ff;border-color:var(--blue);border-radius:8px}
.legend .l-rec::before{background:#dafbe1;border-color:var(--green)}
.legend .l-held::before{background:#fff8c5;border-color:var(--amber)}
.legend .l-stop::before{background:#ffebe9;border-color:var(--red)}
.legend .l-block::before{background:#fff5f5;border:2px dashed var(--red)}
.legend .l-off::before{opacity:.4}
ol.refs{padding-left:22px;font-size:13px}
ol.refs li{margin:3px 0}
footer{margin-top:28px;color:var(--muted);font-size:12px}
a{color:var(--blue)}
@media print{
  body{font-size:11pt}
  main{max-width:none;padding:0}
  .pathway{overflow:visible;border:none;padding:0}
  .pathway svg{width:100%;height:auto}
  .fit,.fit-label{display:none}
  tr,li,.banner{break-inside:avoid}
  h2{break-after:avoid}
  a{color:inherit;text-decoration:none}
}
@page{margin:14mm}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{_e(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _notes(notes: Iterable[Note]) -> str:
    items = [
        f'<li class="note-{n.kind}"><b>{_e(sentence(n.title))}:</b> {_e(n.text)}</li>'
        for n in notes
        if n.kind != "detail"
    ]
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _cite_refs(ids: Iterable[str]) -> str:
    return ", ".join(f'<a href="#ref-{_e(c)}">{_e(c)}</a>' for c in ids)


def _plan_table(d: Digest) -> list[str]:
    if not d.plan:
        return ['<p class="none">Nothing is recommended.</p>']
    reviews = any(i.rec.review is not None for i in d.plan)
    rows = [
        '<table class="plan"><thead><tr><th>Option</th><th>Strength</th><th>Evidence</th>'
        + ("<th>Review</th>" if reviews else "")
        + "<th>Why, and details</th></tr></thead><tbody>"
    ]
    for item in d.plan:
        r = item.rec
        ev = ""
        if r.evidence is not None:
            ev = (
                f'<span class="grade">{_e(item.grade)}</span><br><small>{_e(r.evidence.directness)}</small>'
                f"<br><small>{_cite_refs(r.evidence.citations)}</small>"
            )
        else:
            ev = '<span class="none">not graded</span>'
        review = (
            f"<b>in {_e(weeks_text(r.review.weeks))}</b><br><small>{_e(r.review.text)}</small>"
            if r.review is not None
            else '<span class="none">—</span>'
        )
        details = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in shown_details(r))
        why = "".join(f"<li>{_e(x)}</li>" for x in r.rationale)
        rows.append(
            f'<tr data-intervention="{_e(r.intervention)}" data-rule="{_e(r.rule)}">'
            f'<td class="opt">{_e(item.label)}<small>{_e(item.category)}</small></td>'
            f'<td class="strength">{_e(r.strength)}</td><td>{ev}</td>'
            + (f"<td>{review}</td>" if reviews else "")
            + f"<td><ul>{why}</ul>{_notes(item.notes)}"
            + (f"<dl>{details}</dl>" if details else "")
            + f'<small class="none">rule {_e(r.rule)}</small></td></tr>'
        )
    rows.append("</tbody></table>")
    return rows


def _withheld_table(d: Digest) -> list[str]:
    if not d.withheld:
        return ['<p class="none">Nothing was withheld.</p>']
    carried = any(w.changes is not None for w in d.withheld)
    head = "<th>What would change it</th>" if carried else ""
    rows = [f'<table class="withheld"><thead><tr><th>Option</th><th>Why not now</th>{head}</tr></thead><tbody>']
    for w in d.withheld:
        why = "".join(
            f'<li><span class="kind kind-{_e(k)}">{_e(kind_title(k))}</span>: {_e(r)}</li>' for k, r in w.by_kind()
        )
        change = ""
        if carried:
            if w.changes is None:
                change = '<td class="none">—</td>'
            elif not w.changes:
                change = f'<td class="none">{_e(NO_CHANGE)}</td>'
            else:
                change = "<td><ul>" + "".join(f'<li class="change">{_e(c.text)}</li>' for c in w.changes) + "</ul></td>"
        rules = " ".join(dict.fromkeys(e.rule for e in w.entries))
        rows.append(
            f'<tr data-intervention="{_e(w.intervention)}" data-kinds="{_e(" ".join(w.kinds))}">'
            f'<td class="opt">{_e(w.label)}</td><td><ul>{why}</ul>{_notes(w.notes)}'
            f'<small class="none">rule {_e(rules)}</small></td>{change}</tr>'
        )
    rows.append("</tbody></table>")
    return rows


def _legend(lit: bool) -> str:
    items = [
        '<span class="l-fact">patient fact or finding</span>',
        "<span>rule</span>",
        '<span class="l-rec">option</span>',
    ]
    if lit:
        items = [
            '<span class="l-fired">rule that fired</span>',
            '<span class="l-fact">fact used or concluded</span>',
            '<span class="l-rec">recommended</span>',
            '<span class="l-held">withheld</span>',
            '<span class="l-stop">contraindicated or suppressed</span>',
            '<span class="l-block">blocked: a fact it checks absent was present</span>',
            '<span class="l-off">not on this route</span>',
        ]
    return '<div class="legend">' + "".join(items) + "</div>"


#: A toggle between the page width (the whole route at a glance: the default) and the picture's own size
#: (larger text, scrolled), without a script.
_FIT = (
    '<input type="checkbox" id="fit" class="fit" checked><label for="fit" class="fit-label">fit the picture to the '
    "page width</label>"
)


def _references(citations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not citations:
        return []
    out = ['<ol class="refs">']
    for cid, c in citations.items():
        bits = [str(c[k]) for k in ("authors", "title") if c.get(k)]
        where = c.get("citation") or " ".join(str(x) for x in (c.get("journal"), c.get("year")) if x)
        if where:
            bits.append(str(where))
        text = ". ".join(_e(b).rstrip(".") for b in bits) + "."
        links = []
        if c.get("pmid"):
            links.append(
                f'<a href="https://pubmed.ncbi.nlm.nih.gov/{_e(c["pmid"])}/" rel="noreferrer">PMID {_e(c["pmid"])}</a>'
            )
        if c.get("doi"):
            links.append(f'<a href="https://doi.org/{_e(c["doi"])}" rel="noreferrer">doi:{_e(c["doi"])}</a>')
        extra = [f"design: {_e(c['design'])}"] if c.get("design") else []
        if c.get("grade_note"):
            extra.append(_e(c["grade_note"]))
        out.append(
            f'<li id="ref-{_e(cid)}"><b>{_e(cid)}</b>: {text} {" ".join(links)}'
            + (f"<br><small>{'; '.join(extra)}</small>" if extra else "")
            + "</li>"
        )
    out.append("</ol>")
    return out


def _glance(d: Digest) -> str:
    """The decision at a glance: what to do (grouped by strength), what is not offered now, what is not known."""
    groups: dict[str, list[str]] = {}
    for item in d.plan:
        groups.setdefault(item.rec.strength, []).append(item.label)
    rows = [f"<li><b>{_e(sentence(strength))}:</b> {_e(', '.join(labels))}</li>" for strength, labels in groups.items()]
    if not rows:
        rows.append('<li class="none">Nothing is recommended.</li>')
    if d.withheld:
        held = ", ".join(
            f'{_e(w.label)} <span class="kind kind-{_e(w.kinds[0])}">({_e(kind_title(w.kinds[0]))})</span>'
            for w in d.withheld
        )
        rows.append(f"<li><b>Not now:</b> {held}</li>")
    unknown = sum(1 for u in d.result.unknowns if u.blocks)
    if unknown:
        rows.append(
            f'<li class="note-unknown"><b>Not known:</b> {unknown} item{"s" if unknown != 1 else ""} that '
            "could change this (listed beside what they affect)</li>"
        )
    return f'<section id="glance" aria-label="At a glance"><ul class="glance">{"".join(rows)}</ul></section>'


def _ruleset_line(result: Result) -> str:
    info = result.ruleset
    site = f" · site {info.site.name}" if info.site is not None else ""
    return f"Rule set {_e(info.name)} {_e(info.version)} (digest {_e(info.digest[:12])}){_e(site)}"


def report_html(result: Result, ruleset: RuleSet, facts: Iterable[Mapping[str, Any]] | None = None) -> str:
    """One self-contained, printable page for a triage result (see the module docstring).

    `facts`: the run's facts (`facts_of(triager, patient)`), so that the blocks drawn on the
    pathway are exact; without them only blocks visible from the trace are drawn."""
    d = digest(result, ruleset)
    rt = graph.route(result, ruleset, facts)
    body = [
        f'<header><h1>Triage report: {_e(result.patient_id)}</h1><div class="meta">{_ruleset_line(result)}. '
        f"{_e(DISCLAIMER)}</div></header>"
    ]
    if d.banner:
        body.append(f'<div class="banner" role="alert">{_e(d.banner)}</div>')
    body += [f'<div class="notice">{_e(n)}</div>' for n in d.notices]
    body.append(_glance(d))
    body.append('<section id="plan"><h2>Recommended</h2>')
    body += _plan_table(d)
    body.append('</section><section id="withheld"><h2>Not recommended</h2>')
    body += _withheld_table(d)
    body.append("</section>")
    if d.unknowns or d.quiet_unknowns:
        body.append('<section id="unknowns"><h2>Not known</h2><ul>')
        body += [
            f'<li class="note-unknown">{_e(u.text)} <small>(affects {_e(", ".join(u.affects))})</small></li>'
            for u in d.unknowns
        ]
        body += [f'<li class="none">{_e(t)}</li>' for t in d.quiet_unknowns]
        body.append("</ul></section>")
    p = graph.pathway(ruleset)
    body.append('<section id="pathway"><h2>The route through the pathway</h2>')
    body.append(
        f'<p class="meta">{len(rt.fired)} of {len(ruleset.rules)} rules fired for this patient. Hover a box '
        "for the rule's purpose.</p>"
    )
    body.append(_legend(True))
    body.append(_FIT)
    body.append('<div class="pathway">' + graph.svg(p, rt, f"Route of {result.patient_id} through {p.name}") + "</div>")
    body.append("</section>")
    if result.citations:
        body.append('<section id="evidence"><h2>Evidence and sources</h2>')
        body += _references(result.citations)
        body.append("</section>")
    body.append(f"<footer>{_ruleset_line(result)}. {_e(DISCLAIMER)}</footer>")
    return _page(f"Triage report: {result.patient_id}", body)


def pathway_html(ruleset: RuleSet) -> str:
    """The whole pathway of a rule set: the picture, its legend and a list of the rules (no patient data)."""
    p = graph.pathway(ruleset)
    body = [
        f"<header><h1>The pathway: {_e(ruleset.name)} {_e(ruleset.version)}</h1>"
        f'<div class="meta">{len(ruleset.rules)} rules · digest {_e(ruleset.digest[:12])}. '
        f"Generated from the rule set. {_e(DISCLAIMER)}</div></header>",
        '<section id="pathway"><h2>Facts, rules and options</h2>',
        _legend(False),
        _FIT,
        '<div class="pathway">' + graph.svg(p) + "</div></section>",
        '<section id="rules"><h2>The rules</h2><table><thead><tr><th>Rule</th><th>Purpose</th>'
        "<th>Concludes or decides</th></tr></thead><tbody>",
    ]
    for r in ruleset.rules:
        out = [*r.concludes, *(f"→ {x}" for x in r.emits)]
        body.append(
            f'<tr data-rule="{_e(r.id)}"><td class="opt">{_e(r.id)}</td><td>{_e(r.purpose)}</td>'
            f"<td><small>{_e(', '.join(out))}</small></td></tr>"
        )
    body.append("</tbody></table></section>")
    body.append(
        f"<footer>{_e(ruleset.name)} {_e(ruleset.version)} (digest {_e(ruleset.digest[:12])}). "
        f"{_e(DISCLAIMER)}</footer>"
    )
    return _page(f"Pathway: {ruleset.name} {ruleset.version}", body)


def pathway_svg(ruleset: RuleSet) -> str:
    """The pathway picture alone, as a standalone SVG document."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + graph.svg(graph.pathway(ruleset)) + "\n"


def facts_of(triager: Any, patient: Any) -> list[dict[str, Any]]:
    """The facts of a run for `patient` (input and derived), for exact blocks on the pathway."""
    return [dict(f) for f in triager.triage_run(patient)[1].facts]
