"""Call records: a row per call and an append-only event log per call, in SQLite (WAL).

The embedded default store. Writes go through one writer thread fed by a queue, so the event
loop never waits on the disk. After waking, the writer gathers for ``COALESCE_S`` (20 ms)
before committing one transaction, so a busy process wakes it about 50 times a second rather
than once per event (each wake-up is a GIL hand-off that the event loop pays for). A crash loses
at most those last milliseconds, never what was said before them. Reads (the control plane, tests)
use their own connection; WAL lets them run beside the writer.

Schema (``calls``): ids, direction, leg, parties, trunk, codec and session format, profile,
timestamps for offered/answered/ended, end reason and SIP status, media statistics (JSON), and
the ``owner``: the process that holds the call. ``call_events``: ``(call_id, seq, ts, kind, data
JSON)`` with kinds such as ``transcript.user``, ``transcript.agent``, ``dtmf``, ``tool_call``,
``error``, ``state``. The database and its -wal/-shm files are owner-only (0600): they hold
transcripts, phone numbers and DTMF digits (PINs). The schema version is SQLite's
``user_version``; :data:`MIGRATIONS` bring
any older file up to date when the store opens it.

Retention (issue 12): with ``retention_s`` set (``calls.records_retention_days``, 30 by default
under ``serve``), the writer thread deletes ended calls older than that, with their events, when
it starts and every :data:`PRUNE_PERIOD_S`, in small transactions so that writes never wait
long. INVITEs refused by policy are never stored: they are security events, counted.

Crash safety: every process that opens the store takes an owner id and holds an exclusive
``flock`` on ``<db>.owners/<owner>.lock`` for as long as it runs; the kernel lets go of it when
the process dies, however it dies. When a store opens, calls still open (not ``ended``) whose
owner holds no lock any more belonged to a process that was killed: they are closed with end
reason ``interrupted`` at the time of their last event, so nothing shows a ghost call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bridge.private_files import private_file
from media.clock import Clock, SystemClock

__all__ = ["MIGRATIONS", "CallEvent", "CallRecord", "CallStore"]

log = logging.getLogger(__name__)

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
)

#: The end reason of calls whose process died (``kill -9``, a crash, the machine went down).
INTERRUPTED = "interrupted"

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
_PRUNE = object()
#: How long the writer gathers statements after waking, before one commit.
COALESCE_S = 0.02
#: How often the writer deletes the records past their retention, and how many calls per
#: transaction.
PRUNE_PERIOD_S = 3600.0
PRUNE_BATCH = 500


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


class CallStore:
    """SQLite call records. ``path=":memory:"`` is not supported (the writer has its own
    connection); tests use a temporary file."""

    def __init__(
        self, path: Path, *, clock: Clock | None = None, retention_s: float | None = None
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self.retention_s = retention_s
        self.pruned = 0  # calls deleted past their retention so far
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # transcripts, numbers and DTMF digits (PINs): owner-only, whatever the umask; SQLite
        # gives its -wal and -shm files the database file's mode
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                private_file(side)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._owners = self.path.with_name(self.path.name + ".owners")
        self._owners.mkdir(exist_ok=True, mode=0o700)
        self._lock_fd = self._hold_lock(self.owner)
        db = self._connect()
        try:
            self._migrate(db)
            self.interrupted = self._close_orphans(db)
        finally:
            db.close()
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
        # the writer only appends and the readers are short-lived: a small page cache, so a
        # long-running process does not grow by SQLite's default 2 MB per connection
        db.execute("PRAGMA cache_size=-256")
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if (
            version == 0
            and db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'"
            ).fetchone()
        ):
            version = 1  # a file from before versioning: it has the first schema
        for n in range(version, len(MIGRATIONS)):
            db.executescript(f"BEGIN; {MIGRATIONS[n]}; PRAGMA user_version = {n + 1}; COMMIT;")

    # -- owners: which process holds which calls ------------------------------------------

    def _lock_path(self, owner: str) -> Path:
        return self._owners / (owner.replace("/", "_") + ".lock")

    def _hold_lock(self, owner: str) -> int:
        fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def _owner_alive(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner == self.owner:
            return True
        path = self._lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its process still runs and holds the lock
        finally:
            os.close(fd)
        return False

    def _close_orphans(self, db: sqlite3.Connection) -> int:
        """Close the open calls of processes that died; returns how many were closed."""
        owners = [
            r[0] for r in db.execute("SELECT DISTINCT owner FROM calls WHERE state != 'ended'")
        ]
        closed = 0
        for owner in owners:
            if self._owner_alive(owner):
                continue
            with db:
                cur = db.execute(
                    "UPDATE calls SET state = 'ended', end_reason = ?, ended_at = COALESCE("
                    " (SELECT MAX(ts) FROM call_events e WHERE e.call_id = calls.call_id),"
                    " answered_at, offered_at)"
                    " WHERE state != 'ended' AND owner IS ?",
                    (INTERRUPTED, owner),
                )
            closed += cur.rowcount
            if owner is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path(owner).unlink()
        if closed:
            log.warning("closed %d call record(s) of a process that died: %s", closed, INTERRUPTED)
        return closed

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
                " state, offered_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, 'offered', ?, ?)",
                (
                    call_id,
                    direction,
                    leg,
                    from_uri,
                    to_uri,
                    trunk,
                    profile,
                    offered_at if offered_at is not None else self._clock.wall(),
                    self.owner,
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
            "ended_at": ended_at if ended_at is not None else self._clock.wall(),
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
                    ts if ts is not None else self._clock.wall(),
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
        next_prune = time.monotonic()  # at start, in this thread: opening is not delayed
        try:
            while True:
                timeout = None
                if self.retention_s is not None:
                    if time.monotonic() >= next_prune:
                        self._prune(db)
                        next_prune = time.monotonic() + PRUNE_PERIOD_S
                    timeout = max(0.0, next_prune - time.monotonic())
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    continue
                if (
                    item is not _STOP
                    and item is not _PRUNE
                    and not isinstance(item, threading.Event)
                ):
                    time.sleep(COALESCE_S)
                batch = [item]
                while True:  # drain what is already queued into one transaction
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = prune = False
                with db:
                    for stmt in batch:
                        if stmt is _STOP:
                            stop = True
                        elif stmt is _PRUNE:
                            prune = True
                        elif isinstance(stmt, threading.Event):
                            continue
                        else:
                            sql, params = cast(tuple[str, tuple[Any, ...]], stmt)
                            db.execute(sql, params)
                            self._written += 1
                if prune:
                    self._prune(db)
                for stmt in batch:
                    if isinstance(stmt, threading.Event):
                        stmt.set()
                if stop:
                    return
        except BaseException as exc:
            self._error = exc
        finally:
            db.close()

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete ended calls offered before the retention window, with their events, a
        batch per transaction."""
        if self.retention_s is None:
            return
        cutoff = self._clock.wall() - self.retention_s
        while True:
            with db:
                ids = [
                    r[0]
                    for r in db.execute(
                        "SELECT call_id FROM calls WHERE offered_at < ? AND state = 'ended'"
                        " LIMIT ?",
                        (cutoff, PRUNE_BATCH),
                    )
                ]
                if ids:
                    marks = ",".join("?" * len(ids))
                    db.execute(f"DELETE FROM call_events WHERE call_id IN ({marks})", ids)
                    db.execute(f"DELETE FROM calls WHERE call_id IN ({marks})", ids)
            self.pruned += len(ids)
            if len(ids) < PRUNE_BATCH:
                return

    def prune(self, timeout: float = 30.0) -> None:
        """Delete the records past their retention now (the writer does it hourly anyway)."""
        self._queue.put(_PRUNE)
        self.flush(timeout)

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
        if self._lock_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                self._lock_path(self.owner).unlink()
            os.close(self._lock_fd)
            self._lock_fd = -1

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
