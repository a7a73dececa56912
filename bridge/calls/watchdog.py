"""A call's limits, checked on the shared frame tick: no task, no sleep, virtual time in tests.

:class:`Watchdog` answers one question, ``check(now)``: should the call end now, and why? It
knows the call's start, its profile's ``max_duration_s``, how long the caller's media may be
silent on the wire (``rtp_timeout_s``; time on hold does not count), how long one hold may last
(``max_hold_s``: a held call would otherwise keep its slot and ports until ``max_duration_s``),
and, for legs that must connect first (WebRTC's ICE), how long connecting may take. The call
feeds it what happens (:meth:`hold`, :meth:`connected`) and a way to read when media last
arrived; the call's tick asks every :data:`CHECK_PERIOD_S`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.calls.end import EndReason

__all__ = ["CHECK_PERIOD_S", "Watchdog"]

#: How often the limits are looked at (they are seconds long; a tick is 20 ms).
CHECK_PERIOD_S = 0.5


@dataclass(slots=True)
class Watchdog:
    started_at: float
    max_duration_s: float
    media_timeout_s: float
    #: when media last arrived from the caller (None: never)
    last_media: Callable[[], float | None]
    #: the reason a media timeout is recorded with (SIP: rtp-timeout; browser: media-timeout)
    media_timeout_reason: EndReason = EndReason.RTP_TIMEOUT
    #: None: the leg is connected from the start; else it must connect within this many seconds
    connect_timeout_s: float | None = None
    #: how long one hold may last (None: as long as the call)
    max_hold_s: float | None = None
    on_hold: bool = False
    _held_at: float | None = None
    _connected_at: float | None = None
    _resumed_at: float | None = None
    _next_check: float = 0.0

    def __post_init__(self) -> None:
        if self.connect_timeout_s is None:
            self._connected_at = self.started_at
        self._resumed_at = self.started_at

    def connected(self, now: float) -> None:
        if self._connected_at is None:
            self._connected_at = self._resumed_at = now

    def hold(self, on_hold: bool, now: float) -> None:
        """Time on hold never counts against the media timeout; it has its own limit."""
        if self.on_hold and not on_hold:
            self._resumed_at = now
            self._held_at = None
        elif on_hold and not self.on_hold:
            self._held_at = now
        self.on_hold = on_hold

    def check(self, now: float) -> EndReason | None:
        """Why the call must end at ``now`` (None: it may go on)."""
        if now < self._next_check:
            return None
        self._next_check = now + CHECK_PERIOD_S
        if now - self.started_at >= self.max_duration_s:
            return EndReason.MAX_DURATION
        if self._connected_at is None:
            assert self.connect_timeout_s is not None
            if now - self.started_at >= self.connect_timeout_s:
                return EndReason.ICE_TIMEOUT
            return None
        if self.on_hold:
            held = now - (self._held_at if self._held_at is not None else now)
            if self.max_hold_s is not None and held >= self.max_hold_s:
                return EndReason.HOLD_TIMEOUT
            return None
        last = self.last_media()
        since = max(last if last is not None else self._connected_at, self._resumed_at or 0.0)
        if now - since >= self.media_timeout_s:
            return self.media_timeout_reason
        return None
