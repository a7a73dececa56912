"""Call records: a row per call and an append-only event log per call, in SQLite (WAL).

The embedded default store. Writes go through one writer thread fed by a queue, so the event
loop never waits on the disk. After waking, the writer gathers for ``COALESCE_S`` (20 ms)
before committing one transaction, so a busy process wakes it about 50 times a second rather
than once per event (each wake-up is a GIL hand-off that the event loop pays for). A crash loses
at most those last milliseconds, never what was said before them. Reads (the control plane, tests)
use their own connection; WAL lets them run beside the writer.

Schema (``calls``): ids, direction, leg, parties, trunk, codec and session format, profile,
timestamps for offered/answered/ended, end reason and SIP status, media statistics (JSON).
``call_events``: ``(call_id, seq, ts, kind, data JSON)`` with kinds such as ``transcript.user``,
``transcript.agent``, ``dtmf``, ``tool_call``, ``error``, ``state``.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

__all__ = ["CallEvent", "CallRecord", "CallStore"]

_SCHEMA = """
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

_UPDATABLE = frozenset(
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
_STOP = object()
#: How long the writer gathers statements after waking, before one commit.
COALESCE_S = 0.02


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


@dataclass(frozen=True, slots=True)
class CallEvent:
    call_id: str
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]


class CallStore:
    """SQLite call records. ``path=":memory:"`` is not supported (the writer has its own
    connection); tests use a temporary file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._error: BaseException | None = None
        self._queued = 0  # statements handed to the writer ...
        self._written = 0  # ... and committed (reads flush while these differ)
        self._writer = threading.Thread(target=self._write_loop, name="call-records", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # -- writing (non-blocking; from any thread or the event loop) ------------------------

    def call_offered(
        self,
        call_id: str,
        *,
        direction: str,
        leg: str,
        from_uri: str | None = None,
        to_uri: str | None = None,
        trunk: str | None = None,
        profile: str | None = None,
        offered_at: float | None = None,
    ) -> None:
        self._put(
            (
                "INSERT INTO calls (call_id, direction, leg, from_uri, to_uri, trunk, profile,"
                " state, offered_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'offered', ?)",
                (
                    call_id,
                    direction,
                    leg,
                    from_uri,
                    to_uri,
                    trunk,
                    profile,
                    offered_at if offered_at is not None else time.time(),
                ),
            )
        )

    def update_call(self, call_id: str, **fields: Any) -> None:
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"unknown call record fields: {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = [json.dumps(v) if k in ("stats", "extra") else v for k, v in fields.items()]
        self._put((f"UPDATE calls SET {cols} WHERE call_id = ?", (*values, call_id)))

    def call_ended(
        self,
        call_id: str,
        *,
        reason: str,
        sip_status: int | None = None,
        stats: Mapping[str, Any] | None = None,
        ended_at: float | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "state": "ended",
            "end_reason": reason,
            "ended_at": ended_at if ended_at is not None else time.time(),
        }
        if sip_status is not None:
            fields["sip_status"] = sip_status
        if stats is not None:
            fields["stats"] = dict(stats)
        self.update_call(call_id, **fields)
        with self._seq_lock:
            self._seq.pop(call_id, None)

    def log_event(
        self,
        call_id: str,
        kind: str,
        data: Mapping[str, Any] | None = None,
        ts: float | None = None,
    ) -> None:
        with self._seq_lock:
            seq = self._seq.get(call_id, 0) + 1
            self._seq[call_id] = seq
        self._put(
            (
                "INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                (
                    call_id,
                    seq,
                    ts if ts is not None else time.time(),
                    kind,
                    json.dumps(dict(data or {}), ensure_ascii=False),
                ),
            )
        )

    def _put(self, stmt: tuple[str, tuple[Any, ...]]) -> None:
        if self._error is not None:
            raise RuntimeError(f"call store writer failed: {self._error}")
        self._queued += 1
        self._queue.put(stmt)

    def _write_loop(self) -> None:
        db = self._connect()
        try:
            while True:
                item = self._queue.get()
                if item is not _STOP and not isinstance(item, threading.Event):
                    time.sleep(COALESCE_S)
                batch = [item]
                while True:  # drain what is already queued into one transaction
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                with db:
                    for stmt in batch:
                        if stmt is _STOP:
                            stop = True
                        elif isinstance(stmt, threading.Event):
                            continue
                        else:
                            sql, params = cast(tuple[str, tuple[Any, ...]], stmt)
                            db.execute(sql, params)
                            self._written += 1
                for stmt in batch:
                    if isinstance(stmt, threading.Event):
                        stmt.set()
                if stop:
                    return
        except BaseException as exc:
            self._error = exc
        finally:
            db.close()

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout) and self._error is None:
            raise TimeoutError("call store did not flush in time")
        if self._error is not None:
            raise RuntimeError(f"call store writer failed: {self._error}")

    def close(self) -> None:
        self._queue.put(_STOP)
        self._writer.join(timeout=10)

    # -- reading ------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A read connection that sees every write made before the read (read-your-writes:
        waits for the writer only when something is still queued)."""
        if self._queued != self._written and self._writer.is_alive():
            self.flush()
        db = self._connect()
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> CallRecord:
        d = dict(row)
        d["stats"] = json.loads(d["stats"])
        d["extra"] = json.loads(d["extra"])
        return CallRecord(**d)

    def get_call(self, call_id: str) -> CallRecord | None:
        with self._reader() as db:
            row = db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return self._record(row) if row else None

    def list_calls(self, *, limit: int = 100, state: str | None = None) -> list[CallRecord]:
        sql = "SELECT * FROM calls"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        sql += " ORDER BY offered_at DESC LIMIT ?"
        with self._reader() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        return [self._record(r) for r in rows]

    def events(self, call_id: str, *, after_seq: int = 0) -> list[CallEvent]:
        with self._reader() as db:
            rows = db.execute(
                "SELECT * FROM call_events WHERE call_id = ? AND seq > ? ORDER BY seq",
                (call_id, after_seq),
            ).fetchall()
        return [
            CallEvent(r["call_id"], r["seq"], r["ts"], r["kind"], json.loads(r["data"]))
            for r in rows
        ]
