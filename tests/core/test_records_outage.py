"""Call records through a database outage: nothing said on a call is lost while the database
restarts or its file is locked, a statement the database refuses costs only itself, and a long
outage drops (and counts) what is past the backlog instead of growing without bound.

Real databases: a PostgreSQL server of the test's own, stopped and started again mid-test, and
a SQLite file another connection holds an exclusive transaction on."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.records import CallStore, RecordsUnavailable
from bridge.records.backend import open_backend
from bridge.records.sqlite import SqliteBackend
from tests.support.infra import Postgres


def _until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _offer(store: CallStore, call_id: str) -> None:
    store.call_offered(call_id, direction="inbound", leg="sip", from_uri="sip:alice@127.0.0.1")


def test_a_statement_the_database_refuses_costs_only_itself(target: str | Path) -> None:
    store = CallStore(target)
    try:
        _offer(store, "c1")
        _offer(store, "c1")  # the same call id again: the primary key refuses it
        store.log_event("c1", "dtmf", {"digit": "5"})
        store.update_call("c1", codec="PCMU")
        store.flush()
        record = store.get_call("c1")
        assert record is not None and record.codec == "PCMU"
        assert [e.data for e in store.events("c1")] == [{"digit": "5"}]
        health = store.health()
        assert (health.up, health.failed, health.dropped, health.backlog) == (True, 1, 0, 0)
        _offer(store, "c2")  # the writer goes on
        assert store.get_call("c2") is not None
    finally:
        store.close()


@pytest.mark.peer("postgresql")
def test_a_postgres_restart_mid_call_loses_nothing_and_keeps_the_call_ours(
    pg: Postgres, pg_database: str
) -> None:
    url = pg_database
    store = CallStore(url)
    other: CallStore | None = None
    try:
        _offer(store, "live")
        store.update_call("live", state="answered", answered_at=time.time())
        store.flush()
        pg.stop()  # what a restart does to every connection
        said = [f"sentence {i}" for i in range(30)]
        for text in said:  # the call goes on: nothing here may raise
            store.log_event("live", "transcript.user", {"text": text})
        _offer(store, "short")
        store.call_ended("short", reason="hangup")
        _until(lambda: not store.health().up, "the writer to notice the outage")
        assert store.health().backlog > 0
        with pytest.raises(RecordsUnavailable, match="unavailable"):
            store.events("live")

        pg.start()
        store.flush(timeout=30)
        assert [e.data["text"] for e in store.events("live")] == said
        short = store.get_call("short")
        assert short is not None and (short.state, short.end_reason) == ("ended", "hangup")
        health = store.health()
        assert (health.up, health.backlog, health.dropped, health.failed) == (True, 0, 0, 0)

        # the owner lock went with the old connection and is held again: another node that
        # opens the records does not take this node's live call for a dead process's
        other = CallStore(url)
        assert other.interrupted == 0
        live = other.get_call("live")
        assert live is not None and live.state == "answered"
    finally:
        if other is not None:
            other.close()
        store.close()


def test_a_locked_sqlite_file_holds_writes_until_released_and_bounds_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqliteBackend, "busy_timeout_s", 0.1)
    path = tmp_path / "calls.db"
    store = CallStore(path)
    store.max_backlog = 10
    try:
        _offer(store, "c1")
        store.flush()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # a long transaction elsewhere (a backup, a shell)
        digits = [str(i % 10) for i in range(15)]
        for digit in digits:
            store.log_event("c1", "dtmf", {"digit": digit})
        _until(lambda: not store.health().up, "the writer to find the file locked")
        health = store.health()
        assert (health.backlog, health.dropped) == (10, 5)  # the last five: past the backlog
        blocker.execute("ROLLBACK")
        blocker.close()
        store.flush(timeout=30)
        assert [e.data["digit"] for e in store.events("c1")] == digits[:10]
        assert [e.seq for e in store.events("c1")] == list(range(1, 11))
        health = store.health()
        assert (health.up, health.backlog, health.dropped, health.failed) == (True, 0, 5, 0)
    finally:
        store.close()


def test_a_store_starts_while_another_process_holds_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (re)started beside one that is writing waits for the file instead of failing
    its start (seen: a restarted worker died of "database is locked" while migrating)."""
    monkeypatch.setattr(SqliteBackend, "busy_timeout_s", 0.1)
    path = tmp_path / "calls.db"
    first = CallStore(path)
    try:
        _offer(first, "c1")
        first.flush()
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN EXCLUSIVE")  # longer than the busy timeout
        released = threading.Timer(1.0, lambda: blocker.execute("ROLLBACK"))
        released.start()
        try:
            second = CallStore(path)  # before: sqlite3.OperationalError: database is locked
        finally:
            released.join()
            blocker.close()
        try:
            _offer(second, "c2")
            second.flush()
            assert {c.call_id for c in first.list_calls()} >= {"c1", "c2"}
        finally:
            second.close()
    finally:
        first.close()


def test_backends_tell_a_row_already_there_from_other_refusals(target: str | Path) -> None:
    backend = open_backend(target)
    backend.migrate()
    insert = "INSERT INTO calls (call_id, direction, leg, state, offered_at) VALUES (?, ?, ?, ?, ?)"
    db = backend.connect()
    try:
        with backend.transaction(db):
            backend.execute(db, insert, ("c1", "inbound", "sip", "offered", 1.0))
        refusals = []
        for params in (("c1", "inbound", "sip", "offered", 2.0), ("c2", None, "sip", "x", 1.0)):
            with pytest.raises(Exception) as caught, backend.transaction(db):
                backend.execute(db, insert, params)
            refusals.append(caught.value)
        # the same key again; a NOT NULL column left empty
        assert [backend.is_duplicate(e) for e in refusals] == [True, False]
        assert not any(backend.is_outage(e) for e in refusals)
    finally:
        db.close()


@pytest.mark.peer("postgresql")
def test_a_store_closed_in_an_outage_says_what_it_could_not_write(
    pg: Postgres, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = pg_database
    store = CallStore(url)
    try:
        _offer(store, "c1")
        store.flush()
        pg.stop()
        store.log_event("c1", "dtmf", {"digit": "1"})
        _until(lambda: not store.health().up, "the writer to notice the outage")
    finally:
        store.close()
        pg.start()
    assert store.health().dropped == 1
    assert "1 statements not written" in caplog.text
    assert "@" not in caplog.text.split("not written", 1)[1].splitlines()[0]  # no URL, no user


def test_a_store_closed_while_its_file_is_locked_gives_up_at_once_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(SqliteBackend, "busy_timeout_s", 0.5)
    path = tmp_path / "calls.db"
    store = CallStore(path)
    _offer(store, "c1")
    store.flush()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store.log_event("c1", "dtmf", {"digit": "1"})
        _until(lambda: not store.health().up, "the writer to find the file locked")
        store.log_event("c1", "dtmf", {"digit": "2"})
        store.close()  # in the outage: no new attempt, both counted before close returns
        assert store.health().dropped == 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert "statements not written" in caplog.text


@pytest.mark.peer("postgresql")
def test_a_read_only_database_is_an_outage_not_refused_statements(
    pg: Postgres, pg_database: str
) -> None:
    """What a failover to a standby looks like to the writer (SQLSTATE 25006, read-only
    transaction), made with ``default_transaction_read_only`` on the database."""
    import psycopg

    name = pg_database.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        with psycopg.connect(pg.url, autocommit=True) as admin:
            value = "on" if on else "off"
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')  # type: ignore[arg-type]
            admin.execute(  # sessions take the setting when they start: end the open ones
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    store = CallStore(pg_database)
    try:
        _offer(store, "c1")
        store.flush()
        read_only(True)
        digits = [str(i) for i in range(5)]
        for digit in digits:
            store.log_event("c1", "dtmf", {"digit": digit})
        _until(lambda: not store.health().up, "the writer to find the database read-only")
        read_only(False)
        store.flush(timeout=30)
        assert [e.data["digit"] for e in store.events("c1")] == digits
        health = store.health()
        assert (health.up, health.failed, health.dropped) == (True, 0, 0)
    finally:
        store.close()


class _Relay:
    """A TCP relay to PostgreSQL that can stop passing bytes (``frozen``: a server that
    accepts and then never answers, no error, no closed connection) and start again; or break
    the connection that commits next (``break_commit``) once the server has the COMMIT and
    before its answer comes back: the client cannot know whether the commit took."""

    def __init__(self, port: int) -> None:
        self.frozen = threading.Event()
        self.break_commit = threading.Event()
        self._to = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._to))
            mute = threading.Event()  # the server's answers are lost with the connection
            for a, b, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up, mute), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, up: bool, mute: threading.Event) -> None:
        try:
            while data := a.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.02)
                if mute.is_set():
                    continue
                if up and b"COMMIT" in data and self.break_commit.is_set():
                    self.break_commit.clear()
                    mute.set()
                    b.sendall(data)
                    time.sleep(0.5)  # the server commits; its answer is not passed on
                    a.shutdown(socket.SHUT_RDWR)
                    return
                b.sendall(data)
        except OSError:
            pass
        finally:
            b.close()

    def close(self) -> None:
        self._listener.close()


@pytest.mark.peer("postgresql")
def test_a_server_that_stops_answering_is_reported_down_and_reads_do_not_wait(
    pg: Postgres, pg_database: str
) -> None:
    relay = _Relay(pg.port)
    url = pg_database.replace(f":{pg.port}/", f":{relay.port}/")
    store = CallStore(url)
    store.stall_s = 1.0
    try:
        _offer(store, "c1")
        store.flush()
        relay.frozen.set()
        store.log_event("c1", "dtmf", {"digit": "7"})
        _until(lambda: not store.health().up, "the store to report the silent database down")
        with pytest.raises(RecordsUnavailable):  # at once: no read waits on the silent server
            store.events("c1")
        relay.frozen.clear()
        store.flush(timeout=30)
        assert [e.data["digit"] for e in store.events("c1")] == ["7"]
        assert store.health().up
    finally:
        relay.frozen.clear()
        store.close()
        relay.close()


@pytest.mark.peer("postgresql")
def test_a_batch_whose_commit_went_unanswered_is_written_once_and_nothing_called_refused(
    pg: Postgres, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection breaks after the server has the COMMIT, before its answer: the batch
    is written (the writer cannot know) and is written again; its rows are already there."""
    caplog.set_level(logging.INFO, logger="bridge.records")
    relay = _Relay(pg.port)
    url = pg_database.replace(f":{pg.port}/", f":{relay.port}/")
    store = CallStore(url)
    try:
        _offer(store, "c1")
        store.flush()
        relay.break_commit.set()
        for digit in "123":
            store.log_event("c1", "dtmf", {"digit": digit})
        store.update_call("c1", codec="PCMU")
        store.flush(timeout=30)
        assert not relay.break_commit.is_set(), "no commit was broken"
        assert [e.data["digit"] for e in store.events("c1")] == ["1", "2", "3"]
        record = store.get_call("c1")
        assert record is not None and record.codec == "PCMU"
        health = store.health()
        assert (health.up, health.failed, health.dropped, health.backlog) == (True, 0, 0, 0)
        assert "not written twice" in caplog.text
        assert "refused" not in caplog.text
    finally:
        store.close()
        relay.close()
