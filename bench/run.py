"""Clinic-scale benchmark: latency, throughput, memory, cold start, and where the time goes,
each figure beside the same figure for a baseline commit measured in the same run.

    python -m bench --baseline e7691ad   # side by side with commit e7691ad (about 8 minutes on 2 cores)
    python -m bench                      # this tree alone
    python -m bench --quick              # a smoke run with small sizes
    python bench/run.py --baseline e7691ad --json out.json
    python -m bench --service            # the CDS Hooks service over HTTP instead (bench/service.py)

`--baseline REF` checks REF out in a temporary `git worktree` and measures both trees in worker
processes (bench/side.py), each importing its own tree's engine and the durable-rules build its
README installs: a tree with `third_party/durable_rules/` gets that build, an older tree the
upstream 2.0.28 (rebuilt from the vendored source with `third_party/durable_rules-forefoot.patch`
reversed, which tests/test_vendored_durable.py proves is byte for byte the PyPI sdist). Both are
compiled into the run's temporary folder and put first on each worker's PYTHONPATH. With
`--same-durable` both trees use the durable-rules installed in this environment instead, which
shows how much of a ratio is the project's own code. Both run on the same seeded cohort
restricted to the input shape both accept (bench/cohort.py `common_shape`). The work alternates in
blocks (A B, B A, A B, ...) so both trees see the same minutes of a noisy machine, and each
figure is printed with its ratio: "faster" is a ratio measured side by side, not two numbers from
different minutes. Not a test. The cohort is synthetic and seeded: no real patient.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench.cohort import cohort, common_shape

ROOT = Path(__file__).resolve().parents[1]
SIDE = Path(__file__).resolve().parent / "side.py"
EXAMPLE = ROOT / "tests" / "examples" / "neuropathic-persistent.json"
#: The speed issue's targets, as ratios measured in one run.
TARGETS = {
    "p50_vs_baseline": 0.5,  # ≤ : API p50 at most half the baseline's
    "one_process_vs_baseline": 1.8,  # ≥ : one-process batch throughput
    "cold_start_vs_interpreter": 6.0,  # ≤ : `cli.py triage FILE --format json` / `python -c pass`
    "rss_growth_mb": 20,  # < over the API soak
}


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

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {
        "cpu": cpu,
        "cores": cores,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "durable_rules": version("durable_rules"),
        "pydantic": version("pydantic"),
        "orjson": version("orjson"),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# ---------------------------------------------------------------- the two trees


VENDORED = Path("third_party") / "durable_rules"
FOREFOOT_PATCH = Path("third_party") / "durable_rules-forefoot.patch"


def durable_build(name: str, tree: Path, tmp: Path) -> tuple[str, Path]:
    """The durable-rules that `tree`'s README installs, compiled into `tmp`: (what it is, its folder).

    A tree that vendors durable-rules gets its own vendored build; an older tree gets upstream
    2.0.28, rebuilt from this tree's vendored source with the patch reversed."""
    src = tmp / f"durable-src-{name}"
    vendors = (tree / VENDORED).is_dir()
    shutil.copytree((tree if vendors else ROOT) / VENDORED, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    if vendors:
        what = "vendored (third_party/durable_rules)"
    else:
        subprocess.run(["git", "apply", "-R", str(ROOT / FOREFOOT_PATCH)], cwd=src, check=True)
        what = "upstream 2.0.28 (the vendored source, patch reversed)"
    target = tmp / f"durable-{name}"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(src)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return what, target


def tree_env(path: Path | None) -> dict[str, str] | None:
    """The environment of a process of a tree: its durable-rules build first on PYTHONPATH."""
    if path is None:
        return None
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}


class Worker:
    """bench/side.py in a process of its own, importing the engine of `tree` (and the durable-rules
    build in `durable`, if given)."""

    def __init__(self, name: str, tree: Path, durable: Path | None = None):
        self.name = name
        self.tree = tree
        self.proc = subprocess.Popen(
            [sys.executable, str(SIDE), str(tree)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(tree),
            text=True,
            env=tree_env(durable),
        )

    def ask(self, cmd: str, **args) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker stopped (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.ask_quit()
        finally:
            self.proc.wait(timeout=30)

    def ask_quit(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


class BaselineTree:
    """REF checked out in a temporary git worktree, removed again on exit."""

    def __init__(self, ref: str, parent: Path):
        self.ref = ref
        self.commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
        self.path = parent / f"baseline-{self.commit}"

    def __enter__(self) -> Path:
        _git("worktree", "add", "--detach", "--quiet", str(self.path), self.commit)
        return self.path

    def __exit__(self, *exc) -> None:
        _git("worktree", "remove", "--force", str(self.path))


def alternating(workers: list[Worker], rounds: int):
    """(round, worker) pairs, the order of the workers reversed every other round: A B, B A, A B ..."""
    for k in range(rounds):
        for w in workers if k % 2 == 0 else workers[::-1]:
            yield k, w


# ---------------------------------------------------------------- measurements


def latency(workers: list[Worker], n: int, block: int) -> dict[str, dict]:
    """Per-patient wall time of `Triager.triage(dict)` in blocks of `block` patients, alternating."""
    times: dict[str, list[float]] = {w.name: [] for w in workers}
    for w in workers:  # warm-up: first calls, caches
        w.ask("latency", start=0, end=min(n, 500))
    blocks = [(i, min(n, i + block)) for i in range(0, n, block)]
    for k, w in alternating(workers, len(blocks)):
        start, end = blocks[k]
        times[w.name] += w.ask("latency", start=start, end=end)["times"]
    out = {}
    for name, ts in times.items():
        ms = sorted(x * 1e3 for x in ts)
        out[name] = {
            "n": len(ms),
            "p50_ms": pct(ms, 0.50),
            "p95_ms": pct(ms, 0.95),
            "p99_ms": pct(ms, 0.99),
            "mean_ms": statistics.fmean(ms),
            "api_per_s": len(ms) / (sum(ms) / 1e3),
        }
    return out


def throughput(workers: list[Worker], paths: list[Path], processes: int, repeats: int) -> dict[str, dict]:
    """Records per second through the batch module (NDJSON file in and out), the cohort split into
    `paths` and the trees alternating file by file (A B, B A, ...), `repeats` times over; the rate
    is each tree's records over its seconds."""
    seconds: dict[str, float] = {w.name: 0.0 for w in workers}
    records: dict[str, int] = {w.name: 0 for w in workers}
    blocks = [p for _ in range(repeats) for p in paths]
    for k, w in alternating(workers, len(blocks)):
        r = w.ask("throughput", path=str(blocks[k]), workers=processes)
        seconds[w.name] += r["seconds"]
        records[w.name] += r["records"]
    return {
        name: {
            "workers": processes,
            "records": records[name],
            "seconds": seconds[name],
            "per_s": records[name] / seconds[name],
        }
        for name in seconds
    }


def soak_api(workers: list[Worker], n: int, chunks: int = 10) -> dict[str, dict]:
    """RSS over `n` triages in each worker (JSON text in, results dropped), in alternating chunks."""
    step = max(1, n // chunks)
    out: dict[str, dict] = {w.name: {"n": 0, "curve_mb": [], "seconds": 0.0} for w in workers}
    for k, w in alternating(workers, chunks):
        r = w.ask("soak", n=step, offset=k * step)
        o = out[w.name]
        o.setdefault("rss_start_mb", r["rss_before_mb"])
        o["n"] += step
        o["seconds"] += r["seconds"]
        o["curve_mb"].append(round(r["rss_after_mb"] - o["rss_start_mb"], 2))
    for o in out.values():
        o["rss_growth_mb"] = o["curve_mb"][-1]
        o["per_s"] = o["n"] / o["seconds"]
    return out


_PEAK_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def soak_batch(tree: Path, path: Path, n: int, workers: int, durable: Path | None = None) -> dict:
    """`cli.py batch` of `tree` on `n` records in a fresh process tree: every record accounted for,
    and the peak RSS of its largest process."""
    out = path.with_name(f"{path.stem}-{tree.name}.out.ndjson")
    cmd = [
        sys.executable,
        "-c",
        _PEAK_OF_CHILD,
        sys.executable,
        str(tree / "cli.py"),
        "batch",
        str(path),
        "--out",
        str(out),
        "--workers",
        str(workers),
    ]
    s = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tree), env=tree_env(durable))
    wall = time.perf_counter() - s
    lines = errors = 0
    with out.open("rb") as fh:
        for line in fh:
            lines += 1
            errors += line.startswith(b'{"line":')
    out.unlink()
    return {
        "records": n,
        "output_lines": lines,
        "error_lines": errors,
        "exit_code": done.returncode,
        "seconds": wall,
        "per_s": n / wall,
        "workers": workers,
        "peak_rss_largest_process_mb": int(done.stdout.split()[-1]) / 1024,
    }


def cold_start(trees: list[tuple[str, Path]], runs: int, durables: dict[str, Path] | None = None) -> dict:
    """Median wall time of one-patient `cli.py triage FILE --format json` in a new interpreter, per
    tree, and of `python -c pass`; the commands interleaved run by run."""
    py = sys.executable
    durables = durables or {}
    #: name -> (command, working folder, environment: the tree's durable-rules build first)
    cmds: dict[str, tuple[list[str], Path, dict[str, str] | None]] = {"interpreter": ([py, "-c", "pass"], ROOT, None)}
    for name, tree in trees:
        # bytecode as an installed package has it (PYTHONDONTWRITEBYTECODE may forbid writing it on
        # import, and then every start would compile every module of the tree from source)
        subprocess.run(
            [py, "-m", "compileall", "-q", "engine", "rules", "cli.py"], cwd=tree, check=True, stdout=subprocess.DEVNULL
        )
        cmds[name] = (
            [py, str(tree / "cli.py"), "triage", str(EXAMPLE), "--format", "json"],
            tree,
            tree_env(durables.get(name)),
        )
    for cmd, cwd, env in cmds.values():  # page cache warm: "cold" is a new process, not a cold disk
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=cwd, env=env)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    order = list(cmds)
    for i in range(runs):
        for key in order if i % 2 == 0 else order[::-1]:
            cmd, cwd, env = cmds[key]
            s = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=cwd, env=env)
            times[key].append(time.perf_counter() - s)
    return {"runs": runs, **{k: statistics.median(v) for k, v in times.items()}, "all_s": times}


# ---------------------------------------------------------------- report


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "MET"
    miss = (target - value) / target if higher_is_better else (value - target) / target
    return f"MISSED by {miss:.0%}"


def _row(label: str, cur: float | None, base: float | None, fmt: str, unit: str = "") -> str:
    def show(v):
        return "-" if v is None else format(v, fmt) + unit

    ratio = f"×{cur / base:.2f}" if cur is not None and base not in (None, 0) else ""
    return f"  {label:<44} {show(cur):>14} {show(base):>14} {ratio:>8}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="REF", help="commit to measure side by side (e.g. e7691ad)")
    ap.add_argument("--patients", type=int, default=20_000, help="cohort size for latency and throughput")
    ap.add_argument("--block", type=int, default=1000, help="patients per alternating latency block")
    ap.add_argument("--repeats", type=int, default=2, help="passes over the cohort for throughput")
    ap.add_argument("--blocks", type=int, default=10, help="alternating blocks the throughput cohort is split into")
    ap.add_argument("--soak", type=int, default=100_000, help="triages for the memory soak (API); a tenth for `batch`")
    ap.add_argument("--workers", type=int, default=None, help="processes for the N-process run (default: cores)")
    ap.add_argument("--cold-runs", type=int, default=10, help="cold starts to take the median of")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    ap.add_argument(
        "--same-durable",
        action="store_true",
        help="both trees use the durable-rules installed here, not each the build its README installs",
    )
    ap.add_argument(
        "--service",
        action="store_true",
        help="benchmark the CDS Hooks service instead: the real server, 2 workers, over HTTP (bench/service.py)",
    )
    args = ap.parse_args(argv)
    if args.service:
        from bench import service

        return service.main(args)
    if args.quick:
        args.patients, args.soak, args.cold_runs, args.repeats, args.block, args.blocks = 2000, 2000, 3, 1, 500, 4

    fig: dict = {"machine": machine()}
    m = fig["machine"]
    args.workers = args.workers or m["cores"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['os']}")
    print(
        f"         durable-rules {m['durable_rules']}, pydantic {m['pydantic']}, orjson {m['orjson']}; "
        f"load average at start {m['load_average_at_start']}"
    )

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base_ctx = BaselineTree(args.baseline, tmp) if args.baseline else None
        trees: list[tuple[str, Path]] = [("current", ROOT)]
        if base_ctx is not None:
            trees.append(("baseline", base_ctx.__enter__()))
        workers: list[Worker] = []
        try:
            head = _git("rev-parse", "--short", "HEAD")
            dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
            fig["trees"] = {"current": f"{head}{' + uncommitted changes' if dirty else ''} ({ROOT})"}
            if base_ctx is not None:
                fig["trees"]["baseline"] = f"{base_ctx.commit} ({args.baseline})"
            cohort_file = tmp / "cohort.ndjson"
            with cohort_file.open("wb") as fh:
                for p in cohort(args.patients, seed=args.seed):
                    fh.write(orjson.dumps(common_shape(p)) + b"\n")
            durables: dict[str, Path] = {}
            fig["durable_rules"] = {}
            for name, tree in trees:
                if args.same_durable or base_ctx is None:
                    fig["durable_rules"][name] = (
                        "installed in this environment (--same-durable)" if base_ctx else "installed"
                    )
                else:
                    fig["durable_rules"][name], durables[name] = durable_build(name, tree, tmp)
            workers = [Worker(name, tree, durables.get(name)) for name, tree in trees]
            print()
            fig["cohort"] = {}
            for w in workers:
                info = fig["cohort"][w.name] = w.ask("load", cohort=str(cohort_file))
                print(
                    f"{w.name:>8}: {fig['trees'][w.name]}; rule set {info['ruleset']}, {info['rules_fired']}/"
                    f"{info['rules']} rules fired on {info['patients']} synthetic patients (seed {args.seed}), "
                    f"{info['rejected']} rejected"
                )
                print(
                    f"          durable-rules: {fig['durable_rules'][w.name]}, loaded from {info.get('durable_so', '?')}"
                )
            names = [w.name for w in workers]

            lat = fig["latency"] = latency(workers, args.patients, args.block)
            sp = fig["split"] = {}
            for _, w in alternating(workers, 1):
                sp[w.name] = w.ask("split", n=min(args.patients, 5000))
            parts = []
            with cohort_file.open("rb") as fh:
                lines = fh.readlines()
            step = max(1, len(lines) // args.blocks)
            for i in range(0, len(lines), step):
                part = tmp / f"cohort-{i // step:03d}.ndjson"
                part.write_bytes(b"".join(lines[i : i + step]))
                parts.append(part)
            one = fig["throughput_1"] = throughput(workers, parts, 1, args.repeats)
            many = fig["throughput_n"] = throughput(workers, parts, args.workers, args.repeats)
            soak = fig["soak_api"] = soak_api(workers, args.soak)
            for w in workers:
                w.close()
            workers = []
            batch_file = tmp / "soak.ndjson"
            with batch_file.open("wb") as fh:
                for p in cohort(args.soak // 10, seed=args.seed + 2):
                    fh.write(orjson.dumps(common_shape(p)) + b"\n")
            sb = fig["soak_batch"] = {
                name: soak_batch(tree, batch_file, args.soak // 10, args.workers, durables.get(name))
                for name, tree in trees
            }
            cs = fig["cold_start"] = cold_start(trees, args.cold_runs, durables)
        finally:
            for w in workers:
                w.proc.kill()
            if base_ctx is not None:
                base_ctx.__exit__(None, None, None)

    base = "baseline" if "baseline" in names else None

    def side(label: str, d: dict, key: str, fmt: str, unit: str = "") -> None:
        """One figure's row: the current tree's value beside the baseline's (when there is one)."""
        print(_row(label, d["current"][key], d[base][key] if base in d else None, fmt, unit))

    print(f"\n  {'figure':<44} {'current':>14} {(base or ''):>14} {'ratio' if base else '':>8}")
    print(
        "  latency through the API, Triager.triage(dict), one thread, "
        f"{lat['current']['n']} patients in alternating blocks of {args.block}:"
    )
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"), ("mean_ms", "mean")):
        side(label, lat, key, ".3f", " ms")
    side("patients/s", lat, "api_per_s", ".0f")
    print(
        f"  throughput through the batch module (NDJSON in and out; {args.patients} records × {args.repeats} in "
        f"{len(parts)} alternating blocks each):"
    )
    side("1 process, patients/s", one, "per_s", ".0f")
    side(f"{args.workers} processes, patients/s", many, "per_s", ".0f")
    print(f"  where the time goes, batch path, mean µs per patient ({min(args.patients, 5000)} patients):")
    stages = [
        ("parse_json (strict JSON)", "parse_json_us"),
        ("validation (pydantic Patient)", "validate_us"),
        ("facts (rules.to_facts)", "to_facts_us"),
        ("inference: durable-rules C core", "inference_durable_c_us"),
        ("inference: wrapper + rule actions", None),
        ("result (data or model)", "build_result_us"),
        ("serialising the result (JSON)", "serialise_us"),
    ]
    for name in names:
        sp[name]["inference_python_us"] = sp[name]["inference_us"] - sp[name]["inference_durable_c_us"]
        sp[name]["total_us"] = sum(
            sp[name][k]
            for k in ("parse_json_us", "validate_us", "to_facts_us", "inference_us", "build_result_us", "serialise_us")
        )
    for label, key in stages + [
        ("total", "total_us"),
        ("durable-rules calls per patient", "durable_calls_per_patient"),
    ]:
        key = key or "inference_python_us"
        side(label, sp, key, ".1f")
    print(f"  memory, {args.soak} triages in one process (API), RSS growth after warm-up, in alternating chunks:")
    side("RSS growth", soak, "rss_growth_mb", "+.1f", " MB")
    for name in names:
        print(f"    {name}: RSS {soak[name]['rss_start_mb']:.1f} MB at start; growth by tenth {soak[name]['curve_mb']}")
    print(f"  `cli.py batch` of {args.soak // 10} records, {args.workers} workers (start-up included):")
    side("patients/s", sb, "per_s", ".0f")
    side("peak RSS of the largest process", sb, "peak_rss_largest_process_mb", ".1f", " MB")
    for name in names:
        x = sb[name]
        print(
            f"    {name}: {x['output_lines']}/{x['records']} lines out ({x['error_lines']} error records), exit {x['exit_code']}"
        )
    print(
        f"  cold start, `python cli.py triage FILE --format json`, median of {cs['runs']} interleaved runs "
        "(bytecode compiled; the same venv, editable install included, for every command):"
    )
    print(_row("one patient", cs["current"], cs.get("baseline"), ".3f", " s"))
    print(
        _row("python -c pass (same interpreter)", cs["interpreter"], cs["interpreter"] if base else None, ".3f", " s")
    )
    print(
        f"    current / python -c pass: ×{cs['current'] / cs['interpreter']:.2f}"
        + (f"; baseline / python -c pass: ×{cs['baseline'] / cs['interpreter']:.2f}" if base else "")
    )

    checks = [
        (
            f"RSS growth over {args.soak} triages < {TARGETS['rss_growth_mb']} MB",
            soak["current"]["rss_growth_mb"],
            TARGETS["rss_growth_mb"],
            False,
            f"{soak['current']['rss_growth_mb']:+.1f} MB",
        ),
        (
            "cold start ≤ 6× `python -c pass`",
            cs["current"] / cs["interpreter"],
            TARGETS["cold_start_vs_interpreter"],
            False,
            f"×{cs['current'] / cs['interpreter']:.2f}",
        ),
        (
            f"batch of {sb['current']['records']}: every record accounted for",
            float(sb["current"]["output_lines"] == sb["current"]["records"]),
            1.0,
            True,
            f"{sb['current']['output_lines']}/{sb['current']['records']}",
        ),
    ]
    if base:
        r_p50 = lat["current"]["p50_ms"] / lat[base]["p50_ms"]
        r_one = one["current"]["per_s"] / one[base]["per_s"]
        checks[:0] = [
            ("API p50 ≤ 0.5× the baseline's", r_p50, TARGETS["p50_vs_baseline"], False, f"×{r_p50:.2f}"),
            (
                "1-process batch throughput ≥ 1.8× the baseline's",
                r_one,
                TARGETS["one_process_vs_baseline"],
                True,
                f"×{r_one:.2f}",
            ),
        ]
    fig["targets"] = {}
    print("\ntargets (speed issue; ratios from this run):")
    for name, value, target, higher, shown in checks:
        v = verdict(value, target, higher)
        fig["targets"][name] = {"value": shown, "verdict": v}
        print(f"  {name:<52} {shown:>12}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
