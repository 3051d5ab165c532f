"""The terminal view of a result (rich): one screen by default, everything with `details=True`.

The default view is written for an 80x24 terminal and keeps what a clinician acts on in sight:

    Patient example-opioid-user · forefoot-pain-pathway 1.2.1
    Recommended                                      grade              review
     ✓ Footwear modification                         SORT C · very low  review 6 wk
     ✓ Ultrasound-guided pulsed radiofrequency ·     SORT C · very low  review 12 wk
       may be considered
    Not recommended
     ✗ Low-dose naltrexone (LDN) — contraindicated: opioid exposure: tramadol is an
       opioid; naltrexone blocks opioid analgesia and can precipitate withdrawal…
       → an option if: <the nearest change, where the result carries it>
    Decision support, not a substitute for clinical judgement. More: --details

the flag first (if any), then one line per recommendation with its grade and next review, one
line per withheld intervention with all its reasons merged, and the unknowns and notes that
change something, written in words next to what they affect. Notes share what is left of the
24 lines (the plan's first); what does not fit is counted on one line, and `details=True` shows
everything: every detail, every reason in full, every change, every unknown, the sources.
Rendering knows no clinical term: categories, labels and wording come from the rule set.
"""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console, Group
from rich.text import Text

from engine.kernel.models import Result
from engine.kernel.rulebase import RuleSet
from engine.views.common import (
    NO_CHANGE,
    Digest,
    Note,
    PlanItem,
    WithheldItem,
    digest,
    kind_title,
    shown_details,
    weeks_text,
)

#: The screen the default view is written for.
SCREEN_WIDTH = 80
SCREEN_HEIGHT = 24
#: Lines of the screen left for the command that was typed and the next prompt.
RESERVED = 2
KIND_STYLE = {"contraindicated": "bold red", "suppressed": "red", "not_indicated": "yellow", "deferred": "cyan"}
NOTE_STYLE = {"unknown": "yellow", "notice": "yellow", "detail": "dim"}
NOT_GRADED = "not graded"
FOOTER = "Decision support, not a substitute for clinical judgement."


def _measure_console(width: int) -> Console:
    return Console(
        file=io.StringIO(),
        width=max(width, 10),
        color_system=None,
        legacy_windows=False,
        highlight=False,
        emoji=False,
        markup=False,
    )


def _wrap(text: Text, width: int, first: str = "", rest: str | None = None, max_lines: int | None = None) -> list[Text]:
    """`text` wrapped to `width` cells, the first line after `first`, the others after `rest`
    (spaces as wide as `first` by default); at most `max_lines` lines, the last one cut between
    words with an ellipsis when there is more."""
    rest = " " * cell_len(first) if rest is None else rest
    room = max(width - max(cell_len(first), cell_len(rest)), 8)
    lines = list(text.wrap(_measure_console(room), room, overflow="fold"))
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1]
        plain = last.plain
        cut = plain[: max(room - 1, 1)]
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space].rstrip(" ,;:—-(")
        last = last.divide([len(cut)])[0]
        last.append("…")
        kept[-1] = last
        lines = kept
    out = []
    for i, line in enumerate(lines):
        line.rstrip()
        out.append(Text(first if i == 0 else rest) + line)
    return out


def _fit_line(text: Text, width: int, indent: str) -> Text:
    return _wrap(text, width, indent, max_lines=1)[0]


# ---------------------------------------------------------------- pieces


def _header(d: Digest, ruleset: RuleSet | None, width: int) -> Text:
    r = d.result
    t = Text()
    t.append("Patient ", "bold")
    t.append(r.patient_id, "bold")
    t.append(f" · {r.ruleset.name} {r.ruleset.version}", "dim")
    if r.ruleset.site is not None:
        t.append(f" · site {r.ruleset.site.name}", "dim")
    return _fit_line(t, width, "")


def _banner(d: Digest, width: int, max_lines: int | None) -> list[Text]:
    return _wrap(Text(d.banner, "bold white on red"), width, "", max_lines=max_lines) if d.banner else []


def _right(item: PlanItem) -> Text:
    t = Text(item.grade, "magenta") if item.grade else Text(NOT_GRADED, "dim")
    if item.rec.review is not None:
        t.append(f"  review {weeks_text(item.rec.review.weeks, short=True)}", "cyan")
    return t


def _plan_line(item: PlanItem, width: int, right_width: int) -> list[Text]:
    left = Text(item.label, "bold green")
    if item.rec.strength != "recommended":
        left.append(f" · {item.rec.strength}", "green")
    right = _right(item)
    room = width - 3 - right_width - 2
    lines = _wrap(left, room + 3, " ✓ ", "   ")
    first = lines[0]
    first.append(" " * max(room + 3 - cell_len(first.plain), 0) + "  ")
    first.append_text(right)
    return lines


def _withheld_line(item: WithheldItem, width: int, max_lines: int | None) -> list[Text]:
    t = Text(item.label, "bold")
    t.append(" — ")
    for i, (kind, reason) in enumerate(item.by_kind()):
        if i:
            t.append("; ")
        t.append(kind_title(kind), KIND_STYLE.get(kind, ""))
        t.append(": " + reason)
    return _wrap(t, width, " ✗ ", "   ", max_lines=max_lines)


def _note_lines(note: Note, width: int, max_lines: int | None) -> list[Text]:
    t = Text(f"{note.title}: ", "bold " + NOTE_STYLE[note.kind] if note.kind != "detail" else "dim")
    t.append(note.text, NOTE_STYLE[note.kind])
    return _wrap(t, width, "   · ", "     ", max_lines=max_lines)


def _change_text(item: WithheldItem, full: bool) -> list[Text]:
    """'→ an option if: <the nearest change>' (+ how many other ways), or every change in full; for
    an option the search found no change for, that no change within the pathway makes it one."""
    if item.changes is None:
        return []
    if not item.changes:
        return [Text("→ " + NO_CHANGE, "dim")]
    if full:
        return [Text("→ an option if: ", "bold blue") + Text(c.text, "blue") for c in item.changes]
    more = len(item.changes) - 1
    t = Text(
        "→ an option if" + (f" (or {more} other way{'s' if more > 1 else ''})" if more else "") + ": ", "bold blue"
    )
    t.append(item.changes[0].text, "blue")
    return [t]


# ---------------------------------------------------------------- the one-screen view


class _Row:
    """Lines of the one-screen view: shown always (`core`) or while they fit, in `rank` order;
    `more` is a longer version used when there is room left."""

    __slots__ = ("core", "lines", "more", "rank", "shown")

    def __init__(self, lines: list[Text], more: list[Text] | None = None, core: bool = False, rank: int = 0):
        self.lines, self.more, self.core, self.rank = lines, more, core, rank
        self.shown = core


def compact_lines(
    result: Result, ruleset: RuleSet | None = None, width: int = SCREEN_WIDTH, height: int = SCREEN_HEIGHT
) -> list[Text]:
    """The default view as lines of at most `width` cells, in at most `height` lines whenever
    the flag, the plan and the withheld entries fit (they are always shown).

    Always shown: the patient, the flag, one line per recommendation, one line per withheld
    intervention, the footer. Then, while they fit, in this order: general notices; the notes of
    each recommendation (unknowns and notices before details); the notes of withheld entries;
    the unknowns that belong to no listed entry; what would change each withheld entry. Then,
    with the room left, withheld reasons and notes get a second line. A count of what did not
    fit stands above the footer."""
    d = digest(result, ruleset)
    rows: list[_Row] = [_Row([_header(d, ruleset, width)], core=True)]
    if d.banner:
        rows.append(_Row(_banner(d, width, max_lines=2), core=True))
    for n in d.notices:
        t = Text("note: ", "bold yellow") + Text(n, "yellow")
        rows.append(
            _Row(_wrap(t, width, " ! ", "   ", max_lines=1), _wrap(t, width, " ! ", "   ", max_lines=2), rank=0)
        )
    right_width = max((cell_len(_right(i).plain) for i in d.plan), default=0)
    title = Text("Recommended", "bold underline")
    if d.plan:
        title.append(" " * max(width - right_width - len("Recommended"), 1))
        title.append("grade", "dim")
        if any(i.rec.review is not None for i in d.plan):
            grade_width = max(cell_len(i.grade or NOT_GRADED) for i in d.plan)
            title.append(" " * max(grade_width + 2 - len("grade"), 1) + "review", "dim")
    else:
        title.append(": nothing", "dim")
    rows.append(_Row([title], core=True))
    for item in d.plan:
        rows.append(_Row(_plan_line(item, width, right_width), core=True))
        for n in sorted(item.notes, key=lambda n: n.kind == "detail"):
            rows.append(_Row(_note_lines(n, width, 1), _note_lines(n, width, 2), rank=1))
    if d.withheld:
        rows.append(_Row([Text("Not recommended", "bold underline")], core=True))
        for item in d.withheld:
            rows.append(_Row(_withheld_line(item, width, 1), _withheld_line(item, width, 2), core=True, rank=5))
            for n in item.notes:
                rows.append(_Row(_note_lines(n, width, 1), _note_lines(n, width, 2), rank=2))
            for t in _change_text(item, full=False):
                rows.append(
                    _Row(
                        _wrap(t, width, "   ", "     ", max_lines=1),
                        _wrap(t, width, "   ", "     ", max_lines=2),
                        rank=4,
                    )
                )
    loose: list[_Row] = []
    for u in d.unknowns:
        t = Text(u.text, "yellow")
        t.append(f" (affects {', '.join(u.affects)})", "dim")
        loose.append(
            _Row(_wrap(t, width, " ? ", "   ", max_lines=1), _wrap(t, width, " ? ", "   ", max_lines=2), rank=3)
        )
    rows += loose
    footer = _Row([_fit_line(Text(FOOTER + " More: --details", "dim italic"), width, "")], core=True)

    budget = height - RESERVED - sum(len(r.lines) for r in [*rows, footer] if r.core)
    omitted = 0
    loose_title = [Text("Not known", "bold underline")]
    for rank in range(5):
        for r in rows:
            if r.core or r.rank != rank:
                continue
            title = 1 if r in loose and not any(x.shown for x in loose) else 0
            if len(r.lines) + title <= budget:
                r.shown = True
                budget -= len(r.lines) + title
            else:
                omitted += 1
    shown_loose = [r for r in loose if r.shown]
    if shown_loose:
        shown_loose[0].lines = loose_title + shown_loose[0].lines
        if shown_loose[0].more is not None:
            shown_loose[0].more = loose_title + shown_loose[0].more
    if omitted:
        budget -= 1
    for rank in (1, 5, 2, 4, 3):
        for r in rows:
            if r.shown and r.rank == rank and r.more is not None and len(r.more) - len(r.lines) <= budget:
                budget -= len(r.more) - len(r.lines)
                r.lines = r.more
    out = [line for r in rows if r.shown for line in r.lines]
    if omitted:
        out.append(Text(f"… {omitted} more line{'s' if omitted > 1 else ''} of notes: --details", "dim"))
    return out + footer.lines


# ---------------------------------------------------------------- everything (--details)


def full_lines(result: Result, ruleset: RuleSet | None = None, width: int = SCREEN_WIDTH) -> list[Text]:
    """Everything the result holds, in the same order: every detail, rationale, reason, change,
    unknown, notice, and the sources with the rule set's digest."""
    d = digest(result, ruleset)
    out: list[Text] = [_header(d, ruleset, width)]
    out += _banner(d, width, max_lines=None)
    for n in d.notices:
        out += _wrap(Text("note: ", "bold yellow") + Text(n, "yellow"), width, " ! ", "   ")
    out.append(Text("Recommended", "bold underline") if d.plan else Text("Recommended: nothing", "bold underline"))
    category = None
    for item in d.plan:
        if item.category != category:
            category = item.category
            out.append(Text(f" {category}", "bold"))
        head = Text(item.label, "bold green")
        head.append(f" · {item.rec.strength}", "green")
        if item.grade:
            head.append(f" · {item.grade}", "magenta")
        out += _wrap(head, width, " ✓ ", "   ")
        if item.rec.evidence is not None:
            ev = item.rec.evidence
            out += _wrap(
                Text(f"evidence: {ev.directness}; sources {', '.join(ev.citations)}", "magenta"), width, "     "
            )
        if item.rec.review is not None:
            rv = item.rec.review
            out += _wrap(Text(f"review in {weeks_text(rv.weeks)}: {rv.text}", "cyan"), width, "     ")
        for why in item.rec.rationale:
            out += _wrap(Text(f"why: {why}"), width, "     ")
        for key, value in shown_details(item.rec):
            out += _wrap(Text(f"{key}: ", "dim bold") + Text(value, "dim"), width, "     ")
        for n in item.notes:
            if n.kind != "detail":
                out += _note_lines(n, width, None)
        out += _wrap(Text(f"rule {item.rec.rule}", "dim"), width, "     ")
    if d.withheld:
        out.append(Text("Not recommended", "bold underline"))
        for item in d.withheld:
            out += _wrap(Text(item.label, "bold"), width, " ✗ ", "   ")
            for e in item.entries:
                t = Text(kind_title(e.kind), KIND_STYLE.get(e.kind, ""))
                t.append(f": {e.reason}")
                t.append(f" (rule {e.rule})", "dim")
                out += _wrap(t, width, "   · ", "     ")
            for n in item.notes:
                out += _note_lines(n, width, None)
            for t in _change_text(item, full=True):
                out += _wrap(t, width, "   ", "     ")
    if d.unknowns or d.quiet_unknowns:
        out.append(Text("Not known", "bold underline"))
        for u in d.unknowns:
            line = Text(u.text, "yellow")
            line.append(f" (affects {', '.join(u.affects)}; rule {u.unknown.rule})", "dim")
            out += _wrap(line, width, " ? ", "   ")
        for text in d.quiet_unknowns:
            out += _wrap(Text(text, "dim"), width, " ? ", "   ")
    if result.citations:
        out.append(Text("Sources", "bold underline"))
        for cid, c in result.citations.items():
            bits = [str(c[k]) for k in ("authors", "title") if c.get(k)]
            where = c.get("citation") or " ".join(str(x) for x in (c.get("journal"), c.get("year")) if x)
            if where:
                bits.append(str(where))
            if c.get("pmid"):
                bits.append(f"PMID {c['pmid']}")
            elif c.get("doi"):
                bits.append(f"doi:{c['doi']}")
            out += _wrap(
                Text(f"{cid}: ", "bold") + Text(". ".join(b.rstrip(".") for b in bits) + ".", "dim"),
                width,
                "   ",
                "     ",
            )
    out += _wrap(
        Text(
            f"{FOOTER} Rule set {result.ruleset.name} {result.ruleset.version}, digest {result.ruleset.digest[:12]}.",
            "dim italic",
        ),
        width,
        "",
    )
    return out


# ---------------------------------------------------------------- entry points


def text_view(
    result: Result,
    ruleset: RuleSet | None = None,
    details: bool = False,
    width: int = SCREEN_WIDTH,
    height: int = SCREEN_HEIGHT,
) -> Group:
    """The result as rich renderables: one screen (`width` x `height`), or everything with `details`."""
    lines = full_lines(result, ruleset, width) if details else compact_lines(result, ruleset, width, height)
    for line in lines:
        line.no_wrap = True
        line.overflow = "ignore"
    return Group(*lines)


def print_text(result: Result, console: Console, ruleset: RuleSet | None = None, details: bool = False) -> None:
    width = min(console.width, 120) if console.width else SCREEN_WIDTH
    height = max(console.height or SCREEN_HEIGHT, SCREEN_HEIGHT) if console.is_terminal else SCREEN_HEIGHT
    console.print(text_view(result, ruleset, details, width=width, height=height))


def plain(lines: list[Text]) -> str:
    """The lines as plain text (for tests and logs)."""
    return "\n".join(line.plain.rstrip() for line in lines)
