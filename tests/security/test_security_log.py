"""The security event log: typed events, one JSON line each (capped per kind and second), counts
by kind, a bounded ring of recent events; details never carry secrets or raw line breaks."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.security import SecurityEvent, SecurityKind, SecurityLog
from media.clock import VirtualClock


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "rtbridge.security"]


def test_an_event_is_a_json_line_a_count_and_a_ring_entry(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(epoch=1_700_000_000.0)
    sec = SecurityLog(clock=clock)
    with caplog.at_level(logging.WARNING, "rtbridge.security"):
        event = sec.record(
            SecurityKind.DESTINATION_REFUSED,
            source="http:198.51.100.7",
            detail="transfer refused: 'sip:x@evil.example?h=1'",
            call_id="call_1",
        )
        sec.record("auth-failure", source="203.0.113.9:5060", detail="wrong digest")
    assert event == SecurityEvent(
        seq=1,
        at=clock.wall(),
        kind=SecurityKind.DESTINATION_REFUSED,
        source="http:198.51.100.7",
        detail="transfer refused: 'sip:x@evil.example?h=1'",
        call_id="call_1",
    )
    assert lines(caplog) == [
        {
            "seq": 1,
            "at": clock.wall(),
            "kind": "destination-refused",
            "source": "http:198.51.100.7",
            "detail": "transfer refused: 'sip:x@evil.example?h=1'",
            "call_id": "call_1",
        },
        {
            "seq": 2,
            "at": clock.wall(),
            "kind": "auth-failure",
            "source": "203.0.113.9:5060",
            "detail": "wrong digest",
            "call_id": None,
        },
    ]
    record = next(r for r in caplog.records if r.name == "rtbridge.security")
    assert record.security_event["kind"] == "destination-refused"  # type: ignore[attr-defined]
    assert sec.counts["destination-refused"] == 1 and sec.counts["auth-failure"] == 1
    assert sec.counts["foreign-rtp"] == 0  # every kind is counted, zeros too
    assert [e.seq for e in sec.recent()] == [2, 1]  # newest first
    assert [e.seq for e in sec.recent(kinds=[SecurityKind.AUTH_FAILURE])] == [2]
    assert [e.seq for e in sec.recent(after_seq=1)] == [2]
    with pytest.raises(ValueError):
        sec.record("not-a-kind")


def test_details_are_one_line_without_secrets() -> None:
    sec = SecurityLog()
    event = sec.record(
        SecurityKind.AUTH_FAILURE,
        source="http:127.0.0.1",
        detail="target 'sip:a@b\r\nContact: <sip:evil>' with Bearer sk-live-0123456789abcdef",
    )
    assert "\r" not in event.detail and "\n" not in event.detail
    assert "\\x0d\\x0a" in event.detail  # shown, escaped
    assert "sk-live-0123456789abcdef" not in event.detail and "[redacted]" in event.detail
    long = sec.record(SecurityKind.OVERSIZED_MESSAGE, detail="x" * 5000)
    assert len(long.detail) <= 300


def test_the_ring_is_bounded_and_the_counts_are_not() -> None:
    sec = SecurityLog(capacity=10, log_burst=1)
    for _ in range(25):
        sec.record(SecurityKind.FOREIGN_RTP, source="192.0.2.1:4000")
    assert len(sec.recent(limit=1000)) == 10
    assert [e.seq for e in sec.recent(limit=3)] == [25, 24, 23]
    assert sec.counts["foreign-rtp"] == 25 and sec.last_seq == 25


def test_a_flood_is_summarised_not_logged_line_by_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(epoch=1_700_000_000.0)
    sec = SecurityLog(log_burst=5, clock=clock)
    with caplog.at_level(logging.WARNING, "rtbridge.security"):
        for _ in range(1000):  # one second of a flood
            sec.record(SecurityKind.RATE_LIMITED, source="192.0.2.7:5060")
        sec.record(SecurityKind.AUTH_FAILURE, source="192.0.2.8:5060")  # other kinds still log
        clock.advance(1.0)
        sec.record(SecurityKind.RATE_LIMITED, source="192.0.2.7:5060")
    logged = lines(caplog)
    flood = [x for x in logged if x["kind"] == "rate-limited"]
    assert len(flood) == 5 + 1 + 1  # the burst, the summary of the rest, the next second's
    assert {"kind": "rate-limited", "suppressed": 995} in flood
    assert any(x["kind"] == "auth-failure" for x in logged)
    assert sec.counts["rate-limited"] == 1001  # every event is counted ...
    # ... and the first keep_burst (200) of each second kept; the rest cost a count only
    assert len(sec.recent(limit=1000)) == 200 + 1 + 1
