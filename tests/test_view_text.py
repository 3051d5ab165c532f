"""The terminal view (engine/views/text.py) and the markdown note: one screen at 80x24, the flag
first, one line per recommendation and per withheld intervention, unknowns in words next to what
they affect, everything with --details; what would change a withheld option wherever the result
carries it. Structure and behaviour are tested, not the rule set's wording."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from typer.testing import CliRunner

from cli import app
from engine import Result, default_triager
from engine.kernel.models import Change, Notice, Unknown
from engine.views.common import digest, plain_words, unknown_text
from engine.views.markdown import result_markdown
from engine.views.text import compact_lines, full_lines, plain
from tests.conftest import example_path, load_example
from tests.strategies import any_patient, flagged_patient

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
runner = CliRunner()


def triaged(name_or_patient) -> Result:
    p = load_example(name_or_patient) if isinstance(name_or_patient, str) else name_or_patient
    return default_triager().triage(p)


def screen(result: Result, width: int = 80, height: int = 24) -> list[str]:
    return plain(compact_lines(result, default_triager().ruleset, width, height)).splitlines()


def with_changes(result: Result, changes: dict[str, list[Change]]) -> Result:
    """The result with what_would_change set on the entries of the given interventions ([] elsewhere)."""
    entries = [
        n.model_copy(update={"what_would_change": changes.get(n.intervention, [])}) for n in result.not_recommended
    ]
    return result.model_copy(update={"not_recommended": entries})


def label(code: str) -> str:
    return default_triager().ruleset.interventions[code].label


# ---------------------------------------------------------------- one screen


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shared_example_fits_80_by_24_through_the_cli(name):
    """`triage FILE` at 80 columns prints at most 24 lines, none wider than 80 cells."""
    res = runner.invoke(app, ["triage", str(example_path(name))], env={"COLUMNS": "80", "LINES": "24"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.rstrip("\n").splitlines()
    assert len(lines) <= 24, "\n".join(lines)
    assert max(cell_len(line) for line in lines) <= 80


def test_the_red_flag_comes_first_and_the_urgent_referral_right_under_it():
    """With a red flag, the banner is the first thing under the patient line, and the first
    recommendation is the urgent referral: nothing scrolls them away."""
    result = triaged("red-flag-charcot")
    lines = screen(result)
    flag = default_triager().ruleset.word("flag").upper()
    assert lines[1].startswith(flag)
    first_rec = next(line for line in lines if line.startswith(" ✓ "))
    urgent = next(r for r in result.recommendations if r.category == "urgent_referral")
    assert label(urgent.intervention) in first_rec


@pytest.mark.parametrize("name", EXAMPLES)
def test_one_line_per_recommendation_and_per_withheld_intervention(name):
    """Each recommendation starts exactly one ✓ line, each withheld intervention exactly one ✗ line
    (its reasons merged), in the result's order."""
    result = triaged(name)
    lines = screen(result)
    recs = [line for line in lines if line.startswith(" ✓ ")]
    held = [line for line in lines if line.startswith(" ✗ ")]
    assert len(recs) == len(result.recommendations)
    assert all(label(r.intervention) in line for r, line in zip(result.recommendations, recs, strict=False))
    codes = list(dict.fromkeys(n.intervention for n in result.not_recommended))
    assert len(held) == len(codes)
    assert all(line.startswith(f" ✗ {label(c)} — ") for c, line in zip(codes, held, strict=False))


def test_an_option_withheld_for_several_reasons_is_listed_once_with_each_kind():
    """Under a red flag an escalation is suppressed and deferred (or not indicated): one line,
    the most decisive kind first; --details lists every kind with its reason."""
    result = triaged("red-flag-charcot")
    multi = [
        c
        for c in dict.fromkeys(n.intervention for n in result.not_recommended)
        if len({n.kind for n in result.withheld(c)}) > 1
    ]
    assert multi
    lines = screen(result)
    full = plain(full_lines(result, default_triager().ruleset))
    for code in multi:
        mine = [line for line in lines if line.startswith(f" ✗ {label(code)} — ")]
        assert len(mine) == 1 and mine[0].split(" — ", 1)[1].startswith(result.withheld(code)[0].kind.replace("_", " "))
        for n in result.withheld(code):
            assert n.rule in full


def test_an_unknown_is_written_beside_the_entry_it_affects():
    """An unknown blocking one listed intervention is shown, in words, right under that entry's line."""
    result = triaged("new-onset")
    u = next(u for u in result.unknowns if len(u.blocks) == 1)
    lines = screen(result)
    at = next(i for i, line in enumerate(lines) if line.startswith(f" ✗ {label(u.blocks[0])} — "))
    below = lines[at + 1 : at + 4]
    assert any(line.startswith("   · not known:") for line in below)
    assert not any(u.fact + ":" in line for line in lines)  # never the machine key


def test_a_caution_stands_under_the_recommendation_it_qualifies():
    """A pregnancy caution set on LDN for this patient is shown under the LDN line (not screens below)."""
    p = load_example("neuropathic-persistent")
    p["pregnant"] = True
    result = triaged(p)
    rec = result.recommended("low_dose_naltrexone")
    assert rec is not None and rec.details.get("cautions")
    lines = screen(result)
    at = next(i for i, line in enumerate(lines) if line.startswith(f" ✓ {label('low_dose_naltrexone')}"))
    assert any(line.startswith("   · cautions:") for line in lines[at + 1 : at + 5])


def test_unknowns_from_a_fhir_source_are_in_words():
    """A FHIR mapping's unknown names its record path; the views write the kind of record instead."""
    u = Unknown(
        fact="fhir:pain.severity",
        reason="prefetch.observations.entry[16].resource (Observation).value[x], "
        "prefetch.observations.entry[2].resource (Observation).value[x]: values differ; none was used",
        blocks=["weight_management"],
        rule="FHIR-MAP",
    )
    text = unknown_text(None, u)
    assert "entry[" not in text and "prefetch" not in text
    assert text == "pain severity: 2 observation records: values differ; none was used"
    assert (
        plain_words("Bundle.entry[3].resource (MedicationStatement).status: unknown")
        == "a medication statement record: unknown"
    )


def test_details_show_everything_the_result_holds():
    """--details: every detail value, every reason, every unknown and every citation id, and the digest."""
    result = triaged("neuropathic-persistent")
    text = plain(full_lines(result, default_triager().ruleset, width=200))
    for r in result.recommendations:
        for why in r.rationale:
            assert why in text
    for n in result.not_recommended:
        assert n.reason in text
    assert all(cid in text for cid in result.citations)
    assert result.ruleset.digest[:12] in text
    ldn = result.recommended("low_dose_naltrexone")
    assert ldn.details["dose"] in text


def test_details_through_the_cli():
    res = runner.invoke(app, ["triage", str(example_path("opioid-user")), "--details"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    assert "Sources" in res.stdout and "tramadol" in res.stdout


# ---------------------------------------------------------------- what would change


def test_what_would_change_is_indented_under_the_withheld_line():
    """The nearest change stands under the withheld line (with how many other ways), every change with --details."""
    result = with_changes(
        triaged("new-onset"),
        {
            "low_dose_naltrexone": [
                Change(
                    text="pain reaches 12 weeks (in 9 weeks) after a failed 6-week trial",
                    edits=[{"field": "pain.duration_weeks", "to": 12}],
                ),
                Change(text="a second change", edits=[{"field": "x", "to": 1}]),
            ]
        },
    )
    lines = screen(result, height=40)
    at = next(i for i, line in enumerate(lines) if line.startswith(f" ✗ {label('low_dose_naltrexone')} — "))
    change = next(line for line in lines[at + 1 : at + 5] if "→" in line)
    assert change.startswith("   → ") and "pain reaches 12 weeks" in change and "(or 1 other way)" in change
    full = plain(full_lines(result, default_triager().ruleset, width=200))
    assert "a second change" in full


def test_what_would_change_in_json_markdown_and_html():
    """JSON dumps it as the model does; markdown and HTML list every change under the entry."""
    from engine.views.html import report_html

    result = with_changes(
        triaged("opioid-user"),
        {
            "low_dose_naltrexone": [
                Change(text="the opioid is stopped for 10 days", edits=[{"field": "medications", "remove": "tramadol"}])
            ]
        },
    )
    dumped = result.model_dump(mode="json")
    ldn = next(n for n in dumped["not_recommended"] if n["intervention"] == "low_dose_naltrexone")
    assert ldn["what_would_change"] == [
        {"text": "the opioid is stopped for 10 days", "edits": [{"field": "medications", "remove": "tramadol"}]}
    ]
    assert "would be an option if: the opioid is stopped for 10 days" in result_markdown(
        result, default_triager().ruleset
    )
    page = report_html(result, default_triager().ruleset)
    assert '<li class="change">the opioid is stopped for 10 days</li>' in page
    # without the search, nothing is said about it
    plain_result = triaged("opioid-user")
    assert "what_would_change" not in json.dumps(plain_result.model_dump(mode="json"))
    assert "option if" not in result_markdown(plain_result, default_triager().ruleset)


def test_the_cli_calls_the_search_hook_when_it_exists(monkeypatch):
    """triage calls engine.kernel.changes.what_would_change(triager, patient, result) (here a stand-in)
    for json when asked with --changes, and not with --no-changes (json's default, for scripts)."""
    import sys
    import types

    calls = []

    def what_would_change(triager, patient, result):
        calls.append(patient["id"])
        return with_changes(
            result, {n.intervention: [Change(text="stand-in change", edits=[])] for n in result.not_recommended}
        )

    module = types.ModuleType("engine.kernel.changes")
    module.what_would_change = what_would_change
    monkeypatch.setitem(sys.modules, "engine.kernel.changes", module)
    import engine.kernel

    monkeypatch.setattr(engine.kernel, "changes", module, raising=False)
    res = runner.invoke(app, ["triage", str(example_path("new-onset")), "-f", "json", "--changes"])
    assert res.exit_code == 0, res.output
    assert calls == ["example-new-onset"]
    assert all(
        n["what_would_change"] == [{"text": "stand-in change", "edits": []}]
        for n in json.loads(res.stdout)["not_recommended"]
    )
    res = runner.invoke(app, ["triage", str(example_path("new-onset")), "-f", "json", "--no-changes"])
    assert calls == ["example-new-onset"] and "what_would_change" not in res.stdout


# ---------------------------------------------------------------- notices, genericity


def test_a_notice_is_shown_next_to_what_it_affects_or_on_top():
    """A notice affecting one listed entry stands under it; one affecting nothing listed stands on top."""
    result = triaged("new-onset")
    result = result.model_copy(
        update={
            "notices": [
                Notice(code="a", text="notice about the pad", affects=["metatarsal_pad"], rule="X"),
                Notice(code="b", text="notice about the whole result", affects=[], rule="Y"),
            ]
        }
    )
    lines = screen(result)
    assert lines[1].startswith(" ! note: notice about the whole result")
    at = next(i for i, line in enumerate(lines) if line.startswith(f" ✓ {label('metatarsal_pad')}"))
    assert lines[at + 1].startswith("   · note: notice about the pad")


def test_the_views_know_no_clinical_term():
    """A toy rule set renders with its own words: the views take categories, labels and wording from it."""
    from engine.kernel.triage import Triager
    from tests.toy import chain_rules, toy_ruleset

    rs = toy_ruleset(chain_rules())
    result = Triager(rs).triage({"id": "t", "score": 7})
    text = plain(compact_lines(result, rs)) + plain(full_lines(result, rs)) + result_markdown(result, rs)
    assert "treat" in text
    for word in ("naltrexone", "metatars", "red flag", "forefoot", "RED FLAG"):
        assert word not in text


# ---------------------------------------------------------------- markdown


def test_markdown_keeps_doses_cautions_and_the_opioid_check_for_what_is_recommended():
    """The markdown note lists every detail of a recommendation: the LDN dose, its cautions and the
    medications to check for opioid content, and what is not known about it, under the LDN entry."""
    p = load_example("neuropathic-persistent")
    del p["pregnant"]  # a woman of 54 whose pregnancy status is not recorded: a caution and an unknown on LDN
    p["medications"] = ["sertraline"]
    result = triaged(p)
    rec = result.recommended("low_dose_naltrexone")
    text = result_markdown(result, default_triager().ruleset)
    section = text.split(f"- **{label('low_dose_naltrexone')}**", 1)[1].split("\n- **", 1)[0]
    assert "dose:" in section and "cautions:" in section and "opioid check: no opioid exposure recorded" in section
    assert "**not known**" in section
    assert rec.details["dose"] in section


def test_markdown_lists_each_withheld_intervention_once():
    result = triaged("red-flag-charcot")
    text = result_markdown(result, default_triager().ruleset)
    withheld = text.split("### Not recommended", 1)[1].split("###", 1)[0]
    for code in dict.fromkeys(n.intervention for n in result.not_recommended):
        assert withheld.count(f"- **{label(code)}**") == 1


# ---------------------------------------------------------------- the seeded cohort


@given(any_patient())
def test_a_patient_without_a_red_flag_and_at_most_6_withheld_options_fits_24_lines(patient):
    """Property: no red flag and at most 6 withheld options: the default view fits 80x24."""
    patient["red_flags"] = []
    result = triaged(patient)
    d = digest(result, default_triager().ruleset)
    lines = screen(result)
    assert max(cell_len(line) for line in lines) <= 80
    if len(d.withheld) <= 6:
        assert len(lines) <= 24, "\n".join(lines)


@given(flagged_patient())
def test_a_flagged_patient_sees_the_flag_first_within_80_columns(patient):
    """Property: with a red flag, line 2 is the banner; every line fits 80 columns; every
    recommendation and withheld option has its line."""
    result = triaged(patient)
    lines = screen(result)
    flag = default_triager().ruleset.word("flag").upper()
    assert lines[1].startswith(flag)
    assert max(cell_len(line) for line in lines) <= 80
    assert sum(1 for line in lines if line.startswith(" ✓ ")) == len(result.recommendations)
    assert sum(1 for line in lines if re.match(r" ✗ ", line)) == len({n.intervention for n in result.not_recommended})


_MD_PIECES = list("ab1 _*`[]()<>#|~&;!\\-+.:=é\n\t") + ["&amp;", "&#38;", "__", "**", "~~", "x_y", "<b>", "[a](b)"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_MD_PIECES), max_size=30).map("".join))
def test_escaped_text_renders_as_itself_in_commonmark(text: str) -> None:
    """`md_escape` (the markdown report's and the CDS Hooks cards' one escaping): rendered inline as
    CommonMark with strikethrough, any text is plain text again (white space runs one space), with no
    emphasis, code, link, HTML or entity made of it."""
    from markdown_it import MarkdownIt

    from engine.views import cds_hooks, markdown
    from engine.views.common import md_escape

    escaped = md_escape(text)
    assert markdown.esc(text) == cds_hooks._md(text) == escaped
    tokens = MarkdownIt("commonmark").enable(["strikethrough", "table"]).parseInline(escaped)[0].children
    assert {t.type for t in tokens} <= {"text"}, escaped
    assert "".join(t.content for t in tokens) == " ".join(text.split())


def test_an_underscore_inside_a_word_is_left_readable() -> None:
    from engine.views.common import md_escape

    assert md_escape("metatarsal_pad") == "metatarsal_pad"
    assert md_escape("_x_ __init__ a_") == "\\_x\\_ \\_\\_init\\_\\_ a\\_"
