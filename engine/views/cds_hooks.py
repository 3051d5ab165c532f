"""A triage result as a CDS Hooks 2.0 response: `{"cards": [...]}`, one card per decision to act on.

* each red flag: a `critical` card, the urgent referral it calls for, and a suggestion that
  creates a draft FHIR ServiceRequest (status draft, intent proposal, the red flag as its reason,
  priority urgent, or the result's own priority where the recommendation gives one);
* each contraindicated intervention: a `warning` card, every contraindication of it merged;
* the plan: one `info` card with every recommendation (grade, review, dose, cautions and checks),
  what is not offered now and why (what would change it, where the result says), and what is not
  known, in words, next to what it affects.

Summaries are written to fit 140 characters (CDS Hooks' limit) from whole clauses, never cut
inside a word. `source.url` is a readable page: the rule set's pathway picture under the
service's base URL (`{base}/pathway`, no patient data), or the report page the caller names.
Each card has a `uuid` that is the same for the same patient, rule and intervention (uuid5), so
feedback can be matched, and `overrideReasons` where a clinician may decline.

The engine knows no clinical term here: labels, wording and citations come from the rule set and
the result; the urgent-referral category is the contract's.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from functools import lru_cache
from typing import Any

from engine.kernel.models import Recommendation, Result
from engine.kernel.rulebase import RuleSet
from engine.views.common import (
    Digest,
    PlanItem,
    WithheldItem,
    detail_value,
    digest,
    fit_words,
    md_escape,
    sentence,
    shown_details,
    urgent_category,
    weeks_text,
)

#: Base URL of this project's identifiers (a reserved example domain: identifiers, not pages).
PROJECT_URL = "https://forefoot-cds.example"
#: Where a card says it comes from when no base URL is given.
DEFAULT_SOURCE_URL = PROJECT_URL + "/"
#: Namespace of the card uuids (uuid5 over patient id, rule and intervention).
CARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PROJECT_URL + "/cds-hooks/card")
OVERRIDE_SYSTEM = PROJECT_URL + "/fhir/CodeSystem/cds-override-reason"
#: The code system of the rule set's flag codes in a ServiceRequest's reasonCode.
FLAG_SYSTEM = PROJECT_URL + "/fhir/CodeSystem/flag"
#: CDS Hooks: "summary: a short, one-sentence summary message (<140 characters)".
SUMMARY_MAX = 139
#: FHIR request priorities, for a ServiceRequest.
PRIORITIES = ("routine", "urgent", "asap", "stat")
#: Page paths under the service's base URL (served by engine.channels.service).
PATHWAY_PATH = "/pathway"

#: Why a clinician may decline a recommendation card.
DECLINE_RECOMMENDATION = (
    ("patient-declined", "Patient declined"),
    ("already-in-place", "Already in place or already arranged"),
    ("clinical-judgement", "Not appropriate for this patient (clinical judgement)"),
)
#: Why a clinician may set a contraindication warning aside.
DECLINE_CONTRAINDICATION = (
    ("record-out-of-date", "The record is out of date (the reason no longer applies)"),
    ("clinical-judgement", "Specialist decision (clinical judgement)"),
)


def card_uuid(patient_id: str, rule: str, intervention: str) -> str:
    """The same uuid for the same patient, rule and intervention."""
    return str(uuid.uuid5(CARD_NAMESPACE, "\x1f".join((patient_id, rule, intervention))))


@lru_cache(maxsize=8192)
def _md_str(text: str) -> str:
    return md_escape(text)


def _md(text: Any) -> str:
    """Text with the markdown characters escaped, on one line (the standing texts of a rule set repeat
    from patient to patient: they are escaped once)."""
    return _md_str(str(text))


# ---------------------------------------------------------------- summaries that are written, not cut


def summary(head: str, clauses: list[str] = (), limit: int = SUMMARY_MAX, joiner: str = "; ") -> str:  # type: ignore[assignment]
    """`head` followed by as many whole `clauses` as fit in `limit` characters.

    A clause that does not fit whole is tried clause by clause of its own (split at ': ' and
    ', '); only when not even the head and the first part fit is the text cut, and then between
    words, with an ellipsis. Never cut inside a word."""
    out = re.sub(r"\s+", " ", head).lstrip()
    for i, clause in enumerate(c for c in (" ".join(x.split()) for x in clauses) if c):
        sep = "" if i == 0 else joiner
        if len(out) + len(sep) + len(clause) <= limit:
            out += sep + clause
            continue
        if i == 0:  # the first clause must say something: take its leading parts that fit
            for splitter in (": ", ", ", " ("):
                parts = clause.split(splitter)
                taken = ""
                for part in parts:
                    nxt = part if not taken else taken + splitter + part
                    if len(out) + len(nxt) > limit:
                        break
                    taken = nxt
                if taken and taken != clause:
                    return out + taken.rstrip(" ,;:(")
            return fit_words(out + clause, limit)
        break
    return fit_words(out, limit)


def _overrides(reasons: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"system": OVERRIDE_SYSTEM, "code": code, "display": display} for code, display in reasons]


def study_url(citation: dict[str, Any]) -> str | None:
    """PubMed for a PMID, else doi.org for a DOI; None when the study has neither."""
    if citation.get("pmid"):
        return f"https://pubmed.ncbi.nlm.nih.gov/{citation['pmid']}/"
    if citation.get("doi"):
        return f"https://doi.org/{citation['doi']}"
    return None


def _cite_label(cid: str, c: dict[str, Any]) -> str:
    who = c.get("authors") or c.get("title") or cid
    where = c.get("citation") or " ".join(str(x) for x in (c.get("journal"), c.get("year")) if x)
    return f"{who}. {where}".strip(". ") if where else str(who)


def _citations(ids: list[str], result: Result) -> tuple[list[str], list[dict[str, str]]]:
    lines, links = [], []
    for cid in dict.fromkeys(ids):
        c = result.citations.get(cid, {})
        url = study_url(c)
        label = _cite_label(cid, c)
        design = f" ({_md(c['design'])})" if c.get("design") else ""
        if url:
            lines.append(f"- [{_md(label)}]({url}){design}")
            links.append({"label": fit_words(label, SUMMARY_MAX), "url": url, "type": "absolute"})
        else:
            lines.append(f"- {_md(label)}{design}")
    return lines, links


def pathway_url(base_url: str | None) -> str:
    """The readable page of the rule set's pathway picture under a service's base URL."""
    if not base_url:
        return DEFAULT_SOURCE_URL
    base = base_url.rstrip("/")
    if base.endswith("/cds-services"):  # a service's endpoint was given for its base
        base = base[: -len("/cds-services")]
    return base + PATHWAY_PATH


# ---------------------------------------------------------------- card bodies


def _rec_lines(item: PlanItem) -> list[str]:
    r = item.rec
    head = f"- **{_md(item.label)}**: {_md(r.strength)}"
    if item.grade:
        head += f" ({_md(item.grade)})"
    if r.review is not None:
        head += f"; review in {_md(weeks_text(r.review.weeks))}"
    lines = [head]
    if r.review is not None:
        lines.append(f"  - review: {_md(r.review.text)}")
    lines.append(f"  - why: {_md('; '.join(r.rationale))}")
    lines += [f"  - {_md(key)}: {_md(value)}" for key, value in shown_details(r)]
    for n in item.notes:
        if n.kind == "unknown":
            lines.append(f"  - **not known:** {_md(n.text)}")
        elif n.kind == "notice":
            lines.append(f"  - **note:** {_md(n.text)}")
    if r.evidence is not None:
        lines.append(f"  - evidence: {_md(r.evidence.directness)}")
    return lines


def _withheld_lines(item: WithheldItem) -> list[str]:
    lines = [f"- **{_md(item.label)}**: {_md(item.merged)}"]
    for n in item.notes:
        lines.append(f"  - **not known:** {_md(n.text)}" if n.kind == "unknown" else f"  - **note:** {_md(n.text)}")
    if item.changes:
        lines += [f"  - would be an option if: {_md(c.text)}" for c in item.changes]
    return lines


def _footer(ruleset: RuleSet, rule: str) -> str:
    return (
        f"Rule {_md(rule)} · {_md(ruleset.name)} {_md(ruleset.version)} · decision support, "
        "not a substitute for clinical judgement"
    )


def _urgent_for(flag: str, flag_label: str, urgent: list[Recommendation]) -> Recommendation | None:
    """The urgent recommendation made for `flag`: the one that names it, else the first."""
    for r in urgent:
        said = " ".join([*r.rationale, detail_value(r.details)])
        if flag in said or flag_label in said:
            return r
    return urgent[0] if urgent else None


def _priority(rec: Recommendation | None, flag: str) -> str:
    """The result's priority for the referral where it gives one (a FHIR request priority), else urgent."""
    if rec is not None:
        for key in ("priority", "priorities"):
            value = rec.details.get(key)
            if isinstance(value, dict):
                value = value.get(flag)
            if isinstance(value, str) and value.lower() in PRIORITIES:
                return value.lower()
    return "urgent"


def service_request(
    result: Result, rec: Recommendation | None, flag: str | None, flag_label: str, label: str, priority: str
) -> dict[str, Any]:
    """A draft FHIR R4 ServiceRequest proposing the urgent referral for one flag; with no flag (an
    urgent recommendation no red flag calls for), its reason is `flag_label` as text, uncoded."""
    reason: dict[str, Any] = {"text": flag_label}
    if flag is not None:
        reason = {"coding": [{"system": FLAG_SYSTEM, "code": flag, "display": flag_label}], "text": flag_label}
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "priority": priority,
        "code": {"text": label},
        "subject": {"reference": f"Patient/{result.patient_id}"},
        "reasonCode": [reason],
    }
    action = rec.details.get("action") if rec is not None else None
    if isinstance(action, str) and action:
        resource["note"] = [{"text": action}]
    return resource


def _critical_card(
    result: Result, source: dict[str, str], rule: str, key: str, text: str, lines: list[str], entry: dict[str, Any]
) -> dict[str, Any]:
    """A critical card (a red flag, or an urgent recommendation) with its `forefoot-cds.entry`."""
    return {
        "uuid": card_uuid(result.patient_id, rule, key),
        "summary": text,
        "indicator": "critical",
        "detail": "\n".join(lines),
        "source": source,
        "overrideReasons": _overrides(DECLINE_RECOMMENDATION[1:]),
        "extension": {"forefoot-cds.entry": entry},
    }


def _suggest_request(
    card: dict[str, Any], result: Result, rule: str, key: str, label: str, description: str, request: dict[str, Any]
) -> None:
    """Add to `card` the one suggestion of creating the draft ServiceRequest `request`."""
    card["suggestions"] = [
        {
            "label": summary(label),
            "uuid": card_uuid(result.patient_id, rule, key),
            "isRecommended": True,
            "actions": [{"type": "create", "description": description, "resource": request}],
        }
    ]
    card["selectionBehavior"] = "at-most-one"


def _stopped_lines(d: Digest, head: str) -> list[str]:
    stopped = [w for w in d.withheld if any(e.kind == "suppressed" for e in w.entries)]
    return [f"**{head}:** " + ", ".join(_md(w.label) for w in stopped), ""] if stopped else []


def _urgent_card(d: Digest, ruleset: RuleSet, source: dict[str, str], rec: Recommendation) -> dict[str, Any]:
    """An urgent recommendation that no red flag of the result calls for (a rule set may make one):
    a critical card of its own, never presented as a red flag or coded with the flags' code system."""
    result = d.result
    item = next(i for i in d.plan if i.rec is rec)
    reason = "; ".join(rec.rationale) or item.label
    lines = [f"**{_md(item.label)}.**", "", *_rec_lines(item), ""]
    lines += _stopped_lines(d, "Not started or continued")
    lines.append(_footer(ruleset, rec.rule))
    entry = {
        "type": "urgent",
        "flag": None,
        "intervention": rec.intervention,
        "category": rec.category,
        "rule": rec.rule,
    }
    card = _critical_card(
        result, source, rec.rule, f"{rec.intervention}:urgent", summary(f"{item.label}: {reason}."), lines, entry
    )
    priority = _priority(rec, rec.intervention)
    _suggest_request(
        card,
        result,
        rec.rule,
        f"suggestion:{rec.intervention}",
        f"Request {item.label.lower()}, priority {priority}",
        f"A draft ServiceRequest: {item.label.lower()}, priority {priority}, reason {reason}",
        service_request(result, rec, None, reason, item.label, priority),
    )
    return card


def _flag_card(
    d: Digest, ruleset: RuleSet, source: dict[str, str], flag: str, flag_label: str, urgent: list[Recommendation]
) -> dict[str, Any]:
    result = d.result
    rec = _urgent_for(flag, flag_label, urgent)
    label = next((i.label for i in d.plan if rec is not None and i.rec is rec), "referral")
    stop = sentence(d.flags_stop) if d.flags_stop else ""
    head = f"{label}: {flag_label}." if rec is not None else f"{sentence(d.flag_word)}: {flag_label}."
    text = summary(head + " ", [stop] if stop else [])
    lines = [f"**{_md(sentence(d.flag_word))}: {_md(flag_label)}.**" + (f" {_md(stop)}." if stop else ""), ""]
    if rec is not None:
        item = next(i for i in d.plan if i.rec is rec)
        lines += _rec_lines(item) + [""]
    lines += _stopped_lines(d, "Not started or continued until then")
    rule = rec.rule if rec is not None else "(flag)"
    lines.append(_footer(ruleset, rule))
    entry = {
        "type": "red_flag",
        "flag": flag,
        "intervention": rec.intervention if rec else None,
        "category": rec.category if rec else None,
        "rule": rule,
    }
    card = _critical_card(result, source, rule, f"{rec.intervention if rec else 'flag'}:{flag}", text, lines, entry)
    if rec is not None:
        priority = _priority(rec, flag)
        _suggest_request(
            card,
            result,
            rule,
            f"suggestion:{flag}",
            f"Request {label.lower()}, priority {priority}: {flag_label}",
            f"A draft ServiceRequest: {label.lower()}, priority {priority}, reason {flag_label}",
            service_request(result, rec, flag, flag_label, label, priority),
        )
    return card


def _contraindication_card(d: Digest, ruleset: RuleSet, source: dict[str, str], item: WithheldItem) -> dict[str, Any]:
    result = d.result
    entries = [e for e in item.entries if e.kind == "contraindicated"]
    reasons = item.reasons("contraindicated")
    rule_ids = list(dict.fromkeys(e.rule for e in entries))
    cites: list[str] = []
    for rid in rule_ids:
        with contextlib.suppress(KeyError):  # a rule of another rule-set version: no citations to add
            cites += list(ruleset.rule(rid).citations)
    cite_lines, links = _citations(cites, result)
    lines = [
        f"**{_md(item.label)}**: not recommended (contraindicated)",
        "",
        "**Why:**",
        *(f"- {_md(r)}" for r in reasons),
        "",
    ]
    others = [(k, r) for k, r in item.by_kind() if k != "contraindicated"]
    if others:
        lines += ["**Also:**", *(f"- {_md(k.replace('_', ' '))}: {_md(r)}" for k, r in others), ""]
    if item.changes:
        lines += ["**Would be an option if:**", *(f"- {_md(c.text)}" for c in item.changes), ""]
    if cite_lines:
        lines += ["**Sources:**", *cite_lines, ""]
    lines.append(_footer(ruleset, ", ".join(rule_ids)))
    card: dict[str, Any] = {
        "uuid": card_uuid(result.patient_id, rule_ids[0], item.intervention),
        "summary": summary(f"{item.label} contraindicated: ", reasons),
        "indicator": "warning",
        "detail": "\n".join(lines),
        "source": source,
        "overrideReasons": _overrides(DECLINE_CONTRAINDICATION),
        "extension": {
            "forefoot-cds.entry": {
                "type": "contraindication",
                "intervention": item.intervention,
                "rule": rule_ids[0],
                "rules": rule_ids,
            }
        },
    }
    if links:
        card["links"] = links
    return card


def _plan_summary(plan: list[PlanItem], withheld: list[WithheldItem]) -> str:
    """'Plan: A, B, C (may be considered) and 2 more': as many whole names as fit."""
    if not plan:
        n = len(withheld)
        return f"Nothing more to start now; {n} option{'s' if n != 1 else ''} not offered, each with its reason"
    for k in range(len(plan), 0, -1):
        groups: dict[str, list[str]] = {}
        for i in plan[:k]:
            groups.setdefault(i.rec.strength, []).append(i.label)
        parts = [
            (", ".join(names) if strength == "recommended" else f"{strength}: {', '.join(names)}")
            for strength, names in groups.items()
        ]
        rest = len(plan) - k
        text = "Plan: " + "; ".join(parts) + (f"; and {rest} more" if rest else "")
        if len(text) <= SUMMARY_MAX:
            return text
    return summary("Plan: ", [plan[0].label])


def _plan_card(d: Digest, ruleset: RuleSet, source: dict[str, str], shown_elsewhere: set[str]) -> dict[str, Any] | None:
    result = d.result
    plan = [i for i in d.plan if i.rec.category != urgent_category(ruleset)]
    withheld = [w for w in d.withheld if w.intervention not in shown_elsewhere]
    if not plan and not withheld and not d.unknowns:
        return None
    lines: list[str] = []
    if plan:
        lines += ["**Plan:**", *(line for i in plan for line in _rec_lines(i)), ""]
    if withheld:
        lines += ["**Not offered now, and why:**", *(line for w in withheld for line in _withheld_lines(w)), ""]
    if d.unknowns:
        lines += [
            "**Not known** (what it affects in brackets):",
            *(f"- {_md(u.text)} [{_md(', '.join(u.affects))}]" for u in d.unknowns),
            "",
        ]
    for n in d.notices:
        lines += [f"**Note:** {_md(n)}", ""]
    cites = [c for i in plan if i.rec.evidence is not None for c in i.rec.evidence.citations]
    cite_lines, links = _citations(cites, result)
    if cite_lines:
        lines += ["**Sources:**", *cite_lines, ""]
    lines.append(_footer(ruleset, ", ".join(dict.fromkeys(i.rec.rule for i in plan)) or "(several)"))
    card: dict[str, Any] = {
        "uuid": card_uuid(result.patient_id, "PLAN", "*"),
        "summary": _plan_summary(plan, withheld),
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": source,
        "extension": {
            "forefoot-cds.entry": {
                "type": "plan",
                "interventions": [i.intervention for i in plan],
                "rules": [i.rec.rule for i in plan],
                "withheld": [w.intervention for w in withheld],
                "unknowns": [u.fact for u in result.unknowns if u.blocks],
            }
        },
    }
    if plan:
        card["overrideReasons"] = _overrides(DECLINE_RECOMMENDATION)
    if links:
        card["links"] = links
    return card


def cards(
    result: Result, ruleset: RuleSet, base_url: str | None = None, report_url: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The CDS Hooks 2.0 response for a triage result: a card per red flag, then one per
    contraindicated intervention, then the plan.

    `base_url`: the service's public base URL; every card's `source.url` is then the pathway
    picture `{base_url}/pathway` (a page without patient data). `report_url`: the page of this
    patient's report, when the caller serves one: the plan card's source, and a link on it."""
    d = digest(result, ruleset)
    pathway = {"label": f"{ruleset.name} {ruleset.version}", "url": pathway_url(base_url)}
    out: list[dict[str, Any]] = []
    urgent = [r for r in result.recommendations if r.category == urgent_category(ruleset)]
    for flag, flag_label in d.flags:
        out.append(_flag_card(d, ruleset, pathway, flag, flag_label, urgent))
    if not d.flags:
        for rec in urgent:  # an urgent recommendation without a flag still gets its own card
            out.append(_urgent_card(d, ruleset, pathway, rec))
    contraindicated = [w for w in d.withheld if any(e.kind == "contraindicated" for e in w.entries)]
    for item in contraindicated:
        out.append(_contraindication_card(d, ruleset, pathway, item))
    source = {"label": pathway["label"], "url": report_url} if report_url else pathway
    plan = _plan_card(d, ruleset, source, {w.intervention for w in contraindicated})
    if plan is not None:
        extra = []
        if report_url:
            extra.append({"label": "Full report", "url": report_url, "type": "absolute"})
        if base_url:
            extra.append({"label": "Pathway picture", "url": pathway["url"], "type": "absolute"})
        if extra:
            plan["links"] = extra + plan.get("links", [])
        out.append(plan)
    return {"cards": out}
