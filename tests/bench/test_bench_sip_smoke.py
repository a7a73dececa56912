"""``rtbridge bench sip`` end to end at toy size: 2 calls, 3 s windows.

Runs the real command (SIPp, rtbridge's worker process, the local agent and the UDP floor, each
in its own process) and checks that the JSON has every figure with a sane type and that each
case did what it claims (both calls up and through SIPp, the right session format, audio to
the agent). Benchmarks print timings; this test asserts none of them (orderings of
percentiles only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")

CALLS = 2
_ARGS = ("--calls", str(CALLS), "--seconds", "3")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _percentiles(d: Any) -> None:
    assert isinstance(d, dict), d
    assert set(d) >= {"count", "p50", "p90", "p99", "max"}, d
    assert all(_number(d[k]) for k in ("count", "p50", "p90", "p99", "max")), d
    assert d["count"] > 0, d
    assert d["p50"] <= d["p90"] <= d["p99"] <= d["max"], d


def _cpu(d: Any) -> None:
    assert isinstance(d, dict), d
    for key in ("window_s", "cpu_s", "pct_of_core_per_call", "calls_per_core"):
        assert _number(d[key]), (key, d)
    assert d["window_s"] > 0


def _sipp_ok(d: Any) -> None:
    assert d["returncode"] == 0, d
    assert d["successful_calls"] == CALLS and d["failed_calls"] == 0, d


def test_bench_sip_prints_every_figure_for_every_case() -> None:
    require_peer("sipp")
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "bench", "sip", "--json", *_ARGS],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = proc.stdout.strip().splitlines()  # one JSON object, one line
    result = json.loads(line)
    assert result["benchmark"] == "sip"
    assert (result["calls"], result["seconds"]) == (CALLS, 3.0)

    srtp = result["srtp"]  # the SRTP cost per call, beside the pass-through call's whole cost
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"):
        cost = srtp[suite]
        assert cost["protect_us_per_packet"] > 0 and cost["unprotect_us_per_packet"] > 0
        assert cost["pct_of_core_per_call"] > 0
        assert cost["pct_of_passthrough_call"] is None or cost["pct_of_passthrough_call"] > 0

    for case, session_format in (
        ("passthrough", "g711_ulaw"),
        ("transcoding", "pcm16"),
        ("recording", "g711_ulaw"),
    ):
        c = result[case]
        assert c["calls_requested"] == CALLS and c["calls_up"] == CALLS, c
        assert c["session_formats"] == {session_format: CALLS}
        assert c["event_loop"] == "asyncio"  # server.event_loop's default
        assert c["pass_through_calls"] == (0 if case == "transcoding" else CALLS)
        rec = c["recordings"]
        if case == "recording":  # every call's 8 kHz stereo went to disk, nothing dropped
            assert rec["written_bytes"] >= CALLS * 3 * 8000 * 4 and rec["dropped_blocks"] == 0
        else:
            assert rec["written_bytes"] == 0
        _sipp_ok(c["sipp"])

        _cpu(c["cpu"])
        _cpu(c["cpu_with_probe_armed"])
        assert c["cpu"]["cpu_s"] > 0  # rtbridge did work in its own process
        assert c["loop_wakeups_per_s"] > 0  # its event loop slept and woke for the packets
        floor = c["floor"]
        _cpu(floor)
        assert floor["calls_up"] == CALLS
        _sipp_ok(floor["sipp"])
        assert floor["datagrams_echoed_per_s"] > 0
        assert c["ratio_to_floor"] is None or _number(c["ratio_to_floor"])

        lat = c["latency_us"]
        for key in (
            "caller_packet_in_to_append_sent",
            "socket_wait",
            "media_path_to_enqueue",
            "enqueue_to_sent",
        ):
            _percentiles(lat[key])
        assert lat["kernel_stamps"] > 0  # the caller's packets were timed from the kernel
        assert _number(lat["appends_without_packet"])
        assert _number(lat["unstamped_packets"])

        play = c["playout"]
        _percentiles(play["tick_lateness_ms"])
        _percentiles(play["latency_window"]["tick_lateness_ms"])
        _percentiles(play["latency_window"]["rtp_send_interval_jitter_ms"])
        assert _number(play["ticker_reanchors"])

        mem = c["memory"]
        assert all(isinstance(mem[k], int | float) for k in ("rss_idle_mb", "rss_loaded_mb"))
        assert isinstance(mem["per_call_kb"], int | float)
        assert mem["rss_idle_mb"] > 0

        traffic = c["traffic"]
        assert traffic["frames_to_agent_per_s"] > 0  # caller audio reached the agent
        assert traffic["rtp_in_per_s"] > 0 and traffic["rtp_out_per_s"] > 0
        assert traffic["agent_audio_bytes_in"] > 0  # and the agent's answers came back
        assert _number(traffic["frames_dropped_upstream_per_s"])
        assert all(_number(v) for v in c["context_cpu_pct_of_core"].values())
    cost = result["recording_cost"]
    assert isinstance(cost["pct_of_core_per_call"], float)  # a difference: may be negative
    assert (
        _number(cost["isolated_pct_of_core_per_call"]) and cost["isolated_pct_of_core_per_call"] > 0
    )
