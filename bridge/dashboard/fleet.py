"""The fleet view's last hour: how many calls were live, how many set up or failed, how fast the
agents answered, what went wrong upstream and what was refused, in 10-second buckets.

A dashboard opened now must chart the hour before it opened, so the process keeps that hour
itself, in bounded memory: a ring of :data:`HOUR_BUCKETS` :class:`Bucket` values (360 of
10 s), each a few counters and a fixed histogram of turn latencies, never a list that grows
with traffic. What feeds it:

* the call manager's lifecycle fan-out (:meth:`FleetHistory.on_lifecycle`): calls offered,
  answered, and ended before an answer (set-up failures, as ``rtbridge_call_setup_failures``
  counts them) or for an upstream failure;
* a sample once a second (:meth:`FleetHistory.sample`): the live
  calls (the bucket keeps the most at once; browser calls, which announce no lifecycle, are
  counted as set up when first seen), the security log's counts by kind;
  each live call's timed turns since the last sample (:meth:`LiveCall.turn_latencies`, as the
  metrics read them: the caller's end of speech to the agent's first audio on the wire);
* a *tap* on each live call's event fan-out (:meth:`~bridge.calls.observers.EventFanout.tap`)
  for upstream ``error`` events. No queue and no task per call; events of other types cost
  the call one dictionary lookup.

Times are wall-clock epoch seconds from the injected clock; a bucket starts on a multiple of
its length, so every process and every page agree on the grid. :func:`watch_fleet` is the
app lifespan's part: one task that feeds a history from a call manager for the process's life.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.calls.end import UPSTREAM_FAILURES
from bridge.calls.live import LiveCall
from bridge.calls.manager import CallManager
from bridge.security import SecurityLog
from bridge.tasks import cancel_and_wait

__all__ = [
    "BUCKET_S",
    "HOUR_BUCKETS",
    "LATENCY_EDGES_S",
    "Bucket",
    "FleetHistory",
    "watch_fleet",
]

BUCKET_S: Final = 10.0
HOUR_BUCKETS: Final = 360
#: Upper edges of the turn-latency histogram's bins (seconds); the last bin is open-ended.
LATENCY_EDGES_S: Final = (
    *(round(0.1 * n, 1) for n in range(1, 21)),
    2.5,
    3.0,
    4.0,
    5.0,
    7.5,
    10.0,
)
#: How long an answered call that left is remembered for its "call.ended" (seconds).
GONE_S: Final = 60.0
#: The call events the history taps.
TAPPED: Final = frozenset({"error"})


@dataclass(slots=True)
class Bucket:
    """One 10-second slice of the fleet's life."""

    start: float
    active: int = 0  # the most calls live at once
    offered: int = 0
    answered: int = 0  # set up (answered), browser calls included
    failed: int = 0  # ended before they were answered
    upstream_errors: int = 0  # upstream error events and calls ended by an upstream failure
    security: dict[str, int] = field(default_factory=dict)  # events recorded, by kind
    #: turns whose latency fell in each bin of :data:`LATENCY_EDGES_S` (+ one open bin);
    #: None while no turn was timed in the bucket
    turns: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.start,
            "active": self.active,
            "offered": self.offered,
            "answered": self.answered,
            "failed": self.failed,
            "upstream_errors": self.upstream_errors,
            "security": dict(self.security),
            "turns": list(self.turns) if self.turns is not None else None,
        }


class FleetHistory:
    """The last hour of the fleet in :data:`BUCKET_S` buckets (the current one still open)."""

    def __init__(
        self,
        calls: Callable[[], Mapping[str, LiveCall]],
        wall: Callable[[], float],
        *,
        security: SecurityLog | None = None,
        bucket_s: float = BUCKET_S,
        buckets: int = HOUR_BUCKETS,
    ) -> None:
        self._calls = calls
        self._wall = wall
        self._security = security
        self.bucket_s = bucket_s
        self._closed: deque[Bucket] = deque(maxlen=buckets - 1)
        self._current = Bucket(self._grid(wall()))
        self._answered: set[str] = set()  # calls counted as set up, until their end
        self._tapped: set[str] = set()  # live answered calls whose events we tap
        self._turns_seen: dict[str, int] = {}  # live calls: how many of their turns we took
        #: answered calls seen gone, and when: their lifecycle "ended" may still be queued
        #: (browser calls send none: forgotten after :data:`GONE_S`)
        self._gone: dict[str, float] = {}
        self._security_seen = dict(security.counts) if security is not None else {}

    def _grid(self, t: float) -> float:
        return math.floor(t / self.bucket_s) * self.bucket_s

    def _bucket(self) -> Bucket:
        """The open bucket, rolled forward to now (closing the one whose time is up)."""
        start = self._grid(self._wall())
        if start > self._current.start:
            self._closed.append(self._current)
            self._current = Bucket(start)
        return self._current

    # -- feeds --------------------------------------------------------------------------

    def on_lifecycle(self, event: Mapping[str, Any]) -> None:
        kind, call_id = event.get("type"), str(event.get("call_id", ""))
        bucket = self._bucket()
        if kind == "call.offered":
            bucket.offered += 1
        elif kind == "call.answered":
            if call_id not in self._answered:
                self._answered.add(call_id)
                bucket.answered += 1
        elif kind == "call.ended":
            if call_id not in self._answered:
                bucket.failed += 1
            self._answered.discard(call_id)
            self._gone.pop(call_id, None)
            if event.get("reason") in UPSTREAM_FAILURES:
                bucket.upstream_errors += 1

    def _on_call_event(self, event: Mapping[str, Any]) -> None:
        self._bucket().upstream_errors += 1  # the tap's one type: an upstream error

    def _turn(self, bucket: Bucket, total_s: float) -> None:
        if bucket.turns is None:
            bucket.turns = [0] * (len(LATENCY_EDGES_S) + 1)
        bucket.turns[bisect.bisect_left(LATENCY_EDGES_S, total_s)] += 1

    def sample(self) -> None:
        """Once a second: the live calls (and taps on new ones), the security counts."""
        bucket = self._bucket()
        live = self._calls()
        answered = 0
        for call_id, call in live.items():
            if call.info.answered_at is None:
                continue
            answered += 1
            if call_id not in self._answered:  # browser calls announce no answer
                self._answered.add(call_id)
                bucket.answered += 1
            if call_id not in self._tapped:
                self._tapped.add(call_id)
                call.events.tap(TAPPED, self._on_call_event)
            total, latest = call.turn_latencies()
            fresh = min(total - self._turns_seen.get(call_id, 0), len(latest))
            for turn in latest[len(latest) - fresh :] if fresh > 0 else ():
                self._turn(bucket, turn.total_s)
            self._turns_seen[call_id] = total
        bucket.active = max(bucket.active, answered)
        now = self._wall()
        for call_id in self._tapped.difference(live):
            self._tapped.discard(call_id)
            self._turns_seen.pop(call_id, None)
            self._gone[call_id] = now
        for call_id in [c for c, at in self._gone.items() if now - at > GONE_S]:
            del self._gone[call_id]
            self._answered.discard(call_id)
        if self._security is not None:
            counts = self._security.counts
            for kind, n in counts.items():
                fresh = n - self._security_seen.get(kind, 0)
                if fresh > 0:
                    bucket.security[kind] = bucket.security.get(kind, 0) + fresh
            self._security_seen = dict(counts)

    # -- views ----------------------------------------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        """Every bucket of the last hour, oldest first, the open one last."""
        current = self._bucket()
        return [b.to_json() for b in self._closed] + [current.to_json()]

    def since(self, start: float) -> list[dict[str, Any]]:
        """The buckets from ``start`` on (closed ones a page may have seen open, then the open
        one): what a live page needs each tick to stay exact."""
        current = self._bucket()
        out = [b.to_json() for b in self._closed if b.start >= start]
        return [*out, current.to_json()]


#: How often the live calls are sampled (seconds).
SAMPLE_S: Final = 1.0


@contextlib.asynccontextmanager
async def watch_fleet(manager: CallManager) -> AsyncIterator[FleetHistory]:
    """A history of ``manager``'s fleet, fed by one task while the context is open."""
    history = FleetHistory(lambda: manager.calls, manager.clock.wall, security=manager.security)
    sub = manager.lifecycle.subscribe(maxsize=100_000)
    loop = asyncio.get_running_loop()

    async def feed() -> None:
        next_sample = loop.time()
        while True:
            if loop.time() >= next_sample:
                history.sample()
                next_sample = loop.time() + SAMPLE_S
            try:
                async with asyncio.timeout(max(0.0, next_sample - loop.time())):
                    event = await sub.get()
            except TimeoutError:
                continue
            if event is None:
                return
            history.on_lifecycle(event)

    task = asyncio.create_task(feed(), name="fleet history")
    try:
        yield history
    finally:
        sub.close()
        await cancel_and_wait(task)
