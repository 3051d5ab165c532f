"""The CDS Hooks service's memory, shared by its workers and kept across restarts: one SQLite file.

    store = Store(Path("cds-service.sqlite3"))
    store.claim_jti(issuer, jti, expires_at)     # False: the token was seen before (a replay)
    store.record_cards([(uuid, rule, intervention, kind), ...])
    store.record_feedback([FeedbackRecord(...), ...])
    store.report()                               # override rates per rule and card

SQLite in WAL mode (readers never block the writer; the workers of one host share the file),
`synchronous=NORMAL` (a commit survives a crash of the process; a power cut may lose the last
commits, and with them at most a few minutes of jti memory), a 5 s busy timeout between workers.

What is kept, and for how long:
- `jti`: a SHA-256 of (issuer, jti) and when the token expires; purged once expired (the token
  is refused for its `exp` from then on).
- `issued`: each card this service returned (its uuid, rule, intervention and kind, never the
  patient): so that feedback, which names only the card's uuid, can be counted per rule. A card
  uuid is derived from the patient id, so these rows are rolled up into daily counts and deleted
  after `CARD_MEMORY_SECONDS` (feedback arrives within a session, not days later).
- `feedback`: outcome, when, override reason code, how many suggestions were accepted and
  whether a comment was given; never the comment, the card uuid or anything about the patient.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: How long an issued card's uuid is remembered to attribute feedback to its rule.
CARD_MEMORY_SECONDS = 24 * 3600
#: How often (per process) expired jtis are purged and old issued cards rolled up.
HOUSEKEEPING_SECONDS = 30
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jti (
    key BLOB PRIMARY KEY,            -- sha256(issuer, 0x1f, jti): fixed size, no raw token data
    expires INTEGER NOT NULL          -- unix seconds after which the row may be purged
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jti_expires ON jti(expires);
CREATE TABLE IF NOT EXISTS issued (
    card TEXT NOT NULL, service TEXT NOT NULL, rule TEXT NOT NULL, intervention TEXT NOT NULL,
    kind TEXT NOT NULL, issued INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_card ON issued(card);
CREATE INDEX IF NOT EXISTS issued_time ON issued(issued);
CREATE TABLE IF NOT EXISTS issued_daily (
    day TEXT NOT NULL, service TEXT NOT NULL, rule TEXT NOT NULL, intervention TEXT NOT NULL,
    kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, service, rule, intervention, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    received INTEGER NOT NULL,
    service TEXT NOT NULL,
    rule TEXT, intervention TEXT, kind TEXT,     -- NULL: the card is not known (not issued here, or too old)
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_time INTEGER,
    reason_system TEXT, reason_code TEXT,
    accepted_suggestions INTEGER NOT NULL DEFAULT 0,
    comment_given INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS feedback_received ON feedback(received);
"""


class StoreError(Exception):
    """The database cannot be opened or used (the message names the file, never data)."""


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback entry as stored: nothing free-text, nothing about the patient."""

    service: str
    card: str  # used to find the rule; not stored
    outcome: str
    outcome_time: int | None
    reason_system: str | None = None
    reason_code: str | None = None
    accepted_suggestions: int = 0
    comment_given: bool = False


def _jti_key(issuer: str, jti: str) -> bytes:
    return hashlib.sha256(f"{issuer}\x1f{jti}".encode("utf-8", "surrogatepass")).digest()


class Store:
    """One connection per process (and per Store), used under a lock."""

    def __init__(self, path: Path | str, card_memory_seconds: int = CARD_MEMORY_SECONDS):
        self.path = Path(path)
        self.card_memory_seconds = card_memory_seconds
        self._lock = threading.Lock()
        self._last_housekeeping = 0.0
        try:
            self._db = sqlite3.connect(str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{self.path}: SQLite could not use WAL mode (journal_mode={mode}); "
                    "put the database on a local file system"
                )
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: written by a newer forefoot-cds (schema {version})")
            # Every statement is idempotent (IF NOT EXISTS): workers starting together may all run it.
            self._db.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the service database ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, inside one transaction: committed, or rolled back on any error."""
        with self._lock:
            self._db.execute(begin)
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------ replay memory

    def claim_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Remember a token's (iss, jti) until `expires_at`; False when it was already seen (a replay)."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO jti (key, expires) VALUES (?, ?)", (_jti_key(issuer, jti), int(expires_at) + 1)
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def jti_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM jti").fetchone()[0]

    # ------------------------------------------------------------ cards and feedback

    def record_cards(self, service: str, cards: Iterable[tuple[str, str, str, str]], now: float | None = None) -> None:
        """Remember the cards just returned: (uuid, rule, intervention, kind) each."""
        stamp = int(time.time() if now is None else now)
        rows = [(c[0], service, c[1], c[2], c[3], stamp) for c in cards]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO issued (card, service, rule, intervention, kind, issued) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def record_feedback(self, records: list[FeedbackRecord], now: float | None = None) -> int:
        """Store feedback entries; returns how many named a card this service remembers."""
        stamp = int(time.time() if now is None else now)
        known = 0
        with self._transaction("BEGIN IMMEDIATE") as db:
            for r in records:
                row = db.execute(
                    "SELECT rule, intervention, kind FROM issued WHERE card = ? AND service = ? "
                    "ORDER BY issued DESC LIMIT 1",
                    (r.card, r.service),
                ).fetchone()
                rule, intervention, kind = row if row else (None, None, None)
                known += row is not None
                db.execute(
                    "INSERT INTO feedback (received, service, rule, intervention, kind, outcome, outcome_time, "
                    "reason_system, reason_code, accepted_suggestions, comment_given) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        stamp,
                        r.service,
                        rule,
                        intervention,
                        kind,
                        r.outcome,
                        r.outcome_time,
                        r.reason_system,
                        r.reason_code,
                        r.accepted_suggestions,
                        int(r.comment_given),
                    ),
                )
        return known

    # ------------------------------------------------------------ housekeeping

    def housekeeping(self, now: float | None = None, force: bool = False) -> None:
        """Purge expired jtis; roll issued cards older than the card memory into daily counts."""
        now = time.time() if now is None else now
        if not force and now - self._last_housekeeping < HOUSEKEEPING_SECONDS:
            return
        self._last_housekeeping = now
        cutoff = int(now) - self.card_memory_seconds
        with self._transaction("BEGIN IMMEDIATE") as db:
            db.execute("DELETE FROM jti WHERE expires < ?", (int(now),))
            db.execute(
                "INSERT INTO issued_daily (day, service, rule, intervention, kind, n) "
                "SELECT date(issued, 'unixepoch'), service, rule, intervention, kind, count(*) FROM issued "
                "WHERE issued < ? GROUP BY 1, 2, 3, 4, 5 "
                "ON CONFLICT (day, service, rule, intervention, kind) DO UPDATE SET n = n + excluded.n",
                (cutoff,),
            )
            db.execute("DELETE FROM issued WHERE issued < ?", (cutoff,))

    # ------------------------------------------------------------ the governance report

    def report(self, since: datetime | None = None) -> dict[str, Any]:
        """Cards shown, feedback, override rate and override reasons per (service, rule, card)."""
        start = int(since.timestamp()) if since else 0
        start_day = since.date().isoformat() if since else "0000-00-00"
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}

        def group(key: tuple[str, str, str, str]) -> dict[str, Any]:
            return groups.setdefault(
                key,
                {
                    "service": key[0],
                    "rule": key[1],
                    "kind": key[2],
                    "intervention": key[3],
                    "shown": 0,
                    "feedback": 0,
                    "accepted": 0,
                    "overridden": 0,
                    "reasons": {},
                },
            )

        with self._lock:
            shown_live = self._db.execute(
                "SELECT service, rule, kind, intervention, count(*) FROM issued WHERE issued >= ? GROUP BY 1, 2, 3, 4",
                (start,),
            ).fetchall()
            shown_old = self._db.execute(
                "SELECT service, rule, kind, intervention, sum(n) FROM issued_daily WHERE day >= ? GROUP BY 1, 2, 3, 4",
                (start_day,),
            ).fetchall()
            outcomes = self._db.execute(
                "SELECT service, rule, kind, intervention, outcome, count(*) FROM feedback "
                "WHERE received >= ? AND rule IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
                (start,),
            ).fetchall()
            reasons = self._db.execute(
                "SELECT service, rule, kind, intervention, coalesce(reason_code, '(no reason code)'), count(*) "
                "FROM feedback WHERE received >= ? AND rule IS NOT NULL AND outcome = 'overridden' "
                "GROUP BY 1, 2, 3, 4, 5",
                (start,),
            ).fetchall()
            unknown = self._db.execute(
                "SELECT outcome, count(*) FROM feedback WHERE received >= ? AND rule IS NULL GROUP BY 1", (start,)
            ).fetchall()
            span = self._db.execute(
                "SELECT min(received), max(received) FROM feedback WHERE received >= ?", (start,)
            ).fetchone()
        for *key, n in shown_live + shown_old:
            group(tuple(key))["shown"] += n
        for *key, outcome, n in outcomes:
            g = group(tuple(key))
            g[outcome] += n
            g["feedback"] += n
        for *key, code, n in reasons:
            group(tuple(key))["reasons"][code] = n
        rows = []
        for g in sorted(groups.values(), key=lambda g: (g["service"], g["rule"], g["kind"], g["intervention"])):
            g["override_rate"] = g["overridden"] / g["feedback"] if g["feedback"] else None
            g["reasons"] = dict(sorted(g["reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
            rows.append(g)
        total_fb = sum(g["feedback"] for g in rows)
        total_over = sum(g["overridden"] for g in rows)

        def iso(t: int | None) -> str | None:
            return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="seconds") if t is not None else None

        return {
            "since": since.isoformat() if since else None,
            "first_feedback": iso(span[0]),
            "last_feedback": iso(span[1]),
            "rows": rows,
            "feedback": total_fb,
            "overridden": total_over,
            "override_rate": total_over / total_fb if total_fb else None,
            "feedback_on_unknown_cards": dict(unknown),
        }


_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#%+-]{0,199}$")


def token_shaped(value: Any, limit: int = 64) -> bool:
    """A code or URI (no spaces, at most `limit` characters): never a sentence that might hold free text."""
    return isinstance(value, str) and len(value) <= limit and bool(_TOKEN.match(value))
