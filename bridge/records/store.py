"""The call store: records and event logs written without blocking the event loop, read with
read-your-writes, pruned after their retention, and closed as ``interrupted`` when their
process died. The database itself is a backend (:mod:`bridge.records.backend`): SQLite, the
embedded default, or PostgreSQL, shared by the nodes of a cluster.

Writes go through one writer thread fed by a queue, so the event loop never waits on the
database. After waking, the writer gathers for ``COALESCE_S`` (20 ms) before committing one
transaction, so a busy process wakes it about 50 times a second rather than once per event
(each wake-up is a GIL hand-off that the event loop pays for). A crash loses at most those last
milliseconds, never what was said before them. Reads (the control plane, tests) use their own
connection; they first wait for what this process queued before them.

Retention (issue 12): with ``retention_s`` set (``calls.records_retention_days``, 30 by default
under ``serve``), the writer thread deletes ended calls older than that, with their events, when
it starts and every :data:`PRUNE_PERIOD_S`, in small transactions so that writes never wait
long; a pruned call's recording (``recordings``/``<call_id>.wav``, issue 16) goes with it.
Recordings stay on the node that made them while records may be shared (PostgreSQL), so the
node whose store pruned a call may not hold its file: each node also deletes the files of
its own whose call has no record any more, once they are older than :data:`PRUNE_PERIOD_S`
(a file younger than that may belong to a call whose record is still queued).
INVITEs refused by policy are never stored: they are security events, counted.

Crash safety: every process that opens the store takes an owner id and holds a lock named
after it for as long as it runs (the backend's: an ``flock``, a PostgreSQL advisory lock).
When a store opens, calls still open (not ``ended``) whose owner holds no lock any more
belonged to a process that was killed: they are closed with end reason ``interrupted`` at the
time of their last event, so nothing shows a ghost call. A cluster registry that sees a node
die closes that node's calls the same way at once (:meth:`CallStore.close_owner`).

Outages: a database that restarts, a broken connection, a SQLite file locked past its busy
timeout or a full disk stop nothing but the writes. The writer keeps what it was writing and
what keeps coming, tries again (0.5 s, doubling to 5 s) and writes it all in order once the
database is back; calls go on meanwhile, and the node takes its owner lock back (a PostgreSQL
restart drops it). The backlog is bounded (:data:`MAX_BACKLOG` statements); past it new
statements are dropped and counted, never silently, until half of it is written; a store
closed in an outage gives up at once and counts what it could not write. A statement the
database refuses for itself (a constraint, a bad value) is logged, counted and skipped, and
the rest of its transaction is written without it. A connection that breaks while a batch
commits leaves it unknown whether the batch was written: it is written again, and a row it
finds already there (its own, committed before the break) is counted written, not refused.
Reads during an outage raise :class:`~bridge.errors.RecordsUnavailable` (the control
plane's 503 ``records_unavailable``), at once for a server, which the writer found
unanswering; reads wait for the writer only for a small backlog (:data:`READ_FLUSH_MAX`),
so the backlog an outage leaves does not stall them.
:meth:`CallStore.health` (and ``/metrics``) says which state the store is in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import RecordsUnavailable
from bridge.records.backend import Backend, open_backend
from bridge.records.schema import (
    INTERRUPTED,
    UPDATABLE,
    CallEvent,
    CallQuery,
    CallRecord,
    Cursor,
)
from media.clock import Clock, SystemClock

__all__ = ["CallStore", "RecordsHealth", "RecordsUnavailable"]

log = logging.getLogger("bridge.records")

_STOP = object()
_PRUNE = object()
#: How long the writer gathers statements after waking, before one commit.
COALESCE_S = 0.02
#: How often the writer deletes the records past their retention, and how many calls per
#: transaction.
PRUNE_PERIOD_S = 3600.0
PRUNE_BATCH = 500
#: Through an outage, the writer tries again after 0.5 s, doubling up to 5 s.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
#: How often the writer makes sure it still holds its owner lock (a database restart drops it).
LOCK_CHECK_S = 5.0
#: Statements that may wait for the database through an outage (about 50 MB at most); past
#: that, new ones are dropped and counted until the backlog is half written.
MAX_BACKLOG = 200_000
#: A read waits for the writer (read-your-writes) only while this little is queued, and only
#: this long: a backlog being written after an outage is not waited for.
READ_FLUSH_MAX = 2_000
READ_FLUSH_S = 2.0
#: A write that has waited this long for the database makes the store report it down (a
#: server that accepts connections and then never answers: no error comes to say so).
STALL_S = 10.0
#: How long closing waits for the writer (one attempt under way may have to time out first).
CLOSE_WAIT_S = 20.0
#: What people type inside a phone number, ignored by the search.
_NUMBER_NOISE = str.maketrans("", "", " -.()\t")

_CLOSE_OWNER = (
    "UPDATE calls SET state = 'ended', end_reason = ?, ended_at = COALESCE("
    " (SELECT MAX(ts) FROM call_events e WHERE e.call_id = calls.call_id),"
    " answered_at, offered_at)"
    " WHERE state != 'ended' AND "
)


#: one write: SQL with ``?`` placeholders and its parameters
Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class RecordsHealth:
    """What :meth:`CallStore.health` reports (and ``/metrics`` shows)."""

    up: bool  # the last write or lock check reached the database (and the writer runs)
    backlog: int  # statements waiting to be written
    dropped: int  # statements dropped: the backlog was full, or the store closed in an outage
    failed: int  # statements the database refused (a constraint, a bad value): skipped


def _close_quietly(db: Any) -> None:
    """Close a connection an outage may already have broken (None: none is open)."""
    if db is not None:
        with contextlib.suppress(Exception):
            db.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class CallStore:
    """Call records in SQLite (a path) or PostgreSQL (a ``postgresql://`` URL).
    ``":memory:"`` is not supported (the writer has its own connection); tests use a
    temporary file."""

    def __init__(
        self,
        target: Path | str,
        *,
        clock: Clock | None = None,
        retention_s: float | None = None,
        owner: str | None = None,
        recordings: Path | None = None,
    ) -> None:
        self._backend: Backend = open_backend(target)
        self.label = self._backend.label
        self._clock = clock or SystemClock()
        self.retention_s = retention_s
        #: where call recordings are (``<call_id>.wav``): pruned with their calls
        self.recordings = recordings
        self.pruned = 0  # calls deleted past their retention so far
        #: who holds the calls this store writes (a cluster node's id, by default
        #: ``host:pid:random``)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._backend.migrate()
        self._backend.hold(self.owner)
        self.interrupted = self._close_orphans()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._error: BaseException | None = None
        #: statements that may wait through an outage before new ones are dropped
        self.max_backlog = MAX_BACKLOG
        self.dropped = 0
        self.failed = 0
        self._dropping = False
        self._outage_since: float | None = None  # monotonic; None: the database answers
        #: the batch being written may be committed already (the connection broke as it
        #: committed): a row of it already there is its own, not a refusal
        self._maybe_committed = False
        self._attempt_at: float | None = None  # monotonic: when the write under way began
        #: a write waiting longer than this counts as an outage for health and reads
        self.stall_s = STALL_S
        self._stopping = threading.Event()
        self._queued = 0  # statements handed to the writer ...
        self._written = 0  # ... and committed (reads flush while these differ)
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="call-records", daemon=True)
        self._writer.start()

    # -- owners: which process holds which calls ------------------------------------------

    def _close_orphans(self) -> int:
        """Close the open calls of processes that died; returns how many were closed."""
        with self._backend.reader() as db:
            rows = self._backend.fetch(
                db, "SELECT DISTINCT owner FROM calls WHERE state != 'ended'"
            )
        closed = 0
        for row in rows:
            owner = row["owner"]
            if owner == self.owner or (owner is not None and self._backend.owner_alive(owner)):
                continue
            closed += self.close_owner(owner)
        return closed

    def close_owner(self, owner: str | None) -> int:
        """Close the open calls of ``owner``, a process known to be dead, as ``interrupted``
        at the time of their last event; returns how many. Blocking: call it off the loop."""
        if owner == self.owner:
            raise ValueError("a store never closes its own calls as interrupted")
        db = self._backend.connect()
        try:
            with self._backend.transaction(db):
                if owner is None:
                    n = self._backend.execute(db, _CLOSE_OWNER + "owner IS NULL", (INTERRUPTED,))
                else:
                    n = self._backend.execute(db, _CLOSE_OWNER + "owner = ?", (INTERRUPTED, owner))
        finally:
            db.close()
        if owner is not None:
            self._backend.forget(owner)
        if n:
            log.warning("closed %d call record(s) of a process that died: %s", n, INTERRUPTED)
        return n

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
        bad = set(fields) - UPDATABLE
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

    def _put(self, stmt: Statement) -> None:
        if self._error is not None:
            raise RuntimeError(f"call store writer failed: {self._error}")
        backlog = self._queued - self._written
        if backlog >= self.max_backlog or (self._dropping and backlog >= self.max_backlog // 2):
            # a long outage: memory is bounded; dropping goes on until half is written
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.error(
                    "call records: %d statements wait for the database; new ones are dropped"
                    " (counted: rtbridge_records_dropped_total) until half of them are written",
                    self.max_backlog,
                )
            return
        if self._dropping:
            self._dropping = False
            log.warning("call records: the backlog is half written; new statements are kept")
        self._queued += 1
        self._queue.put(stmt)

    def health(self) -> RecordsHealth:
        """Whether the database takes writes, and what waits, was dropped or was refused."""
        return RecordsHealth(
            up=not self._unavailable() and self._error is None,
            backlog=self._queued - self._written,
            dropped=self.dropped,
            failed=self.failed,
        )

    def _unavailable(self) -> bool:
        """In an outage, or a write has waited on the database longer than ``stall_s``."""
        started = self._attempt_at
        stalled = started is not None and time.monotonic() - started > self.stall_s
        return stalled or self._outage_since is not None

    def _write_loop(self) -> None:
        db: Any = None
        now = time.monotonic()
        next_prune = now  # at start, in this thread: opening is not delayed
        next_check = now + LOCK_CHECK_S
        try:
            while True:
                now = time.monotonic()
                if now >= next_check:
                    self._relock()
                    next_check = now + LOCK_CHECK_S
                if self.retention_s is not None and now >= next_prune:
                    db = self._prune_now(db)
                    next_prune = now + PRUNE_PERIOD_S
                due = min(next_check, next_prune if self.retention_s is not None else next_check)
                try:
                    item = self._queue.get(timeout=max(0.0, due - time.monotonic()))
                except queue.Empty:
                    continue
                if isinstance(item, tuple):
                    time.sleep(COALESCE_S)
                batch = [item]
                while True:  # drain what is already queued into one transaction
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                db = self._write(db, [s for s in batch if isinstance(s, tuple)])
                if any(i is _PRUNE for i in batch):
                    db = self._prune_now(db)
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(i is _STOP for i in batch):
                    return
        except BaseException as exc:
            self._error = exc
            log.error("call store writer failed: %s", exc)
        finally:
            _close_quietly(db)

    def _write(self, db: Any, stmts: list[Statement]) -> Any:
        """Commit ``stmts``; through an outage, keep them and try again (0.5 s, doubling to
        5 s) until the database is back or the store closes. Returns the connection to go on
        with (None: none is open)."""
        if not stmts:
            return db
        backoff = RETRY_MIN_S
        while stmts:
            if self._stopping.is_set() and self._outage_since is not None:
                self._give_up(stmts)  # closing in an outage: no new attempt to wait out
                return None
            self._attempt_at = time.monotonic()
            try:
                if db is None:
                    db = self._backend.connect()
                    self._backend.recover()
                self._commit(db, stmts)
            except Exception as exc:
                if not self._backend.is_outage(exc):
                    raise
                _close_quietly(db)
                db = None
                self._outage(exc)
                self._stopping.wait(backoff)  # closing wakes it: the loop gives up above
                backoff = min(backoff * 2, RETRY_MAX_S)
            finally:
                self._attempt_at = None
        self._maybe_committed = False
        self._back()
        return db

    def _give_up(self, stmts: list[Statement]) -> None:
        self._written += len(stmts)
        self.dropped += len(stmts)
        log.error(
            "call records: %d statements not written: the database is unavailable as the"
            " store closes",
            len(stmts),
        )
        stmts.clear()

    def _commit(self, db: Any, stmts: list[Statement]) -> None:
        """Write ``stmts`` in one transaction. If one of them can never be written (a
        constraint, a bad value), write the others each in its own and count and log the bad
        ones. What is committed (or refused) leaves ``stmts``; an outage is raised with the
        rest still in it."""
        backend = self._backend
        executed = False
        try:
            with backend.transaction(db):
                for sql, params in stmts:
                    backend.execute(db, sql, params)
                executed = True
        except Exception as exc:
            if backend.is_outage(exc):
                # broken as it committed: the batch may be written already
                self._maybe_committed = self._maybe_committed or executed
                raise
        else:
            # counted once committed: a reader that finds every write counted reads
            # without waiting, so a count taken before the commit let it miss them
            self._written += len(stmts)
            stmts.clear()
            return
        already = 0
        while stmts:
            sql, params = stmts[0]
            try:
                with backend.transaction(db):
                    backend.execute(db, sql, params)
            except Exception as exc:
                if backend.is_outage(exc):
                    raise
                if self._maybe_committed and backend.is_duplicate(exc):
                    already += 1  # written by the commit the broken connection hid
                else:
                    self.failed += 1
                    log.error(
                        "call records: the database refused a statement, skipped (%s): %s",
                        " ".join(sql.split()[:3]),
                        _first_line(exc),
                    )
            self._written += 1
            del stmts[0]
        if already:
            log.info(
                "call records: %d statements were written before the connection broke as"
                " they were committed; not written twice",
                already,
            )

    def _outage(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "call records: the database is unavailable (%s); %d statements wait, retrying",
                _first_line(exc),
                self._queued - self._written,
            )

    def _back(self) -> None:
        """A database operation succeeded: an outage, if there was one, is over."""
        if self._outage_since is not None:
            log.warning(
                "call records: the database is back after %.1f s",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    def _relock(self) -> None:
        """Hold our owner lock again if an outage took it (checked every few seconds)."""
        if self._stopping.is_set():
            return
        try:
            reached = self._backend.recover()
        except Exception as exc:
            if not self._backend.is_outage(exc):
                log.error("call records: taking the owner lock back failed: %s", exc)
            self._outage(exc)
            return
        if reached:
            self._back()

    def _prune_now(self, db: Any) -> Any:
        """Prune on ``db`` (connecting first if need be); an outage or a failure of its own is
        logged and pruning tried again at its next turn, never the writer's end. Returns the
        connection to go on with."""
        try:
            if db is None:
                db = self._backend.connect()
            self._prune(db)
        except Exception as exc:
            if not self._backend.is_outage(exc):
                log.error("call records: pruning failed: %s", exc)
                return db
            self._outage(exc)
            _close_quietly(db)
            return None
        return db

    def _prune(self, db: Any) -> None:
        """Delete ended calls offered before the retention window, with their events, a
        batch per transaction."""
        if self.retention_s is None:
            return
        backend = self._backend
        cutoff = self._clock.wall() - self.retention_s
        while True:
            with backend.transaction(db):
                ids = [
                    r["call_id"]
                    for r in backend.fetch(
                        db,
                        "SELECT call_id FROM calls WHERE offered_at < ? AND state = 'ended'"
                        " LIMIT ?",
                        (cutoff, PRUNE_BATCH),
                    )
                ]
                if ids:
                    marks = ",".join("?" * len(ids))
                    backend.execute(db, f"DELETE FROM call_events WHERE call_id IN ({marks})", ids)
                    backend.execute(db, f"DELETE FROM calls WHERE call_id IN ({marks})", ids)
            if self.recordings is not None:
                for call_id in ids:
                    (self.recordings / f"{call_id}.wav").unlink(missing_ok=True)
            self.pruned += len(ids)
            if len(ids) < PRUNE_BATCH:
                break
        self._prune_orphan_recordings(db)

    def _prune_orphan_recordings(self, db: Any) -> None:
        """Delete this node's recordings whose call another node's store pruned."""
        if self.recordings is None:
            return
        settled = time.time() - PRUNE_PERIOD_S  # file times are the file system's clock
        try:
            files = {
                f.stem: f for f in self.recordings.glob("*.wav") if f.stat().st_mtime < settled
            }
        except OSError:
            return
        names = sorted(files)
        for start in range(0, len(names), PRUNE_BATCH):
            batch = names[start : start + PRUNE_BATCH]
            marks = ",".join("?" * len(batch))
            with self._backend.transaction(db):
                kept = {
                    r["call_id"]
                    for r in self._backend.fetch(
                        db, f"SELECT call_id FROM calls WHERE call_id IN ({marks})", batch
                    )
                }
            for call_id in batch:
                if call_id not in kept:
                    files[call_id].unlink(missing_ok=True)

    def prune(self, timeout: float = 30.0) -> None:
        """Delete the records past their retention now (the writer does it hourly anyway)."""
        self._queue.put(_PRUNE)
        self.flush(timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout) and self._error is None:
            if self._unavailable():
                raise RecordsUnavailable(
                    f"the call records database is unavailable; {self.health().backlog}"
                    " statements wait for it"
                )
            raise TimeoutError("call store did not flush in time")
        if self._error is not None:
            raise RuntimeError(f"call store writer failed: {self._error}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._queue.put(_STOP)
        # long enough for one attempt under way to end (SQLite's busy timeout, a silent
        # PostgreSQL's); after it, in an outage, the rest is dropped and counted at once
        self._writer.join(timeout=CLOSE_WAIT_S)
        if self._writer.is_alive():
            log.error(
                "call records: the writer did not stop within %.0f s; %d statements not written",
                CLOSE_WAIT_S,
                self._queued - self._written,
            )
        self._backend.release()

    # -- reading ------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[Any]:
        """A read connection that sees every write made before the read (read-your-writes:
        waits for the writer only when something is still queued)."""
        if self._backend.remote and self._unavailable():
            # a server that did not answer the writer: do not make the caller (the event loop,
            # for some reads) wait out a connection timeout too
            raise RecordsUnavailable("the call records database is unavailable")
        backlog = self._queued - self._written
        if 0 < backlog <= READ_FLUSH_MAX and self._writer.is_alive() and self._outage_since is None:
            # read-your-writes for what the event loop just wrote; a backlog still being
            # written after an outage is not waited for (reads see what is committed so far)
            with contextlib.suppress(TimeoutError, RecordsUnavailable):
                self.flush(READ_FLUSH_S)
        try:
            with self._backend.reader() as db:
                yield db
        except Exception as exc:
            if self._backend.is_outage(exc):
                raise RecordsUnavailable(
                    f"the call records database is unavailable: {_first_line(exc)}"
                ) from exc
            raise

    @staticmethod
    def _record(row: Mapping[str, Any]) -> CallRecord:
        d = dict(row)
        d["stats"] = json.loads(d["stats"])
        d["extra"] = json.loads(d["extra"])
        return CallRecord(**d)

    def get_call(self, call_id: str) -> CallRecord | None:
        with self._reader() as db:
            rows = self._backend.fetch(db, "SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return self._record(rows[0]) if rows else None

    def owners_with_records(self, owners: Sequence[str]) -> set[str]:
        """Which of ``owners`` still have a call record (retention has not pruned them all)."""
        if not owners:
            return set()
        marks = ", ".join("?" * len(owners))
        with self._reader() as db:
            rows = self._backend.fetch(
                db, f"SELECT DISTINCT owner FROM calls WHERE owner IN ({marks})", tuple(owners)
            )
        return {str(r["owner"]) for r in rows}

    def list_calls(self, *, limit: int = 100, state: str | None = None) -> list[CallRecord]:
        sql = "SELECT * FROM calls"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        sql += " ORDER BY offered_at DESC LIMIT ?"
        with self._reader() as db:
            rows = self._backend.fetch(db, sql, (*params, limit))
        return [self._record(r) for r in rows]

    def search_calls(
        self, query: CallQuery, *, limit: int = 50, after: Cursor | None = None
    ) -> tuple[list[CallRecord], Cursor | None]:
        """Ended calls matching ``query``, newest first, a page of at most ``limit``; and the
        cursor of the next page (None on the last). Profile and end reason are looked up
        through their indexes, the rest is filtered while walking the newest first."""
        where = ["state = 'ended'"]  # a literal: the partial indexes apply
        params: list[Any] = []
        for clause, value in (
            ("profile = ?", query.profile),
            ("end_reason = ?", query.end_reason),
            ("offered_at >= ?", query.since),
            ("offered_at < ?", query.until),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        number = (query.number or "").translate(_NUMBER_NOISE)
        if number:
            pattern = (
                "%" + number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            where.append("(from_uri LIKE ? ESCAPE '\\' OR to_uri LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        if after is not None:
            where.append("(offered_at < ? OR (offered_at = ? AND call_id < ?))")
            params += [after[0], after[0], after[1]]
        sql = (
            f"SELECT * FROM calls WHERE {' AND '.join(where)}"
            " ORDER BY offered_at DESC, call_id DESC LIMIT ?"
        )
        with self._reader() as db:
            rows = self._backend.fetch(db, sql, (*params, limit + 1))
        records = [self._record(r) for r in rows[:limit]]
        more = len(rows) > limit and records
        return records, (records[-1].offered_at, records[-1].call_id) if more else None

    def events(self, call_id: str, *, after_seq: int = 0) -> list[CallEvent]:
        with self._reader() as db:
            rows = self._backend.fetch(
                db,
                "SELECT * FROM call_events WHERE call_id = ? AND seq > ? ORDER BY seq",
                (call_id, after_seq),
            )
        return [
            CallEvent(r["call_id"], r["seq"], r["ts"], r["kind"], json.loads(r["data"]))
            for r in rows
        ]
