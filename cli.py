"""forefoot-cds: decision support for forefoot pain (metatarsalgia), from the terminal.

stdout carries only the result; diagnostics go to stderr. Exit codes: 0 triaged, 2 input
rejected (bad usage or invalid patient data, with the field path), 1 internal failure.
"""

from __future__ import annotations

import os
import sys

# The CLI uses no pydantic plugin: spare every start pydantic's scan of installed entry points.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
_PLUGINS_OFF = ("__all__", "1", "true")


def _no_plugin_loader() -> None:
    """With plugins disabled pydantic never scans for them, but its plugin loader still imports
    importlib.metadata (and with it email, zipfile, csv, ...) at every start. Until pydantic has
    been imported, register a stand-in loader that answers "no plugins" while they are disabled
    and hands everything else to the real loader, loaded on first need."""
    name = "pydantic.plugin._loader"
    if (
        os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in _PLUGINS_OFF
        or "pydantic" in sys.modules
        or name in sys.modules
    ):
        return
    import types

    stub = types.ModuleType(name)

    def real() -> types.ModuleType:
        import importlib.machinery
        import importlib.util

        import pydantic.plugin

        spec = importlib.machinery.PathFinder.find_spec("_loader", list(pydantic.plugin.__path__))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def get_plugins():
        if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in _PLUGINS_OFF:
            return ()
        return real().get_plugins()

    def __getattr__(attr: str):
        if attr.startswith("__"):  # the import system's own questions (__path__, ...): not the loader's
            raise AttributeError(attr)
        return getattr(real(), attr)

    stub.get_plugins = get_plugins
    stub.__getattr__ = __getattr__
    sys.modules[name] = stub


_no_plugin_loader()


def _fast_triage(argv: list[str]) -> int | None:
    """`triage FILE --format json` (or `-f json`, in either order) for a patient
    file, without loading typer, click or rich: the common scripted call, whose start-up they
    would dominate. Prints exactly what the full command prints and returns its exit code (0).

    Anything else returns None and the full command runs instead: other options, stdin, a FHIR
    document, and every failure, so that errors are reported by the one code that reports them
    (the file is read again; nothing has been printed).
    """
    if len(argv) != 4 or argv[0] != "triage":
        return None
    rest = argv[1:]
    if rest[1:] in (["--format", "json"], ["-f", "json"]):
        file = rest[0]
    elif rest[:2] in (["--format", "json"], ["-f", "json"]):
        file = rest[2]
    else:
        return None
    if not file or file.startswith("-"):
        return None
    try:
        import json

        from engine.kernel.inputs import FHIR_MAX_BYTES, MAX_INPUT_BYTES, is_fhir, parse_json
        from engine.kernel.triage import default_triager

        triager = default_triager()
        with open(file, "rb") as fh:
            data = fh.read(FHIR_MAX_BYTES + 1)
        document = parse_json(data, max_bytes=FHIR_MAX_BYTES)
        if is_fhir(document) or len(data) > MAX_INPUT_BYTES:
            return None
        # the result as JSON data: equal to result.model_dump(mode="json"), which result_json writes
        text = json.dumps(triager.triage_data(document), ensure_ascii=False, indent=2) + "\n"
    except Exception:  # noqa: BLE001 - the full command reports it
        return None
    sys.stdout.write(text)
    return 0


def _exit_internal(exc: BaseException) -> None:
    """Exit 1 naming only the exception's type: never a traceback (the last resort of `main`)."""
    from rich.console import Console as _Console

    _Console(stderr=True, highlight=False).print(
        f"internal error ({type(exc).__name__}); no result was produced.", markup=False
    )
    sys.exit(1)


if __name__ == "__main__":
    import gc

    # One patient and out: the cyclic collector would only walk the import-time objects (~7% of the start).
    gc.disable()
    try:
        _code = _fast_triage(sys.argv[1:])
        if _code is not None:
            sys.stdout.flush()
    except BaseException as _exc:  # noqa: BLE001 - as main(): exit 1, never a traceback
        _exit_internal(_exc)
    if _code is not None:
        # The result is out: skip tearing down every module of the interpreter (~10% of the start).
        os._exit(_code)
    gc.enable()

import json  # noqa: E402
from enum import Enum  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, NamedTuple  # noqa: E402

import typer  # noqa: E402

from engine import EngineError, InputError, Result  # noqa: E402
from engine.kernel.errors import FieldProblem  # noqa: E402
from engine.kernel.inputs import MAX_INPUT_BYTES  # noqa: E402

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they hold patient data
    help="Forefoot pain (metatarsalgia) decision support: triage a patient, explain a result, inspect the rules.",
)


def Console(*args, **kwargs):
    from rich.console import Console as _Console

    return _Console(*args, **kwargs)


class _LazyConsole:
    """The stderr console, created on first use (rich costs ~20 ms of import at every start)."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name: str):
        if self._console is None:
            self._console = Console(**self._options)
        return getattr(self._console, name)


err = _LazyConsole(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2


class Format(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    cds_hooks = "cds-hooks"  # triage only: a CDS Hooks 2.0 {"cards": [...]} response
    html = "html"  # triage only: one self-contained page (plan, evidence, what was withheld, the route)


class InputKind(str, Enum):
    auto = "auto"
    json = "json"
    fhir = "fhir"


#: Options several commands share, declared once.
InputOption = Annotated[
    InputKind,
    typer.Option(
        "--input",
        help="auto: a FHIR R4 Bundle is recognised by its resourceType; json: CONTRACT.md patient; fhir: FHIR R4 Bundle",
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="FHIR: reference date for ages and durations (default: Bundle.timestamp, else meta.lastUpdated)",
    ),
]
SiteOption = Annotated[
    str | None,
    typer.Option(
        "--site",
        metavar="FILE",
        help="site configuration (TOML): the clinic's parameter values within their bounds (default: $CDS_SITE)",
    ),
]


@app.callback()
def _root() -> None:
    """Forefoot pain (metatarsalgia) decision support. It supports, and does not replace, clinical judgement."""


def _read_input(path: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of FILE, or of stdin for '-', at most `limit` (+1 to detect overflow)."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(limit + 1)
        p = Path(path)
        if p.is_dir():
            raise InputError([FieldProblem("FILE", f"{path} is a directory", "a patient JSON file, or - for stdin")])
        with p.open("rb") as fh:
            return fh.read(limit + 1)
    except FileNotFoundError:
        raise InputError(
            [FieldProblem("FILE", f"no such file: {path}", "a patient JSON file, or - for stdin")]
        ) from None
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
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="text for a clinician (one screen), json for scripts, markdown for a clinical note, html for one self-contained page with the pathway, cds-hooks for cards",
        ),
    ] = Format.text,
    details: Annotated[
        bool,
        typer.Option(
            "--details",
            help="text: everything (every detail and reason in full, what would change each withheld option, every unknown, the sources) instead of one screen",
        ),
    ] = False,
    input: InputOption = InputKind.auto,
    as_of: AsOfOption = None,
    strict_fhir: Annotated[
        bool,
        typer.Option(
            "--strict-fhir",
            help="FHIR: validate the whole Bundle against the FHIR R4 models first (milliseconds; by default only the elements the mapping reads are type-checked)",
        ),
    ] = False,
    changes: Annotated[
        bool | None,
        typer.Option(
            "--changes/--no-changes",
            help="search what would change each withheld option (default: on for the clinician's formats, off for json, which scripts read: ask with --changes)",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="cds-hooks: the service's public base URL; each card's source is then its pathway page"
        ),
    ] = None,
    site: SiteOption = None,
) -> None:
    """Triage one patient (CONTRACT.md JSON or a FHIR R4 Bundle): recommendations with evidence grades, and what was not recommended and why."""
    _use_site(site)
    try:
        triager = _triager()
        triaged = _triage_input(triager, file, input, as_of, strict_fhir)
        result = triaged.result
        if changes if changes is not None else format is not Format.json:
            from engine.kernel.changes import what_would_change

            result = what_would_change(triager, triaged.patient, result)
    except InputError as exc:
        _fail_input(exc)
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    if format is Format.json:
        sys.stdout.write(result_json(result) + "\n")
    elif format is Format.cds_hooks:
        from engine.views.cds_hooks import cards

        sys.stdout.write(json.dumps(cards(result, triager.ruleset, base_url), ensure_ascii=False, indent=2) + "\n")
    elif format is Format.markdown:
        from engine.views.markdown import result_markdown

        sys.stdout.write(result_markdown(result, triager.ruleset))
    elif format is Format.html:
        from engine.views.html import facts_of, report_html

        try:
            facts = facts_of(triager, triaged.patient)
        except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
            _fail_internal(exc)
        sys.stdout.write(report_html(result, triager.ruleset, facts))
    else:
        from engine.views.text import print_text

        print_text(result, Console(highlight=False), triager.ruleset, details)


# ---- further commands are registered below this line -------------------------------------

# `rules`: the knowledge base (issue 4). Further `rules` subcommands register on `rules_app`.
rules_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)  # help: rules_list's docstring
app.add_typer(rules_app, name="rules")


class ViewFormat(str, Enum):
    text = "text"
    json = "json"


#: The site file of this command (`--site FILE`), checked when the command starts.
_site: str | None = None


def _use_site(site: str | None) -> None:
    """Apply `--site FILE` to this command: checked now (exit 2 naming the parameter), then used by its
    triager and rule-set views (`_triager`, `_ruleset`). Without it, $CDS_SITE applies, as in the API."""
    global _site
    _site = None
    if site is None:
        return
    from engine.kernel.errors import SiteError
    from engine.kernel.loader import load_ruleset
    from engine.kernel.site import apply_site, load_site

    try:
        apply_site(load_ruleset(), load_site(site))
    except SiteError as exc:
        _fail_input(
            InputError(
                [
                    FieldProblem(
                        "--site",
                        str(exc),
                        "a TOML file: [parameters.NAME] value, reason, "
                        "set_by, within each parameter's bounds (see `rules show`)",
                    )
                ]
            )
        )
    _site = str(Path(site).resolve())


def _triager():
    """The triager of this command: the process-wide default, or one with the command's site."""
    from engine import Triager, default_triager

    return default_triager() if _site is None else Triager(site=_site)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _ruleset():
    from engine.kernel.errors import SiteError
    from engine.kernel.loader import load_ruleset
    from engine.kernel.site import apply_site

    try:
        return apply_site(load_ruleset(), _site)
    except SiteError as exc:
        _fail_input(InputError([FieldProblem("$CDS_SITE", str(exc), "a valid site file")]))
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="patient JSON file or FHIR R4 Bundle, or - to read stdin")],
    intervention: Annotated[
        str | None, typer.Option("--intervention", "-i", help="only this intervention code, e.g. low_dose_naltrexone")
    ] = None,
    format: Annotated[
        Format, typer.Option("--format", "-f", help="text (a tree), json (the same tree as nested objects), markdown")
    ] = Format.text,
    input: InputOption = InputKind.auto,
    as_of: AsOfOption = None,
    site: SiteOption = None,
) -> None:
    """Explain a triage: how each recommendation and not-recommended entry was derived from the patient's facts.

    Every step names its rule, what it compared, its parameters and its graded sources; unknowns are listed with what they block (for a FHIR Bundle, the mapping's unknowns too).
    """
    if format in (Format.cds_hooks, Format.html):
        _fail_input(
            InputError(
                [
                    FieldProblem(
                        "--format", f"{format.value} is a format of triage, not of explain", "text, json or markdown"
                    )
                ]
            )
        )
    _use_site(site)
    try:
        from engine.views.explain import explain_patient

        triager = _triager()
        if intervention is not None:
            from engine.views.explain import check_intervention

            check_intervention(triager.ruleset, intervention)
        triaged = _triage_input(triager, file, input, as_of)
        _, expl = explain_patient(triager, triaged.patient, intervention, unknowns=triaged.extra_unknowns)
    except InputError as exc:
        _fail_input(exc)
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    if format is Format.json:
        _print_json(expl)
    elif format is Format.markdown:
        from engine.views.markdown import explanation_markdown

        sys.stdout.write(explanation_markdown(expl))
    else:
        from engine.views.explain import explanation_view

        Console(highlight=False).print(explanation_view(expl))


@rules_app.callback(invoke_without_command=True)
def rules_list(
    ctx: typer.Context,
    format: Annotated[ViewFormat, typer.Option("--format", "-f", help="text (a table) or json")] = ViewFormat.text,
    site: SiteOption = None,
) -> None:
    """The knowledge base: every rule with its purpose, conclusions, parameters, citations and grades.

    Without a subcommand: one row per rule (id, purpose, what it concludes or emits, parameters used, citations or plainly 'project parameters' or a GAP, grades of what it emits).
    """
    _use_site(site)
    if ctx.invoked_subcommand is not None:
        return
    from engine.views.explain import basis_gaps, rule_rows, rules_table

    ruleset = _ruleset()
    rows = rule_rows(ruleset)
    if format is ViewFormat.json:
        _print_json(
            {
                "ruleset": {"name": ruleset.name, "version": ruleset.version, "digest": ruleset.digest},
                "rules": rows,
                "gaps": basis_gaps(ruleset),
            }
        )
        return
    out = Console(highlight=False)
    out.print(f"[bold]{ruleset.name} {ruleset.version}[/]  [dim]{len(rows)} rules · digest {ruleset.digest[:12]}[/]")
    out.print(rules_table(rows))
    gaps = basis_gaps(ruleset)
    if gaps:
        out.print(
            f"[bold red]{len(gaps)} rules have no citation and rest on more than project parameters:[/] "
            + ", ".join(gaps),
            highlight=False,
        )


@rules_app.command("show")
def rules_show(
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="rule id, e.g. LDN-OFFER")],
    format: Annotated[ViewFormat, typer.Option("--format", "-f", help="text or json")] = ViewFormat.text,
    site: SiteOption = None,
) -> None:
    """One rule with its full sources: patterns, parameters (with a site's value beside the default), citations, grades and its place in the chain."""
    from engine.views.explain import find_rule, rule_detail, rule_detail_view

    _use_site(site)
    ruleset = _ruleset()
    rule, close = find_rule(ruleset, rule_id)
    if rule is None:
        hint = f"did you mean {', '.join(close)}?" if close else "see `rules` for every rule id"
        _fail_input(InputError([FieldProblem("ID", f"no rule {rule_id!r}; {hint}", None)]))
    detail = rule_detail(ruleset, rule)
    if format is ViewFormat.json:
        _print_json(detail)
    else:
        Console(highlight=False).print(rule_detail_view(detail))


class GraphFormat(str, Enum):
    html = "html"
    svg = "svg"


@rules_app.command("graph")
def rules_graph(
    format: Annotated[
        GraphFormat,
        typer.Option(
            "--format",
            "-f",
            help="html: a self-contained page with a legend and the list of rules; svg: the picture alone",
        ),
    ] = GraphFormat.html,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Draw the whole pathway: patient facts, the rules that read them, the findings they conclude and the options they decide, generated from the rule set."""
    from engine.views.html import pathway_html, pathway_svg

    ruleset = _ruleset()
    try:
        page = pathway_html(ruleset) if format is GraphFormat.html else pathway_svg(ruleset)
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    if out is None:
        sys.stdout.write(page)
        return
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        _fail_input(InputError([FieldProblem("--out", f"cannot write {out}: {exc.strerror}", "a writable file path")]))
    err.print(f"pathway written: {out}", markup=False, soft_wrap=True)


@rules_app.command("attributes")
def rules_attributes(
    format: Annotated[ViewFormat, typer.Option("--format", "-f", help="text or json")] = ViewFormat.text,
) -> None:
    """Source attributes (ONC HTI-1 style) of the rule set and of each intervention.

    Name, version, digest, developer, funding, intended use, release and revision dates, citations, and the patient attributes each rule reads; attributes the rule set does not declare are shown as 'not declared'.
    """
    from engine.views.explain import attributes_view, source_attributes

    attrs = source_attributes(_ruleset())
    if format is ViewFormat.json:
        _print_json(attrs)
    else:
        Console(highlight=False).print(attributes_view(attrs))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the patient input (CONTRACT.md), for validating files before triage."""
    from engine import default_triager

    model = default_triager().patient_model
    sys.stdout.write(json.dumps(model.model_json_schema(), ensure_ascii=False, indent=2) + "\n")


# `batch`: many patients in, NDJSON out (issue 5). Reading, worker processes, ordering and error
# records live in engine/channels/batch.py; this is the command line around it.
EXIT_REJECTED = 3  # some records were rejected; each has an error line in --out


def _batch_summary(summary, out: str) -> None:
    """Counts only (never a patient's data), on stderr."""
    err.print(
        f"[bold]batch[/]: {summary.records} records · {summary.triaged} triaged · "
        f"{summary.rejected} rejected · {summary.failed} failed",
        highlight=False,
        soft_wrap=True,
    )
    for title, counts in (("recommended", summary.recommendations), ("not recommended", summary.not_recommended)):
        if counts:
            err.print(f"  {title}:", markup=False)
            for code, n in sorted(counts.items()):
                err.print(f"    {code:<28} {n:>8}", markup=False, highlight=False)
    if summary.rejected or summary.failed:
        err.print(
            f"  each rejected or failed record has an error line at its line number in {out}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def batch(
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="NDJSON file (one patient per line), a directory of *.json patient files, or - for stdin",
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out", "-o", help="output NDJSON file, or - for stdout: one line per input record, in input order"
        ),
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, help="worker processes (default: the number of cores); 1 triages in this process"
        ),
    ] = None,
    site: SiteOption = None,
) -> None:
    """Triage many patients: one NDJSON line out per input record, in input order.

    Each output line is the result (as `triage --format json`, on one line) or an error record {"line": N, "source": ..., "error": {...}}; a blank input line is a record rejected as an empty line. A summary goes to stderr. Exit 0: every record triaged; 3: some records rejected; 2: INPUT or --out unusable; 1: internal failure.
    """
    from engine.channels import batch as b

    _use_site(site)
    show_progress = sys.stderr.isatty()
    try:
        source = b.open_input(input, count=show_progress)
    except b.BatchInputError as exc:
        _fail_input(InputError([exc.problem]))
    try:
        sink = sys.stdout.buffer if out == "-" else open(out, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        source.close()
        _fail_input(
            InputError(
                [
                    FieldProblem(
                        "--out",
                        f"cannot write {out}: {exc.strerror or type(exc).__name__}",
                        "a writable file path, or -",
                    )
                ]
            )
        )
    n_workers = workers or b.default_workers()
    progress = None
    on_record = None
    try:
        if show_progress:
            from rich.progress import Progress

            progress = Progress(console=Console(stderr=True), transient=True)
            task = progress.add_task("triaging", total=source.total)

            def on_record(n: int) -> None:
                if not progress.live.is_started:  # started once the worker pool has forked
                    progress.start()
                progress.advance(task, n)

        summary = b.run_batch(source.records, sink, n_workers, on_record, site=_site)
    except KeyboardInterrupt:
        err.print("interrupted: the output is incomplete", markup=False)
        raise typer.Exit(EXIT_INTERNAL) from None
    except Exception as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    finally:
        if progress is not None:
            progress.stop()
        source.close()
        if sink is not sys.stdout.buffer:
            sink.close()
        else:
            sink.flush()
    _batch_summary(summary, out)
    raise typer.Exit(summary.exit_code())


# `rules check` (issue 6): the knowledge base checked before any patient meets it.
_PROJECT_DIR = Path(__file__).resolve().parent


@rules_app.command("check")
def rules_check(
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="warnings fail too (a rule no scenario exercises, a rule id not in the snapshot)"
        ),
    ] = False,
    ruleset_module: Annotated[
        str | None, typer.Option("--ruleset", help="rule-set module to check (default: $CDS_RULESET, else rules)")
    ] = None,
    snapshot: Annotated[Path, typer.Option("--snapshot", help="committed snapshot of the rule ids")] = _PROJECT_DIR
    / "tests"
    / "rule_ids.txt",
    features: Annotated[
        Path, typer.Option("--features", help="directory of the Gherkin *.feature files")
    ] = _PROJECT_DIR / "features",
    update_snapshot: Annotated[
        bool,
        typer.Option(
            "--update-snapshot", help="write the current rule ids to the snapshot first (a deliberate removal)"
        ),
    ] = False,
    format: Annotated[ViewFormat, typer.Option("--format", "-f", help="text or json")] = ViewFormat.text,
) -> None:
    """Check the rule set: unique, stable rule ids; citations resolve; grades; scenarios; parameters; digest.

    Exit 0 when it passes (warnings are listed), 1 on any error (or any warning with --strict).
    """
    import importlib

    from engine.kernel.loader import load_ruleset, ruleset_module_name
    from engine.tools.checker import check_ruleset, fired_rules_in_features, read_snapshot, snapshot_text

    try:
        rs = load_ruleset(ruleset_module)
        module = importlib.import_module(ruleset_module_name(ruleset_module))
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)
    package_dir = Path(module.__file__).parent if getattr(module, "__path__", None) and module.__file__ else None
    if update_snapshot:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(snapshot_text(rs), encoding="utf-8")
        err.print(
            f"snapshot written: {snapshot} ({len({r.id for r in rs.rules})} rule ids)", markup=False, soft_wrap=True
        )
    ids = read_snapshot(snapshot) if snapshot.is_file() else None
    fired = fired_rules_in_features(features) if features.is_dir() else None
    report = check_ruleset(rs, snapshot=ids, scenario_rules=fired, package_dir=package_dir)
    if format is ViewFormat.json:
        _print_json(
            {"ruleset": {"name": rs.name, "version": rs.version, "digest": rs.digest}, **report.as_dict(strict)}
        )
    else:
        out = [
            (
                f"rules check: {rs.name} {rs.version} (digest {rs.digest[:12]}), {report.rules} rules, "
                f"{report.exercised} exercised by scenarios"
            )
        ]
        out += [f"{f.level:<8} {f.check:<13} {f.message}" for f in report.findings]
        verdict = "passed" if report.passed(strict) else "FAILED"
        out.append(
            f"{verdict}{' (strict)' if strict else ''}: {len(report.errors)} errors, "
            f"{len(report.warnings)} warnings, {len(report.of('note'))} notes"
        )
        sys.stdout.write("\n".join(out) + "\n")
    if not report.passed(strict):
        failing = report.errors + (report.warnings if strict else [])
        err.print(f"rules check failed: {len(failing)} problem(s)", markup=False, soft_wrap=True)
        for f in failing:
            err.print(f"  {f.level}: {f.message}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERNAL)


# FHIR R4 in, CDS Hooks out, and `serve` (issue 7). The mapping lives in engine/channels/fhir.py and
# rules/fhir_map.toml, the cards in engine/views/cds_hooks.py, the service in engine/channels/service.py.


class _Triaged(NamedTuple):
    """A triaged input: the result, the patient it was made from as CONTRACT.md JSON (the file
    itself, or what a FHIR Bundle maps to), and the FHIR mapping's unknowns (they are in `result`
    too), for an explanation of the same patient."""

    result: Result
    patient: dict
    extra_unknowns: tuple = ()


def _triage_input(triager, file: str, kind: InputKind, as_of: str | None, strict_fhir: bool = False) -> _Triaged:
    """Triage FILE as a CONTRACT.md patient or a FHIR R4 Bundle (auto: by its resourceType)."""
    from datetime import date

    from engine.kernel.inputs import FHIR_MAX_BYTES, MAX_INPUT_BYTES, is_fhir, parse_json

    fhir_only = [
        (flag, used) for flag, used in (("--as-of", as_of is not None), ("--strict-fhir", strict_fhir)) if used
    ]
    if kind is InputKind.json:
        if fhir_only:
            raise InputError([FieldProblem(fhir_only[0][0], "applies to FHIR input only", "--input fhir or auto")])
        document = parse_json(_read_input(file))
        return _Triaged(triager.triage(document), document)
    data = _read_input(file, FHIR_MAX_BYTES)
    document = parse_json(data, max_bytes=FHIR_MAX_BYTES)
    if kind is InputKind.auto and not is_fhir(document):
        if fhir_only:
            raise InputError([FieldProblem(fhir_only[0][0], "applies to FHIR input only", "a FHIR R4 Bundle")])
        if len(data) > MAX_INPUT_BYTES:  # a patient file keeps its own, smaller limit
            parse_json(data)  # raises the size error
        return _Triaged(triager.triage(document), document)  # parsed once; FHIR code never imported for a patient file
    from engine.channels.fhir import default_mapper, triage_mapped

    reference = None
    if as_of is not None:
        try:
            reference = date.fromisoformat(as_of)
        except ValueError:
            raise InputError([FieldProblem("--as-of", "not a date", "YYYY-MM-DD")]) from None
    mapped = default_mapper().map(document, as_of=reference, strict=strict_fhir)
    return _Triaged(triage_mapped(triager, mapped), mapped.patient, tuple(mapped.unknowns))


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="interface to listen on (keep 127.0.0.1 unless behind a TLS proxy)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port")] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="this service's base URL as the EHR calls it; token audience is <public-url>/cds-services/<id> (default http://HOST:PORT)",
        ),
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            metavar="ISSUER=JWKS",
            help="a trusted EHR: its token issuer (iss) and its public keys (a JWKS file, or an https:// URL), which sign for that issuer only; repeat once per EHR",
        ),
    ] = None,
    db: Annotated[
        Path,
        typer.Option(
            "--db",
            help="SQLite database shared by the workers: token replay memory and card feedback (created if absent)",
        ),
    ] = Path("cds-service.sqlite3"),
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="worker processes (each one triages one request at a time)")
    ] = 1,
    max_body: Annotated[int, typer.Option("--max-body", min=1024, help="largest accepted request body, in bytes")] = 4
    * 1024
    * 1024,
    max_token_lifetime: Annotated[
        int,
        typer.Option(
            "--max-token-lifetime", min=1, max=3600, help="longest accepted token lifetime (exp - iat), in seconds"
        ),
    ] = 300,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="accept requests WITHOUT verifying tokens: local demos only, loudly logged"),
    ] = False,
    server_timing: Annotated[
        bool,
        typer.Option(
            "--server-timing", help="add a Server-Timing header (time of each stage) to hook responses, for benchmarks"
        ),
    ] = False,
    jwks: Annotated[str | None, typer.Option("--jwks", hidden=True)] = None,
    issuer: Annotated[list[str] | None, typer.Option("--issuer", hidden=True)] = None,
    feedback_log: Annotated[Path | None, typer.Option("--feedback-log", hidden=True)] = None,
    site: SiteOption = None,
) -> None:
    """Run the CDS Hooks service (patient-view): discovery, hook calls with prefetched FHIR, feedback.

    Every hook and feedback call must carry a JWT bearer token signed by a trusted EHR: signed by the keys given for its iss in --trust, aud = this service's endpoint, exp and iat within 30 s of the clock, at most --max-token-lifetime apart, and a jti used once across all workers (kept in --db); 401 otherwise. Ages and durations are computed at the day of the token's iat.
    """
    problems = []
    if jwks is not None or issuer:
        problems.append(
            FieldProblem(
                "--jwks/--issuer",
                "replaced by --trust ISSUER=JWKS: each EHR's keys now sign for its own issuer only",
                "--trust https://ehr.example.org=ehr-jwks.json (once per EHR)",
            )
        )
    if feedback_log is not None:
        problems.append(
            FieldProblem(
                "--feedback-log",
                "replaced by --db: feedback is kept in the service's SQLite database",
                "--db FILE; read it with `forefoot-cds feedback report --db FILE`",
            )
        )
    pairs = []
    for item in trust or ():
        name, sep, source = item.partition("=")
        if not sep:
            problems.append(
                FieldProblem(
                    "--trust",
                    "must be ISSUER=JWKS (split at the first '=')",
                    "--trust https://ehr.example.org=ehr-jwks.json or ...=https://ehr.example.org/jwks.json",
                )
            )
            continue
        pairs.append((name.strip(), source.strip()))
    if problems:
        _fail_input(InputError(problems))
    _use_site(site)
    if _site is not None:  # every worker builds its triager from $CDS_SITE, as the API does
        from engine.kernel.site import SITE_ENV

        os.environ[SITE_ENV] = _site
    try:
        from engine.channels.service import ServiceConfig, StoreError, run
    except ImportError as exc:
        err.print(
            f"serve needs the service extra: pip install 'forefoot-cds[service]' ({exc.name} is missing)", markup=False
        )
        raise typer.Exit(EXIT_INTERNAL) from None
    url = (public_url or f"http://{host}:{port}").rstrip("/")
    config = ServiceConfig(
        public_url=url,
        trust=tuple(pairs),
        insecure=insecure,
        db=db,
        max_body=max_body,
        max_token_lifetime=max_token_lifetime,
        source_url=url + "/cds-services",
        server_timing=server_timing,
    )
    bad = config.problems()
    if bad:
        _fail_input(
            InputError(
                [
                    FieldProblem(
                        "serve", p, "--trust ISSUER=JWKS (a file or https:// URL), or --insecure for a local demo"
                    )
                    for p in bad
                ]
            )
        )
    err.print(
        f"CDS Hooks service: http://{host}:{port}/cds-services (token audience base {url}; {workers} worker(s); "
        f"database {db})",
        markup=False,
        highlight=False,
    )
    try:
        run(config, host, port, workers)
    except ImportError as exc:
        err.print(
            f"serve needs the service extra: pip install 'forefoot-cds[service]' ({exc.name} is missing)", markup=False
        )
        raise typer.Exit(EXIT_INTERNAL) from None
    except StoreError as exc:
        _fail_input(InputError([FieldProblem("--db", str(exc), "a writable SQLite file on a local file system")]))
    except (OSError, ValueError) as exc:
        _fail_input(
            InputError(
                [
                    FieldProblem(
                        "--trust",
                        f"unusable key set ({type(exc).__name__}): {exc}",
                        "a JWKS file of public keys, or an https:// URL",
                    )
                ]
            )
        )
    except (EngineError, Exception) as exc:  # noqa: BLE001 - exit 1 with a message, never a traceback
        _fail_internal(exc)


# `feedback`: what clinicians did with the cards, for a CDS governance committee.
feedback_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Card feedback kept by `serve` (accepted or overridden, and why).",
)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("report")
def feedback_report(
    db: Annotated[Path, typer.Option("--db", help="the service's SQLite database (serve --db)")] = Path(
        "cds-service.sqlite3"
    ),
    since: Annotated[
        str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="only feedback received from this day on (UTC)")
    ] = None,
    format: Annotated[ViewFormat, typer.Option("--format", "-f", help="text (a table) or json")] = ViewFormat.text,
) -> None:
    """Override rate and override reasons per rule and card: what a CDS governance committee reviews.

    For each rule and card: how often it was shown, how much feedback came back, how often it was accepted or overridden, the override rate and the reasons given (codes only: comments are never stored).
    """
    from datetime import UTC, datetime

    if not db.is_file():
        _fail_input(InputError([FieldProblem("--db", f"no such database: {db}", "the file given to serve --db")]))
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            _fail_input(InputError([FieldProblem("--since", "not a date", "YYYY-MM-DD")]))
    from engine.channels.store import Store, StoreError

    try:
        store = Store(db)
        report = store.report(since=start)
        store.close()
    except StoreError as exc:
        _fail_input(InputError([FieldProblem("--db", str(exc), "the file given to serve --db")]))
    if format is ViewFormat.json:
        _print_json(report)
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    head = ("rule", "card", "shown", "feedback", "accepted", "overridden", "override rate", "override reasons")
    rows = [
        (
            r["rule"],
            r["kind"] if r["intervention"] == "*" else f"{r['kind']}: {r['intervention']}",
            str(r["shown"]),
            str(r["feedback"]),
            str(r["accepted"]),
            str(r["overridden"]),
            pct(r["override_rate"]),
            ", ".join(f"{code} {n}" for code, n in r["reasons"].items()) or "-",
        )
        for r in report["rows"]
    ]
    accepted = sum(r["accepted"] for r in report["rows"])
    rows.append(
        (
            "all cards",
            "",
            str(sum(r["shown"] for r in report["rows"])),
            str(report["feedback"]),
            str(accepted),
            str(report["overridden"]),
            pct(report["override_rate"]),
            "",
        )
    )
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        return "  ".join(cells).rstrip()

    span = (
        f"from {report['first_feedback']} to {report['last_feedback']}"
        if report["first_feedback"]
        else "no feedback yet"
    )
    out = [
        f"Card feedback, {span} (database {db}); override rate = overridden / (accepted + overridden)",
        "",
        line(head),
        *(line(r) for r in rows),
    ]
    unknown = report["feedback_on_unknown_cards"]
    if unknown:
        out += [
            "",
            "feedback on cards this service does not remember (not issued here, or more than a day old): "
            + ", ".join(f"{k} {v}" for k, v in sorted(unknown.items())),
        ]
    typer.echo("\n".join(out))


def main(fast_path: bool = True) -> None:
    """Console-script entry point: exit codes as documented, never a traceback. `fast_path`: try
    `_fast_triage` first (`python cli.py` has already tried it, before the imports above)."""
    try:
        code = _fast_triage(sys.argv[1:]) if fast_path else None
        if code is not None:
            sys.exit(code)
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001
        _exit_internal(exc)


if __name__ == "__main__":
    main(fast_path=False)
