"""``rtbridge bench sip``: phone calls with RTP through rtbridge, against the floor.

SIPp places ``--calls`` N concurrent calls (default 50) to rtbridge, each streaming u-law RTP
(20 ms packets, 1 s of tone then 1 s of silence, looped, so the agent hears turns and answers
them: both directions carry audio); rtbridge runs in a process of its own
(:mod:`bridge.bench._sip_worker`) in front of the local agent in a third one
(``rtbridge agent``). Three cases:

* ``passthrough``: the agent accepts G.711 u-law, bytes go through untouched;
* ``transcoding``: the agent is started with ``--formats pcm16``; rtbridge decodes, resamples
  to 24 kHz and back;
* ``recording``: ``passthrough`` with every call recorded (``record = "stereo"``, 8 kHz WAV in
  the worker's data directory): ``recording_cost`` is its CPU per call minus passthrough's
  (two loaded runs: on a shared machine a noisy difference), and beside it the recording's own
  work measured alone (``isolated_pct_of_core_per_call``: a G.711 call's mixer and writer for
  :data:`RECORDING_SECONDS` in this process); the case says what the writer wrote and dropped.

and ``srtp``: what SRTP (SDES, libsrtp through pylibsrtp) adds to a call. SIPp cannot speak
SRTP, so this case runs in process: the CPU time of protecting and unprotecting a call's
packets (a 172-byte u-law RTP packet, 50 a second each way, as the load above) per suite,
as % of a core per call, and next to the ``passthrough`` case's whole cost per call.

Once all N calls are up (and a 1 s settle), two windows follow:

1. the CPU window (``--seconds`` S, default 20): rtbridge's process CPU time (all threads, from
   ``/proc``) over the window, divided by N and by the window's wall time: ``pct_of_core_per_call``
   and the ``calls_per_core`` it implies; the ticker's tick lateness; RSS; the event loop's
   wake-ups a second (``loop_wakeups_per_s``, its main thread's voluntary context switches).
   The timing probe's hooks are not installed (nothing wraps rtbridge's methods).
2. the latency window (S/2, at least 1 s): the probe records, per append, the caller packet's
   kernel receive time -> the ``input_audio_buffer.append`` handed to the upstream socket, and
   per call the RTP send interval (see :mod:`bridge.bench._probe` for every figure's exact
   endpoints). rtbridge's CPU in this window is reported too (the probe's own cost shows as
   the difference).

The floor is the same load (N more SIPp calls: 50 packets/s in and 50 out per stream) through
a bare asyncio UDP relay (:mod:`bridge.bench._udp_floor`: a socket per call, receive and send
back) in its own process, run beside rtbridge over the same CPU window, so both see the same
machine (on a shared one, figures taken minutes apart differ by 2-3x);
``ratio_to_floor`` is rtbridge's CPU per call over the floor's. Memory per call is
rtbridge's RSS with N calls up minus its RSS before the first call, over N. All processes
bind 127.0.0.1 on free ports; every process has a bounded lifetime.

Each case also says whether rtbridge kept up with the load (``kept_up``: RTP read vs sent,
RTP sent vs due, ticker re-anchors, appends dropped; ``saturated`` when it read or sent under
98% of the packets or dropped appends: a saturated run sheds work, so its CPU per call reads
low) and how busy the machine was over the
CPU window (``machine``: every process, other tenants included, as % of all cores, the
hypervisor's steal, and the share of the window in which some task waited for a CPU: PSI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.bench._harness import (
    CALL_RATE,
    SETTLE_S,
    SETUP_GRACE_S,
    Child,
    CpuWindow,
    Load,
    cpu_figures,
    start_agent,
    start_worker,
    terminate,
    tone_file,
    wait_all_up,
)
from bridge.bench._proc import rss_kb
from bridge.config import Settings
from bridge.recording.writer import RecordingWriter
from media import g711
from media.playout import Frame, PlayoutEncoding, PlayoutFormat
from media.recording import RecordingMixer, RecordingMode
from media.rtp import RtpPacket
from media.srtp import SrtpSession
from sip.sdes import new_key

__all__ = ["run"]

_G711 = "pcm16,g711_ulaw,g711_alaw"
#: (name, the agent's formats, the worker's extra config)
CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("passthrough", _G711, {}),
    ("transcoding", "pcm16", {}),
    ("recording", _G711, {"record": "stereo"}),
)
PACKETS_PER_S = 50


def _rates(before: dict[str, Any], after: dict[str, Any], wall: float) -> dict[str, float]:
    out = {}
    for key in ("rtp_in", "rtp_out", "frames_to_agent", "frames_dropped_upstream"):
        if isinstance(after.get(key), int | float) and isinstance(before.get(key), int | float):
            out[f"{key}_per_s"] = round((after[key] - before[key]) / wall, 1)
    return out


# -- the floor ----------------------------------------------------------------------------


class _Floor:
    """The bare UDP relay and its own SIPp load, run beside rtbridge's: its CPU window is
    rtbridge's, so both see the same machine (a shared one drifts within seconds)."""

    def __init__(self, child: Child, load: Load) -> None:
        self.child = child
        self.load = load
        self.up = 0
        self.echoed0 = 0

    @classmethod
    async def start(cls, calls: int, hold_s: float, tone: Path, tmp: Path) -> _Floor:
        tmp.mkdir(exist_ok=True)
        child = await Child.start("floor", [sys.executable, "-m", "bridge.bench._udp_floor"], tmp)
        floor = cls(child, Load(calls, hold_s, tone, tmp))
        try:
            await floor.load.start(int(child.ready["sip_port"]))
        except BaseException:
            await floor.close()
            raise
        return floor

    async def wait_up(self) -> None:
        self.up = await wait_all_up(self.child, self.load)

    async def mark(self) -> None:
        self.echoed0 = int((await self.child.ask("status"))["echoed"])

    async def result(self, cpu_s: float, wall: float) -> dict[str, Any]:
        """The window's figures; then BYE on every call and SIPp's verdict."""
        after = await self.child.ask("status")
        up = min(self.up, int(after["calls"]))
        await self.child.ask("hangup")
        sipp = await self.load.finish()
        return {
            "calls_up": up,
            **cpu_figures(cpu_s, wall, up),
            "datagrams_echoed_per_s": round((int(after["echoed"]) - self.echoed0) / wall, 1),
            "expected_per_s": up * PACKETS_PER_S,
            "sipp": sipp,
        }

    async def close(self) -> None:
        await self.load.kill()
        await self.child.stop()


# -- recording on its own -------------------------------------------------------------------

#: Seconds of one G.711 call's recording the isolated measure runs through.
RECORDING_SECONDS = 120


def _recording_isolated(tmp: Path, seconds: int) -> float:
    """A G.711 call's recording alone, in this process: the mixer fed a caller frame and an
    agent frame per 20 ms tick (voice both ways), its blocks written by the writer thread to a
    file; all the process's CPU time for it, in percent of a core per call (load on a shared
    machine slows it less than it skews a difference of two loaded runs)."""
    mixer = RecordingMixer(
        RecordingMode.STEREO,
        caller=PlayoutEncoding.PCMU,
        caller_rate=8000,
        agent=PlayoutFormat(PlayoutEncoding.PCMU, 8000),
    )
    writer = RecordingWriter(tmp)
    file = writer.create("bench", mixer.rate, 2)
    tone = g711.ulaw_encode(
        (8000 * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16)
    )
    t0 = 1000.0
    cpu0 = time.process_time()
    for k in range(seconds * 50):
        deadline = t0 + k * 0.02
        block = mixer.tick(deadline)
        if block is not None:
            file.write(block)
        mixer.caller_frame(tone, k)
        mixer.agent_frames([Frame(tone, k, deadline, "r", "i", 0.0, 160)])
    file.close()
    writer.flush()
    cpu = time.process_time() - cpu0
    writer.stop()
    return round(cpu / seconds * 100.0, 4)


# -- one rtbridge case --------------------------------------------------------------------


async def _case(
    formats: str,
    calls: int,
    seconds: float,
    lat_seconds: float,
    tone: Path,
    tmp: Path,
    more: dict[str, Any],
) -> dict[str, Any]:
    agent, agent_url = await start_agent(formats, tmp)
    child: Child | None = None
    stats_path = tmp / "worker-stats.json"
    hold = calls / CALL_RATE + SETUP_GRACE_S + SETTLE_S + seconds + lat_seconds + 10
    load = Load(calls, hold, tone, tmp)
    floor: _Floor | None = None
    try:
        child = await start_worker(agent_url, calls, tmp, **more)
        await asyncio.sleep(0.5)
        rss_idle = rss_kb(child.pid)
        floor = await _Floor.start(calls, hold, tone, tmp / "floor")
        await load.start(int(child.ready["sip_port"]))
        assert load.proc is not None and floor.load.proc is not None
        up = await wait_all_up(child, load)
        await floor.wait_up()
        await asyncio.sleep(SETTLE_S)
        for whose, callers in (("rtbridge's", load), ("the floor's", floor.load)):
            if not callers.running:  # its calls failed: there is no load left to measure
                raise RuntimeError(
                    f"SIPp ({whose} callers) ended before the measurement: {await callers.finish()}"
                )

        pids = {
            "rtbridge": child.pid,
            "agent": agent.pid,
            "sipp": load.proc.pid,
            "floor": floor.child.pid,
            "floor_sipp": floor.load.proc.pid,
        }
        await floor.mark()
        mark = await child.ask("mark")
        window = CpuWindow(pids)
        await asyncio.sleep(seconds)
        wall, cpu = window.close()
        machine = window.machine
        loop_wakeups = window.wakeups_per_s["rtbridge"]
        rss_loaded = rss_kb(child.pid)
        snap = await child.ask("snapshot cpu")
        floor_result = await floor.result(cpu["floor"], wall)
        await floor.close()  # the latency window is rtbridge's alone

        await child.ask("arm")
        lat_window = CpuWindow({"rtbridge": child.pid})
        await asyncio.sleep(lat_seconds)
        lat_wall, lat_cpu = lat_window.close()
        lat_snap = await child.ask("snapshot latency")
        up_in_window = min(up, int(mark["calls"]), int(snap["calls"]), int(lat_snap["calls"]))

        await child.ask(f"hangup {max(20.0, calls / 10)}", timeout=max(60.0, calls / 5))
        sipp = await load.finish()
        await child.stop()
        worker_stats = json.loads(stats_path.read_text())
    except BaseException as exc:
        if child is not None:
            exc.add_note(f"worker stderr: {child.stderr_tail()}")
        raise
    finally:
        if floor is not None:
            await floor.close()
        await load.kill()
        if child is not None:
            await child.stop()
        await terminate(agent)

    cpu_snap = worker_stats["snapshots"]["cpu"]
    rtbridge_cpu = cpu_figures(cpu["rtbridge"], wall, up_in_window)
    pct = rtbridge_cpu["pct_of_core_per_call"]
    rates = _rates(mark["traffic"], snap["traffic"], wall)
    expected = up_in_window * PACKETS_PER_S
    kept_up = {
        "rtp_in_vs_sent": round(rates.get("rtp_in_per_s", 0.0) / max(1, expected), 3),
        "rtp_out_vs_due": round(rates.get("rtp_out_per_s", 0.0) / max(1, expected), 3),
        "ticker_reanchors": cpu_snap["ticker_reanchors"],
        "frames_dropped_upstream_per_s": rates.get("frames_dropped_upstream_per_s", 0.0),
    }
    # shedding work makes CPU per call look cheaper than it is: say so (a few ticker
    # re-anchors alone are stalls, shown in kept_up, not shed load)
    saturated = (
        kept_up["rtp_in_vs_sent"] < 0.98
        or kept_up["rtp_out_vs_due"] < 0.98
        or kept_up["frames_dropped_upstream_per_s"] > 0
    )
    lat_snap_full = worker_stats["snapshots"]["latency"]
    lat_probe = lat_snap_full["probe"]
    traffic = cpu_snap["traffic"]
    formats_seen = traffic.get("session_formats", {})
    return {
        "calls_requested": calls,
        "calls_up": up_in_window,
        "session_formats": formats_seen,
        "event_loop": child.ready.get("event_loop") if child is not None else None,
        "pass_through_calls": traffic.get("pass_through_calls"),
        "cpu": rtbridge_cpu,
        "loop_wakeups_per_s": loop_wakeups,
        "cpu_with_probe_armed": cpu_figures(lat_cpu["rtbridge"], lat_wall, up_in_window),
        "latency_us": {
            "caller_packet_in_to_append_sent": lat_probe["in_to_sent_us"],
            "socket_wait": lat_probe["socket_wait_us"],
            "media_path_to_enqueue": lat_probe["in_to_enqueue_us"],
            "enqueue_to_sent": lat_probe["enqueue_to_sent_us"],
            "appends_without_packet": lat_probe["appends_without_packet"],
            "kernel_stamps": lat_probe["kernel_stamps"],
            "unstamped_packets": lat_probe["unstamped_packets"],
        },
        "playout": {
            "tick_lateness_ms": cpu_snap["tick_lateness_ms"],
            "ticker_reanchors": cpu_snap["ticker_reanchors"],
            "latency_window": {
                "tick_lateness_ms": lat_snap_full["tick_lateness_ms"],
                "rtp_send_interval_jitter_ms": lat_probe["rtp_send_interval_jitter_ms"],
            },
        },
        "memory": {
            "rss_idle_mb": round(rss_idle / 1024, 1),
            "rss_loaded_mb": round(rss_loaded / 1024, 1),
            "per_call_kb": round((rss_loaded - rss_idle) / max(1, up_in_window), 1),
        },
        "traffic": {
            **rates,
            "agent_audio_bytes_in": traffic.get("agent_audio_bytes_in"),
            "expected_rtp_per_s": expected,
        },
        "kept_up": kept_up,
        "saturated": saturated,
        "gc": {"cpu_window": cpu_snap["gc"], "latency_window": lat_snap_full["gc"]},
        "recordings": worker_stats["final"].get("recordings", {}),
        "floor": floor_result,
        "ratio_to_floor": (
            round(pct / floor_result["pct_of_core_per_call"], 2)
            if floor_result["pct_of_core_per_call"]
            else None
        ),
        "context_cpu_pct_of_core": {
            k: round(100 * cpu[k] / wall, 1) for k in ("agent", "sipp", "floor_sipp")
        },
        "machine": machine,
        "sipp": sipp,
    }


def _srtp_case(passthrough: dict[str, Any], packets: int = 20_000) -> dict[str, Any]:
    """The CPU cost of SRTP per call (see the module docstring), by suite."""
    rtp = bytes(RtpPacket(0, 1, 160, 0x1234, b"\x7f" * 160))
    base_pct = float(passthrough.get("cpu", {}).get("pct_of_core_per_call") or 0.0)
    out: dict[str, Any] = {"packet_bytes": len(rtp), "packets_per_s_each_way": PACKETS_PER_S}
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"):
        a_key, b_key = new_key(suite), new_key(suite)
        sender, receiver = SrtpSession(suite, a_key, b_key), SrtpSession(suite, b_key, a_key)
        wire = []
        started = time.process_time()
        for seq in range(packets):
            wire.append(sender.protect(rtp[:2] + seq.to_bytes(2, "big") + rtp[4:]))
        protect_s = time.process_time() - started
        started = time.process_time()
        for packet in wire:
            receiver.unprotect(packet)
        unprotect_s = time.process_time() - started
        per_call_s = PACKETS_PER_S * (protect_s + unprotect_s) / packets  # CPU s per s
        pct = round(100 * per_call_s, 4)
        out[suite] = {
            "protect_us_per_packet": round(1e6 * protect_s / packets, 2),
            "unprotect_us_per_packet": round(1e6 * unprotect_s / packets, 2),
            "pct_of_core_per_call": pct,
            "pct_of_passthrough_call": round(100 * pct / base_pct, 1) if base_pct else None,
        }
    return out


async def _bench(calls: int, seconds: float) -> dict[str, Any]:
    lat_seconds = max(1.0, seconds / 2)
    result: dict[str, Any] = {
        "benchmark": "sip",
        "calls": calls,
        "seconds": seconds,
        "latency_seconds": lat_seconds,
        "call_rate_cps": CALL_RATE,
        "cpus": os.cpu_count(),
        "workload": "u-law 20 ms RTP, 1 s tone / 1 s silence looped; the agent parrots turns",
    }
    with tempfile.TemporaryDirectory(prefix="rtbridge-bench-sip-") as tmp_name:
        tmp = Path(tmp_name)
        tone = tone_file(tmp / "tone.ulaw")
        for name, formats, more in CASES:
            case_tmp = tmp / name
            case_tmp.mkdir()
            result[name] = await _case(formats, calls, seconds, lat_seconds, tone, case_tmp, more)
        isolated = _recording_isolated(tmp / "isolated", RECORDING_SECONDS)
    base = result["passthrough"]["cpu"]["pct_of_core_per_call"]
    recorded = result["recording"]["cpu"]["pct_of_core_per_call"]
    result["recording_cost"] = {
        "pct_of_core_per_call": round(recorded - base, 3),
        "vs": "passthrough",
        "isolated_pct_of_core_per_call": isolated,
    }
    result["srtp"] = _srtp_case(result.get("passthrough", {}))
    with contextlib.suppress(OSError):
        result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    calls = getattr(args, "calls", None) or 50
    seconds = getattr(args, "seconds", None) or 20.0
    return asyncio.run(_bench(int(calls), float(seconds)))
