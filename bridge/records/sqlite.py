"""The embedded records backend: one SQLite file (WAL), owners held by ``flock``.

The database and its -wal/-shm files are owner-only (0600): they hold transcripts, phone
numbers and DTMF digits (PINs). The schema version is SQLite's ``user_version``; migrations run
inside ``BEGIN IMMEDIATE``, so workers that open one file together migrate it once.

Every process that opens the store holds an exclusive ``flock`` on
``<db>.owners/<owner>.lock`` for as long as it runs; the kernel lets go of it when the process
dies, however it dies, so a lock anyone can take belongs to a dead owner.

Outages (:meth:`SqliteBackend.is_outage`): the file busy or locked past the busy timeout
(another process in a long transaction, a backup), an I/O error, a full disk, a file that
cannot be opened or written: SQLite's result codes for those. Any other error (a constraint,
SQL SQLite does not take) is the statement's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge.private_files import private_file
from bridge.records.schema import MIGRATIONS, statements

__all__ = ["SqliteBackend"]

log = logging.getLogger(__name__)

#: SQLite's primary result codes that mean "not now" rather than "never": BUSY, LOCKED,
#: NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL (https://sqlite.org/rescode.html)
_OUTAGE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
#: BUSY and LOCKED: another connection holds the file (a worker writing, a checkpoint, a backup)
_BUSY_CODES = frozenset({5, 6})


def _busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _BUSY_CODES


class SqliteBackend:
    remote = False
    #: how long a statement waits for another connection's lock before it is an outage
    busy_timeout_s = 10.0
    #: how long start-up (:meth:`migrate`) goes on trying a file another process holds
    start_wait_s = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # owner-only, whatever the umask; SQLite gives its -wal and -shm files the database
        # file's mode
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                private_file(side)
        self._owners = self.path.with_name(self.path.name + ".owners")
        self._owners.mkdir(exist_ok=True, mode=0o700)
        self._lock_fd = -1
        self._owner: str | None = None

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
        # WAL is a property of the file: set it once, not on every connection
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # the writer only appends and the readers are short-lived: a small page cache, so a
        # long-running process does not grow by SQLite's default 2 MB per connection
        db.execute("PRAGMA cache_size=-256")
        return db

    def transaction(self, db: Any) -> contextlib.AbstractContextManager[Any]:
        conn: sqlite3.Connection = db
        return conn

    def execute(self, db: Any, sql: str, params: Sequence[Any] = ()) -> int:
        return int(db.execute(sql, tuple(params)).rowcount)

    def fetch(self, db: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = db.execute(sql, tuple(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        db = self.connect()
        try:
            yield db
        finally:
            db.close()

    def migrate(self) -> None:
        """Bring the schema up to date; while another process holds the file, wait for it
        (up to :attr:`start_wait_s`) instead of failing the start."""
        deadline = time.monotonic() + self.start_wait_s
        pause = 0.05
        while True:
            try:
                self._migrate()
                return
            except sqlite3.Error as exc:
                if not _busy(exc) or time.monotonic() + pause > deadline:
                    raise
                if pause == 0.05:
                    log.warning("records database %s busy at start-up: waiting", self.label)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _migrate(self) -> None:
        db = self.connect()
        db.isolation_level = None  # we say BEGIN and COMMIT ourselves
        try:
            db.execute("BEGIN IMMEDIATE")  # one migrating process at a time
            try:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if (
                    version == 0
                    and db.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'"
                    ).fetchone()
                ):
                    version = 1  # a file from before versioning: it has the first schema
                for n in range(version, len(MIGRATIONS)):
                    for stmt in statements(MIGRATIONS[n]):
                        db.execute(stmt)
                    db.execute(f"PRAGMA user_version = {n + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    def _lock_path(self, owner: str) -> Path:
        return self._owners / (owner.replace("/", "_") + ".lock")

    def hold(self, owner: str) -> None:
        fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd, self._owner = fd, owner

    def owner_alive(self, owner: str) -> bool:
        try:
            fd = os.open(self._lock_path(owner), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its process still runs and holds the lock
        finally:
            os.close(fd)
        return False

    def is_outage(self, exc: BaseException) -> bool:
        if not isinstance(exc, sqlite3.Error):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _OUTAGE_CODES

    def is_duplicate(self, exc: BaseException) -> bool:
        # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
        return getattr(exc, "sqlite_errorcode", None) in (1555, 2067)

    def recover(self) -> bool:
        """Nothing to take back: the ``flock`` is the process's, not a connection's (and
        nothing was asked of the database: False)."""
        return False

    def forget(self, owner: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._lock_path(owner).unlink()

    def release(self) -> None:
        if self._lock_fd >= 0:
            if self._owner is not None:
                self.forget(self._owner)
            os.close(self._lock_fd)
            self._lock_fd = -1
