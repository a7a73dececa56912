"""The call records' schema, its migrations and its values, whatever the database.

One schema for every backend: ``calls`` (a row per call: ids, direction, leg, parties, trunk,
codec and session format, profile, timestamps, end reason and SIP status, media statistics and
``extra`` as JSON text, and the ``owner``: the process that holds the call) and ``call_events``
(``(call_id, seq, ts, kind, data JSON)``). :data:`MIGRATIONS` are written in the SQL both
SQLite and PostgreSQL speak; the PostgreSQL backend maps ``REAL`` to ``DOUBLE PRECISION``
(epoch seconds need more than PostgreSQL's 4-byte ``real``). ``MIGRATIONS[n]`` brings version
n to n + 1; each backend keeps the version its own way and applies them in order, once, under
a lock, so workers that start together migrate once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "INTERRUPTED",
    "MIGRATIONS",
    "UPDATABLE",
    "CallEvent",
    "CallQuery",
    "CallRecord",
    "Cursor",
    "statements",
]

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS calls (
    call_id        TEXT PRIMARY KEY,
    direction      TEXT NOT NULL,             -- inbound | outbound
    leg            TEXT NOT NULL,             -- sip | webrtc | websocket
    from_uri       TEXT,
    to_uri         TEXT,
    trunk          TEXT,
    profile        TEXT,
    codec          TEXT,
    session_format TEXT,
    state          TEXT NOT NULL,
    offered_at     REAL NOT NULL,
    answered_at    REAL,
    ended_at       REAL,
    end_reason     TEXT,
    sip_status     INTEGER,
    stats          TEXT NOT NULL DEFAULT '{}',
    extra          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS calls_offered ON calls(offered_at);
CREATE TABLE IF NOT EXISTS call_events (
    call_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    ts      REAL NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
"""

#: Schema changes, in order: ``MIGRATIONS[n]`` brings version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    _SCHEMA_V1,
    """
    ALTER TABLE calls ADD COLUMN owner TEXT;
    CREATE INDEX IF NOT EXISTS calls_open ON calls(state) WHERE state != 'ended';
    """,
    # INVITEs refused by policy are security events now, never calls: the rows older
    # versions wrote for them (a scanner's thousands) go
    """
    DELETE FROM call_events WHERE call_id IN
        (SELECT call_id FROM calls WHERE end_reason = 'refused-by-policy');
    DELETE FROM calls WHERE end_reason = 'refused-by-policy';
    """,
    # ended-call search (the dashboard's, GET /v1/calls/search): newest first by
    # (offered_at, call_id), narrowed by profile or end reason through its own index
    """
    CREATE INDEX IF NOT EXISTS calls_ended ON calls(offered_at, call_id) WHERE state = 'ended';
    CREATE INDEX IF NOT EXISTS calls_ended_profile ON calls(profile, offered_at, call_id)
        WHERE state = 'ended';
    CREATE INDEX IF NOT EXISTS calls_ended_reason ON calls(end_reason, offered_at, call_id)
        WHERE state = 'ended';
    """,
)

#: The end reason of calls whose process died (``kill -9``, a crash, the machine went down).
INTERRUPTED = "interrupted"

#: The columns :meth:`~bridge.records.CallStore.update_call` may set.
UPDATABLE = frozenset(
    {
        "from_uri",
        "to_uri",
        "trunk",
        "profile",
        "codec",
        "session_format",
        "state",
        "answered_at",
        "ended_at",
        "end_reason",
        "sip_status",
        "stats",
        "extra",
    }
)


@dataclass(frozen=True, slots=True)
class CallQuery:
    """Which ended calls to find. ``number`` matches anywhere in the caller's or the called
    URI (spaces, dashes, dots and brackets typed with it are ignored); ``since`` and ``until``
    bound the time the call was offered (epoch seconds, ``since <= t < until``)."""

    number: str | None = None
    profile: str | None = None
    end_reason: str | None = None
    since: float | None = None
    until: float | None = None


#: Where a page of search results ends: the last call's ``(offered_at, call_id)``; the next
#: page starts strictly after it (keyset pagination: stable while calls keep ending).
Cursor = tuple[float, str]


def statements(script: str) -> list[str]:
    """A migration's statements, one each (our scripts hold no ``;`` inside a statement)."""
    out = []
    for chunk in script.split(";"):
        lines = [ln for ln in chunk.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if lines:
            out.append(chunk.strip())
    return out


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    direction: str
    leg: str
    from_uri: str | None
    to_uri: str | None
    trunk: str | None
    profile: str | None
    codec: str | None
    session_format: str | None
    state: str
    offered_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None
    sip_status: int | None
    stats: dict[str, Any]
    extra: dict[str, Any]
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class CallEvent:
    call_id: str
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
