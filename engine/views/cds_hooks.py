"""A triage result as a CDS Hooks 2.0 response: `{"cards": [...]}`.

One card per recommendation and one per contraindication, then (when there are any) one card
summarising what was withheld for other reasons and one listing what was unknown, so nothing
withheld is a silent absence. Indicator: `critical` for an urgent referral, `warning` for a
contraindication, `info` otherwise. Each card carries a `summary` under 140 characters, a
markdown `detail` (evidence grade, rationale, details, citations), `links` to the cited studies
(PubMed or DOI), a `source`, `overrideReasons` where a clinician may decline, and a `uuid` that
is the same for the same patient, rule and intervention (uuid5), so feedback can be matched.

The engine knows no clinical term here: labels, wording and citations come from the rule set
and the result.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from engine.kernel.models import Result
from engine.kernel.rulebase import RuleSet, code_label, intervention_label

#: Base URL of this project's identifiers (a reserved example domain: identifiers, not pages).
PROJECT_URL = "https://forefoot-cds.example"
#: Where a card says it comes from, unless the service is given its own public URL.
DEFAULT_SOURCE_URL = PROJECT_URL + "/"
#: Namespace of the card uuids (uuid5 over patient id, rule and intervention).
CARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PROJECT_URL + "/cds-hooks/card")
OVERRIDE_SYSTEM = PROJECT_URL + "/fhir/CodeSystem/cds-override-reason"
SUMMARY_MAX = 139

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


def _md(text: Any) -> str:
    """Text with the markdown characters escaped, on one line."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", " ".join(str(text).split()))


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


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
    for cid in ids:
        c = result.citations.get(cid, {})
        url = study_url(c)
        label = _cite_label(cid, c)
        design = f" ({_md(c['design'])})" if c.get("design") else ""
        if url:
            lines.append(f"- [{_md(label)}]({url}){design}")
            links.append({"label": _summary(label), "url": url, "type": "absolute"})
        else:
            lines.append(f"- {_md(label)}{design}")
    return lines, links


def _detail_lines(details: dict[str, Any]) -> list[str]:
    out = []
    for key, value in details.items():
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        out.append(f"- {_md(key.replace('_', ' '))}: {_md(value)}")
    return out


def cards(result: Result, ruleset: RuleSet, source_url: str = DEFAULT_SOURCE_URL) -> dict[str, list[dict[str, Any]]]:
    """The CDS Hooks 2.0 response for a triage result."""
    source = {"label": f"{ruleset.name} {ruleset.version}", "url": source_url}
    footer = f"Rule {{rule}} · {_md(ruleset.name)} {_md(ruleset.version)} · decision support, not a substitute for clinical judgement"
    out: list[dict[str, Any]] = []

    for rec in result.recommendations:
        label = intervention_label(ruleset, rec.intervention)
        urgent = rec.category == "urgent_referral"
        lines = [f"**{_md(label)}**: {_md(rec.strength)} ({_md(rec.category.replace('_', ' '))})", ""]
        links: list[dict[str, str]] = []
        grade = ""
        if rec.evidence is not None:
            ev = rec.evidence
            grade = f" (SORT {ev.sort}, GRADE {ev.certainty.replace('_', ' ')})"
            lines += [f"**Evidence:** SORT {ev.sort}, GRADE {_md(ev.certainty.replace('_', ' '))}; {_md(ev.directness)}", ""]
        lines += ["**Why:**", *(f"- {_md(r)}" for r in rec.rationale), ""]
        if rec.details:
            lines += ["**Details:**", *_detail_lines(rec.details), ""]
        if rec.evidence is not None and rec.evidence.citations:
            cite_lines, links = _citations(list(rec.evidence.citations), result)
            lines += ["**Sources:**", *cite_lines, ""]
        lines.append(footer.format(rule=_md(rec.rule)))
        if urgent:
            flags = [code_label(ruleset, f) for f in result.red_flags]
            summary = f"{label}: {'; '.join(flags) or 'red flag'}"
        else:
            summary = f"{label}: {rec.strength}{grade}"
        card = {
            "uuid": card_uuid(result.patient_id, rec.rule, rec.intervention),
            "summary": _summary(summary),
            "indicator": "critical" if urgent else "info",
            "detail": "\n".join(lines),
            "source": source,
            "overrideReasons": _overrides(DECLINE_RECOMMENDATION),
            "extension": {"forefoot-cds.entry": {"type": "recommendation", "intervention": rec.intervention,
                                                 "category": rec.category, "rule": rec.rule}},
        }
        if links:
            card["links"] = links
        out.append(card)

    for entry in (n for n in result.not_recommended if n.kind == "contraindicated"):
        label = intervention_label(ruleset, entry.intervention)
        rule = ruleset.rule(entry.rule) if any(r.id == entry.rule for r in ruleset.rules) else None
        cite_lines, links = _citations(list(rule.citations) if rule else [], result)
        lines = [f"**{_md(label)}**: not recommended (contraindicated)", "", "**Why:**", f"- {_md(entry.reason)}", ""]
        if cite_lines:
            lines += ["**Sources:**", *cite_lines, ""]
        lines.append(footer.format(rule=_md(entry.rule)))
        card = {
            "uuid": card_uuid(result.patient_id, entry.rule, entry.intervention),
            "summary": _summary(f"{label}: contraindicated: {entry.reason}"),
            "indicator": "warning",
            "detail": "\n".join(lines),
            "source": source,
            "overrideReasons": _overrides(DECLINE_CONTRAINDICATION),
            "extension": {"forefoot-cds.entry": {"type": "contraindication", "intervention": entry.intervention,
                                                 "rule": entry.rule}},
        }
        if links:
            card["links"] = links
        out.append(card)

    others = [n for n in result.not_recommended if n.kind != "contraindicated"]
    if others:
        lines = ["**Not offered now, and why:**"]
        for n in others:
            label = intervention_label(ruleset, n.intervention)
            lines.append(f"- {_md(label)} ({_md(n.kind.replace('_', ' '))}): {_md(n.reason)}")
        lines += ["", footer.format(rule="(several)")]
        out.append({
            "uuid": card_uuid(result.patient_id, "WITHHELD", "*"),
            "summary": _summary(f"{len(others)} option(s) not offered now (deferred, not indicated or suppressed)"),
            "indicator": "info",
            "detail": "\n".join(lines),
            "source": source,
            "extension": {"forefoot-cds.entry": {"type": "withheld",
                                                 "interventions": sorted({n.intervention for n in others})}},
        })

    if result.unknowns:
        lines = ["**Missing or unclear information** (what it blocks in brackets):"]
        for u in result.unknowns:
            blocks = f" [{_md(', '.join(u.blocks))}]" if u.blocks else ""
            lines.append(f"- {_md(u.reason)}{blocks}")
        lines += ["", footer.format(rule="(several)")]
        out.append({
            "uuid": card_uuid(result.patient_id, "UNKNOWNS", "*"),
            "summary": _summary(f"{len(result.unknowns)} item(s) of information missing or unclear: advice may be incomplete"),
            "indicator": "info",
            "detail": "\n".join(lines),
            "source": source,
            "extension": {"forefoot-cds.entry": {"type": "unknowns", "facts": [u.fact for u in result.unknowns]}},
        })
    return {"cards": out}
