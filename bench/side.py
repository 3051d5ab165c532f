"""One tree's side of the benchmark: a worker process that imports the engine of the tree it is
given and measures what the parent asks, one command at a time (`bench/run.py` drives it).

    python bench/side.py TREE        # then JSON commands on stdin, one answer per line on stdout

It runs the API every version has (`engine.Triager`, the batch module's `open_input` and
`run_batch`), so the same file measures the current tree and a baseline commit checked out in a
temporary worktree. It imports nothing from the tree it lives in.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

TREE = os.path.abspath(sys.argv[1])
sys.path.insert(0, TREE)
if os.path.dirname(os.path.abspath(__file__)) in sys.path:  # never this file's own tree's bench/
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))
# An editable install maps engine.* to the tree it was installed from, whatever sys.path says:
# a baseline tree would quietly import the current tree's modules for names it does not have.
sys.meta_path[:] = [f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")]

import orjson  # noqa: E402

from engine import Triager  # noqa: E402


def _module(*names: str) -> Any:
    """The first of `names` that imports (the layout moved between versions)."""
    import importlib

    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(" or ".join(names))


batch = _module("engine.channels.batch", "engine.batch")
inference = _module("engine.kernel.inference", "engine.inference")
inputs = _module("engine.kernel.inputs", "engine.inputs")
triage_mod = _module("engine.kernel.triage", "engine.triage")
for _m in (sys.modules["engine"], batch, inference, inputs, triage_mod):
    if not os.path.abspath(_m.__file__).startswith(TREE + os.sep):
        raise ImportError(f"{_m.__name__} was imported from {_m.__file__}, not from {TREE}")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _TimedCore:
    """Stands in for the durable-rules C module and adds up the time spent inside its calls."""

    def __init__(self, module: Any):
        self._m = module
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._m, name)
        clock = time.perf_counter

        def timed(*args: Any) -> Any:
            s = clock()
            try:
                return fn(*args)
            finally:
                self.seconds += clock() - s
                self.calls += 1

        return timed


class Side:
    def __init__(self) -> None:
        self.t: Any = None
        self.patients: list[dict] = []
        self.payloads: list[bytes] = []

    def load(self, cohort: str) -> dict:
        with open(cohort, "rb") as fh:
            self.payloads = [line.rstrip(b"\n") for line in fh if line.strip()]
        self.patients = [orjson.loads(b) for b in self.payloads]
        self.t = Triager()
        rejected = 0
        fired: set[str] = set()
        for p in self.patients:
            try:
                fired.update(e.rule for e in self.t.triage(p).trace)
            except Exception:  # noqa: BLE001 - counted: the cohort must be one both versions accept
                rejected += 1
        rs = self.t.ruleset
        import durable_rules_engine

        return {
            "tree": TREE,
            "durable_so": durable_rules_engine.__file__,
            "rejected": rejected,
            "patients": len(self.patients),
            "rules": len(rs.rules),
            "rules_fired": len(fired),
            "ruleset": f"{rs.name} {rs.version}",
        }

    def latency(self, start: int, end: int) -> dict:
        """Seconds per `Triager.triage(dict)` for patients[start:end], one at a time."""
        t, clock = self.t, time.perf_counter
        times = []
        for p in self.patients[start:end]:
            s = clock()
            t.triage(p)
            times.append(clock() - s)
        return {"times": times}

    def throughput(self, path: str, workers: int) -> dict:
        """Records per second through the batch module (file in, /dev/null out), interpreter start excluded."""
        source = batch.open_input(path)
        with open(os.devnull, "wb") as sink:
            s = time.perf_counter()
            summary = batch.run_batch(source.records, sink, workers)
            wall = time.perf_counter() - s
        source.close()
        return {"records": summary.records, "triaged": summary.triaged, "seconds": wall}

    def split(self, n: int) -> dict:
        """Mean µs per patient in each stage of the batch path; then the share inside durable's C core."""
        t = self.t
        ruleset, engine, order = t.ruleset, t.engine, t._order
        build_data = getattr(triage_mod, "build_data", None)
        data_json = getattr(triage_mod, "data_json", None)
        texts = self.payloads[:n]
        clock = time.perf_counter
        stages = [0.0] * 6
        for text in texts:
            t0 = clock()
            data = inputs.parse_json(text)
            t1 = clock()
            model = t.validate(data)
            t2 = clock()
            facts = ruleset.to_facts(model)
            t3 = clock()
            out = engine.run(facts)
            t4 = clock()
            if build_data is not None:  # the batch path writes JSON data, not the model
                result = build_data(ruleset, model, out, order)
                t5 = clock()
                data_json(result)
            else:
                result = triage_mod.build_result(ruleset, model, out, order)
                t5 = clock()
                result.__pydantic_serializer__.to_json(result)
            t6 = clock()
            for i, (x, y) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6))):
                stages[i] += y - x
        real = inference._dre
        timed = inference._dre = _TimedCore(real)
        try:
            for text in texts:
                engine.run(ruleset.to_facts(t.validate(inputs.parse_json(text))))
        finally:
            inference._dre = real
        k = len(texts)
        us = [x / k * 1e6 for x in stages]
        return {
            "parse_json_us": us[0],
            "validate_us": us[1],
            "to_facts_us": us[2],
            "inference_us": us[3],
            "inference_durable_c_us": timed.seconds / k * 1e6,
            "build_result_us": us[4],
            "serialise_us": us[5],
            "durable_calls_per_patient": timed.calls / k,
        }

    def soak(self, n: int, offset: int) -> dict:
        """RSS before and after `n` more triages (JSON text in, results dropped)."""
        t, payloads = self.t, self.payloads
        gc.collect()
        before = rss_mb()
        s = time.perf_counter()
        for i in range(offset, offset + n):
            t.triage_json(payloads[i % len(payloads)])
        wall = time.perf_counter() - s
        gc.collect()
        return {"rss_before_mb": before, "rss_after_mb": rss_mb(), "seconds": wall}


def main() -> None:
    side = Side()
    out = sys.stdout
    sys.stdout = sys.stderr  # only answers on the protocol stream
    for line in sys.stdin:
        cmd = json.loads(line)
        name = cmd.pop("cmd")
        if name == "quit":
            break
        answer = getattr(side, name)(**cmd)
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
