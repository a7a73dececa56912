"""Caps on how many targets a profile may reach per minute and per rolling day.

Toll fraud is measured in calls per hour: whatever slips through an allowlist, a cap bounds the
bill. :class:`RateCap` is a pair of sliding windows over the times of the attempts it allowed;
it holds at most ``per_minute`` + ``per_day`` timestamps and takes ``now`` from its caller
(monotonic seconds), so tests run it on virtual time.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RateCap"]

MINUTE_S = 60.0
DAY_S = 86_400.0


class RateCap:
    def __init__(self, per_minute: int | None, per_day: int | None) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self._minute: deque[float] = deque()
        self._day: deque[float] = deque()

    def take(self, now: float) -> str | None:
        """Count one attempt at ``now`` if it fits; else return which cap it would break
        (``"30 per minute"``) and count nothing."""
        for window, span, cap, label in (
            (self._minute, MINUTE_S, self.per_minute, "minute"),
            (self._day, DAY_S, self.per_day, "day"),
        ):
            if cap is None:
                continue
            while window and now - window[0] >= span:
                window.popleft()
            if len(window) >= cap:
                return f"{cap} per {label}"
        if self.per_minute is not None:
            self._minute.append(now)
        if self.per_day is not None:
            self._day.append(now)
        return None
