"""Batch triage: many patients in, one NDJSON line out per input record, in input order.

Input is one of
* an NDJSON file: one patient JSON object per line; record N is line N of the file;
* a directory: every `*.json` file directly in it, sorted by file name, one patient per file;
  record N is the N-th file in that order;
* `-`: NDJSON read from stdin.

Output is NDJSON, exactly one line per input record, in input order: the CONTRACT.md result
(compact JSON, the same object as `triage FILE --format json`), or an error record

    {"line": N, "source": "...", "error": {"type": "input_error", "problems": [...]}}

where `line` is the record number above and `source` the input's file name (for a directory: the
patient file's name; for stdin: "<stdin>"). A blank or whitespace-only NDJSON line is a record
too, rejected as an empty line, so that output line N always answers input line N. An error
record names fields and what is wrong with them, never a patient's values. A record that fails
inside the engine (a rule-set defect) gets an error record of type "internal_error" naming only
the exception class and the rule; the other records are still triaged.

Exit codes (see `BatchSummary.exit_code`): 0 every record triaged; 3 some records rejected
(their error records are in the output); 1 some record failed inside the engine; the CLI adds
2 when INPUT itself cannot be used (missing, unreadable, not a file or directory).

With `workers` > 1, records are triaged in worker processes, `CHUNK` records per task, with a
bounded number of tasks in flight and results written in input order as they complete: memory
stays flat however long the input is (neither the input nor the results are ever held whole).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from engine.kernel.errors import FieldProblem, InferenceError, InputError
from engine.kernel.inputs import MAX_INPUT_BYTES
from engine.kernel.triage import data_json

#: Records per task sent to a worker process (about 30 ms of work: small enough to keep two
#: workers evenly busy, large enough that inter-process overhead stays a few per cent).
CHUNK = 64
#: Tasks in flight per worker: bounds memory while keeping every worker fed.
IN_FLIGHT_PER_WORKER = 4
STDIN = "-"
STDIN_SOURCE = "<stdin>"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_REJECTED = 3

#: One record as it travels to a worker: (record number, source name, bytes or None, problem or None).
RawRecord = tuple[int, str, "bytes | None", "dict | None"]
#: What a worker sends back per record: (output line without newline, outcome).
#: outcome is ("ok", recommended codes, not-recommended kinds) | ("rejected",) | ("internal",)
Outcome = tuple


def _problem(field_: str, problem: str, allowed: str) -> dict:
    return InputError([FieldProblem(field_, problem, allowed)]).as_dict()


EMPTY_LINE = _problem("(document)", "empty line", "one patient JSON object per line")


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- reading


class BatchInputError(Exception):
    """INPUT itself cannot be used (exit 2): it names the input, never a patient."""

    def __init__(self, problem: FieldProblem):
        self.problem = problem
        super().__init__(str(problem))


def _ndjson_records(stream: IO[bytes], source: str) -> Iterator[RawRecord]:
    """One record per line, blank lines included; a line is never read past MAX_INPUT_BYTES."""
    limit = MAX_INPUT_BYTES
    n = 0
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        n += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:  # skip the rest of an over-long line without holding it
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, source, None, _problem("(document)", f"line longer than {limit} bytes", f"at most {limit} bytes")
            continue
        data = raw.rstrip(b"\r\n")
        if not data.strip():
            yield n, source, None, EMPTY_LINE
        else:
            yield n, source, data, None


def _directory_records(files: list[Path]) -> Iterator[RawRecord]:
    for n, path in enumerate(files, start=1):
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)  # one byte more: parse_json reports the excess
        except OSError as exc:
            yield (
                n,
                path.name,
                None,
                _problem("FILE", f"cannot read: {exc.strerror or type(exc).__name__}", "a readable patient JSON file"),
            )
            continue
        yield n, path.name, data, None


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


@dataclass
class Source:
    """An opened INPUT: its records, and how many there are when that is known up front."""

    records: Iterator[RawRecord]
    total: int | None
    close: Callable[[], None] = lambda: None


def open_input(spec: str, count: bool = False) -> Source:
    """Open INPUT (an NDJSON file, a directory of *.json, or '-' for stdin).

    `count`: also count the records first (for a progress bar; not possible for stdin).
    Raises `BatchInputError` when INPUT cannot be used at all.
    """
    if spec == STDIN:
        return Source(_ndjson_records(sys.stdin.buffer, STDIN_SOURCE), None)
    path = Path(spec)
    allowed = "an NDJSON file, a directory of *.json patient files, or - for stdin"
    try:
        if path.is_dir():
            files = sorted(
                (p for p in path.iterdir() if p.name.endswith(".json") and p.is_file()), key=lambda p: p.name
            )
            return Source(_directory_records(files), len(files))
        if not path.exists():
            raise BatchInputError(FieldProblem("INPUT", f"no such file or directory: {spec}", allowed))
        if not path.is_file():
            raise BatchInputError(FieldProblem("INPUT", f"not a regular file or directory: {spec}", allowed))
        total = _count_lines(path) if count else None
        fh = path.open("rb")
    except OSError as exc:
        raise BatchInputError(
            FieldProblem("INPUT", f"cannot read {spec}: {exc.strerror or type(exc).__name__}", allowed)
        ) from None
    return Source(_ndjson_records(fh, path.name), total, fh.close)


# ---------------------------------------------------------------- triaging (in a worker or in-process)


_triager: Any = None
_triager_site: str | None = None


def _get_triager(site: str | None = None):
    """This process's triager (the default one, or one with a site file); forked workers inherit it."""
    global _triager, _triager_site
    if _triager is None or site != _triager_site:
        from engine.kernel.triage import Triager, default_triager

        _triager = default_triager() if site is None else Triager(site=site)
        _triager_site = site
    return _triager


def _worker_init() -> None:
    """Worker processes leave Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _get_triager(_triager_site)  # the triager forked from the parent, site and all


def _error_line(line: int, source: str, error: dict) -> bytes:
    return orjson.dumps({"line": line, "source": source, "error": error})


def triage_record(triager: Any, record: RawRecord) -> tuple[bytes, Outcome]:
    """The output line for one record, and its outcome for the summary."""
    line, source, data, problem = record
    if problem is not None:
        return _error_line(line, source, problem), ("rejected",)
    try:
        result = triager.triage_data(data)  # JSON data, without building the result model
    except InputError as exc:
        return _error_line(line, source, exc.as_dict()), ("rejected",)
    except Exception as exc:  # noqa: BLE001 - one record's engine failure never stops the others
        error: dict[str, Any] = {
            "type": "internal_error",
            "exception": type(exc).__name__,
            "problem": "the engine failed on this record; no result was produced",
        }
        if isinstance(exc, InferenceError):
            error["rule"] = exc.rule_id
        return _error_line(line, source, error), ("internal",)
    return (
        data_json(result),
        (
            "ok",
            tuple(r["intervention"] for r in result["recommendations"]),
            tuple(n["kind"] for n in result["not_recommended"]),
        ),
    )


def _triage_chunk(chunk: list[RawRecord]) -> list[tuple[bytes, Outcome]]:
    triager = _get_triager(_triager_site)
    return [triage_record(triager, r) for r in chunk]


def _chunks(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    chunk: list[RawRecord] = []
    for r in records:
        chunk.append(r)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------- the run


@dataclass
class BatchSummary:
    """What a batch did: counts only, never a patient's data."""

    records: int = 0
    triaged: int = 0
    rejected: int = 0
    failed: int = 0
    recommendations: Counter = field(default_factory=Counter)
    not_recommended: Counter = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.records += 1
        kind = outcome[0]
        if kind == "ok":
            self.triaged += 1
            self.recommendations.update(outcome[1])
            self.not_recommended.update(outcome[2])
        elif kind == "rejected":
            self.rejected += 1
        else:
            self.failed += 1

    def exit_code(self) -> int:
        """0 all triaged; 1 some record failed inside the engine; 3 some were rejected."""
        if self.failed:
            return EXIT_INTERNAL
        if self.rejected:
            return EXIT_REJECTED
        return EXIT_OK

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "triaged": self.triaged,
            "rejected": self.rejected,
            "failed": self.failed,
            "recommendations": dict(sorted(self.recommendations.items())),
            "not_recommended": dict(sorted(self.not_recommended.items())),
        }


def _pool_context():
    # fork shares the loaded rule set with the workers (no reload, ~0.1 s each); the engine's
    # at-fork handler gives each child fresh session pools and locks. Elsewhere: spawn.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def run_batch(
    records: Iterable[RawRecord],
    out: IO[bytes],
    workers: int = 1,
    on_record: Callable[[int], None] | None = None,
    site: str | None = None,
) -> BatchSummary:
    """Triage every record and write one line per record to `out`, in input order.

    `workers` > 1 triages in that many processes; 1 triages in this process. `on_record(n)` is
    called as records are written (for a progress bar). `site`: a site file (else $CDS_SITE applies).
    """
    summary = BatchSummary()

    def write(results: list[tuple[bytes, Outcome]]) -> None:
        for line, outcome in results:
            out.write(line)
            out.write(b"\n")
            summary.add(outcome)
        if on_record is not None:
            on_record(len(results))

    if workers <= 1:
        triager = _get_triager(site)
        for chunk in _chunks(records, CHUNK):
            write([triage_record(triager, r) for r in chunk])
        return summary

    _get_triager(site)  # loaded once here, shared with the forked workers
    pool = _pool_context().Pool(workers, initializer=_worker_init)
    try:
        pending: deque = deque()
        limit = workers * IN_FLIGHT_PER_WORKER
        for chunk in _chunks(records, CHUNK):
            pending.append(pool.apply_async(_triage_chunk, (chunk,)))
            if len(pending) >= limit:
                write(pending.popleft().get())
        while pending:
            write(pending.popleft().get())
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return summary
