"""``rtbridge bench soak``: many calls for many minutes; does anything grow that should not?

SIPp places ``--calls`` N calls (default 100) to rtbridge running in a process of its own
(:mod:`bridge.bench._sip_worker`), in front of the local agent in a third one; each caller
streams u-law RTP (1 s of tone, 1 s of silence, looped: the agent answers every turn, so both
directions carry audio) for ``--minutes`` M (default 10). Then every call is hung up.

rtbridge's process is sampled every :data:`SAMPLE_S`: RSS, open file descriptors, live asyncio
tasks, threads. The first part of the run is warm-up (allocators, caches and the garbage
collector's generations settle: ``--warmup`` seconds, default a fifth of the run, at most
two minutes); what counts is what happens after it:

* ``rss_growth_after_warmup_mb``: RSS at the end of the run minus RSS at the end of warm-up,
  and the slope of a least-squares line through the samples after warm-up (MB per hour);
* ``fds`` / ``tasks`` / ``threads``: idle (before the first call), loaded (the last sample)
  and after (every call released, a full garbage collection): what a call holds must be
  given back, so ``after`` must equal ``idle``.

``--trace`` counts rtbridge's live Python objects by type at the end of warm-up and at the end
and adds ``objects``: how many, the types that grew most, and (rtbridge traced by
``tracemalloc`` from start-up: slower, and RSS then includes the tracer's own memory) the
source lines whose held memory grew most after warm-up (where to look for a leak).

Figures are process-level and do not depend on how busy the machine is, except that a
saturated run (``kept_up`` below 0.98) does less work per call than a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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
    Load,
    start_agent,
    start_worker,
    terminate,
    tone_file,
    wait_all_up,
)
from bridge.config import Settings

__all__ = ["run"]

SAMPLE_S = 10.0
WARMUP_MAX_S = 120.0


def _slope_mb_per_hour(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS (KiB) over time (s), as MB per hour."""
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples], dtype=np.float64)
    rss = np.array([s[1] for s in samples], dtype=np.float64)
    slope_kb_per_s = float(np.polyfit(t - t[0], rss, 1)[0])
    return round(slope_kb_per_s * 3600 / 1024, 2)


async def _soak(calls: int, minutes: float, warmup_s: float, trace: bool) -> dict[str, Any]:
    duration = minutes * 60.0
    result: dict[str, Any] = {
        "benchmark": "soak",
        "calls": calls,
        "minutes": minutes,
        "warmup_s": warmup_s,
        "sample_s": SAMPLE_S,
        "cpus": os.cpu_count(),
        "workload": "u-law 20 ms RTP, 1 s tone / 1 s silence looped; the agent parrots turns",
    }
    with tempfile.TemporaryDirectory(prefix="rtbridge-bench-soak-") as tmp_name:
        tmp = Path(tmp_name)
        tone = tone_file(tmp / "tone.ulaw")
        agent, agent_url = await start_agent("pcm16,g711_ulaw,g711_alaw", tmp)
        child: Child | None = None
        hold = calls / CALL_RATE + SETUP_GRACE_S + SETTLE_S + duration + 30
        load = Load(calls, hold, tone, tmp)
        try:
            child = await start_worker(agent_url, calls, tmp, tracemalloc=trace)
            await asyncio.sleep(0.5)
            idle = await child.ask("collect")
            await load.start(int(child.ready["sip_port"]))
            up = await wait_all_up(child, load)
            await asyncio.sleep(SETTLE_S)
            mark = await child.ask("mark")
            started = time.monotonic()
            samples: list[dict[str, Any]] = []
            tracing = False
            while (elapsed := time.monotonic() - started) < duration:
                if trace and not tracing and elapsed >= warmup_s:
                    started_trace = await child.ask("census", timeout=120)
                    tracing = True
                status = await child.ask("status")
                samples.append({"t": round(elapsed, 1), **status})
                await asyncio.sleep(min(SAMPLE_S, max(0.0, duration - elapsed)))
            # RSS at the end is read before the snapshot: building the snapshot (percentiles
            # over the run's tick record, every call's statistics) allocates, and that
            # high-water mark is the benchmark's, not the calls' (3 MB at 100 calls)
            final = await child.ask("status")
            loaded = await child.ask("snapshot soak")
            if tracing:
                census = await child.ask("census", timeout=120)
                result["objects"] = {
                    "end_of_warmup": started_trace["objects"],
                    "end": census["objects"],
                    "grew_most": census["grew"],
                    "held_growth_kib": census["allocated_since"],
                }
            samples.append({"t": round(time.monotonic() - started, 1), **final})
            await child.ask(f"hangup {max(30.0, calls / 5)}", timeout=max(90.0, calls / 2))
            await asyncio.sleep(1.0)  # sockets and tasks of the last calls wind down
            after = await child.ask("collect")
            sipp = await load.finish()
        except BaseException as exc:
            if child is not None:
                exc.add_note(f"worker stderr: {child.stderr_tail()}")
            raise
        finally:
            await load.kill()
            if child is not None:
                await child.stop()
            await terminate(agent)

    after_warmup = [s for s in samples if s["t"] >= warmup_s]
    rss_at_warmup = after_warmup[0]["rss_kb"] if after_warmup else samples[0]["rss_kb"]
    rss_end = samples[-1]["rss_kb"]
    wall = samples[-1]["t"] or 1.0
    rtp_in = loaded["traffic"].get("rtp_in", 0) - mark["traffic"].get("rtp_in", 0)
    rtp_out = loaded["traffic"].get("rtp_out", 0) - mark["traffic"].get("rtp_out", 0)
    expected = max(1, up) * 50 * wall
    result.update(
        {
            "calls_up": up,
            "rss_mb": {
                "idle": round(idle["rss_kb"] / 1024, 1),
                "end_of_warmup": round(rss_at_warmup / 1024, 1),
                "end": round(rss_end / 1024, 1),
                "after_hangup": round(after["rss_kb"] / 1024, 1),
            },
            "rss_growth_after_warmup_mb": round((rss_end - rss_at_warmup) / 1024, 2),
            "rss_slope_after_warmup_mb_per_hour": _slope_mb_per_hour(
                [(s["t"], s["rss_kb"]) for s in after_warmup]
            ),
            "fds": {"idle": idle["fds"], "loaded": loaded["fds"], "after": after["fds"]},
            "tasks": {"idle": idle["tasks"], "loaded": loaded["tasks"], "after": after["tasks"]},
            "threads": {
                "idle": idle["threads"],
                "loaded": loaded["threads"],
                "after": after["threads"],
            },
            "released": {
                "fds": after["fds"] <= idle["fds"],
                "tasks": after["tasks"] <= idle["tasks"],
                "threads": after["threads"] <= idle["threads"],
                "calls": after["calls"] == 0,
            },
            "kept_up": {
                "rtp_in_vs_sent": round(rtp_in / expected, 3),
                "rtp_out_vs_due": round(rtp_out / expected, 3),
                "tick_lateness_ms": loaded["tick_lateness_ms"],
                "ticker_reanchors": loaded["ticker_reanchors"],
            },
            "gc": loaded["gc"],
            "samples": [
                {k: s[k] for k in ("t", "calls", "rss_kb", "fds", "tasks")} for s in samples
            ],
            "sipp": sipp,
        }
    )
    with contextlib.suppress(OSError):
        result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    calls = int(getattr(args, "calls", None) or 100)
    minutes = float(getattr(args, "minutes", None) or 10.0)
    warmup = getattr(args, "warmup", None)
    warmup_s = float(warmup) if warmup is not None else min(WARMUP_MAX_S, minutes * 60 / 5)
    return asyncio.run(_soak(calls, minutes, warmup_s, bool(getattr(args, "trace", False))))
