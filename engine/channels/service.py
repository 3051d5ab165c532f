"""A CDS Hooks 2.0 service over HTTP (FastAPI): the engine as an EHR calls it.

    GET  /cds-services                   discovery: one patient-view service with prefetch templates
    POST /cds-services/{id}              hook call: prefetched FHIR resources in, cards out
    POST /cds-services/{id}/feedback     what the clinician did with a card, appended to a log

Security as CDS Hooks defines it: every hook and feedback call carries `Authorization: Bearer
<JWT>` signed by the EHR. The signature is checked against keys from a configured JWKS (file or
URL; a token's own `jku` header is never followed), `iss` against an allow-list, `aud` against
this service's own endpoint URL, `exp` and `iat` (with a small leeway) and `jti` (a token is
accepted once). Anything else is 401. `insecure=True` turns all of this off, for local demos
only, and says so loudly on stderr.

Bad payloads get 400 (413 when too large) with an OperationOutcome that names what was wrong;
missing prefetch gets 412 (this service does not query the EHR's FHIR server itself). Patient
identifiers and values are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.kernel.errors import EngineError, InputError
from engine.channels.fhir import (
    FHIR_MAX_BYTES,
    PREFETCH_KEYS,
    FhirMapper,
    NotApplicable,
    bundle_from_prefetch,
    default_mapper,
    prefetch_templates,
    triage_bundle,
)
from engine.kernel.inputs import parse_json

log = logging.getLogger("forefoot_cds.service")

#: Signature algorithms accepted (CDS Hooks names ES384 and RS384; the others are their kin).
ALGORITHMS = ["ES384", "RS384", "ES256", "RS256", "ES512", "RS512", "PS256", "PS384", "PS512"]
HOOK = "patient-view"
JWKS_CACHE_SECONDS = 300


@dataclass
class ServiceConfig:
    """How the service runs and whom it trusts."""

    public_url: str = "http://127.0.0.1:8000"
    issuers: tuple[str, ...] = ()
    jwks_file: Path | None = None
    jwks_url: str | None = None
    insecure: bool = False
    feedback_log: Path = Path("cds-feedback.jsonl")
    max_body: int = FHIR_MAX_BYTES
    leeway_seconds: int = 30
    max_token_lifetime: int = 3600
    source_url: str | None = None

    def endpoint(self, service_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/cds-services/{service_id}"

    def problems(self) -> list[str]:
        """What is missing for a secure service (empty when insecure)."""
        if self.insecure:
            return []
        out = []
        if not self.issuers:
            out.append("no trusted issuer: give --issuer (the EHR's iss), once per EHR")
        if (self.jwks_file is None) == (self.jwks_url is None):
            out.append("give exactly one JWKS source: --jwks FILE or --jwks https://...")
        return out


class TokenRejected(Exception):
    """The bearer token is missing or not acceptable (the reason never holds patient data)."""


class TokenVerifier:
    """Checks CDS Hooks JWT bearer tokens: signature, iss, aud, exp, iat, jti."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}
        self._keys: Any = None
        self._keys_at = 0.0
        if config.jwks_file is not None:
            self._keys = self._import(config.jwks_file.read_text(encoding="utf-8"))

    @staticmethod
    def _import(text: str) -> Any:
        from joserfc.jwk import KeySet

        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError("a JWKS is a JSON object with a 'keys' array")
        for k in data["keys"]:
            if isinstance(k, dict) and any(p in k for p in ("d", "p", "q", "k")):
                raise ValueError("the JWKS holds private or symmetric key material; give public keys only")
        return KeySet.import_key_set(data)

    def _keyset(self, refresh: bool = False) -> Any:
        if self.config.jwks_url is None:
            return self._keys
        with self._lock:
            stale = time.monotonic() - self._keys_at > JWKS_CACHE_SECONDS
            if self._keys is None or stale or refresh:
                import httpx

                resp = httpx.get(self.config.jwks_url, timeout=5.0, follow_redirects=False)
                resp.raise_for_status()
                self._keys = self._import(resp.text)
                self._keys_at = time.monotonic()
            return self._keys

    def verify(self, authorization: str | None, audiences: set[str]) -> dict[str, Any]:
        """The token's claims, or `TokenRejected`."""
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jwt import JWTClaimsRegistry

        if not authorization or not authorization.startswith("Bearer "):
            raise TokenRejected("no bearer token")
        token = authorization[len("Bearer "):].strip()
        if not token or len(token) > 16384:
            raise TokenRejected("empty or oversized token")
        try:
            try:
                decoded = jwt.decode(token, self._keyset(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                if self.config.jwks_url is None:
                    raise
                decoded = jwt.decode(token, self._keyset(refresh=True), algorithms=ALGORITHMS)
        except JoseError as exc:
            raise TokenRejected(f"token not verified ({exc.error})") from None
        except Exception as exc:  # noqa: BLE001 - malformed tokens, unreachable JWKS
            raise TokenRejected(f"token not verified ({type(exc).__name__})") from None
        claims = dict(decoded.claims)
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in audiences for a in auds):
            raise TokenRejected("audience is not this service's endpoint")
        registry = JWTClaimsRegistry(
            leeway=self.config.leeway_seconds,
            iss={"essential": True, "values": list(self.config.issuers)},
            exp={"essential": True}, iat={"essential": True}, jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenRejected(f"claims not accepted ({exc.error})") from None
        now = time.time()
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise TokenRejected("jti must be a non-empty string")
        if claims["exp"] - now > self.config.max_token_lifetime:
            raise TokenRejected("token lives longer than this service accepts")
        key = (str(claims["iss"]), claims["jti"])
        with self._lock:
            for k, exp in list(self._seen.items()):
                if exp + self.config.leeway_seconds < now:
                    del self._seen[k]
            if key in self._seen:
                raise TokenRejected("token already used (jti replay)")
            self._seen[key] = float(claims["exp"])
        return claims


class FeedbackLog:
    """An append-only JSON-lines file: one line per feedback entry, never rewritten."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


class _Problem(Exception):
    def __init__(self, status: int, code: str, diagnostics: str | list[str], headers: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.diagnostics = [diagnostics] if isinstance(diagnostics, str) else list(diagnostics)
        self.headers = headers or {}


def operation_outcome(code: str, diagnostics: list[str], severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": d} for d in diagnostics]}


def _input_problem(exc: InputError, status: int = 400) -> _Problem:
    return _Problem(status, "invalid", [str(p) for p in exc.problems][:50])


def create_app(config: ServiceConfig, triager: Any = None, mapper: FhirMapper | None = None) -> FastAPI:
    """The FastAPI application of the service."""
    from engine.views.cds_hooks import DEFAULT_SOURCE_URL, cards
    from engine.kernel.triage import default_triager

    bad = config.problems()
    if bad:
        raise ValueError("; ".join(bad))
    triager = triager or default_triager()
    mapper = mapper or default_mapper()
    spec = mapper.mapping.service
    verifier = None if config.insecure else TokenVerifier(config)
    feedback_log = FeedbackLog(config.feedback_log)
    source_url = config.source_url or DEFAULT_SOURCE_URL
    if config.insecure:
        _loud("INSECURE MODE: CDS Hooks requests are accepted WITHOUT verifying any JWT "
              "(no signature, issuer, audience, expiry or replay check). For local demos only; "
              "never expose this service to a network or to real patient data.")

    app = FastAPI(title=spec.title, description=spec.description, docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(_Problem)
    async def _problem(_: Request, exc: _Problem) -> JSONResponse:
        return JSONResponse(operation_outcome(exc.code, exc.diagnostics), status_code=exc.status,
                            headers=exc.headers, media_type="application/fhir+json")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error (%s) while answering a request; no result was produced", type(exc).__name__)
        return JSONResponse(operation_outcome("exception", ["internal error: no result was produced"]),
                            status_code=500, media_type="application/fhir+json")

    def service_or_404(service_id: str) -> None:
        if service_id != spec.id:
            raise _Problem(404, "not-found", f"no CDS service with this id; the service is '{spec.id}'")

    async def authorise(request: Request, audiences: set[str]) -> dict[str, Any] | None:
        if verifier is None:
            _loud("INSECURE: request accepted without token verification")
            return None
        try:
            return await run_in_threadpool(verifier.verify, request.headers.get("authorization"), audiences)
        except TokenRejected as exc:
            log.warning("401: %s", exc)
            raise _Problem(401, "security", f"unauthorised: {exc}",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None

    async def body_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body):
            raise _Problem(413, "too-long", f"request body larger than {config.max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body:
                raise _Problem(413, "too-long", f"request body larger than {config.max_body} bytes")
            chunks.append(chunk)
        try:
            return parse_json(b"".join(chunks), max_bytes=config.max_body)
        except InputError as exc:
            raise _input_problem(exc) from None

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return {"services": [{
            "hook": HOOK,
            "id": spec.id,
            "title": spec.title,
            "description": spec.description,
            "prefetch": prefetch_templates(mapper.mapping),
            "usageRequirements": "Every prefetch key is required (412 otherwise). Requests carry a JWT bearer token "
                                 "signed by a trusted EHR, with aud = this service's endpoint URL.",
        }]}

    @app.post("/cds-services/{service_id}")
    async def call(service_id: str, request: Request) -> dict[str, Any]:
        service_or_404(service_id)
        claims = await authorise(request, {config.endpoint(service_id)})
        doc = await body_json(request)
        if not isinstance(doc, dict):
            raise _Problem(400, "invalid", "a CDS Hooks request is a JSON object")
        if doc.get("hook") != HOOK:
            raise _Problem(400, "invalid", f"hook: this service answers '{HOOK}' only")
        if not isinstance(doc.get("hookInstance"), str) or not doc["hookInstance"]:
            raise _Problem(400, "required", "hookInstance: required (a UUID string)")
        context = doc.get("context")
        if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or not context["patientId"]:
            raise _Problem(400, "required", "context.patientId: required (a string)")
        prefetch = doc.get("prefetch")
        if prefetch is not None and not isinstance(prefetch, dict):
            raise _Problem(400, "invalid", "prefetch: must be a JSON object")
        missing = [k for k in PREFETCH_KEYS if not isinstance(prefetch, dict) or prefetch.get(k) is None]
        if missing:
            raise _Problem(412, "required", [f"prefetch.{k}: required prefetch is missing" for k in missing])
        try:
            bundle, names = bundle_from_prefetch(prefetch)
        except InputError as exc:
            raise _input_problem(exc) from None
        patient = prefetch["patient"]
        if patient.get("resourceType") != "Patient" or patient.get("id") != context["patientId"]:
            raise _Problem(400, "invalid", "prefetch.patient: must be the Patient resource of context.patientId")
        as_of = None
        if "timestamp" not in bundle and claims is not None and isinstance(claims.get("iat"), (int, float)):
            as_of = datetime.fromtimestamp(claims["iat"], tz=UTC).date()
        try:
            result = await run_in_threadpool(triage_bundle, triager, bundle, as_of, mapper, names)
        except NotApplicable:
            return {"cards": []}
        except InputError as exc:
            raise _input_problem(exc) from None
        except EngineError as exc:
            log.error("engine error (%s); no result was produced", type(exc).__name__)
            raise _Problem(500, "exception", "internal error: no result was produced") from None
        return cards(result, triager.ruleset, source_url)

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> dict[str, Any]:
        service_or_404(service_id)
        endpoint = config.endpoint(service_id)
        await authorise(request, {endpoint, endpoint + "/feedback"})
        doc = await body_json(request)
        records = _feedback_records(doc, service_id)
        await run_in_threadpool(feedback_log.append, records)
        return {}

    return app


def _feedback_records(doc: Any, service_id: str) -> list[dict[str, Any]]:
    """The log lines of a feedback request; `_Problem` 400 for a malformed one. Free-text
    comments are not stored (they may identify a patient): only whether one was given."""
    if not isinstance(doc, dict) or not isinstance(doc.get("feedback"), list) or not doc["feedback"]:
        raise _Problem(400, "invalid", "feedback: a non-empty array is required")
    if len(doc["feedback"]) > 100:
        raise _Problem(400, "too-long", "feedback: at most 100 entries per request")
    received = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for i, item in enumerate(doc["feedback"]):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise _Problem(400, "invalid", f"{where}: must be a JSON object")
        if not isinstance(item.get("card"), str) or not item["card"]:
            raise _Problem(400, "required", f"{where}.card: the uuid of the card is required")
        if item.get("outcome") not in ("accepted", "overridden"):
            raise _Problem(400, "invalid", f"{where}.outcome: must be accepted or overridden")
        if not isinstance(item.get("outcomeTimestamp"), str):
            raise _Problem(400, "required", f"{where}.outcomeTimestamp: required (an instant)")
        record: dict[str, Any] = {"received": received, "service": service_id, "card": item["card"][:64],
                                  "outcome": item["outcome"], "outcomeTimestamp": item["outcomeTimestamp"][:40]}
        suggestions = item.get("acceptedSuggestions")
        if suggestions is not None:
            if not isinstance(suggestions, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str)
                                                            for s in suggestions):
                raise _Problem(400, "invalid", f"{where}.acceptedSuggestions: an array of {{id}} objects")
            record["acceptedSuggestions"] = [s["id"][:64] for s in suggestions]
        override = item.get("overrideReason")
        if override is not None:
            if not isinstance(override, dict):
                raise _Problem(400, "invalid", f"{where}.overrideReason: must be a JSON object")
            reason = override.get("reason")
            if reason is not None and not (isinstance(reason, dict) and isinstance(reason.get("code"), str)):
                raise _Problem(400, "invalid", f"{where}.overrideReason.reason: a Coding with a code")
            if reason is not None:
                record["overrideReason"] = {"system": str(reason.get("system", ""))[:200], "code": reason["code"][:64]}
            record["userCommentGiven"] = isinstance(override.get("userComment"), str) and bool(override["userComment"])
        out.append(record)
    return out


def _loud(message: str) -> None:
    sys.stderr.write(f"\n!!! {message}\n")
    sys.stderr.flush()

