"""Parts of the CDS Hooks service tested in-process: the fast JSON road, JWKS URL caching and key
rotation, the SQLite store, and what a feedback entry is stored as."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from engine.channels.service import (
    JWKS_MIN_REFRESH_SECONDS,
    KeysUnavailable,
    ServiceConfig,
    TokenRejected,
    TokenVerifier,
    _Problem,
    feedback_records,
    is_failed_search,
)
from engine.channels.store import FeedbackRecord, Store

MAX = 4 * 1024 * 1024


# ------------------------------------------------------------------ tokens and JWKS URLs


ISSUER = "https://ehr.example.org"
URL = "https://ehr.example.org/.well-known/jwks.json"
AUD = "https://cds.example.org/cds-services/forefoot-pain"


class FakeFetch:
    """Serves a JWKS for the issuer's URL from memory and counts the fetches."""

    def __init__(self, *keys: Any):
        self.keys = list(keys)
        self.calls = 0
        self.fail = False

    def __call__(self, url: str) -> bytes:
        assert url == URL
        self.calls += 1
        if self.fail:
            raise OSError("unreachable")
        return json.dumps(KeySet(self.keys).as_dict(private=False)).encode()


def _token(key: ECKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode({"alg": "ES384", "kid": key.kid}, body, key, algorithms=["ES384"])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3")
    yield s
    s.close()


def test_jwks_url_is_fetched_once_then_cached(store: Store) -> None:
    """A JWKS URL is fetched on first use and served from the cache afterwards."""
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    fetch = FakeFetch(key)
    verifier = TokenVerifier(ServiceConfig(trust=((ISSUER, URL),)), store, fetch=fetch)

    async def run() -> None:
        for _ in range(3):
            await verifier.verify("Bearer " + _token(key), {AUD})

    asyncio.run(run())
    assert fetch.calls == 1


def test_rotated_key_is_fetched_once_and_unknown_kids_do_not_storm(store: Store) -> None:
    """A token signed by a new key (unknown kid) makes the JWKS be fetched again, once; further
    unknown kids within the refresh interval do not fetch again."""
    old = ECKey.generate_key("P-384", parameters={"kid": "old"})
    new = ECKey.generate_key("P-384", parameters={"kid": "new"})
    stranger = ECKey.generate_key("P-384", parameters={"kid": "stranger"})
    fetch = FakeFetch(old)
    verifier = TokenVerifier(ServiceConfig(trust=((ISSUER, URL),)), store, fetch=fetch)

    async def run() -> None:
        await verifier.verify("Bearer " + _token(old), {AUD})
        verifier.issuers[ISSUER].attempted_at -= JWKS_MIN_REFRESH_SECONDS + 1  # as if the first fetch was a while ago
        fetch.keys = [old, new]
        await verifier.verify("Bearer " + _token(new), {AUD})
        assert fetch.calls == 2
        for _ in range(3):
            with pytest.raises(TokenRejected):
                await verifier.verify("Bearer " + _token(stranger), {AUD})
        assert fetch.calls == 2

    asyncio.run(run())


def test_unreachable_jwks_keeps_earlier_keys_or_says_unavailable(store: Store) -> None:
    """When the JWKS URL cannot be fetched, earlier keys are kept; with none yet, the keys are unavailable (503)."""
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    fetch = FakeFetch(key)
    fetch.fail = True
    verifier = TokenVerifier(ServiceConfig(trust=((ISSUER, URL),)), store, fetch=fetch)

    async def run() -> None:
        with pytest.raises(KeysUnavailable):
            await verifier.verify("Bearer " + _token(key), {AUD})
        fetch.fail = False
        verifier.issuers[ISSUER].attempted_at -= JWKS_MIN_REFRESH_SECONDS + 1
        await verifier.verify("Bearer " + _token(key), {AUD})
        fetch.fail = True
        verifier.issuers[ISSUER].fetched_at -= 10**6  # the cache has gone stale
        verifier.issuers[ISSUER].attempted_at -= 10**6
        await verifier.verify("Bearer " + _token(key), {AUD})  # the failed refresh keeps the old keys

    asyncio.run(run())
    assert fetch.calls == 3


def test_replay_memory_is_purged_after_expiry(store: Store) -> None:
    """A jti is remembered until its token expires, then purged by housekeeping."""
    now = time.time()
    assert store.claim_jti(ISSUER, "a", now + 60)
    assert not store.claim_jti(ISSUER, "a", now + 60)
    assert store.claim_jti("https://other.example.org", "a", now + 60)  # (iss, jti) is the key
    store.housekeeping(now=now + 30, force=True)
    assert store.jti_count() == 2
    store.housekeeping(now=now + 120, force=True)
    assert store.jti_count() == 0


def test_issued_cards_are_rolled_up_and_forgotten(store: Store) -> None:
    """Issued card uuids are kept a day to attribute feedback, then only daily counts remain."""
    now = time.time()
    store.record_cards("svc", [("u1", "R1", "x", "recommendation"), ("u2", "R2", "y", "contraindication")], now)
    assert store.record_feedback([FeedbackRecord("svc", "u1", "overridden", int(now), None, "patient-declined")]) == 1
    store.housekeeping(now=now + 2 * 24 * 3600, force=True)
    assert store.record_feedback([FeedbackRecord("svc", "u2", "accepted", int(now))]) == 0
    rows = {r["rule"]: r for r in store.report()["rows"]}
    assert rows["R1"]["shown"] == 1 and rows["R1"]["override_rate"] == 1.0
    assert rows["R1"]["reasons"] == {"patient-declined": 1}
    assert rows["R2"]["shown"] == 1 and rows["R2"]["feedback"] == 0


# ------------------------------------------------------------------ feedback entries


KNOWN = {("https://forefoot-cds.example/fhir/CodeSystem/cds-override-reason", "patient-declined")}


def _entry(**item: Any) -> dict[str, Any]:
    return {"feedback": [{"card": str(uuid.uuid4()), "outcomeTimestamp": "2025-01-15T10:00:00Z", **item}]}


def test_feedback_keeps_codes_and_drops_text() -> None:
    """A known reason code is kept; the comment is reduced to 'a comment was given'; the display is dropped."""
    (rec,) = feedback_records(
        _entry(
            outcome="overridden",
            overrideReason={
                "reason": {"system": next(iter(KNOWN))[0], "code": "patient-declined", "display": "Patient declined"},
                "userComment": "talked it over with her daughter",
            },
        ),
        "svc",
        KNOWN,
    )
    assert (rec.reason_code, rec.comment_given) == ("patient-declined", True)
    assert "daughter" not in repr(rec)


@pytest.mark.parametrize(
    "code,stored",
    [("EHR-REASON-7", "EHR-REASON-7"), ("patient refused, see note", "(not a code)"), ("x" * 65, "(not a code)")],
)
def test_feedback_reason_from_another_system(code: str, stored: str) -> None:
    """Another system's reason is kept when it is shaped like a code, else stored as '(not a code)'."""
    (rec,) = feedback_records(
        _entry(outcome="overridden", overrideReason={"reason": {"system": "urn:oid:1.2.3", "code": code}}), "svc", KNOWN
    )
    assert rec.reason_code == stored


def test_feedback_accepts_urn_uuid_cards_and_counts_suggestions() -> None:
    """A card written urn:uuid:... is the same card; accepted suggestions are counted, not stored."""
    card = uuid.uuid4()
    (rec,) = feedback_records(
        {
            "feedback": [
                {
                    "card": f"urn:uuid:{card}",
                    "outcome": "accepted",
                    "outcomeTimestamp": "2025-01-15T10:00:00+01:00",
                    "acceptedSuggestions": [{"id": "s1"}, {"id": "s2"}],
                }
            ]
        },
        "svc",
        KNOWN,
    )
    assert rec.card == str(card) and rec.accepted_suggestions == 2


def test_feedback_timestamp_needs_a_time_zone() -> None:
    """outcomeTimestamp is an instant: a local time without zone is 400 naming the field."""
    with pytest.raises(_Problem) as err:
        feedback_records(_entry(outcome="accepted", outcomeTimestamp="2025-01-15T10:00:00"), "svc", KNOWN)
    assert err.value.status == 400 and "outcomeTimestamp" in err.value.diagnostics[0]


# ------------------------------------------------------------------ failed searches


@pytest.mark.parametrize(
    "item,failed",
    [
        ({"resourceType": "OperationOutcome", "issue": []}, True),
        (
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}],
            },
            True,
        ),
        ({"resourceType": "Bundle", "type": "searchset", "entry": []}, False),
        ({"resourceType": "Bundle", "type": "searchset"}, False),
        (
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
                    {"resource": {"resourceType": "Condition"}, "search": {"mode": "match"}},
                ],
            },
            False,
        ),
        ({"resourceType": "Patient", "id": "x"}, False),
    ],
)
def test_failed_search(item: dict[str, Any], failed: bool) -> None:
    """An OperationOutcome, or a searchset of only OperationOutcomes, is a failed search; an empty one is 'none'."""
    assert is_failed_search(item) is failed


# ------------------------------------------------------------------ the application in process


def test_database_failure_is_503_not_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the replay memory cannot be written (disk full, locked), a hook call is 503 with Retry-After, not 500."""
    import sqlite3

    import httpx

    from engine.channels.service import create_app

    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    app = create_app(
        ServiceConfig(public_url="https://cds.example.org", trust=((ISSUER, str(jwks)),), db=tmp_path / "db.sqlite3")
    )

    def broken(*_: Any, **__: Any) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(app.store, "claim_jti", broken)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://cds.example.org") as c:
            return await c.post(
                "/cds-services/forefoot-pain",
                json={"hook": "patient-view"},
                headers={"Authorization": "Bearer " + _token(key)},
            )

    resp = asyncio.run(run())
    assert resp.status_code == 503 and resp.headers["retry-after"]
    assert resp.json()["resourceType"] == "OperationOutcome"
