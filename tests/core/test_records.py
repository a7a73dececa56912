"""Call records: every call has a row and an ordered event log, readable while written.

Each behaviour runs on both backends (``target``, tests/core/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.records import CallStore
from media.clock import VirtualClock


def test_call_lifecycle_and_event_log(target: str | Path) -> None:
    store = CallStore(target)
    store.call_offered(
        "c1",
        direction="inbound",
        leg="sip",
        from_uri="sip:alice@127.0.0.1",
        to_uri="sip:bot@127.0.0.1",
        trunk="local",
        profile="default",
    )
    store.update_call(
        "c1", state="answered", answered_at=2.0, codec="PCMA", session_format="audio/pcma"
    )
    store.log_event("c1", "dtmf", {"digit": "1", "duration_ms": 100})
    store.log_event("c1", "transcript.agent", {"text": "héllo"})
    store.call_ended("c1", reason="remote_bye", sip_status=200, stats={"rtp_in": 350})
    store.flush()

    rec = store.get_call("c1")
    assert rec is not None
    assert (rec.state, rec.end_reason, rec.sip_status, rec.codec) == (
        "ended",
        "remote_bye",
        200,
        "PCMA",
    )
    assert rec.stats == {"rtp_in": 350}
    events = store.events("c1")
    assert [(e.seq, e.kind) for e in events] == [(1, "dtmf"), (2, "transcript.agent")]
    assert events[1].data == {"text": "héllo"}
    assert [e.kind for e in store.events("c1", after_seq=1)] == ["transcript.agent"]
    store.close()

    reopened = CallStore(target)  # nothing written is lost on restart
    assert reopened.get_call("c1") is not None
    assert len(reopened.events("c1")) == 2
    assert [r.call_id for r in reopened.list_calls(state="ended")] == ["c1"]
    reopened.close()


def test_unknown_field_is_refused(target: str | Path) -> None:
    store = CallStore(target)
    with pytest.raises(ValueError, match="bogus"):
        store.update_call("c1", bogus=1)
    store.close()


def test_reads_see_every_write_made_before_them(target: str | Path) -> None:
    store = CallStore(target)
    for i in range(50):
        store.call_offered(f"c{i}", direction="inbound", leg="sip")
        store.call_ended(f"c{i}", reason="remote-bye")
        rec = store.get_call(f"c{i}")  # no flush: the read waits for the writer itself
        assert rec is not None and rec.end_reason == "remote-bye"
    store.close()


def test_calls_of_a_killed_process_are_closed_as_interrupted_and_live_ones_are_not(
    target: str | Path,
) -> None:
    """A process holds calls, and is killed (-9) with them open; another process that opens the
    same records while it runs must leave its calls alone; after its death the next store
    closes them with ``interrupted`` at the time of their last event."""
    import signal
    import subprocess
    import sys
    import textwrap

    db = target
    script = textwrap.dedent(
        f"""
        import sys, time
        from bridge.records import CallStore
        store = CallStore({str(db)!r})
        store.call_offered("dead1", direction="inbound", leg="sip", offered_at=1000.0)
        store.update_call("dead1", state="answered", answered_at=1001.0)
        store.log_event("dead1", "transcript.user", {{"text": "hi"}}, ts=1005.5)
        store.call_offered("dead2", direction="inbound", leg="sip", offered_at=2000.0)
        store.flush()
        print("up", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        beside = CallStore(db)  # the owner is alive: its calls stay open
        assert beside.interrupted == 0
        assert {r.call_id: r.state for r in beside.list_calls()} == {
            "dead1": "answered",
            "dead2": "offered",
        }
        beside.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    after = CallStore(db)
    assert after.interrupted == 2
    records = {r.call_id: r for r in after.list_calls()}
    assert records["dead1"].state == "ended" and records["dead1"].end_reason == "interrupted"
    assert records["dead1"].ended_at == 1005.5  # its last event
    assert records["dead2"].end_reason == "interrupted" and records["dead2"].ended_at == 2000.0
    after.close()
    assert CallStore(db).interrupted == 0  # closed once


def test_records_past_their_retention_are_pruned_with_their_events(target: str | Path) -> None:
    day = 86400.0
    clock = VirtualClock(100 * day)
    store = CallStore(target, clock=clock, retention_s=30 * day)
    for call_id, age_days, ended in (("old", 31, True), ("recent", 29, True), ("open", 40, False)):
        store.call_offered(
            call_id, direction="inbound", leg="sip", offered_at=(100 - age_days) * day
        )
        store.log_event(call_id, "dtmf", {"digit": "1"})
        if ended:
            store.call_ended(call_id, reason="remote-bye")
    store.prune()
    assert sorted(r.call_id for r in store.list_calls()) == ["open", "recent"]
    assert store.events("old") == [] and len(store.events("recent")) == 1
    assert store.pruned == 1
    clock.advance(2 * day)  # "recent" is 31 days old now
    store.prune()
    assert [r.call_id for r in store.list_calls()] == ["open"]  # a live call is never pruned
    store.close()


def test_a_pruned_call_takes_its_recording_with_it(tmp_path: Path) -> None:
    day = 86400.0
    clock = VirtualClock(100 * day)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    store = CallStore(
        tmp_path / "calls.db", clock=clock, retention_s=30 * day, recordings=recordings
    )
    for call_id, age_days in (("old", 31), ("recent", 29)):
        store.call_offered(
            call_id, direction="inbound", leg="sip", offered_at=(100 - age_days) * day
        )
        store.call_ended(call_id, reason="remote-bye")
        (recordings / f"{call_id}.wav").write_bytes(b"RIFF")
    store.prune()
    assert sorted(p.name for p in recordings.iterdir()) == ["recent.wav"]
    store.close()


def test_a_recording_whose_call_another_node_pruned_goes_once_settled(tmp_path: Path) -> None:
    """Shared records: node B's store pruned the call, node A holds its file; A's next prune
    deletes it, but not a file younger than a prune period (its record may be queued)."""
    import os
    import time

    from bridge.records.store import PRUNE_PERIOD_S

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    store = CallStore(tmp_path / "calls.db", retention_s=30 * 86400.0, recordings=recordings)
    store.call_offered("kept", direction="inbound", leg="sip")
    store.call_ended("kept", reason="remote-bye")
    store.flush()  # the writer's first prune, at its start, is behind us
    long_ago = time.time() - PRUNE_PERIOD_S - 60
    for call_id, settled in (("kept", True), ("pruned_by_b", True), ("just_made", False)):
        path = recordings / f"{call_id}.wav"
        path.write_bytes(b"RIFF")
        if settled:
            os.utime(path, (long_ago, long_ago))
    store.prune()
    assert sorted(p.name for p in recordings.iterdir()) == ["just_made.wav", "kept.wav"]
    store.close()


def test_refused_by_policy_rows_of_older_versions_go_on_upgrade(tmp_path: Path) -> None:
    """Refusals are security events now, never calls; a file from version 2 loses them."""
    import sqlite3

    from bridge.records import MIGRATIONS

    path = tmp_path / "calls.db"
    db = sqlite3.connect(path)
    for n in range(2):
        db.executescript(f"BEGIN; {MIGRATIONS[n]}; PRAGMA user_version = {n + 1}; COMMIT;")
    db.execute(
        "INSERT INTO calls (call_id, direction, leg, state, offered_at, end_reason)"
        " VALUES ('knock', 'inbound', 'sip', 'ended', 1.0, 'refused-by-policy'),"
        " ('call', 'inbound', 'sip', 'ended', 1.0, 'remote-bye')"
    )
    db.execute("INSERT INTO call_events VALUES ('knock', 1, 1.0, 'error', '{}')")
    db.commit()
    db.close()
    store = CallStore(path)
    assert [r.call_id for r in store.list_calls()] == ["call"]
    assert store.events("knock") == []
    store.close()


def test_a_dead_owner_named_by_the_registry_is_closed_at_once(target: str | Path) -> None:
    """The cluster registry knows a node died before any store reopens: ``close_owner``
    closes that owner's open calls as interrupted, and no one else's."""
    first = CallStore(target, owner="node-a")
    first.call_offered("a1", direction="inbound", leg="sip", offered_at=10.0)
    first.log_event("a1", "dtmf", {"digit": "5"}, ts=12.5)
    first.flush()
    other = CallStore(target, owner="node-b")
    other.call_offered("b1", direction="inbound", leg="sip", offered_at=11.0)
    other.flush()
    assert other.close_owner("node-a") == 1
    rec = other.get_call("a1")
    assert rec is not None and (rec.state, rec.end_reason, rec.ended_at) == (
        "ended",
        "interrupted",
        12.5,
    )
    b1 = other.get_call("b1")
    assert b1 is not None and b1.state == "offered"
    with pytest.raises(ValueError):
        other.close_owner("node-b")
    first.close()
    other.close()


@pytest.mark.peer("postgresql")
def test_postgres_stores_timestamps_to_the_microsecond_and_hides_its_password(
    pg_database: str,
) -> None:
    from bridge.records.postgres import redact_url

    store = CallStore(pg_database)
    store.call_offered("p", direction="inbound", leg="sip", offered_at=1733500000.123456)
    rec = store.get_call("p")
    assert rec is not None and rec.offered_at == 1733500000.123456  # DOUBLE PRECISION
    store.close()
    assert redact_url("postgresql://app:s3cret@db.example:5432/rtb") == (
        "postgresql://app:***@db.example:5432/rtb"
    )


def _ended_calls(store: CallStore) -> None:
    """Twelve ended calls a minute apart (call_00 the oldest), two profiles, three reasons;
    one still live, which a search never returns."""
    for n in range(12):
        call_id = f"call_{n:02d}"
        store.call_offered(
            call_id,
            direction="inbound",
            leg="sip",
            from_uri=f"sip:+1555010{n % 4}@198.51.100.7",
            to_uri="sip:support@203.0.113.10",
            profile="sales" if n % 3 == 0 else "support",
            offered_at=1000.0 + 60 * n,
        )
        store.call_ended(call_id, reason=("remote-bye", "rtp-timeout", "api-hangup")[n % 3])
    store.call_offered(
        "call_live", direction="inbound", leg="sip", from_uri="sip:+15550100@x", offered_at=2000.0
    )


def test_ended_calls_are_searched_newest_first_a_page_at_a_time(target: str | Path) -> None:
    from bridge.records import CallQuery

    store = CallStore(target)
    _ended_calls(store)

    def ids(query: CallQuery, limit: int = 50) -> list[str]:
        out: list[str] = []
        after = None
        while True:  # every page, following the cursors
            page, after = store.search_calls(query, limit=limit, after=after)
            assert len(page) <= limit
            out += [r.call_id for r in page]
            if after is None:
                return out

    everything = [f"call_{n:02d}" for n in reversed(range(12))]
    assert ids(CallQuery()) == everything  # ended only, newest first
    assert ids(CallQuery(), limit=5) == everything  # three pages, nothing twice or lost
    first, after = store.search_calls(CallQuery(), limit=12)
    assert len(first) == 12 and after is None  # an exact last page says so
    # a number as typed (spaces, dashes), anywhere in the caller's or the called URI
    assert ids(CallQuery(number="555 010-1"), limit=2) == ["call_09", "call_05", "call_01"]
    assert ids(CallQuery(number="support")) == everything
    assert ids(CallQuery(number="50%")) == []  # LIKE's wildcards are literal here
    assert ids(CallQuery(profile="sales")) == ["call_09", "call_06", "call_03", "call_00"]
    assert ids(CallQuery(end_reason="rtp-timeout", profile="support")) == [
        "call_10",
        "call_07",
        "call_04",
        "call_01",
    ]
    # offered in [since, until)
    assert ids(CallQuery(since=1000.0 + 60 * 3, until=1000.0 + 60 * 6)) == [
        "call_05",
        "call_04",
        "call_03",
    ]
    assert ids(CallQuery(end_reason="remote-bye", number="0102")) == ["call_06"]
    store.close()


def test_ended_call_search_walks_an_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search reads an index in the order it returns (no full scan, no sort of the whole
    table), the profile's or the end reason's when one is given."""
    import sqlite3
    from typing import Any

    from bridge.records import CallQuery

    store = CallStore(tmp_path / "calls.db")
    _ended_calls(store)
    captured: list[tuple[str, Any]] = []
    fetch = store._backend.fetch

    def spy(db: Any, sql: str, params: Any = ()) -> Any:
        captured.append((sql, params))
        return fetch(db, sql, params)

    monkeypatch.setattr(store._backend, "fetch", spy)
    for query, index in (
        (CallQuery(), "calls_ended"),
        (CallQuery(number="5550101"), "calls_ended"),
        (CallQuery(profile="sales"), "calls_ended_profile"),
        (CallQuery(end_reason="rtp-timeout", since=1.0), "calls_ended_reason"),
    ):
        captured.clear()
        store.search_calls(query, limit=5, after=(5000.0, "call_99"))
        ((sql, params),) = [c for c in captured if c[0].startswith("SELECT * FROM calls")]
        db = sqlite3.connect(tmp_path / "calls.db")
        plan = " / ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
        db.close()
        assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, (query, plan)
    store.close()


def test_a_write_counts_as_written_only_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that finds every queued write counted reads at once (read-your-writes without
    waiting); so the writer may count a write only after its transaction commits, or a read
    racing the commit misses rows the caller wrote before it (seen in CI as an empty search)."""
    import contextlib
    from typing import Any

    store = CallStore(tmp_path / "calls.db")
    seen_in_transaction: list[int] = []
    transaction = store._backend.transaction

    @contextlib.contextmanager
    def watched(db: Any) -> Iterator[Any]:
        before = store._written
        with transaction(db) as t:
            yield t
            seen_in_transaction.append(store._written - before)  # still uncommitted here

    monkeypatch.setattr(store._backend, "transaction", watched)
    store.call_offered("c1", direction="inbound", leg="sip", offered_at=1.0)
    store.flush()
    assert seen_in_transaction and all(n == 0 for n in seen_in_transaction)
    assert store._written == 1 and store.get_call("c1") is not None
    store.close()
