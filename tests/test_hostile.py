"""The hostile-input corpus (tests/hostile/): every file is rejected cleanly.

Clean means: exit code 2, a message on stderr that names the problem (the field and what is
wrong), nothing on stdout, never a traceback, never a crash of the process. Every case runs
through the CLI in-process (typer's CliRunner); a sample, the largest included, also runs as a
real `python cli.py triage FILE` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import EXIT_INPUT, EXIT_OK, app
from engine.kernel.inputs import MAX_INPUT_BYTES
from tests.hostile import make_corpus as corpus

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
BY_NAME = {c.name: c for c in corpus.CASES}


@pytest.fixture(scope="module")
def large_files(tmp_path_factory) -> dict[str, Path]:
    """The large cases, generated once into a temporary directory (never committed)."""
    return corpus.write_large(tmp_path_factory.mktemp("hostile-large"))


def path_of(case: corpus.Case, large_files: dict[str, Path]) -> Path:
    return large_files[case.name] if case.large else corpus.CORPUS_DIR / case.name


def triage_cli(path: Path | str):
    return runner.invoke(app, ["triage", str(path), "--format", "json"])


# ------------------------------------------------------------------ the corpus itself


def test_the_corpus_has_at_least_30_cases():
    """The issue asks for at least 30 hostile files; each case has a distinct file name."""
    assert len(corpus.CASES) >= 30
    assert len(BY_NAME) == len(corpus.CASES)


def test_the_committed_corpus_is_what_the_generator_writes():
    """tests/hostile/corpus/ holds exactly the small cases, byte for byte (rerun make_corpus.py after a change)."""
    on_disk = {p.name: p.read_bytes() for p in corpus.CORPUS_DIR.glob("*.json")}
    assert on_disk == {c.name: c.data() for c in corpus.SMALL}


def test_no_large_case_is_committed():
    """The 50 MB file, the 1 MB string and the other large cases exist only at test time."""
    assert not [c.name for c in corpus.LARGE if (corpus.CORPUS_DIR / c.name).exists()]


def test_the_base_patient_of_the_corpus_is_valid():
    """Every case breaks one valid patient: that patient itself triages (exit 0)."""
    res = runner.invoke(app, ["triage", "-", "--format", "json"], input=corpus.VALID)
    assert res.exit_code == EXIT_OK, res.stderr
    assert json.loads(res.stdout)["patient_id"] == "hostile-base"


# ------------------------------------------------------------------ every case, in-process


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_hostile_file_exits_2_with_a_message_naming_the_problem(name, large_files):
    """`triage FILE` rejects the case: exit 2, 'input rejected' and the expected field and problem
    on stderr, an empty stdout, no traceback."""
    case = BY_NAME[name]
    res = triage_cli(path_of(case, large_files))
    assert res.exit_code == EXIT_INPUT, (res.exit_code, res.stderr, res.exception)
    assert res.stdout == ""
    assert "input rejected" in res.stderr
    for text in case.expect:
        assert text in res.stderr, (text, res.stderr[:2000])
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------------ real processes


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "triage", *args],
        input=stdin,
        check=False,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    "name",
    [
        "file-50mb.json",
        "nested-100k-brackets.json",
        "string-1mb.json",
        "latin1.json",
        "nan.json",
        "thousands-of-digits.json",
        "truncated-object.json",
        "duplicate-key.json",
    ],
)
def test_a_real_process_rejects_the_file_cleanly(name, large_files):
    """`python cli.py triage FILE` as a process: exit 2, the problem named, no traceback, no output."""
    case = BY_NAME[name]
    proc = run_cli(str(path_of(case, large_files)), "--format", "json")
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == EXIT_INPUT, stderr
    assert proc.stdout == b""
    assert all(text in stderr for text in case.expect), stderr
    assert "Traceback" not in stderr


def test_a_50_mb_stream_on_stdin_is_rejected_at_the_patient_size_limit(large_files):
    """`triage - --input json` with 50 MB on stdin: exit 2 naming MAX_INPUT_BYTES (the reader stops
    one byte past it)."""
    proc = run_cli("-", "--input", "json", stdin=large_files["file-50mb.json"].read_bytes())
    assert proc.returncode == EXIT_INPUT
    assert f"larger than {MAX_INPUT_BYTES} bytes" in proc.stderr.decode()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_file_is_rejected():
    """/dev/zero never ends: the CLI stops reading one byte past its limit and rejects it (exit 2)."""
    proc = run_cli("/dev/zero")
    assert proc.returncode == EXIT_INPUT
    assert "larger than" in proc.stderr.decode()


def test_a_byte_order_mark_before_valid_json_is_accepted(tmp_path):
    """A UTF-8 byte-order mark (as some editors write) before a valid patient: triaged, exit 0."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + corpus.VALID)
    proc = run_cli(str(path), "--format", "json")
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    assert json.loads(proc.stdout)["patient_id"] == "hostile-base"


# ------------------------------------------------------------------ the size limit


def test_a_patient_of_exactly_max_input_bytes_is_accepted(tmp_path):
    """The stated limit is inclusive: a valid patient padded to MAX_INPUT_BYTES (256 KiB) triages."""
    path = tmp_path / "at-limit.json"
    path.write_bytes(corpus.VALID + b" " * (MAX_INPUT_BYTES - len(corpus.VALID)))
    assert path.stat().st_size == MAX_INPUT_BYTES
    assert triage_cli(path).exit_code == EXIT_OK


def test_the_corpus_states_the_same_limit_as_the_engine():
    """make_corpus.py repeats MAX_INPUT_BYTES so it runs standalone: the two must agree."""
    assert corpus.MAX_INPUT_BYTES == MAX_INPUT_BYTES == 256 * 1024


# ------------------------------------------------------------------ known bugs found by the corpus


def test_a_height_of_1e_05_cm_is_rejected_as_input():
    """1e-05 as a height is not a human height: rejected with exit 2 naming height_cm."""
    res = triage_cli_bytes(corpus.raw("height_cm", "1e-05"))
    assert res.exit_code == EXIT_INPUT, res.stderr
    assert "height_cm" in res.stderr


def triage_cli_bytes(data: bytes):
    return runner.invoke(app, ["triage", "-", "--format", "json"], input=data)
