"""The HTML report and the pathway picture (engine/views/html.py, engine/views/graph.py), checked
as markup and, in a real browser (headless Chromium from the distribution), as a page a clinician
opens: no console errors, nothing fetched, the lit route equal to the trace, a 1280x800 screenshot."""

from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from engine import Result, default_triager
from engine.views import graph
from engine.views.html import facts_of, pathway_html, report_html
from tests.conftest import load_example

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
runner = CliRunner()


def triaged(name: str) -> tuple[Result, list[dict[str, Any]]]:
    t = default_triager()
    patient = load_example(name)
    return t.triage(patient), facts_of(t, patient)


def report(name: str) -> str:
    result, facts = triaged(name)
    return report_html(result, default_triager().ruleset, facts)


def concluded_types(result: Result) -> set[str]:
    findings = {t for r in default_triager().ruleset.rules for t in r.concludes}
    return {c.split(":", 1)[0] for t in result.trace for c in t.concluded} & findings


# ---------------------------------------------------------------- the picture, generated from the rule set


def test_the_diagram_has_every_rule_fact_type_and_option_of_the_rule_set():
    rs = default_triager().ruleset
    p = graph.pathway(rs)
    assert {n.key for n in p.nodes.values() if n.kind in ("rule", "decision")} == {r.id for r in rs.rules}
    assert {n.key for n in p.nodes.values() if n.kind == "option"} == {c for r in rs.rules for c in r.emits}
    facts = {t for r in rs.rules for t in (*r.reads, *r.negates, *r.reads_all, *r.concludes)}
    assert {n.key for n in p.nodes.values() if n.kind in ("input", "finding")} == facts
    assert len(p.edges) == len(set(p.edges))


def test_every_edge_runs_left_to_right_and_no_boxes_overlap():
    """Layered by stage: each edge goes to a later column; boxes of a column never overlap."""
    p = graph.pathway(default_triager().ruleset)
    for e in p.edges:
        assert p.nodes[e.src].layer < p.nodes[e.dst].layer, e
    for col in p.columns:
        ys = sorted(p.nodes[n].y for n in col)
        assert all(b - a >= graph.NODE_H for a, b in itertools.pairwise(ys))


def test_a_toy_rule_set_is_drawn_from_its_own_rules():
    """Nothing is drawn by hand: another rule set gives its own nodes and words."""
    from tests.toy import chain_rules, toy_ruleset

    rs = toy_ruleset(chain_rules())
    page = pathway_html(rs)
    for r in rs.rules:
        assert f'data-rule="{r.id}"' in page
    assert "naltrexone" not in page.lower()


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_lit_route_is_the_trace(name):
    """Fired rules are the trace's rules; concluded findings its conclusions; options lit as the result says."""
    result, facts = triaged(name)
    rt = graph.route(result, default_triager().ruleset, facts)
    assert rt.fired == {t.rule for t in result.trace}
    assert rt.concluded == concluded_types(result)
    assert rt.recommended == {r.intervention for r in result.recommendations}
    assert set(rt.withheld) == {n.intervention for n in result.not_recommended}
    page = report_html(result, default_triager().ruleset, facts)
    lit = set(re.findall(r'<g class="node (?:rule|decision) rule-node lit fired" data-rule="([^"]+)"', page))
    assert lit == rt.fired


def test_a_block_is_a_rule_that_did_not_fire_because_a_fact_it_checks_absent_was_present():
    """The opioid user: the LDN offer is blocked by the contraindication the opioid concluded."""
    result, facts = triaged("opioid-user")
    rt = graph.route(result, default_triager().ruleset, facts)
    assert rt.blocked.get("LDN-OFFER") == {"ldn_contraindication"}
    assert not set(rt.blocked) & rt.fired


# ---------------------------------------------------------------- the pages


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_report_is_one_self_contained_page(name):
    """No script, no stylesheet or image fetched, a Content-Security-Policy that forbids fetching anything."""
    page = report(name)
    assert "<script" not in page and " src=" not in page and "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page
    assert re.findall(r'href="([^"#][^"]*)"', page) == [
        u for u in re.findall(r'href="([^"#][^"]*)"', page) if u.startswith("https://")
    ]  # only links to studies


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_report_holds_the_plan_what_was_withheld_the_route_and_the_evidence(name):
    result, _ = triaged(name)
    page = report(name)
    for section in ('id="plan"', 'id="withheld"', 'id="pathway"', 'id="evidence"'):
        assert section in page
    plan = page.split('id="plan"', 1)[1].split('id="withheld"', 1)[0]
    assert [m for m in re.findall(r'<tr data-intervention="([^"]+)"', plan)] == [
        r.intervention for r in result.recommendations
    ]
    held = page.split('id="withheld"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'<tr data-intervention="([^"]+)"', held) == list(
        dict.fromkeys(n.intervention for n in result.not_recommended)
    )
    assert all(f'id="ref-{cid}"' in page for cid in result.citations)
    if result.red_flags:
        assert page.index('class="banner"') < page.index('id="plan"')


def test_the_pathway_page_has_every_rule_and_no_patient_data():
    page = pathway_html(default_triager().ruleset)
    for r in default_triager().ruleset.rules:
        assert f'data-rule="{r.id}"' in page
    assert "example-" not in page and "<script" not in page


def test_rules_graph_writes_the_pathway(tmp_path):
    res = runner.invoke(app, ["rules", "graph"])
    assert res.exit_code == 0 and res.stdout.startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["rules", "graph", "--format", "svg", "--out", str(tmp_path / "p.svg")])
    assert res.exit_code == 0, res.output
    svg = (tmp_path / "p.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and 'data-rule="LDN-OFFER"' in svg


# ---------------------------------------------------------------- in a real browser

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the distribution, driven by Playwright (never `playwright install`).
    Missing: skipped on a developer's machine, a failure in CI (.ci/run installs it)."""
    exe = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if exe is None or sync_playwright is None:
        why = "headless Chromium (apt-get install chromium) and playwright (the test extra) are needed"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def _open(browser, path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    fetched: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, problems, fetched


@pytest.mark.browser
@pytest.mark.parametrize("name", EXAMPLES)
def test_the_report_renders_in_chromium_with_the_route_lit(browser, tmp_path, name):
    """The page opens with no console error and fetches nothing; the rules lit on screen are the trace's,
    drawn in another colour than the rest; a 1280x800 screenshot is written under the test's temp dir."""
    result, facts = triaged(name)
    path = tmp_path / f"{name}.html"
    path.write_text(report_html(result, default_triager().ruleset, facts), encoding="utf-8")
    page, problems, fetched = _open(browser, path)
    try:
        assert problems == []
        assert fetched == [path.as_uri()]
        fired = page.eval_on_selector_all("svg.pw g.node.fired", "els => els.map(e => e.dataset.rule)")
        assert sorted(fired) == sorted({t.rule for t in result.trace})
        facts_lit = page.eval_on_selector_all("svg.pw g.node.concluded", "els => els.map(e => e.dataset.fact)")
        assert set(facts_lit) == concluded_types(result)
        options = page.eval_on_selector_all("svg.pw g.node.recommended", "els => els.map(e => e.dataset.option)")
        assert sorted(options) == sorted(r.intervention for r in result.recommendations)
        fills = page.evaluate("""() => {
            const fill = sel => { const r = document.querySelector(sel + ' rect'); return r && getComputedStyle(r).fill; };
            return [fill('svg.pw g.node.fired'), fill('svg.pw g.rule-node:not(.fired):not(.blocked)')];
        }""")
        assert fills[0] and fills[1] and fills[0] != fills[1]
        if result.red_flags:  # the flag is on the first screen
            box = page.locator(".banner").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 800
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()


@pytest.mark.browser
def test_the_pathway_page_renders_in_chromium(browser, tmp_path):
    path = tmp_path / "pathway.html"
    path.write_text(pathway_html(default_triager().ruleset), encoding="utf-8")
    page, problems, fetched = _open(browser, path)
    try:
        assert problems == [] and fetched == [path.as_uri()]
        n = page.eval_on_selector_all("svg.pw g.rule-node", "els => els.length")
        assert n == len(default_triager().ruleset.rules)
        page.screenshot(path=str(tmp_path / "pathway.png"))
    finally:
        page.close()
