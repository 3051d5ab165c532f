"""The pathway as a picture: rules and the facts they read and conclude, drawn as plain SVG.

The diagram is generated from the rule set, never drawn by hand. Nodes are the fact types
(patient facts, which no rule concludes, and findings, which rules conclude), the rules, and the
options (interventions) rules emit. Edges are what each rule reads (`when`), checks absent
(`unless`), reads in aggregate (`reads_all`), concludes and emits.

Layout, left to right by stage (a small Sugiyama-style layering, deterministic):

* patient facts in the first column; each rule one column after the latest fact it reads; each
  finding one column after the latest rule that concludes it (longest path);
* rules that only decide (they emit options or record unknowns, and conclude nothing) share the
  last rule column, and the options stand in the column after it, grouped by category in the rule
  set's order;
* within a column, nodes are ordered by the mean position of their neighbours (barycentre sweeps)
  and placed beside them, the decision column evenly.

`route(result, ruleset, facts)` lights one patient's way through it: the rules that fired (the
result's trace), the facts they used and the findings they concluded, the options recommended or
withheld, and the blocks (a rule that did not fire because a fact it checks absent was present;
exact when the run's facts are given). `svg(pathway, route)` draws it; the same page markup is
used by the report and by `rules graph`.

This module knows no clinical term: every word comes from the rule set.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.kernel.models import Result
from engine.kernel.rulebase import Pattern, Rule, RuleSet, code_label, intervention_label

FONT = 11  # px
CHAR = FONT * 0.62  # a monospace character's advance, with a little room
NODE_H = 18
ROW = 23  # vertical pitch of the tallest column
GROUP_GAP = 7  # between the rules of one option and the next
PAD_X = 8
COL_GAP = 46
TOP = 44  # room for the column titles
MARGIN = 12

#: Edge kinds, and the words the legend uses for them.
EDGE_WORDS = {
    "reads": "reads",
    "reads_all": "reads all of",
    "negates": "checks absent",
    "concludes": "concludes",
    "emits": "recommends or withholds",
}


@dataclass
class Node:
    id: str  # "fact:<type>", "rule:<id>", "option:<code>"
    kind: str  # "input" | "finding" | "rule" | "decision" | "option"
    key: str  # the fact type, rule id or intervention code
    label: str
    title: str  # tooltip
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    category: str = ""


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    kind: str


@dataclass
class Pathway:
    """A rule set's pathway, laid out: nodes with positions, edges, columns of node ids."""

    name: str
    version: str
    digest: str
    nodes: dict[str, Node]
    edges: list[Edge]
    columns: list[list[str]]
    titles: list[str]
    width: float
    height: float
    categories: list[tuple[str, str, float, float]] = field(default_factory=list)  # (code, title, y0, y1)


# ---------------------------------------------------------------- building


def _fact_types(rules: Iterable[Rule]) -> tuple[list[str], list[str]]:
    """(input types, finding types), each in first-seen order."""
    seen: list[str] = []
    concluded: set[str] = set()
    for r in rules:
        for t in (*r.reads, *r.negates, *r.reads_all, *r.concludes):
            if t not in seen:
                seen.append(t)
        concluded.update(r.concludes)
    return [t for t in seen if t not in concluded], [t for t in seen if t in concluded]


def _layers(ruleset: RuleSet, inputs: list[str]) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """Longest-path layers of fact types and rules; decision rules (concluding nothing) are set apart."""
    producers: dict[str, list[Rule]] = {}
    for r in ruleset.rules:
        for t in r.concludes:
            producers.setdefault(t, []).append(r)
    fact_layer: dict[str, int] = {t: 0 for t in inputs}
    rule_layer: dict[str, int] = {}
    visiting: set[str] = set()

    def of_fact(t: str) -> int:
        if t in fact_layer:
            return fact_layer[t]
        if t in visiting:  # a cycle of positive reads: break it here
            return 0
        visiting.add(t)
        layer = 1 + max((of_rule(r) for r in producers.get(t, [])), default=-1)
        visiting.discard(t)
        fact_layer[t] = layer
        return layer

    def of_rule(r: Rule) -> int:
        if r.id in rule_layer:
            return rule_layer[r.id]
        if r.id in visiting:
            return 0
        visiting.add(r.id)
        layer = 1 + max((of_fact(t) for t in (*r.reads, *r.negates, *r.reads_all)), default=0)
        visiting.discard(r.id)
        rule_layer[r.id] = layer
        return layer

    for r in ruleset.rules:
        of_rule(r)
    decisions = {r.id for r in ruleset.rules if not r.concludes}
    deepest = max([rule_layer[r.id] for r in ruleset.rules] or [1])
    if deepest % 2 == 0:  # rule columns are odd
        deepest += 1
    for rid in decisions:
        rule_layer[rid] = deepest
    return fact_layer, rule_layer, decisions


def _width(label: str) -> float:
    return len(label) * CHAR + 2 * PAD_X


def pathway(ruleset: RuleSet) -> Pathway:
    """The rule set's pathway laid out (cached per rule set digest)."""
    cached = _CACHE.get(ruleset.digest)
    if cached is not None and cached[0] is ruleset:
        return cached[1]
    built = _build(ruleset)
    _CACHE[ruleset.digest] = (ruleset, built)
    return built


_CACHE: dict[str, tuple[RuleSet, Pathway]] = {}


def _build(ruleset: RuleSet) -> Pathway:
    inputs, findings = _fact_types(ruleset.rules)
    fact_layer, rule_layer, decisions = _layers(ruleset, inputs)
    nodes: dict[str, Node] = {}
    for t in inputs:
        nodes[f"fact:{t}"] = Node(f"fact:{t}", "input", t, code_label(ruleset, t), f"patient fact: {t}", 0)
    for t in findings:
        nodes[f"fact:{t}"] = Node(f"fact:{t}", "finding", t, code_label(ruleset, t), f"finding: {t}", fact_layer[t])
    for r in ruleset.rules:
        nodes[f"rule:{r.id}"] = Node(
            f"rule:{r.id}",
            "decision" if r.id in decisions else "rule",
            r.id,
            r.id,
            f"{r.id}: {r.purpose}",
            rule_layer[r.id],
        )
    option_layer = max([n.layer for n in nodes.values()] or [0]) + 1
    emitted = list(dict.fromkeys(code for r in ruleset.rules for code in r.emits))
    ordered = [c for c in ruleset.interventions if c in emitted] + [
        c for c in emitted if c not in ruleset.interventions
    ]
    for code in ordered:
        spec = ruleset.interventions.get(code)
        category = spec.category if spec is not None else ""
        nodes[f"option:{code}"] = Node(
            f"option:{code}",
            "option",
            code,
            intervention_label(ruleset, code),
            f"{intervention_label(ruleset, code)} ({ruleset.category_title(category)})" if category else code,
            option_layer,
            category=category,
        )
    edges: list[Edge] = []
    for r in ruleset.rules:
        rid = f"rule:{r.id}"
        edges += [Edge(f"fact:{t}", rid, "reads") for t in r.reads]
        edges += [Edge(f"fact:{t}", rid, "reads_all") for t in r.reads_all if t not in r.reads]
        edges += [Edge(f"fact:{t}", rid, "negates") for t in r.negates]
        edges += [Edge(rid, f"fact:{t}", "concludes") for t in r.concludes]
        edges += [Edge(rid, f"option:{c}", "emits") for c in r.emits]
    edges = list(dict.fromkeys(edges))

    # columns: empty layers (a stage no rule set uses) are dropped
    layers = sorted({n.layer for n in nodes.values()})
    columns = [[n.id for n in nodes.values() if n.layer == layer] for layer in layers]
    for i, col in enumerate(columns):
        for nid in col:
            nodes[nid].layer = i
    _order(columns, nodes, edges)
    titles = []
    for col in columns:
        kinds = {nodes[n].kind for n in col}
        titles.append(
            "Patient facts"
            if kinds == {"input"}
            else "Options"
            if kinds == {"option"}
            else "Decisions"
            if "decision" in kinds
            else "Findings"
            if kinds <= {"finding"}
            else "Rules"
        )
    width, height, cats = _place(columns, nodes, edges, ruleset)
    return Pathway(ruleset.name, ruleset.version, ruleset.digest, nodes, edges, columns, titles, width, height, cats)


def _neighbours(edges: list[Edge]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    down: dict[str, list[str]] = {}
    up: dict[str, list[str]] = {}
    for e in edges:
        down.setdefault(e.src, []).append(e.dst)
        up.setdefault(e.dst, []).append(e.src)
    return down, up


def _order(columns: list[list[str]], nodes: dict[str, Node], edges: list[Edge]) -> None:
    """Barycentre ordering: the options keep the rule set's order; every other column is sorted
    by the mean position of its neighbours, sweeping right to left and back, a few times."""
    down, up = _neighbours(edges)
    pos: dict[str, float] = {}

    def index(col: list[str]) -> None:
        n = max(len(col) - 1, 1)
        for i, nid in enumerate(col):
            pos[nid] = i / n

    for col in columns:
        index(col)

    def sort(col: list[str], toward: dict[str, list[str]]) -> None:
        def key(nid: str) -> tuple[float, str]:
            near = [pos[m] for m in toward.get(nid, []) if m in pos]
            return (sum(near) / len(near) if near else pos[nid], nid)

        col.sort(key=key)
        index(col)

    last = len(columns) - 1
    decided = [i for i, col in enumerate(columns) if any(nodes[n].kind == "decision" for n in col)]
    fixed = {last, *decided}
    for i in decided:  # decision rules beside the options they emit; rules that emit none last
        col = columns[i]

        def by_option(nid: str) -> tuple[int, float, str]:
            near = [pos[m] for m in down.get(nid, []) if nodes[m].kind == "option"]
            return (0, sum(near) / len(near), nid) if near else (1, 0.0, nid)

        col.sort(key=by_option)
        index(col)
    for _ in range(4):
        for i in range(last - 1, -1, -1):
            if i not in fixed:
                sort(columns[i], down)
        for i in range(1, last):
            if i not in fixed:
                sort(columns[i], {n: up.get(n, []) + down.get(n, []) for n in columns[i]})


def _pack(col: list[str], nodes: dict[str, Node], want: dict[str, float], pitch: float, top: float) -> None:
    """Place the nodes of `col` as near their wanted y as they can be without overlap (the column
    is reordered by wanted y; ties keep their barycentre order)."""
    rank = {nid: i for i, nid in enumerate(col)}
    col.sort(key=lambda nid: (want[nid], rank[nid]))
    ys: list[float] = []
    for nid in col:
        y = max(want[nid], top)
        if ys and y < ys[-1] + pitch:
            y = ys[-1] + pitch
        ys.append(y)
    # shift runs that were pushed down back up, around their wanted centre
    for i in range(len(ys) - 2, -1, -1):
        ys[i] = min(ys[i], ys[i + 1] - pitch)
    shift = top - min(ys) if ys and min(ys) < top else 0.0
    for nid, y in zip(col, ys, strict=False):
        nodes[nid].y = y + shift


def _place(
    columns: list[list[str]], nodes: dict[str, Node], edges: list[Edge], ruleset: RuleSet
) -> tuple[float, float, list[tuple[str, str, float, float]]]:
    down, up = _neighbours(edges)
    # x: columns side by side, each as wide as its widest label
    x = MARGIN
    for col in columns:
        w = max(_width(nodes[n].label) for n in col)
        for nid in col:
            nodes[nid].x = x
            nodes[nid].w = w
        x += w + COL_GAP
    # y: the tallest column evenly; options beside their own rules; the rest beside what they feed
    tallest = max(range(len(columns)), key=lambda i: (len(columns[i]), i))
    y = TOP
    group = None
    for nid in columns[tallest]:
        first = next(iter(down.get(nid, [])), None)
        if group is not None and first != group:
            y += GROUP_GAP
        group = first
        nodes[nid].y = y
        y += ROW
    order = [i for i in range(len(columns)) if i != tallest]
    right = [i for i in order if i > tallest]
    left = sorted((i for i in order if i < tallest), reverse=True)
    for i in right:
        col = columns[i]
        want = {}
        for nid in col:
            near = [nodes[m].y for m in up.get(nid, []) if nodes[m].layer < i]
            own = [nodes[m].y for m in up.get(nid, []) if nodes[m].layer < i and len(down.get(m, [])) == 1]
            use = own or near
            want[nid] = sum(use) / len(use) if use else TOP
        gap = ROW + (6 if nodes[col[0]].kind == "option" else 0)
        _pack(col, nodes, want, gap, TOP)
    for i in left:
        col = columns[i]
        want = {}
        for nid in col:
            near = [nodes[m].y for m in down.get(nid, []) if nodes[m].layer > i]
            want[nid] = _median(near) if near else TOP
        _pack(col, nodes, want, ROW, TOP)
    height = max(n.y for n in nodes.values()) + NODE_H + MARGIN
    # categories of the options, as brackets to the right of the last column
    cats: list[tuple[str, str, float, float]] = []
    options = [nodes[n] for n in columns[-1] if nodes[n].kind == "option"]
    for code in list(dict.fromkeys(o.category for o in options)):
        ys = [o.y for o in options if o.category == code]
        cats.append((code, ruleset.category_title(code) if code else "", min(ys), max(ys) + NODE_H))
    cat_w = max((len(t) * CHAR for _, t, _, _ in cats), default=0) + 24
    return x - COL_GAP + cat_w + MARGIN, height, cats


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# ---------------------------------------------------------------- one patient's route


@dataclass
class Route:
    """What to light for one result."""

    fired: set[str] = field(default_factory=set)  # rule ids
    facts: set[str] = field(default_factory=set)  # fact types present (given or concluded)
    concluded: set[str] = field(default_factory=set)  # finding types concluded
    recommended: set[str] = field(default_factory=set)  # intervention codes
    withheld: dict[str, str] = field(default_factory=dict)  # code -> its most decisive kind
    blocked: dict[str, set[str]] = field(default_factory=dict)  # rule id -> fact types that blocked it
    edges: dict[tuple[str, str], str] = field(default_factory=dict)  # (src, dst) -> "lit" | kind | "block"
    exact: bool = False  # blocks evaluated on the run's facts


def _label_type(label: str) -> str:
    return label.split(":", 1)[0]


def _matches_any(p: Pattern, facts: list[Mapping[str, Any]]) -> bool:
    return any(p.matches(f) for f in facts)


def route(result: Result, ruleset: RuleSet, facts: Iterable[Mapping[str, Any]] | None = None) -> Route:
    """The lit route of `result` through the rule set's pathway.

    `facts`: the run's facts (input and derived; `Collected.facts`), for exact blocks; without
    them a rule counts as blocked only when it is a rule whose every pattern tests nothing but its
    type, and a fact it checks absent is of a type the run used or concluded."""
    p = pathway(ruleset)
    rt = Route(exact=facts is not None)
    fact_list = [dict(f) for f in facts] if facts is not None else []
    for t in result.trace:
        rt.fired.add(t.rule)
        rid = f"rule:{t.rule}"
        for label in t.used:
            if label.startswith("absent:"):
                continue
            ftype = _label_type(label)
            rt.facts.add(ftype)
            if f"fact:{ftype}" in p.nodes:
                rt.edges[(f"fact:{ftype}", rid)] = "lit"
        for label in t.concluded:
            head = _label_type(label)
            if head == "recommend":
                code = label.split(":", 1)[1]
                rt.edges[(rid, f"option:{code}")] = "recommended"
            elif head == "not_recommended":
                _, code, kind = label.split(":", 2)
                rt.edges[(rid, f"option:{code}")] = f"withheld kind-{kind}"
            elif f"fact:{head}" in p.nodes:
                rt.concluded.add(head)
                rt.facts.add(head)
                rt.edges[(rid, f"fact:{head}")] = "lit"
    rt.facts |= {str(f.get("type")) for f in fact_list if f.get("type")}
    rules = {r.id: r for r in ruleset.rules}
    for rule_id in rt.fired:  # what a fired rule read in aggregate, where there was any
        for ftype in rules[rule_id].reads_all if rule_id in rules else ():
            if ftype in rt.facts:
                rt.edges[(f"fact:{ftype}", f"rule:{rule_id}")] = "lit"
    rt.recommended = {r.intervention for r in result.recommendations}
    for n in result.not_recommended:
        rt.withheld.setdefault(n.intervention, n.kind)
    # blocks: rules that did not fire, every positive pattern met, a fact they check absent present
    for r in ruleset.rules:
        if r.id in rt.fired or not r.unless:
            continue
        when, unless = ruleset.resolved[r.id]
        if facts is not None:
            if not all(_matches_any(pt, fact_list) for pt in when.values()):
                continue
            by = {pt.type for pt in unless.values() if _matches_any(pt, fact_list)}
        else:
            if any(pt.tests for pt in (*when.values(), *unless.values())):
                continue
            if not all(pt.type in rt.facts for pt in when.values()):
                continue
            by = {pt.type for pt in unless.values() if pt.type in rt.facts}
        if by:
            rt.blocked[r.id] = by
            for ftype in by:
                rt.edges[(f"fact:{ftype}", f"rule:{r.id}")] = "block"
    return rt


# ---------------------------------------------------------------- drawing

STYLE = """
.pw text{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11px;fill:#1f2933}
.pw .col-title{font-size:12px;font-weight:bold;fill:#52606d}
.pw .node rect{fill:#fff;stroke:#9aa5b1;stroke-width:1}
.pw .node.input rect{fill:#f0f4f8}
.pw .node.finding rect{fill:#f0f4f8;stroke-dasharray:3 2}
.pw .node.option rect{fill:#fff;stroke:#7b8794;stroke-width:1.2}
.pw .edge{fill:none;stroke:#bcccdc;stroke-width:0.8;opacity:.55}
.pw .edge.negates{stroke-dasharray:4 3}
.pw .edge.reads_all{stroke-dasharray:1 2}
.pw.route .node{opacity:.38}
.pw.route .edge{opacity:.18}
.pw.route .node.lit,.pw.route .node.blocked{opacity:1}
.pw .node.lit rect{stroke:#1f6feb;stroke-width:2;fill:#ddf4ff}
.pw .node.rule.lit rect,.pw .node.decision.lit rect{fill:#1f6feb;stroke:#0b4fb3}
.pw .node.rule.lit text,.pw .node.decision.lit text{fill:#fff;font-weight:bold}
.pw .node.blocked rect{fill:#fff5f5;stroke:#d1242f;stroke-width:2;stroke-dasharray:5 2}
.pw .node.option.recommended rect{fill:#dafbe1;stroke:#1a7f37;stroke-width:2.4}
.pw .node.option.withheld rect{fill:#fff8c5;stroke:#9a6700;stroke-width:2}
.pw .node.option.kind-contraindicated rect,.pw .node.option.kind-suppressed rect{fill:#ffebe9;stroke:#d1242f}
.pw .edge.lit{stroke:#1f6feb;stroke-width:1.8;opacity:.9}
.pw .edge.recommended{stroke:#1a7f37;stroke-width:2.2;opacity:.95}
.pw .edge.withheld{stroke:#9a6700;stroke-width:1.8;opacity:.9}
.pw .edge.kind-contraindicated,.pw .edge.kind-suppressed{stroke:#d1242f}
.pw .edge.block{stroke:#d1242f;stroke-width:2;stroke-dasharray:5 3;opacity:.95}
.pw .cat line{stroke:#7b8794;stroke-width:1.5}
.pw .cat text{font-size:11px;font-weight:bold;fill:#52606d}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _edge_path(a: Node, b: Node) -> str:
    x1, y1 = a.x + a.w, a.y + NODE_H / 2
    x2, y2 = b.x, b.y + NODE_H / 2
    dx = max((x2 - x1) * 0.5, 20)
    return f"M{x1:.1f},{y1:.1f} C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"


def _node_classes(n: Node, rt: Route | None) -> list[str]:
    classes = ["node", n.kind]
    if n.kind in ("rule", "decision"):
        classes.append("rule-node")
    if rt is None:
        return classes
    if n.kind in ("input", "finding"):
        if n.key in rt.facts:
            classes.append("lit")
        if n.key in rt.concluded:
            classes.append("concluded")
    elif n.kind in ("rule", "decision"):
        if n.key in rt.fired:
            classes += ["lit", "fired"]
        elif n.key in rt.blocked:
            classes.append("blocked")
    elif n.kind == "option":
        if n.key in rt.recommended:
            classes += ["lit", "recommended"]
        elif n.key in rt.withheld:
            classes += ["lit", "withheld", f"kind-{rt.withheld[n.key]}"]
    return classes


def svg(p: Pathway, rt: Route | None = None, title: str = "") -> str:
    """The pathway as an SVG element (no external references), lit by `rt` when given."""
    out: list[str] = []
    cls = "pw route" if rt is not None else "pw"
    label = title or f"Pathway of {p.name} {p.version}"
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" role="img" aria-label="{_esc(label)}" '
        f'viewBox="0 0 {math.ceil(p.width)} {math.ceil(p.height)}" width="{math.ceil(p.width)}" '
        f'height="{math.ceil(p.height)}" data-ruleset="{_esc(p.name)} {_esc(p.version)}">'
    )
    out.append(f"<title>{_esc(label)}</title>")
    out.append(f"<style>{STYLE}</style>")
    for col, heading in zip(p.columns, p.titles, strict=False):
        n = p.nodes[col[0]]
        out.append(f'<text class="col-title" x="{n.x:.1f}" y="{TOP - 16}">{_esc(heading)}</text>')
    lit_edges: list[str] = []
    for e in p.edges:
        a, b = p.nodes[e.src], p.nodes[e.dst]
        state = rt.edges.get((e.src, e.dst)) if rt is not None else None
        if state == "block" and e.kind != "negates":
            state = None
        classes = f"edge {e.kind}" + (f" {state}" if state else "")
        path = f'<path class="{classes}" data-from="{_esc(e.src)}" data-to="{_esc(e.dst)}" d="{_edge_path(a, b)}"/>'
        (lit_edges if state else out).append(path)
    out += lit_edges  # drawn over the faint ones
    for nid in (n for col in p.columns for n in col):
        n = p.nodes[nid]
        classes = " ".join(_node_classes(n, rt))
        data = {"input": "fact", "finding": "fact", "rule": "rule", "decision": "rule", "option": "option"}[n.kind]
        extra = ""
        if rt is not None and n.key in rt.blocked and n.kind in ("rule", "decision"):
            extra = f' data-blocked-by="{_esc(" ".join(sorted(rt.blocked[n.key])))}"'
        tip = n.title + (
            f" (blocked: {', '.join(sorted(rt.blocked[n.key]))} present)"
            if rt is not None and n.key in rt.blocked and n.kind in ("rule", "decision")
            else ""
        )
        out.append(
            f'<g class="{classes}" data-{data}="{_esc(n.key)}"{extra} transform="translate({n.x:.1f},{n.y:.1f})">'
            f"<title>{_esc(tip)}</title>"
            f'<rect width="{n.w:.1f}" height="{NODE_H}" rx="{9 if n.kind in ("input", "finding") else 3}"/>'
            f'<text x="{PAD_X}" y="{NODE_H - 5}">{_esc(n.label)}</text></g>'
        )
    if p.categories:
        x0 = max(n.x + n.w for n in p.nodes.values() if n.kind == "option") + 10
        for code, heading, y0, y1 in p.categories:
            out.append(
                f'<g class="cat" data-category="{_esc(code)}"><line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x0:.1f}" '
                f'y2="{y1:.1f}"/><text x="{x0 + 8:.1f}" y="{(y0 + y1) / 2 + 4:.1f}">{_esc(heading)}</text></g>'
            )
    out.append("</svg>")
    return "\n".join(out)
