"""``rtbridge bench cluster`` end to end at toy size: 4 calls, 3 s windows, through Kamailio.

Runs the real command (``rtbridge serve --workers 1`` then ``--workers 2`` with Kamailio in
front, SIPp, the local agent) and checks the report's shape and that it did what it claims:
every call up and through SIPp, on 2 workers both of them carried calls, each worker's ticker
and CPU were read. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bridge.bench.cluster import p99_between
from tests.support.peers import require_peer

pytestmark = [pytest.mark.peer("kamailio"), pytest.mark.peer("sipp")]

CALLS = 4
_ARGS = ("--calls", str(CALLS), "--seconds", "3")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _cpu(d: Any) -> None:
    for key in ("window_s", "cpu_s", "pct_of_core_per_call", "calls_per_core"):
        assert _number(d[key]), (key, d)
    assert d["window_s"] > 0


def test_bench_cluster_runs_one_and_two_workers_side_by_side() -> None:
    require_peer("kamailio")
    require_peer("sipp")
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "bench", "cluster", "--json", *_ARGS],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = proc.stdout.strip().splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "cluster"

    for n in (1, 2):
        run = result[f"workers_{n}"]
        names = {f"w{i}" for i in range(n)}
        assert run["workers"] == n
        assert run["sipp"]["returncode"] == 0, run["sipp"]
        assert run["sipp"]["successful_calls"] == CALLS and run["sipp"]["failed_calls"] == 0
        assert run["calls_up"] == CALLS
        assert set(run["calls_per_worker"]) == names
        assert sum(run["calls_per_worker"].values()) == CALLS
        # every worker carried calls (Kamailio's fewest-calls algorithm spreads them)
        assert all(c > 0 for c in run["calls_per_worker"].values()), run["calls_per_worker"]
        assert 0 < run["balance"] <= 1
        assert set(run["cpu_per_worker"]) == names
        assert set(run["loop_wakeups_per_call_s"]) == names
        assert all(w > 0 for w in run["loop_wakeups_per_call_s"].values())
        for figures in run["cpu_per_worker"].values():
            _cpu(figures)
            assert figures["cpu_s"] > 0  # the worker did the media work
        _cpu(run["cpu_all_workers"])
        assert set(run["tick_lateness_ms"]) == names
        for late in run["tick_lateness_ms"].values():
            assert late["ticks"] > 0 and _number(late["p99_le_ms"]), late
        kamailio = run["kamailio"]
        assert kamailio["processes"] > 1  # the master and its children
        _cpu(kamailio)
        assert kamailio["whole_run_cpu_ms_per_call"] > 0  # it routed every INVITE and BYE
        assert all(_number(v) for v in run["context_cpu_pct_of_core"].values())
        assert run["context_cpu_pct_of_core"]["agent"] > 0  # the calls reached the agent
    comparison = result["comparison"]
    assert _number(comparison["cpu_per_call_2_over_1"])
    assert comparison["balance_2_workers"] == result["workers_2"]["balance"]


def test_p99_is_read_from_the_histogram_difference() -> None:
    before = {1.0: 10.0, 5.0: 10.0, float("inf"): 10.0}
    # 100 ticks in the window: 98 under 1 ms, 2 between 1 and 5 ms
    after = {1.0: 108.0, 5.0: 110.0, float("inf"): 110.0}
    assert p99_between(before, after) == {"ticks": 100, "p99_le_ms": 5.0}
    assert p99_between(after, after) == {"ticks": 0, "p99_le_ms": None}
