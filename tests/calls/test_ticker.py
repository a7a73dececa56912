"""The shared frame ticker: every sink is called on one grid; a broken sink is removed and its
owner told (its call ends), the others go on."""

from __future__ import annotations

import asyncio

from bridge.calls.ticker import LATENESS_BUCKETS_MS, FrameTicker, TickSchedule


class Recorder:
    def __init__(self) -> None:
        self.deadlines: list[float] = []

    def on_tick(self, deadline: float, now: float) -> None:
        assert now >= deadline
        self.deadlines.append(deadline)


class Broken:
    def on_tick(self, deadline: float, now: float) -> None:
        raise RuntimeError("boom")


async def test_sinks_share_one_grid_and_broken_sink_is_removed() -> None:
    ticker = FrameTicker(period=0.005)
    a, b = Recorder(), Recorder()
    failures: list[tuple[str, BaseException]] = []
    ticker.add(a, lambda exc: failures.append(("a", exc)))
    ticker.add(Broken(), lambda exc: failures.append(("broken", exc)))
    ticker.add(b, lambda exc: failures.append(("b", exc)))
    ticker.start()
    while len(a.deadlines) < 20:
        await asyncio.sleep(0.005)
    await ticker.stop()
    assert ticker.stats.sink_errors == 1 and len(ticker) == 2
    assert [(who, str(exc)) for who, exc in failures] == [("broken", "boom")]
    common = sorted(set(a.deadlines) & set(b.deadlines))
    assert len(common) >= 19
    # deadlines lie on the grid: consecutive ones differ by whole periods (no accumulated drift)
    steps = [round((y - x) / 0.005, 6) for x, y in zip(a.deadlines, a.deadlines[1:], strict=False)]
    assert all(s == int(s) and s >= 1 for s in steps if ticker.stats.reanchors == 0)


def test_schedule_is_drift_free_and_reanchors_after_a_stall() -> None:
    grid = TickSchedule(anchor=100.0, period=0.020, max_late_ticks=3)
    # 10 minutes of ticks, each woken 0.7 ms late: deadlines stay exactly on the grid
    for n in range(1, 30_001):
        assert grid.next_deadline() == 100.0 + n * 0.020
        assert grid.on_wake(grid.next_deadline() + 0.0007) == 100.0 + n * 0.020
    assert grid.reanchors == 0
    # 2 periods late: still on the grid (the sinks' catch-up burst covers it)
    late = grid.next_deadline()
    assert grid.on_wake(late + 0.040) == late
    # a 500 ms stall: no replay of 25 ticks; the grid restarts at the wake-up time
    woke = grid.next_deadline() + 0.5
    assert grid.on_wake(woke) == woke
    assert grid.reanchors == 1
    assert grid.next_deadline() == woke + 0.020


async def test_every_tick_is_counted_in_its_lateness_bucket() -> None:
    ticker = FrameTicker(period=0.005)
    ticker.add(Recorder(), lambda exc: None)
    ticker.start()
    while ticker.stats.ticks < 10:
        await asyncio.sleep(0.005)
    await ticker.stop()
    stats = ticker.stats
    assert len(stats.lateness_counts) == len(LATENESS_BUCKETS_MS) + 1
    assert sum(stats.lateness_counts) == stats.ticks
    assert stats.lateness_sum_ms == sum(stats.lateness_ms)
    # each tick sits in the first bucket whose bound is not below its lateness
    recount = [0] * len(stats.lateness_counts)
    for late in stats.lateness_ms:
        recount[next((i for i, b in enumerate(LATENESS_BUCKETS_MS) if late <= b), -1)] += 1
    assert recount == stats.lateness_counts


async def test_an_idle_ticker_sleeps_until_a_sink_comes_and_stops_when_the_last_goes() -> None:
    ticker = FrameTicker(period=0.005)
    ticker.start()
    await asyncio.sleep(0.05)  # ten periods with nothing to drive
    assert ticker.stats.ticks == 0
    sink = Recorder()
    started = asyncio.get_running_loop().time()
    ticker.add(sink, lambda exc: None)
    while len(sink.deadlines) < 5:
        await asyncio.sleep(0.005)
    assert sink.deadlines[0] > started  # a fresh grid: no missed ticks replayed
    ticker.remove(sink)
    await asyncio.sleep(0.02)  # the tick in flight, at most
    ticks = ticker.stats.ticks
    await asyncio.sleep(0.05)
    assert ticker.stats.ticks == ticks
    again = Recorder()
    ticker.add(again, lambda exc: None)
    while len(again.deadlines) < 3:
        await asyncio.sleep(0.005)
    await ticker.stop()
