"""The shared records backend: PostgreSQL (``calls.records_url = "postgresql://..."``).

Every node of a cluster writes its calls to one database, so any node's control plane and
dashboard read every call's record and event log. The schema and migrations are SQLite's
(:mod:`bridge.records.schema`), with ``REAL`` stored as ``DOUBLE PRECISION``; the version is
the one row of ``rtbridge_schema``, changed under a transaction-level advisory lock, so nodes
that start together migrate once.

Owners: each process holds a session-level advisory lock named after its owner id on a
connection of its own for as long as it runs. PostgreSQL lets go of it when that connection
ends, so a lock anyone can take belongs to a process that died (``kill -9``, a crash); a
machine that vanished is noticed by the cluster registry first (:mod:`bridge.cluster`), which
closes its calls through :meth:`~bridge.records.CallStore.close_owner`. A server restart ends
that connection too, and with it the lock: :meth:`PostgresBackend.recover` takes it again (the
store asks after every outage and every few seconds), so the node's live calls do not look
like a dead process's to the other nodes for longer than that.

Outages (:meth:`PostgresBackend.is_outage`): what psycopg raises as ``OperationalError`` (the
server refused, shut down or restarted, the connection broke, a resource ran out) or
``InterfaceError`` (a connection already closed), and a write refused by a read-only standby
(a failover the URL does not follow yet: ``target_session_attrs=read-write`` in the URL makes
libpq pick the primary among several hosts). Connections give up after
:data:`CONNECT_TIMEOUT_S`, and an open one that stops being answered (a partition, a host
that vanished) breaks after about :data:`SILENT_SERVER_S` (TCP user timeout, keepalives), so
a silent server is an outage too, not a writer or a read waiting forever.

The password never goes in the URL in a config file: libpq reads ``PGPASSWORD`` or
``~/.pgpass``; the URL rtbridge prints or logs never carries one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from bridge.records.schema import MIGRATIONS, statements

__all__ = ["PostgresBackend", "redact_url"]

log = logging.getLogger("bridge.records")

#: the advisory lock that serialises migrations (any fixed 64-bit number of our own)
_MIGRATE_LOCK = 0x72746272_6D696772  # "rtbrmigr"
_REAL = re.compile(r"\bREAL\b")
#: how long a connection attempt may take before it counts as an outage (libpq's
#: ``connect_timeout``, whole seconds)
CONNECT_TIMEOUT_S = 5
#: how long a connection may go unanswered (TCP user timeout; keepalive probes on an idle one,
#: after KEEPALIVE_IDLE_S, give up about as fast) before it counts as broken: an outage
SILENT_SERVER_S = 10
KEEPALIVE_IDLE_S = 5


def redact_url(url: str) -> str:
    """The URL without its password (for banners and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _owner_key(owner: str) -> int:
    digest = hashlib.blake2b(b"rtbridge-owner:" + owner.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresBackend:
    remote = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = redact_url(url)
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._read_conn: psycopg.Connection[Any] | None = None
        self._read_lock = threading.Lock()
        self._owner: str | None = None
        self._read_stale = False
        self._locked = False

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=CONNECT_TIMEOUT_S,
            # a server that vanishes without closing (a partition, a failed-over host) is
            # found out: unacknowledged data for 10 s, or an idle connection's probes unanswered
            tcp_user_timeout=SILENT_SERVER_S * 1000,
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=2,
            keepalives_count=3,
        )

    def is_outage(self, exc: BaseException) -> bool:
        # a standby (read-only: a failover that has not moved the URL yet) takes writes later
        return isinstance(
            exc,
            psycopg.OperationalError | psycopg.InterfaceError | errors.ReadOnlySqlTransaction,
        )

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, errors.UniqueViolation)

    def transaction(self, db: Any) -> contextlib.AbstractContextManager[Any]:
        conn: psycopg.Connection[Any] = db
        return conn.transaction()

    def execute(self, db: Any, sql: str, params: Sequence[Any] = ()) -> int:
        cur = db.execute(_pg(sql), tuple(params))
        return int(cur.rowcount)

    def fetch(self, db: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = db.execute(_pg(sql), tuple(params)).fetchall()
        return rows

    @contextlib.contextmanager
    def reader(self) -> Iterator[psycopg.Connection[Any]]:
        """One connection kept for reads (a new one per read would cost a log-in each)."""
        with self._read_lock:
            conn = self._read_conn
            if conn is None or conn.closed or conn.broken or self._read_stale:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = self._read_conn = self.connect()
                self._read_stale = False
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                self._read_conn = None
                raise

    def migrate(self) -> None:
        with self.connect() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS rtbridge_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM rtbridge_schema").fetchone()
            if row is None:
                db.execute("INSERT INTO rtbridge_schema (version) VALUES (0)")
                version = 0
            else:
                version = int(row["version"])
            for n in range(version, len(MIGRATIONS)):
                for stmt in statements(MIGRATIONS[n]):
                    db.execute(_REAL.sub("DOUBLE PRECISION", stmt))
            if version < len(MIGRATIONS):
                db.execute("UPDATE rtbridge_schema SET version = %s", (len(MIGRATIONS),))

    def hold(self, owner: str) -> None:
        conn = self.connect()
        conn.execute("SELECT pg_advisory_lock(%s)", (_owner_key(owner),))
        self._lock_conn, self._owner, self._locked = conn, owner, True

    def recover(self) -> bool:
        owner = self._owner
        if owner is None:
            return False
        conn = self._lock_conn
        if conn is not None and not conn.closed and self._locked:
            try:
                conn.execute("SELECT 1")
                return True  # still connected: the lock is still ours
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        if conn is None or conn.closed or conn.broken:
            conn = self._lock_conn = self.connect()
            self._read_stale = True  # the server restarted: the read connection went too
        # not pg_advisory_lock: if the server still keeps the old session (a network fault
        # it has not noticed yet), that would wait for as long; try again at the next check
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (_owner_key(owner),))
        got = row.fetchone()
        self._locked = bool(got and got["got"])
        if not self._locked:
            log.warning("call records: our owner lock is still held by a lost session; retrying")
        return True

    def owner_alive(self, owner: str) -> bool:
        key = _owner_key(owner)
        with self.reader() as db:
            row = db.execute("SELECT pg_try_advisory_lock(%s) AS got", (key,)).fetchone()
            if row is None or not row["got"]:
                return True  # its process still holds it
            db.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return False

    def forget(self, owner: str) -> None:
        """Nothing is left behind: the lock went with the owner's connection."""

    def release(self) -> None:
        for conn in (self._lock_conn, self._read_conn):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        self._lock_conn = self._read_conn = None
