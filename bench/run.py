"""Clinic-scale benchmark: latency, throughput, memory, cold start, and where the time goes.

    python -m bench                 # the full run (about two minutes on 2 cores)
    python -m bench --quick         # a smoke run with small sizes (seconds)
    python bench/run.py --json out.json
    python -m bench --service       # the CDS Hooks service over HTTP instead (bench/service.py)

Not a test: it prints figures and checks them against the targets of issue 5, saying by how
much a target is missed. The cohort is synthetic and seeded (bench/cohort.py): no real patient.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

import engine.kernel.inference as inference  # noqa: E402
from bench.cohort import cohort, coverage  # noqa: E402
from engine import Triager  # noqa: E402
from engine.channels import batch as batch_mod  # noqa: E402
from engine.kernel.inputs import parse_json  # noqa: E402
from engine.kernel.triage import build_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "p50_ms": 0.5,  # ≤
    "one_process_per_s": 2000,  # ≥
    "two_processes_per_s": 3500,  # ≥
    "cold_start_s": 0.3,  # ≤
    "rss_growth_mb": 20,  # < over 100,000 triages
}
#: The issue's reference figures: a 26-rule set, median µs per patient, measured by the issue's author.
PEERS = [("plain Python functions", 11), ("durable-rules, wrapped", 200), ("CLIPS (clipspy 1.0.6)", 154),
         ("experta 1.9.4", 1674)]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": batch_mod.default_workers(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "durable_rules": version("durable_rules"),
        "pydantic": version("pydantic"),
        "orjson": version("orjson"),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# ---------------------------------------------------------------- measurements


def latency(t: Triager, patients: list[dict]) -> dict:
    """Per-patient wall time of `Triager.triage(dict)`: validation, inference and result."""
    for p in patients[:500]:
        t.triage(p)
    times = []
    clock = time.perf_counter
    for p in patients:
        s = clock()
        t.triage(p)
        times.append(clock() - s)
    times.sort()
    ms = [x * 1e3 for x in times]
    return {"n": len(ms), "p50_ms": pct(ms, 0.50), "p95_ms": pct(ms, 0.95), "p99_ms": pct(ms, 0.99),
            "mean_ms": statistics.fmean(ms), "api_per_s": len(ms) / sum(times)}


class _TimedCore:
    """Stands in for the durable-rules C module and adds up the time spent inside its calls."""

    def __init__(self, module):
        self._m = module
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name):
        fn = getattr(self._m, name)
        clock = time.perf_counter

        def timed(*args):
            s = clock()
            try:
                return fn(*args)
            finally:
                self.seconds += clock() - s
                self.calls += 1

        return timed


def split(t: Triager, patients: list[dict]) -> dict:
    """Mean µs per patient in each stage of the batch path, timed patient by patient (nothing is
    held between patients, as in a real run); then a second pass with durable-rules' C module
    wrapped by a timer, for the share of inference spent inside durable-rules itself."""
    texts = [orjson.dumps(p) for p in patients]
    n = len(texts)
    clock = time.perf_counter
    ruleset, engine_, order = t.ruleset, t.engine, t._order
    stages = [0.0] * 6
    for text in texts:
        t0 = clock()
        data = parse_json(text)
        t1 = clock()
        model = t.validate(data)
        t2 = clock()
        facts = ruleset.to_facts(model)
        t3 = clock()
        out = engine_.run(facts)
        t4 = clock()
        result = build_result(ruleset, model, out, order)
        t5 = clock()
        result.__pydantic_serializer__.to_json(result)
        t6 = clock()
        for i, (x, y) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6))):
            stages[i] += y - x
    real = inference._dre
    timed = inference._dre = _TimedCore(real)
    try:
        for text in texts:
            engine_.run(ruleset.to_facts(t.validate(parse_json(text))))
    finally:
        inference._dre = real
    us = [x / n * 1e6 for x in stages]
    c_us = timed.seconds / n * 1e6
    return {
        "patients": n, "parse_json_us": us[0], "validate_us": us[1], "to_facts_us": us[2], "inference_us": us[3],
        "inference_durable_c_us": c_us, "inference_python_us": us[3] - c_us,
        "durable_calls_per_patient": timed.calls / n, "build_result_us": us[4], "serialise_us": us[5],
    }


def write_ndjson(path: Path, n: int, seed: int) -> None:
    with path.open("wb") as fh:
        for p in cohort(n, seed=seed):
            fh.write(orjson.dumps(p) + b"\n")


def throughput(path: Path, workers: int) -> dict:
    """Records per second through engine.channels.batch (file in, file out), excluding interpreter start."""
    source = batch_mod.open_input(str(path))
    with open(os.devnull, "wb") as sink:
        s = time.perf_counter()
        summary = batch_mod.run_batch(source.records, sink, workers)
        wall = time.perf_counter() - s
    source.close()
    return {"workers": workers, "records": summary.records, "seconds": wall, "per_s": summary.records / wall}


def soak_api(t: Triager, n: int, seed: int) -> dict:
    """RSS over `n` triages in this process (one patient at a time, results dropped)."""
    payloads = [orjson.dumps(p) for p in cohort(2000, seed=seed)]
    for b in payloads:
        t.triage_json(b)
    gc.collect()
    start = rss_mb()
    curve = []
    step = max(1, n // 10)
    s = time.perf_counter()
    for i in range(n):
        t.triage_json(payloads[i % len(payloads)])
        if (i + 1) % step == 0:
            curve.append(round(rss_mb() - start, 2))
    wall = time.perf_counter() - s
    gc.collect()
    return {"n": n, "rss_start_mb": start, "rss_growth_mb": rss_mb() - start, "growth_curve_mb": curve,
            "per_s": n / wall}


_PEAK_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def soak_batch(path: Path, n: int, workers: int) -> dict:
    """The CLI's `batch` on `n` records in a fresh process tree: every record accounted for, and
    the peak RSS of its largest process (the batch process or one of its workers)."""
    out = path.with_suffix(".out.ndjson")
    cmd = [sys.executable, "-c", _PEAK_OF_CHILD, sys.executable, str(ROOT / "cli.py"), "batch", str(path),
           "--out", str(out), "--workers", str(workers)]
    s = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - s
    lines = errors = 0
    with out.open("rb") as fh:
        for line in fh:
            lines += 1
            errors += line.startswith(b'{"line":')
    return {"records": n, "output_lines": lines, "error_lines": errors, "exit_code": done.returncode,
            "seconds": wall, "per_s": n / wall, "workers": workers,
            "peak_rss_largest_process_mb": int(done.stdout.split()[-1]) / 1024}


def cold_start(runs: int) -> dict:
    """Wall time of one-patient `triage --format json` in a new interpreter, and of its parts."""
    example = ROOT / "tests" / "examples" / "neuropathic-persistent.json"

    def wall(cmd: list[str]) -> float:
        ts = []
        for _ in range(runs):
            s = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
            ts.append(time.perf_counter() - s)
        return statistics.median(ts)

    py = sys.executable
    triage_cmd = [py, str(ROOT / "cli.py"), "triage", str(example), "--format", "json"]
    wall(triage_cmd)  # page cache and bytecode warm: "cold" is a new process, not a cold disk
    return {
        "runs": runs,
        "interpreter_s": wall([py, "-c", "pass"]),
        "imports_s": wall([py, "-c", "import cli, rules"]),
        "triage_s": wall(triage_cmd),
    }


# ---------------------------------------------------------------- report


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "MET"
    miss = (target - value) / target if higher_is_better else (value - target) / target
    return f"MISSED by {miss:.0%}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=20_000, help="cohort size for latency and throughput")
    ap.add_argument("--soak", type=int, default=100_000, help="records for the memory soak (API and batch)")
    ap.add_argument("--workers", type=int, default=batch_mod.default_workers(), help="processes for the N-process run")
    ap.add_argument("--cold-runs", type=int, default=10, help="cold starts to take the median of")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    ap.add_argument("--service", action="store_true",
                    help="benchmark the CDS Hooks service instead: the real server, 2 workers, over HTTP (bench/service.py)")
    args = ap.parse_args(argv)
    if args.service:
        from bench import service

        return service.main(args)
    if args.quick:
        args.patients, args.soak, args.cold_runs = 2000, 2000, 2

    fig: dict = {"machine": machine()}
    m = fig["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['os']}")
    print(f"         durable-rules {m['durable_rules']}, pydantic {m['pydantic']}, orjson {m['orjson']}; "
          f"load average at start {m['load_average_at_start']}")

    t = Triager()
    patients = list(cohort(args.patients, seed=args.seed))
    fired: set[str] = set()
    for p in patients:
        fired.update(e.rule for e in t.triage(p).trace)
    hit, total, never = coverage([r.id for r in t.ruleset.rules], [fired])
    fig["cohort"] = {"patients": len(patients), "seed": args.seed, "rules_fired": hit, "rules": total, "never_fired": never}
    print(f"\ncohort: {len(patients)} synthetic patients (seed {args.seed}); rule set {t.ruleset.name} "
          f"{t.ruleset.version}: {hit}/{total} rules fired at least once" + (f" (never: {', '.join(never)})" if never else ""))

    lat = fig["latency"] = latency(t, patients)
    print(f"\nlatency through the API (Triager.triage(dict), one thread, {lat['n']} patients):")
    print(f"  p50 {lat['p50_ms']:.3f} ms   p95 {lat['p95_ms']:.3f} ms   p99 {lat['p99_ms']:.3f} ms   "
          f"mean {lat['mean_ms']:.3f} ms  ({lat['api_per_s']:.0f} patients/s)")

    sp = fig["split"] = split(t, patients[: min(len(patients), 5000)])
    del patients  # the throughput runs fork: keep this process small
    gc.collect()
    total_us = sum(sp[k] for k in ("parse_json_us", "validate_us", "to_facts_us", "inference_us", "build_result_us",
                                   "serialise_us"))
    print("\nwhere the time goes (mean µs per patient, stage by stage; batch path = all rows):")
    rows = [("parse_json (strict JSON)", sp["parse_json_us"]), ("validation (pydantic Patient)", sp["validate_us"]),
            ("facts (rules.to_facts)", sp["to_facts_us"]),
            ("inference: durable-rules C core", sp["inference_durable_c_us"]),
            ("inference: our wrapper + rule actions", sp["inference_python_us"]),
            ("result building (build_result)", sp["build_result_us"]), ("serialising the result (JSON)", sp["serialise_us"])]
    for name, us in rows:
        print(f"  {name:<40} {us:7.1f} µs  {us / total_us:5.1%}")
    print(f"  {'total':<40} {total_us:7.1f} µs  ({sp['patients']} patients, "
          f"{sp['durable_calls_per_patient']:.1f} durable-rules calls each)")
    ours = total_us - sp["inference_durable_c_us"]
    print(f"  durable-rules' own inference: {sp['inference_durable_c_us']:.0f} µs ({sp['inference_durable_c_us'] / total_us:.0%});"
          f" ours: {ours:.0f} µs ({ours / total_us:.0%})")
    print("  peers (the issue's figures, a 26-rule set, µs per patient): "
          + ", ".join(f"{name} {us}" for name, us in PEERS))

    with tempfile.TemporaryDirectory() as tmp:
        cohort_file = Path(tmp) / "cohort.ndjson"
        write_ndjson(cohort_file, args.patients, args.seed)
        one = fig["throughput_1"] = throughput(cohort_file, 1)
        many = fig["throughput_n"] = throughput(cohort_file, args.workers)
        print(f"\nthroughput through engine.channels.batch (NDJSON file in and out, {args.patients} records):")
        print(f"  1 process:   {one['per_s']:7.0f} patients/s")
        print(f"  {args.workers} processes: {many['per_s']:7.0f} patients/s  (×{many['per_s'] / one['per_s']:.2f})")

        soak = fig["soak_api"] = soak_api(t, args.soak, args.seed + 1)
        print(f"\nmemory, {soak['n']} triages in one process (API): RSS {soak['rss_start_mb']:.1f} MB at start, "
              f"grew {soak['rss_growth_mb']:+.1f} MB; growth every {soak['n'] // 10}: {soak['growth_curve_mb']}")
        small_file, soak_file = Path(tmp) / "soak-small.ndjson", Path(tmp) / "soak.ndjson"
        write_ndjson(small_file, args.soak // 10, args.seed + 2)
        write_ndjson(soak_file, args.soak, args.seed + 2)
        sb_small = fig["soak_batch_tenth"] = soak_batch(small_file, args.soak // 10, args.workers)
        sb = fig["soak_batch"] = soak_batch(soak_file, args.soak, args.workers)
        for x in (sb_small, sb):
            print(f"memory, `cli.py batch` of {x['records']:>6} records, {x['workers']} workers: "
                  f"{x['output_lines']} lines out ({x['error_lines']} error records), exit {x['exit_code']}, "
                  f"{x['seconds']:.1f} s ({x['per_s']:.0f}/s with start-up); peak RSS of its largest process "
                  f"{x['peak_rss_largest_process_mb']:.1f} MB")
    fig["peak_rss_bench_mb"] = peak_rss_mb()
    print(f"peak RSS of this benchmark process: {fig['peak_rss_bench_mb']:.1f} MB")

    cs = fig["cold_start"] = cold_start(args.cold_runs)
    print(f"\ncold start, one patient, `python cli.py triage FILE --format json` (median of {cs['runs']}):")
    print(f"  {cs['triage_s']:.3f} s wall = interpreter {cs['interpreter_s']:.3f} s + imports "
          f"{cs['imports_s'] - cs['interpreter_s']:.3f} s + rule set, engine and triage "
          f"{cs['triage_s'] - cs['imports_s']:.3f} s")

    checks = [
        ("p50 ≤ 0.5 ms through the API", lat["p50_ms"], TARGETS["p50_ms"], False, f"{lat['p50_ms']:.3f} ms"),
        ("≥ 2,000 patients/s in one process", one["per_s"], TARGETS["one_process_per_s"], True, f"{one['per_s']:.0f}/s"),
        (f"≥ 3,500 patients/s with {args.workers} processes", many["per_s"], TARGETS["two_processes_per_s"], True,
         f"{many['per_s']:.0f}/s"),
        ("one-patient cold start ≤ 0.3 s", cs["triage_s"], TARGETS["cold_start_s"], False, f"{cs['triage_s']:.3f} s"),
        (f"RSS growth over {soak['n']} triages < 20 MB", soak["rss_growth_mb"], TARGETS["rss_growth_mb"], False,
         f"{soak['rss_growth_mb']:+.1f} MB"),
        (f"batch of {sb['records']}: every record accounted for", float(sb["output_lines"] == sb["records"]), 1.0, True,
         f"{sb['output_lines']}/{sb['records']} lines"),
    ]
    fig["targets"] = {}
    print("\ntargets (issue 5):")
    for name, value, target, higher, shown in checks:
        v = verdict(value, target, higher)
        fig["targets"][name] = {"value": shown, "verdict": v}
        print(f"  {name:<48} {shown:>14}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
