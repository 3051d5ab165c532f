"""What every view shows of a result, in which order, merged how: the one reading of a result
that the terminal, markdown, HTML and CDS Hooks views share.

`digest(result, ruleset)` gives, in the order a clinician acts on them:

* the flags (red flags) with the rule set's labels and wording;
* the plan: one item per recommendation, with its grade, its next review and the notes that
  qualify it (the unknowns and notices that affect it, and the details this patient's facts
  added to it, such as cautions);
* what is withheld: one item per intervention, every reason of every kind merged, with what
  would change it (when the result carries it) and the unknowns that affect it;
* the unknowns that change something but belong to no listed entry, and notices about no
  listed entry.

Unknowns are written in words (`unknown_text`): record paths of a FHIR source
(`prefetch.conditions.entry[16].resource (Condition).verificationStatus`) become the kind of
record they name. Nothing here names a clinical term: labels and wording come from the rule set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.kernel.models import Change, NotRecommended, Recommendation, Result, Unknown
from engine.kernel.rulebase import RuleSet, code_label, intervention_label

#: What markdown (CommonMark, with GitHub's tables and strikethrough) may read as markup in running
#: text: escaped with a backslash wherever a view writes text that came from rules or input. An
#: underscore between two letters or digits (`metatarsal_pad`) can neither open nor close
#: emphasis, so only the others are escaped (`_x_` is `\\_x\\_`); codes stay readable as text.
MD_SPECIAL = "\\`*_[]<>#|~"
_MD_ESCAPES = str.maketrans({c: "\\" + c for c in MD_SPECIAL if c != "_"})
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # not between two letters or digits


def md_escape(text: Any) -> str:
    """Text on one line (runs of white space one space) with every markdown special escaped: safe in
    a paragraph, a list item or a table cell (the markdown report and the CDS Hooks cards)."""
    out = " ".join(str(text).split()).translate(_MD_ESCAPES)
    if "_" in out:
        out = _EDGE_UNDERSCORE.sub(r"\\_", out)
    if "&" in out:  # only where it would start a character reference (`&amp;`, `&#38;`)
        out = _ENTITY.sub(r"\\&", out)
    return out


def urgent_category(ruleset: RuleSet | None) -> str:
    """The rule set's category of what a flag calls for (`wording["flag_category"]`; '' when none)."""
    return ruleset.word("flag_category") if ruleset is not None else ""


def category_order(ruleset: RuleSet | None, result: Result) -> list[str]:
    """The rule set's category order; without a rule set, the order the result lists them in."""
    if ruleset is not None and ruleset.categories:
        return list(ruleset.categories)
    seen: list[str] = []
    for r in result.recommendations:
        if r.category not in seen:
            seen.append(r.category)
    return seen


def category_title(ruleset: RuleSet | None, category: str) -> str:
    return ruleset.category_title(category) if ruleset is not None else category.replace("_", " ").capitalize()


def sentence(text: str) -> str:
    """`text` with a capital first letter."""
    return text[:1].upper() + text[1:]


#: The line every report ends with.
DISCLAIMER = "Decision support only: it supports, and does not replace, clinical judgement."


def evidence_grade(ev: Mapping[str, Any] | None) -> str:
    """'SORT C · very low' for an evidence entry (plain data), '' without one."""
    if not ev:
        return ""
    return f"SORT {ev['sort']} · {str(ev['certainty']).replace('_', ' ')}"


def parameter_text(p: Mapping[str, Any]) -> str:
    """'12 weeks' or, set by a site, '10 weeks (site value; default 12: reason; set by who)'."""
    site = p.get("site")
    text = f"{p['value']} {p['unit']}".strip()
    if site:
        text += f" (site value; default {site['default']}: {site['reason']}; set by {site['set_by']})"
    return text


def grade_text(rec: Recommendation) -> str:
    """'SORT C · very low' for a graded recommendation, '' without a grade."""
    ev = rec.evidence
    if ev is None:
        return ""
    return f"SORT {ev.sort} · {ev.certainty.replace('_', ' ')}"


def weeks_text(weeks: float, short: bool = False) -> str:
    """'4 weeks', '1 week', '4 wk' (short)."""
    if short:
        return f"{weeks:g} wk"
    return f"{weeks:g} week" + ("" if weeks == 1 else "s")


def kind_title(kind: str) -> str:
    return kind.replace("_", " ")


def detail_value(value: Any) -> str:
    """A detail value on one line: lists joined with '; ', mappings as 'key: value' pairs."""
    if isinstance(value, (list, tuple)):
        return "; ".join(detail_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {detail_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict)) and not value)


def shown_details(rec: Recommendation) -> list[tuple[str, str]]:
    """Every detail of `rec` that holds something, as (label, text), in the recommendation's order."""
    return [(key.replace("_", " "), detail_value(value)) for key, value in rec.details.items() if not is_empty(value)]


# ---------------------------------------------------------------- unknowns in words

#: A record path of a FHIR source: `prefetch.conditions.entry[16].resource (Condition).verificationStatus`,
#: `Bundle.entry[3].resource (Observation).valueQuantity.code`, `prefetch.patient.gender`.
_RECORD_PATH = re.compile(
    r"(?:prefetch\.[A-Za-z]\w*|Bundle)(?:\.entry\[\d+\])?(?:\.resource)?(?: \((?P<type>[A-Z][A-Za-z]*)\))?"
    r"(?:\.[A-Za-z]\w*(?:\[[^\]]*\])?)*"
)
_PREFETCH_KEY = re.compile(r"prefetch\.([A-Za-z]\w*)")


def _record_word(match: re.Match[str]) -> str:
    rtype = match.group("type")
    if not rtype:
        key = _PREFETCH_KEY.match(match.group(0))
        rtype = key.group(1) if key else ""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", rtype).lower() if rtype else ""
    return f"a {words} record" if words else "a record"


def plain_words(text: str) -> str:
    """`text` with record paths of a source written as the kind of record they name:
    'prefetch.conditions.entry[16].resource (Condition).verificationStatus: recorded as provisional'
    -> 'a condition record: recorded as provisional'. Repeated kinds are said once ('2 observation records')."""
    out = _RECORD_PATH.sub(_record_word, text)

    def counted(m: re.Match[str]) -> str:
        items = [x.strip() for x in m.group(0).split(",")]
        if len(set(items)) == 1 and len(items) > 1:
            return f"{len(items)} {items[0][2:]}s"
        return ", ".join(dict.fromkeys(items))

    return re.sub(r"an? [a-z ]*?record(?:, an? [a-z ]*?record)+", counted, out)


def fact_words(ruleset: RuleSet | None, fact: str) -> str:
    """A fact name in words: the rule set's label, else the name with its source prefix and
    separators turned into spaces ('fhir:pain.severity' -> 'pain severity')."""
    name = fact.split(":", 1)[1] if ":" in fact and fact.split(":", 1)[0].isalpha() else fact
    if ruleset is not None and name in ruleset.labels:
        return str(ruleset.labels[name])
    return re.sub(r"[._]+", " ", name).strip()


def unknown_text(ruleset: RuleSet | None, u: Unknown) -> str:
    """An unknown in words. A reason that starts from a record path (a source's mapping) is
    prefixed by the fact it is about; a rule's own reason is already in words."""
    reason = " ".join(u.reason.split())
    if _RECORD_PATH.match(reason):
        return f"{fact_words(ruleset, u.fact)}: {plain_words(reason)}"
    return plain_words(reason)


# ---------------------------------------------------------------- the digest


@dataclass(frozen=True)
class Note:
    """One line that qualifies an entry: an unknown, a notice, or a detail this patient's facts set."""

    kind: str  # "unknown" | "notice" | "detail"
    text: str
    key: str = ""  # the detail's key, for a detail

    @property
    def title(self) -> str:
        return {"unknown": "not known", "notice": "note"}.get(self.kind, self.key.replace("_", " "))


@dataclass(frozen=True)
class PlanItem:
    rec: Recommendation
    label: str
    category: str  # the category's title
    grade: str
    notes: tuple[Note, ...] = ()

    @property
    def intervention(self) -> str:
        return self.rec.intervention


@dataclass(frozen=True)
class WithheldItem:
    intervention: str
    label: str
    entries: tuple[NotRecommended, ...]
    #: what would change it (every entry's, said once), None when the result does not carry it
    changes: tuple[Change, ...] | None
    notes: tuple[Note, ...] = ()

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(e.kind for e in self.entries))

    def reasons(self, kind: str | None = None) -> list[str]:
        """Every reason (of entries of `kind`, when given), each once, in the result's order (the
        most decisive kind first)."""
        out: list[str] = []
        for e in self.entries:
            if kind is not None and e.kind != kind:
                continue
            for part in e.reason.split("; "):
                if part not in out:
                    out.append(part)
        return out

    def by_kind(self) -> list[tuple[str, str]]:
        """(kind, its reasons merged) for each kind, the most decisive first; a reason given under an
        earlier kind is not repeated."""
        out: list[tuple[str, str]] = []
        said: set[str] = set()
        for kind in self.kinds:
            parts = []
            for e in self.entries:
                if e.kind != kind:
                    continue
                for part in e.reason.split("; "):
                    if part not in said:
                        said.add(part)
                        parts.append(part)
            if parts:
                out.append((kind, "; ".join(parts)))
        return out

    @property
    def merged(self) -> str:
        """'deferred: pain 5 weeks; ...' for one kind; 'suppressed: ...; deferred: ...' for several."""
        return "; ".join(f"{kind_title(k)}: {r}" for k, r in self.by_kind())


@dataclass(frozen=True)
class LooseUnknown:
    """An unknown that changes something but is not shown next to a listed entry."""

    unknown: Unknown
    text: str
    affects: tuple[str, ...]  # labels


@dataclass(frozen=True)
class Digest:
    result: Result
    flags: tuple[tuple[str, str], ...]  # (code, label)
    flag_word: str
    flags_stop: str
    plan: tuple[PlanItem, ...]
    withheld: tuple[WithheldItem, ...]
    unknowns: tuple[LooseUnknown, ...]
    notices: tuple[str, ...] = ()
    #: unknowns that block nothing (shown only in full views)
    quiet_unknowns: tuple[str, ...] = field(default=())

    @property
    def banner(self) -> str:
        """'RED FLAG: suspected infection. Urgent assessment first: ...' ('' without a flag)."""
        if not self.flags:
            return ""
        text = f"{self.flag_word.upper()}: {', '.join(label for _, label in self.flags)}."
        if self.flags_stop:
            text += f" {sentence(self.flags_stop)}."
        return text


def _patient_details(ruleset: RuleSet | None, rec: Recommendation) -> list[Note]:
    """The compact view's details: the rule set's `show` keys whose value this patient's facts set
    (a caution, a check to make), not the standing details every patient gets (those are in the
    full view and the markdown note)."""
    if ruleset is None or rec.intervention not in ruleset.interventions:
        return []
    spec = ruleset.interventions[rec.intervention]
    out = []
    for key in spec.show:
        value = rec.details.get(key)
        if is_empty(value) or (key in spec.details and spec.details[key] == value):
            continue
        out.append(Note("detail", detail_value(value), key))
    return out


def _attach(items: Sequence[str], blocks: Iterable[str]) -> list[str]:
    """The listed entries an unknown or notice is shown next to: all it affects, when every one
    of them is listed and they are at most two; otherwise none (it is listed on its own)."""
    blocks = list(dict.fromkeys(blocks))
    shown = [b for b in blocks if b in items]
    return shown if blocks and len(shown) == len(blocks) and len(shown) <= 2 else []


def digest(result: Result, ruleset: RuleSet | None = None) -> Digest:
    """The result read for a clinician: see the module docstring."""
    listed = [r.intervention for r in result.recommendations]
    for n in result.not_recommended:
        if n.intervention not in listed:
            listed.append(n.intervention)
    notes: dict[str, list[Note]] = {code: [] for code in listed}
    loose: list[LooseUnknown] = []
    quiet: list[str] = []
    general: list[str] = []
    for notice in result.notices:
        targets = _attach(listed, notice.affects)
        for t in targets:
            notes[t].append(Note("notice", notice.text))
        if not targets:
            affects = [intervention_label(ruleset, a) for a in notice.affects]
            general.append(notice.text + (f" (affects {', '.join(affects)})" if affects else ""))
    for u in result.unknowns:
        text = unknown_text(ruleset, u)
        if not u.blocks:
            quiet.append(text)
            continue
        targets = _attach(listed, u.blocks)
        for t in targets:
            notes[t].append(Note("unknown", text))
        if not targets:
            loose.append(LooseUnknown(u, text, tuple(intervention_label(ruleset, b) for b in u.blocks)))

    order = {c: i for i, c in enumerate(category_order(ruleset, result))}
    recs = sorted(result.recommendations, key=lambda r: order.get(r.category, len(order)))
    plan = tuple(
        PlanItem(
            r,
            intervention_label(ruleset, r.intervention),
            category_title(ruleset, r.category),
            grade_text(r),
            tuple(notes[r.intervention] + _patient_details(ruleset, r)),
        )
        for r in recs
    )
    withheld = []
    for code in dict.fromkeys(n.intervention for n in result.not_recommended):
        entries = tuple(n for n in result.not_recommended if n.intervention == code)
        changes: tuple[Change, ...] | None = None
        if any(e.what_would_change is not None for e in entries):
            seen: dict[str, Change] = {}
            for e in entries:
                for c in e.what_would_change or ():
                    seen.setdefault(c.text, c)
            changes = tuple(seen.values())
        withheld.append(WithheldItem(code, intervention_label(ruleset, code), entries, changes, tuple(notes[code])))
    flag_word = ruleset.word("flag", "flag") if ruleset is not None else "flag"
    stop = ruleset.word("flags_stop") if ruleset is not None else ""
    return Digest(
        result=result,
        flags=tuple((f, code_label(ruleset, f)) for f in result.red_flags),
        flag_word=flag_word,
        flags_stop=stop,
        plan=plan,
        withheld=tuple(withheld),
        unknowns=tuple(loose),
        notices=tuple(general),
        quiet_unknowns=tuple(quiet),
    )


#: What the views say for a withheld option the change search found no change for (`what_would_change == []`).
NO_CHANGE = "no change within the pathway would make it an option"


# ---------------------------------------------------------------- short text that is never cut mid-word


def fit_words(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` on one line in at most `limit` characters, cut only between words (or after a
    clause's punctuation), with `ellipsis` when cut. A first word longer than `limit` is the
    only thing ever cut inside a word."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    cut = text[: room + 1]
    space = cut.rfind(" ")
    if space <= 0:
        return text[:room] + ellipsis
    head = cut[:space].rstrip(" ,;:—-(")
    return head + ellipsis
