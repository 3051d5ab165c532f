"""What the "what would change this decision" search costs: figures, not a test.

    python bench/changes.py            # the five shared examples, then a seeded cohort of 200
    python bench/changes.py --n 50

For each example: `cli.py triage FILE --format json` with the search (the default) and with
`--no-changes` (median of 7 processes, start-up included), and the search alone in process with
its number of engine runs. For the cohort: engine runs per patient (median, 90th centile, most)
and the search's time per patient. The cohort is synthetic and seeded (bench/cohort.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.cohort import cohort  # noqa: E402
from engine import default_triager  # noqa: E402
from engine.kernel import changes  # noqa: E402

EXAMPLES = ["neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid"]


def _example(name: str) -> Path:
    shared = ROOT.parent / "shared" / "examples" / f"{name}.json"
    return shared if shared.exists() else ROOT / "tests" / "examples" / f"{name}.json"


def _cli_ms(path: Path, *extra: str, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), "triage", str(path), "--format", "json", *extra],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _search(t, patient: dict) -> tuple[float, int]:
    """(ms, engine runs) of one search."""
    result = t.triage(patient)
    spec = t.ruleset.changes
    codes = [
        n.intervention
        for n in result.not_recommended
        if t.ruleset.interventions[n.intervention].category in spec.categories
    ]
    start = time.perf_counter()
    search = changes._Search(t, spec, changes.ChangeState(t.ruleset, patient, (), patient, 0, result), spec.budget)
    search.run(list(dict.fromkeys(codes)))
    return (time.perf_counter() - start) * 1000, search.runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="cohort size (0: examples only)")
    args = ap.parse_args()
    t = default_triager()
    print("CLI triage --format json (median of 7 processes)")
    for name in EXAMPLES:
        path = _example(name)
        with_search, without = _cli_ms(path), _cli_ms(path, "--no-changes")
        ms, runs = _search(t, json.loads(path.read_text(encoding="utf-8")))
        print(
            f"  {name:24s} {with_search:5.0f} ms with the search, {without:5.0f} ms --no-changes; "
            f"search alone {ms:5.1f} ms, {runs:3d} engine runs"
        )
    if args.n:
        runs, times = [], []
        for patient in cohort(args.n, seed=7):
            try:
                ms, n = _search(t, patient)
            except Exception:  # noqa: BLE001 - a synthetic patient the model rejects is skipped
                continue
            runs.append(n)
            times.append(ms)
        runs.sort()
        times.sort()
        print(
            f"cohort of {len(runs)}: engine runs per patient median {runs[len(runs) // 2]}, "
            f"p90 {runs[int(len(runs) * 0.9)]}, most {runs[-1]} (budget {t.ruleset.changes.budget}); "
            f"search median {times[len(times) // 2]:.0f} ms, p90 {times[int(len(times) * 0.9)]:.0f} ms, "
            f"most {times[-1]:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
