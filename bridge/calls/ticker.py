"""One drift-free 20 ms clock for the playout of every call in the process.

A task per call that sleeps 20 ms costs 50 wake-ups a second per call: 25,000 at 500 calls.
Instead one :class:`FrameTicker` wakes at ``t0 + n * period`` (computed by multiplication from
a monotonic anchor, never by adding up sleeps) and calls every registered sink with the tick's
deadline and the time it actually woke. Sinks anchor their own playout on the ticker's grid
(``PlayoutBuffer.start(deadline)``), so their frame deadlines coincide with ticks and a frame is
never held back a whole period.

Stall policy (the same as the playout buffer's): after a stall the ticker does not replay the
missed ticks one by one; it calls the sinks once with the current time (each emits at most its
small catch-up burst) and re-anchors its grid when more than ``max_late_ticks`` were missed.
With no sink (no call up) the ticker sleeps until one is added, then starts a fresh grid: an
idle process does not wake 50 times a second (that was most of an idle worker's CPU, and the
fixed cost that made two workers dearer per call than one).

Lateness of every tick is recorded so benchmarks can report pacing jitter: the most recent
values, and a count per :data:`LATENESS_BUCKETS_MS` bucket since start-up (``/metrics`` serves
it as a histogram, so a window's percentiles are the difference of two scrapes).

A sink that raises is a bug in one call: the ticker removes it and hands the exception to the
``on_error`` callback it was added with (the call ends with ``internal-error``); every other
call's audio goes on.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bridge.tasks import cancel_and_wait
from media.clock import Clock

__all__ = ["LATENESS_BUCKETS_MS", "FrameTicker", "TickSchedule", "TickSink", "TickerStats"]

#: upper bounds of the tick lateness histogram, in milliseconds (the last bucket is +Inf)
LATENESS_BUCKETS_MS = (0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 50, 100, 250, 1000)


class TickSink(Protocol):
    def on_tick(self, deadline: float, now: float) -> None:
        """Emit what is due at ``deadline`` (``now`` >= deadline is when we woke)."""


@dataclass(slots=True)
class TickerStats:
    ticks: int = 0
    reanchors: int = 0
    sink_errors: int = 0
    lateness_ms: deque[float] = field(default_factory=deque)  # the most recent values
    #: ticks per lateness bucket since start-up (:data:`LATENESS_BUCKETS_MS`, then +Inf)
    lateness_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS_MS) + 1))
    lateness_sum_ms: float = 0.0


class TickSchedule:
    """The ticker's grid, pure and clock-free: deadlines ``anchor + n * period``."""

    def __init__(self, anchor: float, period: float, max_late_ticks: int) -> None:
        self.anchor = anchor
        self.period = period
        self.max_late_ticks = max_late_ticks
        self.n = 1
        self.reanchors = 0

    def next_deadline(self) -> float:
        return self.anchor + self.n * self.period

    def on_wake(self, now: float) -> float:
        """Consume the tick due by ``now``; returns the deadline the sinks get. After a stall
        of more than ``max_late_ticks`` periods the grid restarts at ``now``."""
        deadline = self.next_deadline()
        if now - deadline > self.max_late_ticks * self.period:
            self.reanchors += 1
            self.anchor, self.n = now, 1
            return now
        self.n += 1
        return deadline


SinkError = Callable[[BaseException], None]


class FrameTicker:
    def __init__(
        self,
        period: float = 0.020,
        *,
        max_late_ticks: int = 3,
        clock: Clock | None = None,
        keep_lateness: int = 3_000,
    ) -> None:
        self.period = period
        self.max_late_ticks = max_late_ticks
        self._clock = clock
        self._sinks: dict[int, tuple[TickSink, SinkError]] = {}
        self.stats = TickerStats(lateness_ms=deque(maxlen=keep_lateness))
        self._task: asyncio.Task[None] | None = None
        self._woken: asyncio.Event | None = None  # set by add() while run() waits for a sink

    def add(self, sink: TickSink, on_error: SinkError) -> None:
        """Drive ``sink`` every tick; if it raises, it is removed and ``on_error`` is told."""
        self._sinks[id(sink)] = (sink, on_error)
        if self._woken is not None:
            self._woken.set()

    def remove(self, sink: TickSink) -> None:
        self._sinks.pop(id(sink), None)

    def __len__(self) -> int:
        return len(self._sinks)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="frame-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def run(self) -> None:
        now_fn = self._clock.now if self._clock is not None else asyncio.get_running_loop().time
        self._woken = woken = asyncio.Event()
        reanchors = 0  # of the grids before this one
        while True:
            if not self._sinks:  # idle: sleep until a sink comes, then a fresh grid
                woken.clear()
                await woken.wait()
            grid = TickSchedule(now_fn(), self.period, self.max_late_ticks)
            while self._sinks:
                delay = grid.next_deadline() - now_fn()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = now_fn()
                self._record(now - grid.next_deadline())
                deadline = grid.on_wake(now)
                self.stats.reanchors = reanchors + grid.reanchors
                self.tick(deadline, now)
            reanchors += grid.reanchors

    def tick(self, deadline: float, now: float) -> None:
        """Call every sink once (what :meth:`run` does on each wake-up)."""
        for sink, on_error in list(self._sinks.values()):
            try:
                sink.on_tick(deadline, now)
            except Exception as exc:  # one broken call must not stop every other call's audio
                self.stats.sink_errors += 1
                self.remove(sink)
                on_error(exc)

    def _record(self, late: float) -> None:
        stats = self.stats
        late_ms = late * 1000.0
        stats.ticks += 1
        stats.lateness_ms.append(late_ms)
        stats.lateness_counts[bisect.bisect_left(LATENESS_BUCKETS_MS, late_ms)] += 1
        stats.lateness_sum_ms += late_ms
