"""forefoot-cds: decision support for forefoot pain (metatarsalgia), from the terminal.

stdout carries only the result; diagnostics go to stderr. Exit codes: 0 triaged, 2 input
rejected (bad usage or invalid patient data, with the field path), 1 internal failure.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from engine import EngineError, InputError, Result
from engine.errors import FieldProblem
from engine.inputs import MAX_INPUT_BYTES

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they hold patient data
    help="Forefoot pain (metatarsalgia) decision support: triage a patient, explain a result, inspect the rules.",
)
err = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2


class Format(str, Enum):
    text = "text"
    json = "json"


@app.callback()
def _root() -> None:
    """Forefoot pain (metatarsalgia) decision support. It supports, and does not replace, clinical judgement."""


def _read_input(path: str) -> bytes:
    """The bytes of FILE, or of stdin for '-', at most MAX_INPUT_BYTES (+1 to detect overflow)."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        p = Path(path)
        if p.is_dir():
            raise InputError([FieldProblem("FILE", f"{path} is a directory", "a patient JSON file, or - for stdin")])
        with p.open("rb") as fh:
            return fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise InputError([FieldProblem("FILE", f"no such file: {path}", "a patient JSON file, or - for stdin")]) from None
    except OSError as exc:
        raise InputError([FieldProblem("FILE", f"cannot read {path}: {exc.strerror}", "a readable file")]) from None


def _fail_input(exc: InputError) -> None:
    err.print("[bold red]input rejected[/]")
    for p in exc.problems:
        line = f"  {p.field}: {p.problem}"
        if p.allowed:
            line += f"\n      allowed: {p.allowed}"
        err.print(line, markup=False)
    raise typer.Exit(EXIT_INPUT)


def _fail_internal(exc: BaseException) -> None:
    err.print(f"[bold red]internal error[/] ({type(exc).__name__}): no result was produced.", highlight=False)
    err.print(str(exc), markup=False)
    raise typer.Exit(EXIT_INTERNAL)


def result_json(result: Result) -> str:
    """The CONTRACT.md JSON of a result: stable key order, no clock time, UTF-8."""
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2)


@app.command()
def triage(
    file: Annotated[str, typer.Argument(help="patient JSON file, or - to read stdin")],
    format: Annotated[Format, typer.Option("--format", "-f", help="text for a clinician, json for scripts")] = Format.text,
    details: Annotated[bool, typer.Option("--details", help="text: every detail (dosing, sources) of each entry")] = False,
) -> None:
    """Triage one patient: recommendations with evidence grades, and what was not recommended and why."""
    try:
        from engine import default_triager

        triager = default_triager()
        result = triager.triage_json(_read_input(file))
    except InputError as exc:
        _fail_input(exc)
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    if format is Format.json:
        sys.stdout.write(result_json(result) + "\n")
    else:
        from engine.render import print_text

        print_text(result, Console(highlight=False), triager.ruleset, details)


# ---- further commands are registered below this line -------------------------------------


@app.command()
def schema() -> None:
    """Print the JSON Schema of the patient input (CONTRACT.md), for validating files before triage."""
    from engine import default_triager

    model = default_triager().patient_model
    sys.stdout.write(json.dumps(model.model_json_schema(), ensure_ascii=False, indent=2) + "\n")


def main() -> None:
    """Console-script entry point: exit codes as documented, never a traceback."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001
        err.print(f"internal error ({type(exc).__name__}); no result was produced.", markup=False)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
