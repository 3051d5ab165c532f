"""`cli.py triage FILE --format json` takes a fast path (issue: speed): no typer, click or rich, no
pydantic plugin scan. It must print exactly what the full command prints, exit as it exits, and
leave every error to it (exit 2 naming the field, never a traceback).

The full command is reached with the same request spelled so that the fast path declines it
(`--input auto` is the default, so the answer must be the same).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "tests" / "examples").glob("*.json"))
SLOW_ONLY = {"typer", "click", "rich", "fhir", "importlib.metadata", "engine.channels.fhir"}


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, cwd=str(ROOT), input=stdin, timeout=120
    )


def full(file: str) -> subprocess.CompletedProcess:
    return cli("triage", file, "--format", "json", "--input", "auto")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_fast_path_prints_what_the_full_command_prints(path):
    want = full(str(path))
    assert want.returncode == 0
    for spelling in (
        ["triage", str(path), "--format", "json"],
        ["triage", str(path), "-f", "json"],
        ["triage", "--format", "json", str(path)],
        ["triage", "-f", "json", str(path)],
    ):
        got = cli(*spelling)
        assert (got.returncode, got.stdout, got.stderr) == (0, want.stdout, b""), spelling


def test_the_fast_path_loads_neither_typer_nor_rich_nor_fhir_nor_the_plugin_scan():
    path = EXAMPLES[0]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "cli.py"), "triage", str(path), "--format", "json"],
        capture_output=True,
        cwd=str(ROOT),
        timeout=120,
    )
    assert done.returncode == 0
    loaded = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert not {m for m in loaded if m.split(".")[0] in SLOW_ONLY or m in SLOW_ONLY}
    assert json.loads(done.stdout)["patient_id"]


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize(
    "name,data",
    [
        ("missing-field.json", b'{"id": "x", "pain": {"duration_weeks": 3}}'),
        ("bad-type.json", b'{"id": "x", "age": "forty", "pain": {"duration_weeks": 3}}'),
        ("not-json.json", b'{"id": '),
        ("empty.json", b""),
        ("nan.json", b'{"id": "x", "age": 40, "pain": {"duration_weeks": NaN}}'),
        ("array.json", b"[1, 2]"),
    ],
)
def test_errors_are_the_full_commands_own(tmp_path, name, data):
    """Rejected input: exit 2, the field named on stderr, nothing on stdout, exactly as the full command."""
    file = _write(tmp_path, name, data)
    want = full(file)
    got = cli("triage", file, "--format", "json")
    assert want.returncode == 2
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert b"Traceback" not in got.stderr


def test_a_missing_file_and_a_directory_are_reported_as_before(tmp_path):
    for file in (str(tmp_path / "nope.json"), str(tmp_path)):
        want = full(file)
        got = cli("triage", file, "--format", "json")
        assert (got.returncode, got.stdout, got.stderr) == (2, want.stdout, want.stderr)


def test_a_fhir_bundle_goes_the_full_way_with_the_same_answer():
    bundle = ROOT / "tests" / "fhir" / "opioid-user.json"
    if not bundle.exists():
        pytest.skip("no FHIR example")
    want = full(str(bundle))
    got = cli("triage", str(bundle), "--format", "json")
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


def test_stdin_and_other_options_go_the_full_way():
    data = EXAMPLES[0].read_bytes()
    want = full(str(EXAMPLES[0]))
    got = cli("triage", "-", "--format", "json", stdin=data)
    assert (got.returncode, got.stdout) == (0, want.stdout)
    text = cli("triage", str(EXAMPLES[0]), "--format", "json", "--details")
    assert (text.returncode, text.stdout) == (0, want.stdout)
