"""A call's limits on virtual time: the media timeout pauses on hold, and a hold has its own
limit (a held call must not keep its slot and ports until max_duration_s)."""

from __future__ import annotations

from bridge.calls.end import EndReason
from bridge.calls.watchdog import CHECK_PERIOD_S, Watchdog


def _run(dog: Watchdog, start: float, end: float) -> EndReason | None:
    t = start
    while t <= end:
        reason = dog.check(t)
        if reason is not None:
            return reason
        t += CHECK_PERIOD_S
    return None


def test_a_hold_longer_than_max_hold_s_ends_the_call() -> None:
    dog = Watchdog(0.0, 3600.0, 30.0, lambda: None, max_hold_s=600.0)
    dog.hold(True, 10.0)
    assert _run(dog, 10.0, 609.0) is None  # no media on hold is no media timeout
    assert _run(dog, 609.5, 611.0) is EndReason.HOLD_TIMEOUT


def test_resuming_restarts_the_hold_clock_and_the_media_timeout() -> None:
    last: list[float | None] = [None]
    dog = Watchdog(0.0, 3600.0, 30.0, lambda: last[0], max_hold_s=600.0)
    dog.hold(True, 0.0)
    assert _run(dog, 0.0, 500.0) is None
    dog.hold(False, 500.0)
    last[0] = 520.0
    dog.hold(True, 520.0)
    assert _run(dog, 520.0, 1100.0) is None  # a new hold: 580 s so far
    assert _run(dog, 1100.5, 1130.0) is EndReason.HOLD_TIMEOUT
