"""`cli.py triage`: formats, exit codes, errors that name the field, determinism."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from tests.conftest import ROOT, example_path, load_example

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
runner = CliRunner()


def run(args, input=None):
    return runner.invoke(cli.app, args, input=input)


def write(tmp_path: Path, data, name="p.json") -> str:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(p)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shared_example_triages_in_json_with_graded_resolving_evidence(name):
    """Exit 0, and every recommendation has SORT, certainty and citations that resolve (urgent referral: a reason)."""
    res = run(["triage", str(example_path(name)), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["patient_id"] == load_example(name)["id"]
    assert out["recommendations"]
    for rec in out["recommendations"]:
        if rec["category"] == "urgent_referral":
            assert rec["rationale"]
            continue
        ev = rec["evidence"]
        assert ev["sort"] in "ABC" and ev["certainty"] and ev["citations"]
        assert all(c in out["citations"] for c in ev["citations"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shared_example_triages_in_text_on_one_screen(name):
    """The default text view: the patient first, what is recommended and what is not, in 80x24."""
    res = run(["triage", str(example_path(name))])
    assert res.exit_code == 0, res.output
    lines = res.stdout.rstrip("\n").splitlines()
    assert lines[0].startswith(f"Patient {load_example(name)['id']}")
    assert "Recommended" in res.stdout and "Not recommended" in res.stdout
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shared_example_triages_in_html(name):
    """`--format html` prints one self-contained page: no script, nothing loaded from elsewhere."""
    res = run(["triage", str(example_path(name)), "--format", "html"])
    assert res.exit_code == 0, res.output
    page = res.stdout
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and " src=" not in page and "<link" not in page
    assert load_example(name)["id"] in page


def test_markdown_and_html_read_fhir_input_too():
    """A FHIR Bundle gives the same report as the patient file it maps to."""
    from tests.conftest import ROOT

    bundle = ROOT / "tests" / "fhir" / "opioid-user.json"
    for fmt in ("markdown", "html", "text"):
        res = run(["triage", str(bundle), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert "example-opioid-user" in res.stdout or "opioid-user" in res.stdout


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_json_matches_the_embedding_api(name):
    """`triage FILE --format json` (what scripts read) is `triage(patient)` itself; with `--changes` it is
    that result passed through `what_would_change` (what would change each withheld escalation)."""
    from engine import default_triager, triage, what_would_change

    patient, t = load_example(name), default_triager()
    res = run(["triage", str(example_path(name)), "--format", "json"])
    assert json.loads(res.stdout) == triage(patient).model_dump(mode="json")
    assert not any("what_would_change" in n for n in json.loads(res.stdout)["not_recommended"])
    res = run(["triage", str(example_path(name)), "--format", "json", "--changes"])
    assert json.loads(res.stdout) == what_would_change(t, patient, t.triage(patient)).model_dump(mode="json")
    assert any("what_would_change" in n for n in json.loads(res.stdout)["not_recommended"])


def test_the_same_input_gives_byte_identical_json_across_processes():
    """Two separate processes (different hash seeds) print the same bytes."""
    outs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "cli.py", "triage", str(example_path("neuropathic-persistent")), "--format", "json"],
            cwd=ROOT,
            capture_output=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()[-500:]
        outs.add(done.stdout)
    assert len(outs) == 1


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_result_does_not_depend_on_the_order_of_input_lists(name):
    from engine import triage

    data = load_example(name)
    base = triage(data).model_dump_json()
    rng = random.Random(7)
    for _ in range(5):
        shuffled = json.loads(json.dumps(data))
        for key in ("prior_treatments", "exam_findings", "comorbidities", "medications", "red_flags"):
            rng.shuffle(shuffled[key])
        rng.shuffle(shuffled["pain"]["neuropathic_features"])
        shuffled = dict(rng.sample(list(shuffled.items()), len(shuffled)))
        assert triage(shuffled).model_dump_json() == base


def test_stdin_is_read_with_a_dash():
    res = run(["triage", "-", "--format", "json"], input=example_path("new-onset").read_text())
    assert res.exit_code == 0
    assert json.loads(res.stdout)["patient_id"] == "example-new-onset"


BAD = [
    ("malformed JSON", b'{"id": "x", "age": 4', "(document)"),
    ("empty file", b"", "(document)"),
    ("wrong type", {"id": "x", "age": "fifty", "pain": {"duration_weeks": 3}}, "age"),
    (
        "unknown code",
        {"id": "x", "age": 50, "pain": {"duration_weeks": 3}, "red_flags": ["gout_flare"]},
        "red_flags[0]",
    ),
    (
        "unknown field",
        {"id": "x", "age": 50, "pain": {"duration_weeks": 3}, "favourite_colour": "red"},
        "favourite_colour",
    ),
    ("negative number", {"id": "x", "age": 50, "pain": {"duration_weeks": -1}}, "pain.duration_weeks"),
    (
        "NaN",
        b'{"id": "x", "age": 50, "pain": {"duration_weeks": NaN}}',
        "pain.duration_weeks: NaN is not a number JSON allows",
    ),
    ("missing field", {"id": "x", "age": 50}, "pain"),
    ("missing nested field", {"id": "x", "age": 50, "pain": {}}, "pain.duration_weeks"),
    ("duplicate key", b'{"id": "x", "id": "y", "age": 50, "pain": {"duration_weeks": 3}}', "id"),
    ("array not object", b"[1, 2]", "(document)"),
    (
        "bad treatment response",
        {
            "id": "x",
            "age": 50,
            "pain": {"duration_weeks": 3},
            "prior_treatments": [{"treatment": "insoles", "weeks": 6, "response": "meh"}],
        },
        "prior_treatments[0].response",
    ),
]


@pytest.mark.parametrize("what,data,field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_naming_the_field_without_a_traceback(tmp_path, what, data, field):
    res = run(["triage", write(tmp_path, data), "--format", "json"])
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert field in res.stderr
    assert "Traceback" not in res.output


def test_an_unknown_code_error_lists_the_allowed_codes(tmp_path):
    res = run(
        ["triage", write(tmp_path, {"id": "x", "age": 50, "pain": {"duration_weeks": 3}, "red_flags": ["gout_flare"]})]
    )
    assert "suspected_charcot" in res.stderr


def test_an_unknown_field_error_lists_the_allowed_fields(tmp_path):
    res = run(["triage", write(tmp_path, {"id": "x", "age": 50, "pain": {"duration_weeks": 3, "colour": 1}})])
    assert "pain.colour" in res.stderr and "neuropathic_features" in res.stderr


def test_a_missing_file_exits_2():
    res = run(["triage", "/nonexistent/patient.json"])
    assert res.exit_code == 2
    assert "no such file" in res.stderr


def test_a_real_process_exits_2_with_no_traceback_on_bad_json(tmp_path):
    done = subprocess.run(
        [sys.executable, "cli.py", "triage", write(tmp_path, b"{nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "not valid JSON" in done.stderr


def test_the_schema_command_prints_the_input_json_schema():
    res = run(["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    assert set(schema["required"]) == {"id", "age", "pain"}
    assert "suspected_charcot" in json.dumps(schema)
