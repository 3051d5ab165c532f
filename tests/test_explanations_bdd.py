"""features/explanations.feature: explanations a clinician can check, run by pytest-bdd.

Givens are shared (tests/conftest.py); the When and Then steps about explanations live here."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, scenarios, then, when

from engine import default_triager
from engine.views.explain import entry_text, explain_patient, iter_nodes, iter_steps

scenarios("explanations.feature")


def _entries(explanation: dict, intervention: str) -> list[dict[str, Any]]:
    """The entries about `intervention`; one that is neither recommended nor withheld is explained
    by the rules that could have emitted it (as `explain --intervention` does)."""
    entries = [e for e in explanation["all"]["entries"] if e["intervention"] == intervention]
    if not entries:
        _, single = explain_patient(default_triager(), explanation["patient"], intervention)
        entries = single["entries"]
    return entries


def _rules(entries: list[dict]) -> set[str]:
    out = set()
    for e in entries:
        out |= {s["rule"] for s in iter_steps(e["derivation"])}
    return out


def _nodes(entries: list[dict]) -> list[dict]:
    return [n for e in entries for n in iter_nodes(e["derivation"])]


def _needs(check: dict) -> list[dict]:
    out = []
    for need in check["needs"]:
        out.append(need)
        for sub in (need.get("absent") or {}).get("checked", ()):
            out += _needs(sub)
    return out


@when("the triage is explained", target_fixture="explanation")
def explained(patient: dict) -> dict:
    """Triage and explain the patient through the embedding API (what `cli.py explain` prints)."""
    _, expl = explain_patient(default_triager(), patient)
    return {"patient": patient, "all": expl}


@then(parsers.parse("the explanation for {intervention:w} goes through rule {rule}"))
def goes_through(explanation: dict, intervention: str, rule: str) -> None:
    """Some step of the chain is a firing of `rule`."""
    rules = _rules(_entries(explanation, intervention))
    assert rule in rules, sorted(rules)


@then(parsers.parse("the explanation for {intervention:w} does not go through rule {rule}"))
def not_through(explanation: dict, intervention: str, rule: str) -> None:
    assert rule not in _rules(_entries(explanation, intervention))


@then(parsers.parse('the explanation for {intervention:w} says "{text}"'))
def says(explanation: dict, intervention: str, text: str) -> None:
    """The words appear in a step, a comparison, a reason, a source or an unknown of the entry."""
    words = "\n".join(entry_text(e) for e in _entries(explanation, intervention))
    assert text in words, words


@then(parsers.parse("the explanation for {intervention:w} rests on the patient fact {label}"))
def rests_on(explanation: dict, intervention: str, label: str) -> None:
    """A leaf of the chain is this input fact, shown with the patient's value."""
    leaves = [n for n in _nodes(_entries(explanation, intervention)) if n["kind"] == "fact"]
    assert any(n["label"] == label and n["value"] is not None for n in leaves), [n["label"] for n in leaves]


@then(parsers.parse('the explanation for {intervention:w} checked "{pattern}" absent'))
def checked_absent(explanation: dict, intervention: str, pattern: str) -> None:
    """The pattern was checked and found absent: a negated premise, or what a rule that did not fire needed."""
    entries = _entries(explanation, intervention)
    none = {n["label"][len("absent:") :] for n in _nodes(entries) if n["kind"] == "absent"}
    checks = [c for n in _nodes(entries) for c in n.get("checked", ())]
    checks += [c for e in entries for c in e.get("could_come_from", ())]
    none |= {need["pattern"] for c in checks for need in _needs(c) if need["state"] == "none"}
    assert pattern in none, sorted(none)


@then(parsers.parse("the explanation for {intervention:w} is graded SORT {sort:w}"))
def graded(explanation: dict, intervention: str, sort: str) -> None:
    entry = next(e for e in _entries(explanation, intervention) if e["status"] == "recommended")
    assert entry["evidence"]["sort"] == sort


@then(parsers.parse("the explanation for {intervention:w} cites {citation}"))
def cites(explanation: dict, intervention: str, citation: str) -> None:
    """The citation is among the recommendation's graded evidence, with its grade."""
    entry = next(e for e in _entries(explanation, intervention) if e["status"] == "recommended")
    cited = {c["id"]: c for c in entry["evidence"]["citations"]}
    assert citation in cited, sorted(cited)
    assert cited[citation]["grade"]


@then(parsers.parse("the explanation for {intervention:w} shows the unknown {fact:w}"))
def shows_unknown(explanation: dict, intervention: str, fact: str) -> None:
    """The unknown is listed on the entry, saying it blocks this intervention."""
    unknowns = [u for e in _entries(explanation, intervention) for u in e["unknowns"]]
    assert fact in [u["fact"] for u in unknowns], unknowns
    assert all(intervention in u["blocks"] for u in unknowns)


@then(parsers.parse("the explanation for {intervention:w} shows no unknown"))
def no_unknown(explanation: dict, intervention: str) -> None:
    assert [u for e in _entries(explanation, intervention) for u in e["unknowns"]] == []
