"""A CDS Hooks 2.0 service over HTTP: the engine as an EHR calls it (a plain ASGI app on uvicorn).

    GET  /cds-services                   discovery: one patient-view service with prefetch templates
    POST /cds-services/{id}              hook call: prefetched FHIR resources in, cards out
    POST /cds-services/{id}/feedback     what the clinician did with a card (CDS Hooks 2.0 feedback)

Trust, as CDS Hooks defines it: every hook and feedback call carries `Authorization: Bearer <JWT>`
(the scheme in any case) signed by a trusted EHR. Each trusted issuer has its own key set
(`trust`: issuer -> JWKS file or https URL), and a token is checked against the key set of the
issuer it names, so one EHR's key never signs for another. A token's own `jku` header is never
followed. `aud` must be this service's endpoint URL, `exp`/`iat`/`nbf` are checked with
`LEEWAY_SECONDS` of clock skew, a token may live at most `max_token_lifetime` seconds (exp - iat),
and each (iss, jti) is accepted once, across workers and restarts (engine/channels/store.py, an
SQLite file). Anything else is 401. `insecure=True` turns all of this off, for local demos only,
and says so once, loudly, on stderr.

The reference date for ages and durations is the day (UTC) of the token's `iat`, signed by the
EHR; in insecure mode, the server's clock. A patient with no forefoot pain in the conditions
prefetch gets 200 with no cards before any other check of the record. Every error is a FHIR
OperationOutcome naming what was wrong: 400 malformed, 401 token, 404/405 path or method, 412 a
prefetch key missing or failed (this service does not query the EHR's FHIR server), 413 too
large. Patient identifiers and values are never logged, stored or echoed in an error.

Speed: the request is handled on the event loop (no threadpool hop; the triage is CPU-bound and
a worker serves one request at a time anyway), JSON in and out with orjson, the discovery
document and key sets prepared once, and the issued cards are recorded after the response is
sent. `--workers N` runs N processes sharing the SQLite file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import re
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError

from engine.channels.fhir import (
    PREFETCH_KEYS,
    FhirMapper,
    NotApplicable,
    bundle_from_prefetch,
    default_mapper,
    is_failed_search,
    prefetch_templates,
    triage_bundle,
)
from engine.channels.store import FeedbackRecord, Store, StoreError, token_shaped
from engine.kernel.errors import EngineError, InputError
from engine.kernel.inputs import FHIR_MAX_BYTES, parse_json
from engine.views.cds_hooks import (
    DECLINE_CONTRAINDICATION,
    DECLINE_RECOMMENDATION,
    DEFAULT_SOURCE_URL,
    OVERRIDE_SYSTEM,
    PATHWAY_PATH,
    cards,
)

log = logging.getLogger("forefoot_cds.service")

#: Signature algorithms accepted: CDS Hooks names ES384 and RS384; the others are their kin.
#: Never `none`, never a symmetric (HS*) algorithm.
ALGORITHMS = ["ES384", "RS384", "ES256", "RS256", "ES512", "RS512", "PS256", "PS384", "PS512"]
HOOK = "patient-view"
#: Clock skew allowed on exp, iat and nbf.
LEEWAY_SECONDS = 30
#: Longest accepted token lifetime (exp - iat). CDS Hooks advises tokens that live minutes.
MAX_TOKEN_LIFETIME = 300
#: A JWKS fetched from a URL is used this long, then fetched again.
JWKS_CACHE_SECONDS = 300
#: An unknown `kid` triggers a fetch of the issuer's JWKS at most this often (key rotation).
JWKS_MIN_REFRESH_SECONDS = 30
MAX_TOKEN_BYTES = 16 * 1024
MAX_JWKS_BYTES = 256 * 1024
ENV_CONFIG = "FOREFOOT_CDS_SERVICE_CONFIG"
#: A FHIR resource id (R4: [A-Za-z0-9\-\.]{1,64}).
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


# ------------------------------------------------------------------ configuration


@dataclass
class ServiceConfig:
    """How the service runs and whom it trusts."""

    public_url: str = "http://127.0.0.1:8000"
    #: (issuer, JWKS) pairs: the JWKS is a file path or an https:// URL, and signs for that issuer only.
    trust: tuple[tuple[str, str], ...] = ()
    insecure: bool = False
    db: Path = Path("cds-service.sqlite3")
    max_body: int = FHIR_MAX_BYTES
    leeway_seconds: int = LEEWAY_SECONDS
    max_token_lifetime: int = MAX_TOKEN_LIFETIME
    source_url: str | None = None
    #: Add a Server-Timing header (durations of each stage) to hook responses: for the benchmark.
    server_timing: bool = False

    def endpoint(self, service_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/cds-services/{service_id}"

    def problems(self) -> list[str]:
        """What is wrong or missing (trust is not required when insecure)."""
        out = []
        seen: set[str] = set()
        for issuer, source in self.trust:
            if not issuer:
                out.append("--trust: the issuer is empty (give ISSUER=JWKS, ISSUER being the EHR's iss)")
            elif issuer in seen:
                out.append(f"--trust: issuer {issuer} is given twice (one JWKS per issuer)")
            seen.add(issuer)
            if source.lower().startswith("http://"):
                out.append(f"--trust {issuer}: a JWKS over plain http is refused; give an https:// URL or a file")
            elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source) and not source.lower().startswith("https://"):
                out.append(f"--trust {issuer}: the JWKS must be a file or an https:// URL")
            elif not source:
                out.append(f"--trust {issuer}: the JWKS is empty (a file or an https:// URL)")
        if not self.insecure and not self.trust:
            out.append("no trusted issuer: give --trust ISSUER=JWKS (the EHR's iss and its public keys), once per EHR")
        if not 1 <= self.max_token_lifetime <= 3600:
            out.append("--max-token-lifetime: between 1 and 3600 seconds")
        return out

    def to_json(self) -> str:
        data = asdict(self)
        data["db"] = str(self.db)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        data = json.loads(text)
        data["db"] = Path(data["db"])
        data["trust"] = tuple(tuple(p) for p in data["trust"])
        return cls(**data)


# ------------------------------------------------------------------ tokens


class TokenRejected(Exception):
    """The bearer token is missing or not acceptable (the reason never holds patient data)."""


class KeysUnavailable(Exception):
    """An issuer's JWKS URL could not be fetched and no earlier copy is at hand."""


def import_jwks(text: str | bytes) -> Any:
    """A joserfc KeySet of public signing keys; ValueError for anything else."""
    from joserfc.jwk import KeySet

    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ValueError("a JWKS is a JSON object with a non-empty 'keys' array")
    for k in data["keys"]:
        if not isinstance(k, dict):
            raise ValueError("each JWKS key is a JSON object")
        if any(p in k for p in ("d", "p", "q", "k")):
            raise ValueError("the JWKS holds private or symmetric key material; give public keys only")
        if k.get("kty") not in ("RSA", "EC"):
            raise ValueError("only RSA and EC keys are accepted (kty RSA or EC)")
    return KeySet.import_key_set(data)


def _fetch_jwks(url: str) -> bytes:
    import httpx

    with httpx.stream("GET", url, timeout=5.0, follow_redirects=False) as resp:
        resp.raise_for_status()
        data = b""
        for chunk in resp.iter_bytes():
            data += chunk
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError("JWKS larger than 256 KB")
    return data


@dataclass
class IssuerKeys:
    """One trusted issuer's public keys, from a file (read once) or an https URL (cached)."""

    issuer: str
    source: str
    keys: Any = None
    fetched_at: float = -1e18
    attempted_at: float = -1e18
    lock: asyncio.Lock | None = field(default=None, repr=False)

    @property
    def is_url(self) -> bool:
        return self.source.lower().startswith("https://")

    def load_file(self) -> None:
        self.keys = import_jwks(Path(self.source).read_bytes())

    async def keyset(self, fetch: Callable[[str], bytes], force: bool = False) -> Any:
        if not self.is_url:
            return self.keys
        now = time.monotonic()
        fresh = self.keys is not None and now - self.fetched_at < JWKS_CACHE_SECONDS
        if fresh and not force:
            return self.keys
        if now - self.attempted_at < JWKS_MIN_REFRESH_SECONDS and self.keys is not None:
            return self.keys  # fetched (or tried) moments ago: no fetch storm on bad kids
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.attempted_at > now:  # another request fetched while this one waited
                if self.keys is None:
                    raise KeysUnavailable(self.issuer)
                return self.keys
            self.attempted_at = time.monotonic()
            try:
                keys = import_jwks(await asyncio.to_thread(fetch, self.source))
            except Exception as exc:  # noqa: BLE001 - network, HTTP status, bad JSON: keep the old keys
                log.warning(
                    "JWKS of a trusted issuer could not be fetched (%s); %s",
                    type(exc).__name__,
                    "keeping the previous keys" if self.keys is not None else "no keys for it yet",
                )
                if self.keys is None:
                    raise KeysUnavailable(self.issuer) from None
                return self.keys
            self.keys, self.fetched_at = keys, time.monotonic()
            return keys


def _b64json(part: str) -> Any:
    pad = "=" * (-len(part) % 4)
    return orjson.loads(base64.urlsafe_b64decode(part + pad))


class TokenVerifier:
    """Checks CDS Hooks JWT bearer tokens: signature by the named issuer's keys, aud, exp, iat,
    nbf, lifetime, and jti once (in the shared store)."""

    def __init__(self, config: ServiceConfig, store: Store, fetch: Callable[[str], bytes] = _fetch_jwks):
        self.config = config
        self.store = store
        self.fetch = fetch
        self.issuers: dict[str, IssuerKeys] = {}
        for issuer, source in config.trust:
            keys = IssuerKeys(issuer, source)
            if not keys.is_url:
                keys.load_file()
            self.issuers[issuer] = keys

    async def verify(self, authorization: str | None, audiences: set[str], now: float | None = None) -> dict[str, Any]:
        """The token's claims, or `TokenRejected` (`KeysUnavailable` when the issuer's keys cannot be had)."""
        if not authorization:
            raise TokenRejected("no bearer token (Authorization: Bearer <JWT>)")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise TokenRejected("the Authorization scheme must be Bearer")
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected("empty or oversized token")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("not a signed JWT (header.payload.signature)")
        try:
            unverified = _b64json(parts[1])
        except Exception:  # noqa: BLE001 - any garbage
            raise TokenRejected("the token payload is not base64url JSON") from None
        issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        trusted = self.issuers.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise TokenRejected("iss is not a trusted issuer")
        keys = await trusted.keyset(self.fetch)
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                if not trusted.is_url:
                    raise
                decoded = jwt.decode(token, await trusted.keyset(self.fetch, force=True), algorithms=ALGORITHMS)
        except JoseError as exc:
            raise TokenRejected(f"signature not verified with the keys of the token's issuer ({exc.error})") from None
        except Exception as exc:  # noqa: BLE001 - malformed tokens
            raise TokenRejected(f"token not verified ({type(exc).__name__})") from None
        claims = dict(decoded.claims)
        if claims.get("iss") != issuer:  # the signed payload names the issuer whose keys verified it
            raise TokenRejected("iss is not a trusted issuer")
        self._check_claims(claims, audiences, time.time() if now is None else now)
        if not self.store.claim_jti(claims["iss"], claims["jti"], claims["exp"] + self.config.leeway_seconds):
            raise TokenRejected("token already used (jti replay)")
        return claims

    def _check_claims(self, claims: dict[str, Any], audiences: set[str], now: float) -> None:
        leeway = self.config.leeway_seconds
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in audiences for a in auds):
            raise TokenRejected("aud is not this service's endpoint URL")
        for name in ("exp", "iat"):
            if not _seconds(claims.get(name)):
                raise TokenRejected(f"{name} is required (seconds since the epoch)")
        exp, iat = claims["exp"], claims["iat"]
        if exp < now - leeway:
            raise TokenRejected("the token has expired (exp)")
        if iat > now + leeway:
            raise TokenRejected("the token is issued in the future (iat)")
        nbf = claims.get("nbf")
        if nbf is not None and (not _seconds(nbf) or nbf > now + leeway):
            raise TokenRejected("the token is not valid yet (nbf)")
        if exp - iat > self.config.max_token_lifetime:
            raise TokenRejected(
                f"the token lives longer (exp - iat) than the {self.config.max_token_lifetime} s this service accepts"
            )
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise TokenRejected("jti is required (a unique string of at most 256 characters)")


def _seconds(value: Any) -> bool:
    """A NumericDate: a finite number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ errors and JSON


class _Problem(Exception):
    def __init__(self, status: int, code: str, diagnostics: str | list[str], headers: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.diagnostics = [diagnostics] if isinstance(diagnostics, str) else list(diagnostics)
        self.headers = headers or {}


def operation_outcome(code: str, diagnostics: list[str], severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": d} for d in diagnostics],
    }


def _input_problem(exc: InputError, status: int = 400) -> _Problem:
    return _Problem(status, "invalid", [str(p) for p in exc.problems][:50])


# ------------------------------------------------------------------ the application


class _Clocked:
    """`inner` with its method `name` timed into `sink[label]` (for Server-Timing)."""

    def __init__(self, inner: Any, name: str, label: str, sink: dict[str, float]):
        self._inner, self._name, self._label, self._sink = inner, name, label, sink

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr != self._name:
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self._sink[self._label] = self._sink.get(self._label, 0.0) + time.perf_counter() - start

        return timed


def _card_rows(body: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(uuid, rule, intervention, kind) of each card, from the card's own extension."""
    rows = []
    for card in body.get("cards", []):
        if not isinstance(card, dict) or not isinstance(card.get("uuid"), str):
            continue
        entry = (card.get("extension") or {}).get("forefoot-cds.entry") or {}
        kind = str(entry.get("type") or "card")
        rule = str(entry.get("rule") or f"({kind})")
        rows.append((card["uuid"], rule, str(entry.get("intervention") or "*"), kind))
    return rows


def _known_override_reasons() -> set[tuple[str, str]]:
    """The override reasons this service's cards offer, (system, code)."""
    return {(OVERRIDE_SYSTEM, code) for code, _ in (*DECLINE_RECOMMENDATION, *DECLINE_CONTRAINDICATION)}


Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class CdsHooksApp:
    """The ASGI application: discovery, hook calls and feedback, every error an OperationOutcome."""

    def __init__(
        self,
        config: ServiceConfig,
        triager: Any = None,
        mapper: FhirMapper | None = None,
        announce: bool = True,
        fetch: Callable[[str], bytes] = _fetch_jwks,
    ):
        from engine.kernel.triage import default_triager

        bad = config.problems()
        if bad:
            raise ValueError("; ".join(bad))
        self.config = config
        self.triager = triager or default_triager()
        self.mapper = mapper or default_mapper()
        self.cards = cards
        self.spec = self.mapper.mapping.service
        # Key files first: a bad one stops the start before the database file is created.
        self.verifier = None if config.insecure else TokenVerifier(config, None, fetch)  # type: ignore[arg-type]
        self.store = Store(config.db)
        if self.verifier is not None:
            self.verifier.store = self.store
        self.source_url = config.source_url or DEFAULT_SOURCE_URL
        self.override_reasons = _known_override_reasons()
        self.discovery = orjson.dumps(
            {
                "services": [
                    {
                        "hook": HOOK,
                        "id": self.spec.id,
                        "title": self.spec.title,
                        "description": self.spec.description,
                        "prefetch": prefetch_templates(self.mapper.mapping),
                        "usageRequirements": "Every prefetch key is required (412 otherwise; a failed search is not 'none'). "
                        "Requests carry a JWT bearer token signed by a trusted EHR, with aud = this service's "
                        f"endpoint URL and a lifetime of at most {config.max_token_lifetime} s.",
                    }
                ]
            }
        )
        if config.insecure and announce:
            announce_insecure()

    # -------------------------------------------------------------- ASGI

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        after: list[Callable[[], None]] = []
        try:
            status, body, headers = await self._route(scope, receive, after)
        except _Problem as p:
            status, headers = p.status, {"content-type": "application/fhir+json", **p.headers}
            body = orjson.dumps(operation_outcome(p.code, p.diagnostics))
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            log.error("internal error (%s) while answering a request; no result was produced", type(exc).__name__)
            status, headers = 500, {"content-type": "application/fhir+json"}
            body = orjson.dumps(operation_outcome("exception", ["internal error: no result was produced"]))
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        for task in after:  # the client has its answer: bookkeeping does not delay it
            try:
                task()
            except Exception as exc:  # noqa: BLE001
                log.error("bookkeeping after a response failed (%s)", type(exc).__name__)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    self.store.close()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(
        self, scope: dict[str, Any], receive: Receive, after: list[Callable[[], None]]
    ) -> tuple[int, bytes, dict[str, str]]:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method = scope["method"]
        if path == PATHWAY_PATH:  # the cards' source page: the rule set's pathway, no patient data
            if method not in ("GET", "HEAD"):
                raise _Problem(
                    405, "not-supported", f"{method} is not allowed on {PATHWAY_PATH} (GET only)", {"allow": "GET"}
                )
            return 200, self._pathway_page(), {"content-type": "text/html; charset=utf-8"}
        parts = path.split("/")  # "", "cds-services", id, "feedback"
        if (
            len(parts) < 2
            or parts[1] != "cds-services"
            or len(parts) > 4
            or (len(parts) == 4 and parts[3] != "feedback")
        ):
            raise _Problem(
                404,
                "not-found",
                "no such endpoint: the service answers /cds-services, "
                f"/cds-services/{self.spec.id}, /cds-services/{self.spec.id}/feedback "
                f"and {PATHWAY_PATH}",
            )
        if len(parts) == 2:
            if method not in ("GET", "HEAD"):
                raise _Problem(
                    405, "not-supported", f"{method} is not allowed on /cds-services (GET only)", {"allow": "GET"}
                )
            return 200, self.discovery, {"content-type": "application/json"}
        if parts[2] != self.spec.id:
            raise _Problem(404, "not-found", f"no CDS service with this id; the service is '{self.spec.id}'")
        if method != "POST":
            raise _Problem(
                405, "not-supported", f"{method} is not allowed here: CDS Hooks calls are POST", {"allow": "POST"}
            )
        headers = _headers(scope)
        if len(parts) == 3:
            return await self._hook(parts[2], headers, receive, after)
        return await self._feedback(parts[2], headers, receive)

    def _pathway_page(self) -> bytes:
        """The pathway picture and rule list (engine.views.html), built once per process."""
        page = getattr(self, "_pathway", None)
        if page is None:
            from engine.views.html import pathway_html

            page = self._pathway = pathway_html(self.triager.ruleset).encode("utf-8")
        return page

    # -------------------------------------------------------------- shared steps

    async def _authorise(self, headers: dict[str, str], audiences: set[str]) -> dict[str, Any] | None:
        if self.verifier is None:
            return None
        try:
            return await self.verifier.verify(headers.get("authorization"), audiences)
        except TokenRejected as exc:
            log.warning("401: %s", exc)
            raise _Problem(
                401, "security", f"unauthorised: {exc}", {"www-authenticate": 'Bearer error="invalid_token"'}
            ) from None
        except KeysUnavailable:
            raise _Problem(
                503,
                "transient",
                "the token's issuer's keys (JWKS) cannot be fetched now; retry later",
                {"retry-after": "30"},
            ) from None
        except sqlite3.Error as exc:
            log.error("the service database failed while checking a token (%s)", type(exc).__name__)
            raise _Problem(
                503, "transient", "the service's token memory is unavailable now; retry later", {"retry-after": "5"}
            ) from None

    async def _body(self, headers: dict[str, str], receive: Receive) -> Any:
        limit = self.config.max_body
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _Problem(413, "too-long", f"request body larger than {limit} bytes")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Problem(400, "incomplete", "the client closed the connection before the body was sent")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Problem(413, "too-long", f"request body larger than {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        try:
            return parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks), max_bytes=limit)
        except InputError as exc:
            raise _input_problem(exc) from None

    # -------------------------------------------------------------- hook

    async def _hook(
        self, service_id: str, headers: dict[str, str], receive: Receive, after: list[Callable[[], None]]
    ) -> tuple[int, bytes, dict[str, str]]:
        timing: dict[str, float] | None = {} if self.config.server_timing else None
        start = time.perf_counter()
        claims = await self._authorise(headers, {self.config.endpoint(service_id)})
        t_auth = time.perf_counter()
        doc = await self._body(headers, receive)
        t_parse = time.perf_counter()
        pid, prefetch = _envelope(doc)
        if claims is not None:
            as_of = datetime.fromtimestamp(claims["iat"], tz=UTC).date()
        else:
            as_of = datetime.now(UTC).date()
        body = self._answer(pid, prefetch, as_of, timing)
        t_answer = time.perf_counter()
        out = orjson.dumps(body)
        response_headers = {"content-type": "application/json"}
        if timing is not None:
            t_end = time.perf_counter()
            stages = {
                "auth": t_auth - start,
                "parse": t_parse - t_auth,
                **timing,
                "other": (t_answer - t_parse) - sum(timing.values()),
                "serialise": t_end - t_answer,
                "total": t_end - start,
            }
            response_headers["server-timing"] = ", ".join(f"{k};dur={v * 1e3:.3f}" for k, v in stages.items())
        rows = _card_rows(body)
        if rows:
            after.append(lambda: self.store.record_cards(service_id, rows))
        after.append(self.store.housekeeping)
        return 200, out, response_headers

    def _answer(
        self, pid: str, prefetch: dict[str, Any], as_of: date, timing: dict[str, float] | None
    ) -> dict[str, Any]:
        """The cards for a checked request envelope, or `_Problem`."""
        no_cards: dict[str, Any] = {"cards": []}
        unusable = {}
        for key in PREFETCH_KEYS:
            item = prefetch.get(key)
            if item is None:
                unusable[key] = f"prefetch.{key}: required prefetch is missing"
            elif is_failed_search(item):
                unusable[key] = (
                    f"prefetch.{key}: the EHR's search failed (an OperationOutcome instead of results); "
                    "a failed search is not read as 'none'"
                )
        if unusable:
            if "conditions" not in unusable and self._out_of_scope(prefetch, pid, as_of):
                return no_cards
            raise _Problem(412, "required", list(unusable.values()))
        patient = prefetch["patient"]
        if not (isinstance(patient, dict) and patient.get("resourceType") == "Patient" and patient.get("id") == pid):
            if self._out_of_scope(prefetch, pid, as_of):
                return no_cards
            raise _Problem(400, "invalid", "prefetch.patient: must be the Patient resource of context.patientId")
        triager, mapper = self.triager, self.mapper
        if timing is not None:
            triager = _Clocked(triager, "triage", "triage", timing)
            mapper = _Clocked(mapper, "map", "map", timing)
        try:
            start = time.perf_counter()
            bundle, names = bundle_from_prefetch(prefetch)
            if timing is not None:
                timing["prefetch"] = time.perf_counter() - start
            result = triage_bundle(triager, bundle, as_of, mapper, names)
        except NotApplicable:
            return no_cards
        except InputError as exc:
            if self._out_of_scope(prefetch, pid, as_of):
                return no_cards
            raise _input_problem(exc) from None
        except EngineError as exc:
            log.error("engine error (%s); no result was produced", type(exc).__name__)
            raise _Problem(500, "exception", "internal error: no result was produced") from None
        start = time.perf_counter()
        body = self.cards(result, self.triager.ruleset, self.source_url)
        if timing is not None:
            timing["cards"] = time.perf_counter() - start
        return body

    def _out_of_scope(self, prefetch: dict[str, Any], pid: str, as_of: date) -> bool:
        """True when the conditions prefetch alone shows a patient outside the rule set's scope (no
        forefoot pain): the mapper's own scope test, run on the conditions and a stand-in Patient, so
        that nothing else in the record (a missing birth date, another key) is checked first.
        Used only on the way to an error, never on the path of a normal answer."""
        conditions = prefetch.get("conditions")
        if not isinstance(conditions, dict) or is_failed_search(conditions):
            return False
        empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        probe = {key: empty for key in PREFETCH_KEYS}
        probe["patient"] = {"resourceType": "Patient", "id": pid, "birthDate": f"{as_of.year - 40:04d}-01-01"}
        probe["conditions"] = conditions
        try:
            bundle, names = bundle_from_prefetch(probe)
            self.mapper.map(bundle, as_of=as_of, names=names)
        except NotApplicable:
            return True
        except Exception:  # noqa: BLE001 - the conditions themselves are malformed: scope unknown
            return False
        return False

    # -------------------------------------------------------------- feedback

    async def _feedback(
        self, service_id: str, headers: dict[str, str], receive: Receive
    ) -> tuple[int, bytes, dict[str, str]]:
        endpoint = self.config.endpoint(service_id)
        await self._authorise(headers, {endpoint, endpoint + "/feedback"})
        doc = await self._body(headers, receive)
        records = feedback_records(doc, service_id, self.override_reasons)
        try:
            self.store.record_feedback(records)
        except sqlite3.Error as exc:
            log.error("the service database failed while storing feedback (%s)", type(exc).__name__)
            raise _Problem(
                503, "transient", "feedback could not be stored now; retry later", {"retry-after": "5"}
            ) from None
        return 200, b"{}", {"content-type": "application/json"}


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in scope.get("headers", ()):
        name = k.decode("latin-1")
        if name in ("authorization", "content-length"):
            out[name] = v.decode("latin-1")
    return out


def _envelope(doc: Any) -> tuple[str, dict[str, Any]]:
    """The patient id and prefetch of a CDS Hooks request, or `_Problem` 400 naming the field."""
    if not isinstance(doc, dict):
        raise _Problem(400, "invalid", "a CDS Hooks request is a JSON object")
    if doc.get("hook") != HOOK:
        raise _Problem(400, "invalid", f"hook: this service answers '{HOOK}' only")
    if not isinstance(doc.get("hookInstance"), str) or not doc["hookInstance"]:
        raise _Problem(400, "required", "hookInstance: required (a UUID string)")
    context = doc.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or not context["patientId"]:
        raise _Problem(400, "required", "context.patientId: required (a string)")
    pid = context["patientId"]
    if pid.startswith("Patient/"):
        pid = pid[len("Patient/") :]
    if not FHIR_ID.match(pid):
        raise _Problem(
            400,
            "invalid",
            "context.patientId: must be a FHIR id or Patient/<id> (letters, digits, '-' and '.', at most 64)",
        )
    prefetch = doc.get("prefetch")
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise _Problem(400, "invalid", "prefetch: must be a JSON object")
    return pid, prefetch


def _instant(value: Any) -> int | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def feedback_records(doc: Any, service_id: str, known_reasons: set[tuple[str, str]]) -> list[FeedbackRecord]:
    """The stored form of a CDS Hooks 2.0 feedback request; `_Problem` 400 naming the field.

    Kept: the card's uuid (to find its rule, not stored), the outcome, when, the override reason's
    code (one this service offers, or another system's code; anything not shaped like a code is
    stored as '(not a code)'), how many suggestions were accepted, and whether a comment was
    given. Never the comment or a display text: they may identify the patient.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("feedback"), list) or not doc["feedback"]:
        raise _Problem(400, "invalid", "feedback: a non-empty array is required")
    if len(doc["feedback"]) > 100:
        raise _Problem(400, "too-long", "feedback: at most 100 entries per request")
    out = []
    for i, item in enumerate(doc["feedback"]):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise _Problem(400, "invalid", f"{where}: must be a JSON object")
        card = item.get("card")
        try:
            card_id = (
                str(uuid.UUID(card.removeprefix("urn:uuid:"))) if isinstance(card, str) and len(card) <= 64 else None
            )
        except ValueError:
            card_id = None
        if card_id is None:
            raise _Problem(
                400,
                "required" if card is None else "invalid",
                f"{where}.card: the uuid of the card is required (a UUID string)",
            )
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise _Problem(400, "invalid", f"{where}.outcome: must be accepted or overridden")
        when = _instant(item.get("outcomeTimestamp"))
        if when is None:
            raise _Problem(
                400,
                "required" if "outcomeTimestamp" not in item else "invalid",
                f"{where}.outcomeTimestamp: required, an instant with a time zone (e.g. 2025-01-15T10:00:00Z)",
            )
        accepted = 0
        suggestions = item.get("acceptedSuggestions")
        if suggestions is not None:
            if not isinstance(suggestions, list) or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str) for s in suggestions
            ):
                raise _Problem(400, "invalid", f"{where}.acceptedSuggestions: an array of {{id}} objects")
            if suggestions and outcome != "accepted":
                raise _Problem(400, "invalid", f"{where}.acceptedSuggestions: only with outcome accepted")
            accepted = len(suggestions)
        system = code = None
        comment = False
        override = item.get("overrideReason")
        if override is not None:
            if outcome != "overridden":
                raise _Problem(400, "invalid", f"{where}.overrideReason: only with outcome overridden")
            if not isinstance(override, dict):
                raise _Problem(400, "invalid", f"{where}.overrideReason: must be a JSON object")
            reason = override.get("reason")
            if reason is not None:
                if not (isinstance(reason, dict) and isinstance(reason.get("code"), str) and reason["code"]):
                    raise _Problem(400, "invalid", f"{where}.overrideReason.reason: a Coding with a code")
                r_system, r_code = reason.get("system"), reason["code"]
                if (r_system, r_code) in known_reasons or (
                    (r_system is None or token_shaped(r_system, 200)) and token_shaped(r_code)
                ):
                    system, code = r_system, r_code
                else:
                    code = "(not a code)"
            user_comment = override.get("userComment")
            if user_comment is not None and not isinstance(user_comment, str):
                raise _Problem(400, "invalid", f"{where}.overrideReason.userComment: a string")
            comment = bool(user_comment and user_comment.strip())
        out.append(
            FeedbackRecord(
                service=service_id,
                card=card_id,
                outcome=outcome,
                outcome_time=when,
                reason_system=system,
                reason_code=code,
                accepted_suggestions=accepted,
                comment_given=comment,
            )
        )
    return out


def create_app(
    config: ServiceConfig,
    triager: Any = None,
    mapper: FhirMapper | None = None,
    announce: bool = True,
    fetch: Callable[[str], bytes] = _fetch_jwks,
) -> CdsHooksApp:
    """The ASGI application of the service (`ValueError` for a bad configuration, `StoreError` for
    a database that cannot be opened, `OSError` for an unreadable JWKS file)."""
    return CdsHooksApp(config, triager=triager, mapper=mapper, announce=announce, fetch=fetch)


def app_from_environment() -> CdsHooksApp:
    """The application of one worker of `serve --workers N` (uvicorn factory): its configuration
    comes from the parent process in FOREFOOT_CDS_SERVICE_CONFIG; the parent said any warning."""
    return create_app(ServiceConfig.from_json(os.environ[ENV_CONFIG]), announce=False)


def announce_insecure() -> None:
    _loud(
        "INSECURE MODE: CDS Hooks requests are accepted WITHOUT verifying any JWT "
        "(no signature, issuer, audience, expiry or replay check). For local demos only; "
        "never expose this service to a network or to real patient data."
    )


def run(config: ServiceConfig, host: str, port: int, workers: int = 1) -> None:
    """Serve with uvicorn: httptools and uvloop when installed, no access log.

    With several workers each is its own process with its own listening socket on the same port
    (SO_REUSEPORT), so the kernel spreads connections over them: with one shared socket, the worker
    that wakes first accepts a whole burst of keep-alive connections and the others sit idle.
    The parent watches the workers and starts again any that dies.
    """
    import importlib.util

    import uvicorn

    options = dict(
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        access_log=False,
        server_header=False,
        log_level="warning",
        lifespan="on",
    )
    if workers <= 1:
        uvicorn.run(create_app(config), host=host, port=port, **options)
        return
    # Fail here, in the parent, on what every worker would fail on: keys and database.
    probe = create_app(config, announce=True)
    probe.store.close()
    del probe
    os.environ[ENV_CONFIG] = config.to_json()
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - not Linux: uvicorn's shared socket
        uvicorn.run(
            "engine.channels.service:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            **options,
        )
        return
    _supervise(host, port, workers, options)


def _reuseport_socket(host: str, port: int, listen: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    if listen:
        sock.listen(2048)
    return sock


def _worker_main(host: str, port: int, options: dict[str, Any], parent: int) -> None:
    """One worker process: its own SO_REUSEPORT socket, uvicorn, and an exit when the parent is gone."""
    import signal
    import threading

    import uvicorn

    sock = _reuseport_socket(host, port, listen=True)

    def orphan_watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=orphan_watch, daemon=True).start()
    server = uvicorn.Server(
        uvicorn.Config("engine.channels.service:app_from_environment", factory=True, host=host, port=port, **options)
    )
    server.run(sockets=[sock])


def _supervise(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    import multiprocessing
    import signal

    holder = _reuseport_socket(host, port, listen=False)  # the port is ours (and known when 0 was asked)
    port = holder.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    stopping = False
    restarts: list[float] = []

    def spawn() -> Any:
        proc = ctx.Process(target=_worker_main, args=(host, port, options, os.getpid()), daemon=False)
        proc.start()
        return proc

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = [spawn() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.exitcode is None or stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 5:
                    log.error("workers keep dying (%d restarts in a minute); stopping", len(restarts))
                    _loud("forefoot-cds serve: workers keep dying; stopping")
                    stopping = True
                    raise SystemExit(1)
                log.error("worker %d exited (code %s); starting another", i, proc.exitcode)
                procs[i] = spawn()
    finally:
        for proc in procs:
            if proc.exitcode is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        holder.close()


def _loud(message: str) -> None:
    sys.stderr.write(f"\n!!! {message}\n")
    sys.stderr.flush()


__all__ = [
    "ALGORITHMS",
    "JWKS_CACHE_SECONDS",
    "LEEWAY_SECONDS",
    "MAX_TOKEN_LIFETIME",
    "CdsHooksApp",
    "ServiceConfig",
    "StoreError",
    "TokenRejected",
    "TokenVerifier",
    "create_app",
    "feedback_records",
    "import_jwks",
    "is_failed_search",
    "run",
]
