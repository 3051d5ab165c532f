"""The CDS Hooks service benchmark: the real server, over HTTP, beside the engine alone.

    python -m bench --service                # 2 workers on 127.0.0.1, about a minute
    python -m bench --service --quick        # a smoke run
    python -m bench --service --json out.json

It starts `cli.py serve --workers 2 --server-timing` on a free port of 127.0.0.1 with a fresh
database and two trusted test issuers (one signing ES384, one RS384, keys made for the run), and
sends the repository's example hook request (tests/fhir/hook-request-neuropathic-persistent.json),
each request with its own pre-signed token:

- sequentially on one keep-alive connection (p50, p95, requests/s), once per algorithm;
- with 8 and with 32 concurrent clients (requests/s, p50, p95), ES384;
- and, in this process, the engine alone on the same request: the triage of the mapped patient
  (`Triager.triage`), the FHIR mapping + triage (`triage_bundle`), and the whole in-process
  answer (+ the cards), timed in blocks between the sequential HTTP blocks so that both see the
  same machine.

The server reports the time of each of its stages in a Server-Timing header; the benchmark
prints their medians, so what is left of the client's latency is HTTP, the event loop and the
client. The client is a small raw-socket HTTP/1.1 client (asyncio) so that it costs as little as
possible: on a 2-core machine it shares the cores with the 2 workers. Requests go to 127.0.0.1
only, are bounded in number and the server is stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import pct

ROOT = Path(__file__).resolve().parents[1]
REQUEST_FILE = ROOT / "tests" / "fhir" / "hook-request-neuropathic-persistent.json"
SERVICE = "forefoot-pain"
ISS_ES = "https://ehr-es384.example.org"
ISS_RS = "https://ehr-rs384.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(
    args: Sequence[str], stderr: Path, env: Mapping[str, str] | None = None, timeout: float = 90
) -> tuple[subprocess.Popen, int]:
    """`cli.py serve --port P *args` on a free port P, its stderr into the file `stderr`, returned
    once `GET /cds-services` answers 200 (the benchmark's and the service tests' one launcher).
    RuntimeError, with the end of its stderr, when it exits or does not answer within `timeout` s."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), *args]
    with stderr.open("wb") as fh:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh, env=env)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("serve exited: " + stderr.read_text(errors="replace")[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /cds-services HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"serve did not answer within {timeout:g} s")
        time.sleep(0.1)


# ---------------------------------------------------------------- the server


class Keys:
    def __init__(self) -> None:
        from joserfc.jwk import ECKey, KeySet, RSAKey

        self.es = ECKey.generate_key("P-384", parameters={"kid": "bench-es384"})
        self.rs = RSAKey.generate_key(2048, parameters={"kid": "bench-rs384"})
        self.KeySet = KeySet

    def jwks(self, key: Any, path: Path) -> Path:
        path.write_text(json.dumps(self.KeySet([key]).as_dict(private=False)))
        return path

    def tokens(self, n: int, alg: str, audience: str) -> list[str]:
        from joserfc import jwt

        key, iss = (self.es, ISS_ES) if alg == "ES384" else (self.rs, ISS_RS)
        now = int(time.time())
        return [
            jwt.encode(
                {"alg": alg, "kid": key.kid},
                {"iss": iss, "aud": audience, "iat": now, "exp": now + 240, "jti": str(uuid.uuid4())},
                key,
                algorithms=[alg],
            )
            for _ in range(n)
        ]


def start(tmp: Path, keys: Keys, workers: int) -> tuple[subprocess.Popen, int]:
    return launch(
        [
            "--workers",
            str(workers),
            "--db",
            str(tmp / "bench.sqlite3"),
            "--server-timing",
            "--trust",
            f"{ISS_ES}={keys.jwks(keys.es, tmp / 'es.json')}",
            "--trust",
            f"{ISS_RS}={keys.jwks(keys.rs, tmp / 'rs.json')}",
        ],
        tmp / "serve.stderr",
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- a lean HTTP/1.1 client


def request_bytes(port: int, body: bytes, token: str) -> bytes:
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _client(port: int, requests: list[bytes], out: list[tuple[float, int, str]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        for data in requests:
            start = clock()
            writer.write(data)
            status, headers, _ = await _read_response(reader)
            out.append((clock() - start, status, headers.get("server-timing", "")))
    finally:
        writer.close()


def run_clients(port: int, batches: list[list[bytes]]) -> tuple[list[tuple[float, int, str]], float]:
    out: list[tuple[float, int, str]] = []

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(_client(port, b, out) for b in batches))
        return time.perf_counter() - start

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    return out, runner(main())


# ---------------------------------------------------------------- the engine alone


class EngineAlone:
    """The engine's own steps on the same request, in this process: timed in blocks between the
    HTTP blocks, so that both see the same machine (a shared machine is noisy)."""

    def __init__(self, request: dict[str, Any]):
        from engine.channels.fhir import bundle_from_prefetch, default_mapper, triage_bundle
        from engine.kernel.triage import default_triager
        from engine.views.cds_hooks import cards

        triager, mapper = default_triager(), default_mapper()
        as_of = datetime.now(UTC).date()
        prefetch = request["prefetch"]
        bundle, names = bundle_from_prefetch(prefetch)
        patient = mapper.map(bundle, as_of=as_of, names=names).patient

        def map_and_triage() -> Any:
            b, n = bundle_from_prefetch(prefetch)
            return triage_bundle(triager, b, as_of=as_of, mapper=mapper, names=n)

        self.steps = {
            "triage": lambda: triager.triage(patient),
            "map_and_triage": map_and_triage,
            "answer": lambda: cards(map_and_triage(), triager.ruleset),
        }
        self.samples: dict[str, list[float]] = {k: [] for k in self.steps}
        self.block(50, keep=False)

    def block(self, n: int, keep: bool = True) -> None:
        clock = time.perf_counter
        for name, fn in self.steps.items():
            for _ in range(n):
                start = clock()
                fn()
                if keep:
                    self.samples[name].append(clock() - start)

    def medians_us(self) -> dict[str, float]:
        return {f"{k}_us": statistics.median(v) * 1e6 for k, v in self.samples.items()}


# ---------------------------------------------------------------- the run


def stage_medians(rows: list[tuple[float, int, str]]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for _, _, timing in rows:
        for part in timing.split(","):
            name, _, dur = part.strip().partition(";dur=")
            if dur:
                stages.setdefault(name, []).append(float(dur))
    return {k: statistics.median(v) for k, v in stages.items()}


def main(args: Any) -> int:
    n_seq = 300 if args.quick else 3000
    n_conc = 400 if args.quick else 4000
    workers = 2
    body = REQUEST_FILE.read_bytes()
    request = json.loads(body)
    fig: dict[str, Any] = {
        "workers": workers,
        "request": str(REQUEST_FILE.relative_to(ROOT)),
        "request_bytes": len(body),
    }
    print(
        f"CDS Hooks service benchmark: {workers} workers on 127.0.0.1, request {fig['request']} "
        f"({len(body)} bytes), cpu count {os.cpu_count()}, load average {os.getloadavg()}"
    )
    keys = Keys()
    alone = EngineAlone(request)
    blocks = 3 if args.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(Path(tmp), keys, workers)
        try:
            audience = f"http://127.0.0.1:{port}/cds-services/{SERVICE}"
            warm = [request_bytes(port, body, t) for t in keys.tokens(200, "ES384", audience)]
            rows, _ = run_clients(port, [warm[:100], warm[100:]])
            assert all(status == 200 for _, status, _ in rows), "warm-up failed"
            floor = f"GET /cds-services HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
            rows, _ = run_clients(port, [[floor] * (200 if args.quick else 2000)])
            fig["http_floor_ms"] = pct(sorted(r[0] * 1e3 for r in rows), 0.5)
            for alg in ("ES384", "RS384"):
                rows, total = [], 0.0
                for _ in range(blocks):  # HTTP and the engine alone in turn, so both see the same machine
                    reqs = [request_bytes(port, body, t) for t in keys.tokens(n_seq // blocks, alg, audience)]
                    got, took = run_clients(port, [reqs])
                    rows += got
                    total += took
                    alone.block(n_seq // blocks // 4)
                bad = sum(status != 200 for _, status, _ in rows)
                lat = sorted(r[0] * 1e3 for r in rows)
                fig[f"sequential_{alg}"] = {
                    "n": len(rows),
                    "errors": bad,
                    "p50_ms": pct(lat, 0.5),
                    "p95_ms": pct(lat, 0.95),
                    "per_s": len(rows) / total,
                    "server_stages_ms": stage_medians(rows),
                }
            rounds = 1 if args.quick else 3
            for clients in (8, 32) * rounds:  # in turn, so that a noisy minute does not fall on one of them
                reqs = [request_bytes(port, body, t) for t in keys.tokens(n_conc // rounds, "ES384", audience)]
                got, total = run_clients(port, [reqs[i::clients] for i in range(clients)])
                c = fig.setdefault(f"concurrent_{clients}", {"rows": [], "rates": []})
                c["rows"] += got
                c["rates"].append(len(got) / total)
                c["bad"] = c.get("bad", 0) + sum(status != 200 for _, status, _ in got)
            for clients in (8, 32):
                c = fig[f"concurrent_{clients}"]
                lat = sorted(r[0] * 1e3 for r in c.pop("rows"))
                c.update(
                    {
                        "n": len(lat),
                        "errors": c.pop("bad"),
                        "per_s": statistics.median(c["rates"]),
                        "p50_ms": pct(lat, 0.5),
                        "p95_ms": pct(lat, 0.95),
                    }
                )
        finally:
            stop(proc)
    eng = fig["engine"] = alone.medians_us()

    print("\nthe engine alone, this process, same request (median):")
    print(f"  triage of the mapped patient (Triager.triage)             {eng['triage_us'] / 1e3:7.3f} ms")
    print(f"  FHIR mapping + triage (prefetch to Bundle, triage_bundle) {eng['map_and_triage_us'] / 1e3:7.3f} ms")
    print(f"  the whole answer in process (+ the cards)                 {eng['answer_us'] / 1e3:7.3f} ms")
    print(
        f"\nthe HTTP floor: GET /cds-services (discovery, prepared once), sequential p50 {fig['http_floor_ms']:.3f} ms"
    )
    for alg in ("ES384", "RS384"):
        s = fig[f"sequential_{alg}"]
        print(f"\nsequential, one keep-alive connection, {alg} tokens, {s['n']} requests ({s['errors']} errors):")
        print(f"  p50 {s['p50_ms']:.3f} ms   p95 {s['p95_ms']:.3f} ms   {s['per_s']:.0f} requests/s")
        print(
            f"  p50 / triage {s['p50_ms'] * 1e3 / eng['triage_us']:.2f}x   "
            f"p50 / (mapping + triage) {s['p50_ms'] * 1e3 / eng['map_and_triage_us']:.2f}x"
        )
        stages = s["server_stages_ms"]
        print(
            "  inside the server (median ms per stage, Server-Timing): "
            + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
        )
        if "total" in stages:
            print(
                f"  outside the server's handler (HTTP, event loop, loopback, client): "
                f"{s['p50_ms'] - stages['total']:.3f} ms of the p50"
            )
            engine = sum(stages.get(k, 0.0) for k in ("map", "triage", "cards"))
            s["around_engine_ms"] = s["p50_ms"] - engine
            print(f"  around the engine (all but mapping, triage and cards): {s['around_engine_ms']:.3f} ms of the p50")
    for clients in (8, 32):
        c = fig[f"concurrent_{clients}"]
        print(
            f"\n{clients} concurrent clients, ES384, {c['n']} requests ({c['errors']} errors): "
            f"{c['per_s']:.0f} requests/s (median of {len(c['rates'])} rounds: "
            f"{', '.join(f'{r:.0f}' for r in c['rates'])}), p50 {c['p50_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))
    errors = sum(v.get("errors", 0) for v in fig.values() if isinstance(v, dict))
    return 1 if errors else 0
