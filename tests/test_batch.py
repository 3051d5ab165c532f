"""`cli.py batch` and engine/channels/batch.py: one output line per input record, in input order, whatever
the records hold; error records name fields, never values; memory stays flat."""

from __future__ import annotations

import copy
import io
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from engine import Triager, default_triager
from engine.api import Rule, fact
from engine.channels import batch as b
from tests.conftest import load_example
from tests.toy import toy_ruleset

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]
runner = CliRunner()


def patients(n: int, prefix: str = "batch") -> list[dict]:
    """`n` copies of the shared examples in turn, each with its own id."""
    base = [load_example(name) for name in EXAMPLES]
    out = []
    for i in range(n):
        p = copy.deepcopy(base[i % len(base)])
        p["id"] = f"{prefix}-{i:05d}"
        out.append(p)
    return out


def write_ndjson(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def run(args, input=None):
    return runner.invoke(cli.app, ["batch", *args], input=input)


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


MALFORMED = [
    "not json at all",
    '{"id": "broken", "age": 40, "pain": {"duration_weeks": 3}',  # truncated
    '{"id": "x", "age": 40, "pain": {"duration_weeks": 3}, "shoe_size": 42}',  # unknown field
    '{"id": "x", "age": 400, "pain": {"duration_weeks": 3}}',  # out of range
    '{"id": "x", "age": 40, "pain": {"duration_weeks": 3}, "red_flags": ["gout"]}',  # unknown code
    "[1, 2, 3]",
    "",  # blank line
    "   ",  # whitespace only
]


@pytest.mark.slow
def test_ten_thousand_lines_with_one_percent_malformed_give_ten_thousand_lines_with_errors_at_their_line_numbers(
    tmp_path,
):
    """The issue's 'done when': 10,000 lines in (1% malformed), 10,000 lines out, each error record
    at its own line number, every other line the result for the patient on that line; exit 3."""
    rng = random.Random(5)
    good = patients(10_000)
    bad_lines = set(rng.sample(range(1, 10_001), 100))
    lines = []
    for n, p in enumerate(good, start=1):
        lines.append(rng.choice(MALFORMED) if n in bad_lines else json.dumps(p))
    src = write_ndjson(tmp_path / "day.ndjson", lines)
    out = tmp_path / "out.ndjson"
    res = run([src, "--out", str(out), "--workers", "2"])
    assert res.exit_code == b.EXIT_REJECTED, res.output
    rows = read_out(out)
    assert len(rows) == 10_000
    for n, row in enumerate(rows, start=1):
        if n in bad_lines:
            assert row["line"] == n and row["source"] == "day.ndjson"
            assert row["error"]["type"] == "input_error" and row["error"]["problems"]
        else:
            assert row["patient_id"] == good[n - 1]["id"]
    assert "10000 records · 9900 triaged · 100 rejected" in res.stderr


def test_each_result_line_is_the_api_result_for_that_patient(tmp_path):
    """A result line is the CONTRACT result: the same object as `triage()` gives for that patient."""
    ps = patients(10)
    out = tmp_path / "out.ndjson"
    res = run([write_ndjson(tmp_path / "in.ndjson", [json.dumps(p) for p in ps]), "--out", str(out), "-w", "1"])
    assert res.exit_code == 0, res.output
    t = default_triager()
    assert read_out(out) == [t.triage(p).model_dump(mode="json") for p in ps]


def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path):
    """Chunks triaged in 2 processes come back in input order: the output is identical byte for byte."""
    rng = random.Random(9)
    lines = [json.dumps(p) for p in patients(400)]
    for n in rng.sample(range(400), 8):
        lines[n] = rng.choice(MALFORMED)
    src = write_ndjson(tmp_path / "in.ndjson", lines)
    one, two = tmp_path / "one.ndjson", tmp_path / "two.ndjson"
    assert run([src, "--out", str(one), "--workers", "1"]).exit_code == b.EXIT_REJECTED
    assert run([src, "--out", str(two), "--workers", "2"]).exit_code == b.EXIT_REJECTED
    assert one.read_bytes() == two.read_bytes()


def test_blank_lines_are_records_rejected_as_empty_so_line_numbers_stay_aligned(tmp_path):
    """Line 2 is blank and line 3 is whitespace: both get an 'empty line' error; line 4 is still line 4."""
    a, d = patients(2)
    src = write_ndjson(tmp_path / "in.ndjson", [json.dumps(a), "", " \t", json.dumps(d)])
    out = tmp_path / "out.ndjson"
    assert run([src, "--out", str(out)]).exit_code == b.EXIT_REJECTED
    rows = read_out(out)
    assert [r.get("patient_id") for r in rows] == [a["id"], None, None, d["id"]]
    assert [r["line"] for r in rows[1:3]] == [2, 3]
    assert all(r["error"]["problems"][0]["problem"] == "empty line" for r in rows[1:3])


def test_a_last_line_without_a_newline_is_a_record(tmp_path):
    """'a\\nb' holds two records, not one."""
    a, d = patients(2)
    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps(a) + "\n" + json.dumps(d), encoding="utf-8")
    out = tmp_path / "out.ndjson"
    assert run([str(src), "--out", str(out)]).exit_code == 0
    assert [r["patient_id"] for r in read_out(out)] == [a["id"], d["id"]]


def test_a_directory_is_read_in_file_name_order_and_errors_name_the_file(tmp_path):
    """*.json files only, sorted by name; an error record's source is the file name, its line the position."""
    d = tmp_path / "today"
    d.mkdir()
    ps = patients(3)
    (d / "b.json").write_text(json.dumps(ps[1]))
    (d / "a.json").write_text(json.dumps(ps[0]))
    (d / "c-broken.json").write_text('{"id": "x"')
    (d / "d.json").write_text(json.dumps(ps[2]))
    (d / "notes.txt").write_text("not a patient")
    out = tmp_path / "out.ndjson"
    res = run([str(d), "--out", str(out), "--workers", "2"])
    assert res.exit_code == b.EXIT_REJECTED, res.output
    rows = read_out(out)
    assert len(rows) == 4
    assert [r.get("patient_id") for r in rows] == [ps[0]["id"], ps[1]["id"], None, ps[2]["id"]]
    assert rows[2]["line"] == 3 and rows[2]["source"] == "c-broken.json"


def test_stdin_is_read_as_ndjson(tmp_path):
    """`-` reads NDJSON from stdin; errors say their source is <stdin>."""
    a = patients(1)[0]
    out = tmp_path / "out.ndjson"
    res = run(["-", "--out", str(out), "-w", "1"], input=json.dumps(a) + "\n{oops\n")
    assert res.exit_code == b.EXIT_REJECTED, res.output
    rows = read_out(out)
    assert rows[0]["patient_id"] == a["id"]
    assert rows[1]["line"] == 2 and rows[1]["source"] == "<stdin>"


def test_every_record_triaged_exits_0_and_the_summary_counts_recommendations_and_kinds(tmp_path):
    """Exit 0; the stderr summary counts patients, each recommendation and each not-recommended kind."""
    ps = patients(5)
    out = tmp_path / "out.ndjson"
    res = run([write_ndjson(tmp_path / "in.ndjson", [json.dumps(p) for p in ps]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    t = default_triager()
    results = [t.triage(p) for p in ps]
    n_ldn = sum(r.recommended("low_dose_naltrexone") is not None for r in results)
    n_deferred = sum(n.kind == "deferred" for r in results for n in r.not_recommended)
    assert "5 records · 5 triaged · 0 rejected · 0 failed" in res.stderr
    assert f"low_dose_naltrexone {n_ldn:>8}".replace(" ", "") in res.stderr.replace(" ", "")
    assert f"deferred{n_deferred}" in res.stderr.replace(" ", "")
    assert res.stdout == ""


def test_an_input_that_does_not_exist_exits_2_and_writes_nothing(tmp_path):
    """INPUT itself unusable: exit 2 naming INPUT; no output file is created."""
    out = tmp_path / "out.ndjson"
    res = run([str(tmp_path / "missing.ndjson"), "--out", str(out)])
    assert res.exit_code == 2
    assert "INPUT" in res.stderr
    assert not out.exists()


def test_error_records_never_repeat_a_patients_values(tmp_path):
    """Rejected records name fields and what is allowed; the values sent (a name, an id, a number) never appear."""
    lines = [
        '{"id": "Jane Q. Example", "age": 999, "pain": {"duration_weeks": 3}}',
        '{"id": "Jane Q. Example", "age": 40, "pain": {"duration_weeks": 3}, "surname": "Examplesson"}',
        '{"id": "Jane Q. Example", "age": 40, "pain": {"duration_weeks": 3}, "medications": ["' + "Z" * 1200 + '"]}',
        '{"id": "Jane Q. Example", "age": 40, "pain": {"duration_weeks": 3}, "sex": "Examplesson"}',
    ]
    out = tmp_path / "out.ndjson"
    res = run([write_ndjson(tmp_path / "in.ndjson", lines), "--out", str(out)])
    assert res.exit_code == b.EXIT_REJECTED
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 4
    for secret in ("Jane", "999", "Examplesson", "ZZZZ"):
        assert secret not in text
        assert secret not in res.stderr


def test_an_overlong_line_is_rejected_without_being_read_whole_and_the_next_line_is_triaged(tmp_path):
    """A line beyond MAX_INPUT_BYTES is one rejected record; the reader skips it and goes on."""
    a = patients(1)[0]
    src = tmp_path / "in.ndjson"
    src.write_bytes(b'{"id": "' + b"x" * (b.MAX_INPUT_BYTES + 10) + b'"}\n' + json.dumps(a).encode() + b"\n")
    out = tmp_path / "out.ndjson"
    assert run([str(src), "--out", str(out)]).exit_code == b.EXIT_REJECTED
    rows = read_out(out)
    assert rows[0]["line"] == 1 and "longer than" in rows[0]["error"]["problems"][0]["problem"]
    assert rows[1]["patient_id"] == a["id"]


def test_a_record_failing_inside_the_engine_gets_an_internal_error_record_and_the_others_go_on(monkeypatch):
    """A rule-set defect on one record: that line says internal_error (rule id, no values), the
    others are triaged, and the exit code is 1."""

    def fragile(ctx):
        if ctx.fact("s")["score"] == 3:
            raise ValueError("secret-value-3")
        ctx.recommend("treat", ["ok"])

    toy = Triager(
        toy_ruleset([Rule("TOY-FRAGILE", "fails on 3", when={"s": fact("subject")}, action=fragile, emits=("treat",))])
    )
    monkeypatch.setattr(b, "_triager", toy)
    records = [(n, "in", json.dumps({"id": f"p{n}", "score": n}).encode(), None) for n in range(1, 6)]
    sink = io.BytesIO()
    summary = b.run_batch(records, sink, workers=1)
    rows = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert [r.get("patient_id") for r in rows] == ["p1", "p2", None, "p4", "p5"]
    assert rows[2]["error"] == {
        "type": "internal_error",
        "exception": "InferenceError",
        "rule": "TOY-FRAGILE",
        "problem": "the engine failed on this record; no result was produced",
    }
    assert "secret-value-3" not in sink.getvalue().decode()
    assert (summary.triaged, summary.failed, summary.exit_code()) == (4, 1, b.EXIT_INTERNAL)


@pytest.mark.parametrize("workers", [1, 2])
def test_input_is_read_only_a_bounded_distance_ahead_of_the_output(workers):
    """Memory stays flat: however long the input, records are pulled at most a few chunks ahead of
    what has been written (neither the input nor the results are ever held whole)."""
    template = json.dumps(patients(1)[0]).encode()
    pulled = 0
    worst = 0

    def records():
        nonlocal pulled
        for n in range(1, 1501):
            pulled += 1
            yield n, "gen", template, None

    class Sink(io.RawIOBase):
        written = 0

        def write(self, data):
            nonlocal worst
            if data == b"\n":
                self.written += 1
                worst = max(worst, pulled - self.written)
            return len(data)

    sink = Sink()
    summary = b.run_batch(records(), sink, workers=workers)
    assert summary.triaged == sink.written == 1500
    assert worst <= b.CHUNK * (workers * b.IN_FLIGHT_PER_WORKER + 1)
