"""The embedding API under a long-running clinic script: many threads at once, forked worker
processes, streaming, and memory that stays flat."""

from __future__ import annotations

import gc
import itertools
import json
import multiprocessing
import os
import sys
import threading
from pathlib import Path

import pytest

import engine.kernel.inference
from bench.cohort import cohort, coverage
from engine import InputError, Triager, default_triager, triage_many

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method and /proc are Linux")


def varied(n: int, seed: int = 11) -> list[dict]:
    """`n` synthetic patients reaching every branch of the pathway (bench/cohort.py)."""
    return list(cohort(n, seed=seed))


def test_the_synthetic_cohort_reaches_every_rule_of_the_pathway():
    """The cohort these tests and the benchmark use (bench/cohort.py) makes every rule fire for
    some patient, so 'agrees under threads and forks' covers the whole pathway."""
    t = default_triager()
    fired = [[e.rule for e in t.triage(p).trace] for p in varied(2000, seed=20240501)]
    hit, total, never = coverage([r.id for r in t.ruleset.rules], fired)
    assert never == [], f"{hit}/{total} rules fired"


@pytest.mark.slow
def test_eight_threads_of_a_thousand_triages_each_agree_with_the_serial_results():
    """8 threads × 1,000 varied patients, all at once (each thread in its own order): every result
    equals the serial one, and no durable session is left holding state."""
    t = Triager()
    ps = varied(1000)
    serial = [t.triage(p).model_dump_json() for p in ps]
    start = threading.Barrier(8)
    mismatches: dict[int, int] = {}

    def work(k: int) -> None:
        order = list(range(len(ps)))
        order = order[k * 125 :] + order[: k * 125]
        start.wait()
        mismatches[k] = sum(t.triage(ps[i]).model_dump_json() != serial[i] for i in order)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert mismatches == {k: 0 for k in range(8)}
    assert t.engine.live_sessions() == 0
    assert t.engine.sessions_created <= 8


def test_concurrent_first_calls_share_one_default_triager(monkeypatch):
    """Eight threads asking for the default triager at the same moment get the same one: the rule
    set is loaded once per process."""
    monkeypatch.setattr(sys.modules["engine.kernel.triage"], "_default", None)
    start = threading.Barrier(8)
    got: list[Triager] = []

    def ask() -> None:
        start.wait()
        got.append(default_triager())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 8 and all(x is got[0] for x in got)


def _triage_in_child(patient: dict) -> str:
    return default_triager().triage(patient).model_dump_json()


@linux_only
def test_forked_worker_processes_triage_exactly_like_the_parent():
    """A parent that has already triaged forks a pool ('fork' context): the children's results
    equal the parent's, patient for patient."""
    ps = varied(200, seed=12)
    parent = [default_triager().triage(p).model_dump_json() for p in ps]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_triage_in_child, ps, chunksize=10)
    assert children == parent


def _child_writes_result(path: str, patient: dict) -> None:
    Path(path).write_text(default_triager().triage(patient).model_dump_json(), encoding="utf-8")


@linux_only
def test_a_fork_while_another_thread_holds_the_engines_locks_does_not_hang_the_child(tmp_path):
    """Only the forking thread survives a fork: had the child inherited the session-pool and
    session-counter locks held by another thread at that moment, its first triage would wait
    forever. The engine's at-fork handler gives the child fresh ones."""
    t = default_triager()
    p = varied(1, seed=13)[0]
    expected = t.triage(p).model_dump_json()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with t.engine._lock, engine.kernel.inference._counter_lock:
            holding.set()
            release.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        out = tmp_path / "child.json"
        child = multiprocessing.get_context("fork").Process(target=_child_writes_result, args=(str(out), p))
        child.start()
        child.join(30)
        hung = child.is_alive()
        if hung:
            child.kill()
            child.join()
    finally:
        release.set()
        holder.join()
    assert not hung, "the forked child hung on a lock inherited from another thread"
    assert child.exitcode == 0
    assert out.read_text(encoding="utf-8") == expected


def test_triage_many_streams_in_input_order_and_yields_input_errors_in_place():
    """`triage_many` pulls one patient per result (so an endless iterable works) and yields an
    InputError where a patient was rejected, without stopping."""
    ps = varied(3, seed=14)
    pulled = 0

    def endless():
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield {"id": "bad", "age": -1} if i == 1 else ps[i % 3]

    got = list(itertools.islice(triage_many(endless()), 4))
    assert pulled == 4
    assert isinstance(got[1], InputError)
    assert [r.patient_id for r in (got[0], got[2], got[3])] == [ps[0]["id"], ps[2]["id"], ps[0]["id"]]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@linux_only
def test_twenty_thousand_triages_grow_resident_memory_by_little():
    """Memory stays flat for a long-running script: after a warm-up, 20,000 more triages of varied
    patients grow RSS by well under 20 MB (the benchmark reports the 100,000-patient figure)."""
    t = Triager()
    ps = varied(1000, seed=15)
    payloads = [json.dumps(p) for p in ps]
    for s in payloads:
        t.triage_json(s)
    gc.collect()
    before = _rss_bytes()
    for i in range(20_000):
        t.triage_json(payloads[i % len(payloads)])
    gc.collect()
    grown = _rss_bytes() - before
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MB"
