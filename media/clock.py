"""Clocks: one small seam so jitter handling, pacing, RTCP, call timers and watchdogs run on
virtual time in tests.

Media code never reads a clock itself: stateful objects take ``now`` arguments (seconds on a
monotonic clock). Whatever drives them (the call logic in ``bridge``, the RTCP reporter) takes one
injected :class:`Clock`: ``now()`` is monotonic seconds, for every schedule, deadline and
timeout; ``wall()`` is Unix seconds, only for timestamps shown to people and peers (records,
RTCP NTP fields, RFC 3550 §6.4.1). Production passes :class:`SystemClock`; tests pass
:class:`VirtualClock` and advance it by hand.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "VirtualClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (schedules, deadlines, timeouts)."""
        ...

    def wall(self) -> float:
        """Unix seconds (timestamps for people and peers)."""
        ...


class SystemClock:
    """The machine's clocks: ``time.monotonic()`` and ``time.time()``."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class WallClock:
    """A clock whose ``now()`` is Unix time too (the RTCP reporter's NTP timestamps)."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def wall(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to: ``advance(dt)`` or ``advance_to(t)``.

    ``wall()`` is ``epoch + now()``. Time never goes backwards; asking it to raises
    ``ValueError`` (a bug in the test).
    """

    __slots__ = ("_epoch", "_now")

    def __init__(self, start: float = 0.0, *, epoch: float = 0.0) -> None:
        self._now = float(start)
        self._epoch = float(epoch)

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

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
