"""What :class:`~bridge.records.CallStore` needs from a database: the seam between the store
(queue, writer thread, read-your-writes, retention, owners) and SQLite or PostgreSQL.

A backend opens connections, runs statements written with ``?`` placeholders, applies
:data:`~bridge.records.schema.MIGRATIONS` once, and answers one question the store cannot:
is the process that owns these calls still alive? SQLite answers with an ``flock`` per owner
(one machine), PostgreSQL with a session advisory lock per owner (any machine: the server lets
go of it when the owner's connection dies).

It also tells the store which errors are an *outage* (:meth:`Backend.is_outage`: the server is
down or restarting, the connection broke, the file is locked or the disk full: the same
statements will go through later) and which mean a statement can never be written (a
constraint, a bad value), and it takes back what an outage cost it (:meth:`Backend.recover`:
PostgreSQL's owner lock went with the connection that held it).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["Backend", "open_backend"]


class Backend(Protocol):
    #: where the records are, for the banner and logs (never a password)
    label: str
    #: a server (reads need it too), not a local file (reads go on while writes are locked)
    remote: bool

    def connect(self) -> Any:
        """A new connection (the writer thread's, or a short-lived one)."""
        ...

    def transaction(self, db: Any) -> AbstractContextManager[Any]:
        """One transaction on ``db``: committed on success, rolled back on an exception."""
        ...

    def execute(self, db: Any, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement written with ``?`` placeholders; the rows it changed."""
        ...

    def fetch(self, db: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query written with ``?`` placeholders, as dicts."""
        ...

    def reader(self) -> AbstractContextManager[Any]:
        """A connection for reads, for the length of the ``with`` block."""
        ...

    def migrate(self) -> None:
        """Bring the schema up to date (once, even when several processes start together)."""
        ...

    def hold(self, owner: str) -> None:
        """Hold ``owner``'s liveness lock for as long as this process runs."""
        ...

    def owner_alive(self, owner: str) -> bool:
        """Whether the process holding ``owner`` still runs (for another owner than ours)."""
        ...

    def is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the database is unreachable for now (retry later), not that
        the statement is wrong."""
        ...

    def is_duplicate(self, exc: BaseException) -> bool:
        """Whether ``exc`` refused a row because one with its key is already there."""
        ...

    def recover(self) -> bool:
        """After an outage, or now and then: hold our owner lock again if it was lost with its
        connection. Whether it reached the database (False: nothing to check, as for a file).
        Raises what :meth:`is_outage` recognises while the database is down."""
        ...

    def forget(self, owner: str) -> None:
        """``owner`` is dead and its calls are closed: drop what its lock left behind."""
        ...

    def release(self) -> None:
        """Let go of our own lock and connections (the store is closing)."""
        ...


def open_backend(target: object) -> Backend:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` (or ``postgres://``) URL."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from bridge.records.postgres import PostgresBackend

        return PostgresBackend(text)
    from pathlib import Path

    from bridge.records.sqlite import SqliteBackend

    return SqliteBackend(Path(text))
