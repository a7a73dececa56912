"""The fleet view's last hour on virtual time: calls set up and failed per 10-second bucket,
the most live at once, browser calls that announce nothing, the calls' timed turns (each taken
once), upstream errors heard on the calls' own event fan-outs (the path the sideband streams),
security events by kind; an hour and no more is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from bridge.calls.info import CallInfo
from bridge.calls.live import LiveCall
from bridge.calls.observers import EventFanout
from bridge.calls.turns import TurnLatency
from bridge.dashboard.fleet import HOUR_BUCKETS, LATENCY_EDGES_S, FleetHistory
from bridge.security import SecurityKind, SecurityLog
from media.clock import VirtualClock

T0 = 1_800_000_000.0  # a multiple of 10 s: buckets start on the grid


@dataclass
class Call:
    """What the history reads of a live call: its info, event fan-out and timed turns (kept
    as a call keeps them: a count and the latest few)."""

    info: CallInfo
    events: EventFanout = field(default_factory=EventFanout)
    turns: list[TurnLatency] = field(default_factory=list)

    def turn_latencies(self) -> tuple[int, list[TurnLatency]]:
        return len(self.turns), self.turns[-3:]

    def answer_turn(self, total_s: float) -> None:
        self.turns.append(TurnLatency(f"resp_{len(self.turns)}", 1.0, total_s - 0.02, 0.02))


def _call(call_id: str, answered_at: float | None) -> Call:
    info = CallInfo(call_id, "inbound", "sip:a@x", "sip:b@y", "default", None, "PCMU", "", T0)
    info.answered_at = answered_at
    return Call(info)


def _history(clock: VirtualClock, calls: dict[str, Call], security: SecurityLog) -> FleetHistory:
    return FleetHistory(lambda: cast(dict[str, LiveCall], calls), clock.wall, security=security)


def test_calls_set_up_failed_and_live_per_bucket() -> None:
    clock = VirtualClock(epoch=T0)
    calls: dict[str, Call] = {}
    security = SecurityLog(clock=clock)
    fleet = _history(clock, calls, security)
    # a SIP call: offered, answered, live; another offered and refused before an answer
    fleet.on_lifecycle({"type": "call.offered", "call_id": "a"})
    fleet.on_lifecycle({"type": "call.offered", "call_id": "b"})
    fleet.on_lifecycle({"type": "call.answered", "call_id": "a"})
    calls["a"] = _call("a", T0)
    calls["web"] = _call("web", T0)  # a browser call: no lifecycle event at all
    fleet.sample()
    fleet.on_lifecycle({"type": "call.ended", "call_id": "b", "reason": "upstream-unavailable"})
    security.record(SecurityKind.AUTH_FAILURE, source="http:192.0.2.1")
    security.record(SecurityKind.AUTH_FAILURE, source="http:192.0.2.1")
    clock.advance(1.0)
    fleet.sample()
    (first,) = fleet.history()
    assert first["t"] == T0
    assert (first["offered"], first["answered"], first["failed"]) == (2, 2, 1)
    assert first["active"] == 2 and first["upstream_errors"] == 1
    assert first["security"] == {"auth-failure": 2}
    assert first["turns"] is None  # no turn timed: "no data", not zeros

    # next bucket: the SIP call ends normally (its lifecycle event after the sample noticed it
    # gone: still not a failure); the browser call leaves without a word
    clock.advance(10.0)
    del calls["a"], calls["web"]
    fleet.sample()
    fleet.on_lifecycle({"type": "call.ended", "call_id": "a", "reason": "remote-bye"})
    clock.advance(61.0)
    fleet.sample()
    buckets = fleet.history()
    assert [b["t"] for b in buckets] == [T0, T0 + 10, T0 + 70]
    assert buckets[1]["failed"] == 0 and buckets[1]["active"] == 0
    assert buckets[1]["security"] == {}
    # the page's tick: the buckets from the one it was sent open, on
    assert [b["t"] for b in fleet.since(T0 + 10)] == [T0 + 10, T0 + 70]


def test_turn_latencies_and_upstream_errors_come_from_the_calls() -> None:
    clock = VirtualClock(epoch=T0)
    call = _call("a", T0)
    fleet = _history(clock, {"a": call}, SecurityLog(clock=clock))
    call.answer_turn(0.3)  # before the first sample: taken by it
    fleet.sample()
    for total in (0.35, 0.42, 1.25, 42.0):  # more than the call keeps between two samples
        call.answer_turn(total)
    call.events.publish({"type": "error", "error": {"message": "rate limited"}})
    call.events.publish({"type": "response.done"})  # not tapped
    fleet.sample()
    fleet.sample()  # nothing new: nothing taken twice
    call.answer_turn(0.05)
    fleet.sample()
    (bucket,) = fleet.history()
    turns = bucket["turns"]
    assert turns is not None and len(turns) == len(LATENCY_EDGES_S) + 1
    # the call kept its latest three of the four between samples: 0.42, 1.25 and 42 s
    assert sum(turns) == 5
    assert turns[0] == 1  # 0.05 s: the first bin (<= 0.1 s)
    assert turns[LATENCY_EDGES_S.index(0.3)] == 1 and turns[LATENCY_EDGES_S.index(0.5)] == 1
    assert turns[LATENCY_EDGES_S.index(1.3)] == 1  # 1.25 s
    assert turns[-1] == 1  # 42 s: the open bin
    assert bucket["upstream_errors"] == 1


def test_an_hour_is_kept_and_no_more() -> None:
    clock = VirtualClock(epoch=T0)
    calls: dict[str, Any] = {}
    fleet = _history(clock, calls, SecurityLog(clock=clock))
    for n in range(HOUR_BUCKETS + 50):
        calls.clear()
        calls.update({f"c{i}": _call(f"c{i}", T0) for i in range(n % 7)})
        fleet.sample()
        clock.advance(10.0)
    buckets = fleet.history()
    assert len(buckets) == HOUR_BUCKETS
    assert buckets[-1]["t"] - buckets[0]["t"] == (HOUR_BUCKETS - 1) * 10.0
    # the most recent samples, then the open bucket (now: nothing sampled in it yet)
    expected = [n % 7 for n in range(HOUR_BUCKETS + 43, HOUR_BUCKETS + 50)]
    assert [b["active"] for b in buckets[-8:]] == [*expected, 0]
