"""The service under load: the real server with 2 workers (`serve --workers 2`), 2,000 requests sent
16 at a time from 127.0.0.1 (hook calls, replayed tokens and feedback), then the governance report
read from the database the run filled. Bounded in count; no timing is asserted (timings live in
`python -m bench --service`)."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from test_service import EXAMPLES, ISSUER, SERVICE, Server, hook_request, start_server
from typer.testing import CliRunner

from cli import app

REQUESTS = 2000
CONCURRENCY = 16
WARM_UP = 400
REASONS = ("patient-declined", "clinical-judgement", "already-in-place")
OVERRIDE_SYSTEM = "https://forefoot-cds.example/fhir/CodeSystem/cds-override-reason"


def _worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: the spawned children of the serve process."""
    kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    out = []
    for pid in kids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(int(pid))
    return sorted(out)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Plan:
    """Request i: every 10th is feedback on the first card of the hook call 9 before it, every 50th
    (offset 47) replays the token of the hook call 20 before it, the others are hook calls for the
    five example patients in turn. A task that refers to an earlier one waits for its answer."""

    def __init__(self, srv: Server):
        self.srv = srv
        self.done = [threading.Event() for _ in range(REQUESTS)]
        self.answered_at = [0.0] * REQUESTS
        self.tokens: list[str | None] = [None] * REQUESTS
        self.bodies: list[Any] = [None] * REQUESTS
        self.results: list[tuple[str, int, Any]] = [("", 0, None)] * REQUESTS
        self.sent_feedback: list[tuple[dict[str, Any], str, str | None]] = []
        self.local = threading.local()

    def kind(self, i: int) -> str:
        if i % 10 == 9:
            return "feedback"
        if i % 50 == 47:
            return "replay"
        return "hook"

    def client(self) -> httpx.Client:
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(base_url=self.srv.base, timeout=60.0)
        return self.local.client

    def post(self, path: str, payload: Any, token: str) -> httpx.Response:
        return self.client().post(
            f"/cds-services/{SERVICE}{path}",
            content=json.dumps(payload),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )

    def run_one(self, i: int) -> None:
        kind = self.kind(i)
        try:
            if kind == "hook":
                token = self.srv.token()
                self.tokens[i] = token
                resp = self.post("", hook_request(EXAMPLES[i % len(EXAMPLES)]), token)
                self.bodies[i] = resp.json()
                self.results[i] = (kind, resp.status_code, None)
            elif kind == "replay":
                original = i - 20
                self.done[original].wait(120)
                resp = self.post("", hook_request(EXAMPLES[original % len(EXAMPLES)]), self.tokens[original])
                self.results[i] = (kind, resp.status_code, resp.json())
            else:
                original = i - 9
                self.done[original].wait(120)
                # A clinician acts on a card seconds after it is shown; the service records the cards
                # it returned just after sending them, so feedback never comes within milliseconds.
                time.sleep(max(0.0, self.answered_at[original] + 0.05 - time.monotonic()))
                n = i // 10
                cards = self.bodies[original]["cards"]
                card = cards[n % len(cards)]
                if n % 3 == 2:
                    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2025-01-15T10:00:00Z"}
                    reason = None
                else:
                    reason = REASONS[(n // 3) % len(REASONS)]
                    item = {
                        "card": card["uuid"],
                        "outcome": "overridden",
                        "outcomeTimestamp": "2025-01-15T10:00:00Z",
                        "overrideReason": {
                            "reason": {"system": OVERRIDE_SYSTEM, "code": reason},
                            "userComment": f"note {n} about the patient",
                        },
                    }
                resp = self.post("/feedback", {"feedback": [item]}, self.srv.token())
                self.sent_feedback.append((card["extension"]["forefoot-cds.entry"], item["outcome"], reason))
                self.results[i] = (kind, resp.status_code, None)
        except Exception as exc:  # noqa: BLE001 - counted as an error below
            self.results[i] = (kind, -1, repr(exc))
        finally:
            self.answered_at[i] = time.monotonic()
            self.done[i].set()

    def run(self, indices: range) -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(self.run_one, indices))


@pytest.mark.slow
def test_two_workers_hold_2000_requests(tmp_path: Path) -> None:
    """2,000 requests 16 at a time on 2 workers: no error, every replayed token refused, the same cards
    as a single request, resident memory flat after warm-up, and a feedback report of the run."""
    key = ECKey.generate_key("P-384", parameters={"kid": "load-key"})
    srv = start_server(tmp_path, keys={ISSUER: key}, workers=2)
    try:
        workers = _worker_pids(srv.proc.pid)
        assert len(workers) == 2, workers
        single = {name: srv.call(hook_request(name)).json() for name in EXAMPLES}
        plan = Plan(srv)
        plan.run(range(WARM_UP))
        rss_warm = {pid: _rss_mb(pid) for pid in workers}
        plan.run(range(WARM_UP, REQUESTS))
        rss_end = {pid: _rss_mb(pid) for pid in workers}
        assert _worker_pids(srv.proc.pid) == workers  # no worker died and was replaced

        errors = [
            (i, r) for i, r in enumerate(plan.results) if r[1] != {"hook": 200, "feedback": 200, "replay": 401}[r[0]]
        ]
        assert errors == []
        replays = [r for r in plan.results if r[0] == "replay"]
        assert len(replays) == 40
        assert all(
            r[2]["resourceType"] == "OperationOutcome" and "replay" in r[2]["issue"][0]["diagnostics"] for r in replays
        )
        hooks = [i for i in range(REQUESTS) if plan.kind(i) == "hook"]
        assert all(plan.bodies[i] == single[EXAMPLES[i % len(EXAMPLES)]] for i in hooks)
        growth = {pid: rss_end[pid] - rss_warm[pid] for pid in workers}
        print(f"\nworker RSS after warm-up {rss_warm} MB, at the end {rss_end} MB")
        assert all(g < 8.0 for g in growth.values()), growth
    finally:
        srv.stop()

    # The governance report from the database this run filled.
    res = CliRunner().invoke(app, ["feedback", "report", "--db", str(srv.db), "--format", "json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    want: dict[tuple[str, str], dict[str, Any]] = {}
    for card, outcome, reason in plan.sent_feedback:
        rule = card.get("rule") or f"({card['type']})"  # summary cards (withheld, unknowns) have no single rule
        w = want.setdefault((rule, card["type"]), {"accepted": 0, "overridden": 0, "reasons": {}})
        w[outcome] += 1
        if reason:
            w["reasons"][reason] = w["reasons"].get(reason, 0) + 1
    got = {(r["rule"], r["kind"]): r for r in report["rows"] if r["feedback"]}
    assert set(got) == set(want)
    for k, w in want.items():
        assert (got[k]["accepted"], got[k]["overridden"]) == (w["accepted"], w["overridden"]), k
        assert got[k]["reasons"] == w["reasons"], k
        assert got[k]["override_rate"] == pytest.approx(w["overridden"] / (w["accepted"] + w["overridden"]))
    assert report["feedback"] == len(plan.sent_feedback) == REQUESTS // 10
    assert report["feedback_on_unknown_cards"] == {}
    shown = sum(len(single[EXAMPLES[i % len(EXAMPLES)]]["cards"]) for i in range(REQUESTS) if plan.kind(i) == "hook")
    shown += sum(len(b["cards"]) for b in single.values())
    assert sum(r["shown"] for r in report["rows"]) == shown
    text = CliRunner().invoke(app, ["feedback", "report", "--db", str(srv.db)])
    assert text.exit_code == 0 and "override rate" in text.stdout
    for rule, _ in want:
        assert rule in text.stdout
    assert "note " not in text.stdout and "note " not in res.stdout


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    """`serve --workers 2`: a worker killed outright is started again, and the service keeps answering."""
    import os
    import signal

    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    srv = start_server(tmp_path, keys={ISSUER: key}, workers=2)
    try:
        before = _worker_pids(srv.proc.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            now = _worker_pids(srv.proc.pid)
            if len(now) == 2 and before[0] not in now:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.2)
        assert all(srv.call(hook_request(name)).status_code == 200 for name in EXAMPLES * 2)
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


def _tcp_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server-side socket of the connection from `client_port` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote, inode = f[1], f[2], int(f[9])
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode
    return None


def _owner(inode: int, pids: list[int]) -> int | None:
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_replay_is_refused_by_the_other_worker(tmp_path: Path) -> None:
    """`serve --workers 2`: a token used on a connection that worker 1 serves is refused on one that worker 2 serves."""
    import http.client

    key = ECKey.generate_key("P-384", parameters={"kid": "k"})
    srv = start_server(tmp_path, keys={ISSUER: key}, workers=2)
    conns: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    try:
        workers = _worker_pids(srv.proc.pid)
        port = int(srv.base.rsplit(":", 1)[1])
        for _ in range(64):  # connections until each worker serves one (the kernel picks by a hash)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/cds-services")
            conn.getresponse().read()  # answered, so accepted by a worker
            owner = _owner(_tcp_inode(port, conn.sock.getsockname()[1]) or -1, workers)
            if owner is None or owner in conns:
                spare.append(conn)
            else:
                conns[owner] = conn
            if len(conns) == 2:
                break
        assert len(conns) == 2, "no connection reached the second worker"
        token = srv.token()
        body = json.dumps(hook_request())
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        first, second = conns.values()
        first.request("POST", f"/cds-services/{SERVICE}", body=body, headers=headers)
        resp = first.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["cards"]
        second.request("POST", f"/cds-services/{SERVICE}", body=body, headers=headers)
        resp = second.getresponse()
        answer = json.loads(resp.read())
        assert resp.status == 401 and "replay" in answer["issue"][0]["diagnostics"]
    finally:
        for conn in [*conns.values(), *spare]:
            conn.close()
        srv.stop()
