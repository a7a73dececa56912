"""Clocks for media timing: one small seam so jitter buffers, pacing and RTCP run on virtual time.

Media code never reads a wall clock itself. Stateful objects take ``now`` arguments (seconds on a
monotonic clock) or a :class:`Clock`; drivers pass :class:`MonotonicClock`, tests pass
:class:`VirtualClock` and advance it by hand. RTCP sender reports need wall-clock (NTP) time
(RFC 3550 §6.4.1): they take a :class:`Clock` whose ``now()`` is Unix time, :class:`WallClock`
in production.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "MonotonicClock", "VirtualClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """Something that tells the time in seconds (monotonic unless documented otherwise)."""

    def now(self) -> float: ...


class MonotonicClock:
    """``time.monotonic()``: the clock every schedule and timeout is measured on."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


class WallClock:
    """``time.time()`` (Unix seconds): only for timestamps shown to peers (RTCP NTP fields)."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to: ``advance(dt)`` or ``advance_to(t)``.

    Time never goes backwards; asking it to raises ``ValueError`` (a bug in the test).
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"VirtualClock cannot go backwards (advance({seconds!r}))")
        self._now += seconds
        return self._now

    def advance_to(self, when: float) -> float:
        """Move to the absolute time ``when`` (>= now) and return it."""
        if when < self._now:
            raise ValueError(f"VirtualClock cannot go backwards ({when!r} < {self._now!r})")
        self._now = float(when)
        return self._now
