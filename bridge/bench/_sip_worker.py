"""rtbridge under test for ``rtbridge bench sip``, in a process of its own.

``python -m bridge.bench._sip_worker CONFIG.json`` starts rtbridge's runtime (call records,
call manager, SIP on an ephemeral UDP port of 127.0.0.1) in front of an agent running in yet
another process, with the timing probe of :mod:`bridge.bench._probe` installed (armed only for
the latency window: nothing is wrapped in the CPU window).

Config keys: ``agent_url``, ``rtp_port_min``, ``rtp_port_max``, ``max_calls``, ``data_dir``,
``stats_path``, and optionally ``tracemalloc`` (bool: trace allocations from start-up),
``sip`` (more ``[sip]`` settings: trunks, limits; ``rtbridge bench flood``) and ``event_loop``
(``server.event_loop``: its default unless given, as ``rtbridge serve``).

It prints one JSON line when ready (``{"sip_port": P, "ports": {...}, "pid": PID,
"event_loop": "uvloop" | "asyncio"}``), then
answers one JSON line per command read from stdin:

* ``status``: live calls, RSS, open file descriptors, live asyncio tasks and threads;
* ``collect``: a full garbage collection, then ``status``;
* ``census``: live objects by type and the types that grew most since the previous census,
  and (with ``tracemalloc`` set: traced from start-up, slower) the source lines whose held
  memory grew most;
* ``mark``: start a window: the ticker's lateness record is cleared, the probe disarmed;
* ``arm``: start a window with the probe armed (latency reservoirs cleared, then recording);
* ``snapshot NAME``: the window's figures (ticker lateness, probe summary, garbage collector
  pauses, live calls, RSS, traffic counters summed over live calls) kept under NAME;
* ``hangup [TIMEOUT]``: BYE on every live call, then wait until all are released;
* ``defences``: what the SIP stack refused or dropped (its counters, the open TCP/TLS
  connections) and the security events by kind.

``mark``, ``arm`` and ``snapshot`` answer with the traffic counters, so windows can be diffed.

On stdin close or SIGTERM it writes ``{"snapshots": {...}, "final": {...}}`` to
``stats_path`` and exits (closing rtbridge's runtime, which hangs up any call still up).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bridge import event_loop
from bridge.bench import _probe
from bridge.bench._proc import rss_kb
from bridge.calls.end import EndReason
from bridge.calls.manager import CallManager
from bridge.config import ServerSettings, Settings
from bridge.logs import setup_logging
from bridge.runtime import start_runtime
from sip.driver import SipEndpoint

__all__ = ["main"]


def _traffic(manager: CallManager) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    formats: dict[str, int] = {}
    agent_bytes = pass_through = 0
    for call in list(manager.calls.values()):
        for key, value in call.stats().items():
            if key == "pass_through":
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
        stats = call.stats()
        fmt = str(stats.get("session_format"))
        formats[fmt] = formats.get(fmt, 0) + 1
        agent_bytes += int(stats.get("agent_bytes_in", 0))
        pass_through += bool(stats.get("pass_through"))
    totals["agent_audio_bytes_in"] = agent_bytes
    totals["pass_through_calls"] = pass_through
    totals["session_formats"] = formats
    return totals


class GcPauses:
    """The cyclic garbage collector's pauses in this process (``gc.callbacks``), per window:
    a full collection over many call objects stops every call's audio while it runs."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self.by_generation = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.pauses_ms.append((time.perf_counter() - self._started) * 1000.0)
        self.by_generation[int(info.get("generation", 0))] += 1

    def reset(self) -> None:
        self.pauses_ms.clear()
        self.by_generation = [0, 0, 0]

    def summary(self) -> dict[str, Any]:
        return {
            "collections_by_generation": list(self.by_generation),
            "pause_ms": _probe.percentiles(self.pauses_ms, 3),
        }


class Worker:
    def __init__(
        self, manager: CallManager, probe: _probe.LatencyProbe, sip: SipEndpoint | None = None
    ) -> None:
        self.manager = manager
        self.sip = sip
        self.probe = probe
        self.gc = GcPauses()
        self.snapshots: dict[str, Any] = {}
        self.census: collections.Counter[str] | None = None
        self._snapshot: tracemalloc.Snapshot | None = None

    def status(self) -> dict[str, Any]:
        return {
            "calls": len(self.manager.calls),
            "rss_kb": rss_kb(os.getpid()),
            "fds": len(os.listdir("/proc/self/fd")),
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
        }

    def allocations(self) -> list[tuple[str, int, int]]:
        """With ``tracemalloc`` in the config (traced from start-up): the source lines whose
        held memory grew most since the previous census (KiB, blocks). Object counts miss
        growth inside containers (a list's strings, a buffer's bytes); this does not."""
        if not tracemalloc.is_tracing():
            return []
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        before, self._snapshot = self._snapshot, snapshot
        if before is None:
            return []
        return [
            (str(stat.traceback), stat.size_diff // 1024, stat.count_diff)
            for stat in snapshot.compare_to(before, "lineno")[:15]
        ]

    def mark(self, *, arm: bool) -> None:
        self.manager.ticker.stats.lateness_ms.clear()
        self.gc.reset()
        self.probe.arm(False)
        self.probe.reset()
        self.probe.arm(arm)

    def snapshot(self) -> dict[str, Any]:
        t = self.manager.ticker.stats
        return {
            **self.status(),
            "tick_lateness_ms": _probe.percentiles(list(t.lateness_ms), 3),
            "ticker_reanchors": t.reanchors,
            "ticker_sink_errors": t.sink_errors,
            "probe": self.probe.summary(),
            "gc": self.gc.summary(),
            "traffic": _traffic(self.manager),
            "recordings": {
                "written_bytes": self.manager.recordings.written_bytes,
                "dropped_blocks": self.manager.recordings.dropped_blocks,
                "errors": self.manager.recordings.errors,
            },
        }

    async def command(self, line: str) -> dict[str, Any]:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "status":
            return self.status()
        if cmd in ("mark", "arm"):
            self.mark(arm=cmd == "arm")
            return {"ok": cmd, **self.status(), "traffic": _traffic(self.manager)}
        if cmd == "census":  # live objects by type: the growth since the previous census
            gc.collect()
            counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            growth = counts - self.census if self.census else collections.Counter()
            self.census = counts
            return {
                "ok": cmd,
                "objects": sum(counts.values()),
                "grew": growth.most_common(12),
                "allocated_since": self.allocations(),
            }
        if cmd == "defences":
            sip = self.sip
            return {
                "core": dict(sip.core.stats) if sip else {},
                "transports": dict(sip.transports.stats) if sip else {},
                "connections": len(sip.transports.connections) if sip else 0,
                "sources_tracked": sip.core.guard.tracked if sip else 0,
                "security_events": self.manager.security.counts,
            }
        if cmd == "collect":
            gc.collect()
            return {"ok": cmd, **self.status()}
        if cmd == "snapshot":
            self.snapshots[arg or str(len(self.snapshots))] = snap = self.snapshot()
            return {"ok": cmd, **snap}
        if cmd == "hangup":  # BYE on every call, as a callee ending the calls would
            for call_id in list(self.manager.calls):
                self.manager.hangup(call_id, EndReason.LOCAL_HANGUP)
            try:
                async with asyncio.timeout(float(arg or 20)):
                    await self.manager.wait_idle()
            except TimeoutError:
                pass
            return {"ok": cmd, **self.status()}
        return {"error": f"unknown command {cmd!r}"}


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _run(config: dict[str, Any]) -> int:
    probe = _probe.install()
    if config.get("tracemalloc"):
        tracemalloc.start(1)
    agent_url = config["agent_url"]
    settings = Settings.model_validate(
        {
            "server": {
                "data_dir": config["data_dir"],
                "log_level": "warning",
                "event_loop": config.get("event_loop", ServerSettings().event_loop),
            },
            "upstream": {"url": agent_url},
            "profiles": {
                "default": {"upstream": {"url": agent_url}, "record": config.get("record", "off")}
            },
            "calls": {
                "rtp_port_min": config["rtp_port_min"],
                "rtp_port_max": config["rtp_port_max"],
                "max_calls": config["max_calls"],
                "rtp_host": "127.0.0.1",
            },
            "sip": {"bind_host": "127.0.0.1", "codecs": ["PCMU", "PCMA"], **config.get("sip", {})},
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        rt = await start_runtime(settings, stack, sip_port=0)
        endpoint = rt.sip_leg.endpoint
        assert endpoint is not None
        worker = Worker(rt.manager, probe, endpoint)
        _say(
            {
                "sip_port": endpoint.ports["udp"],
                "ports": endpoint.ports,
                "pid": os.getpid(),
                "event_loop": event_loop.loop_name(loop),
            }
        )
        reader = await _stdin_lines()

        async def commands() -> None:
            while line := (await reader.readline()).decode():
                _say(await worker.command(line))
            stop.set()

        task = asyncio.create_task(commands())
        try:
            await stop.wait()
        finally:
            task.cancel()
            stats = {"snapshots": worker.snapshots, "final": worker.snapshot()}
            Path(config["stats_path"]).write_text(json.dumps(stats))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.bench._sip_worker CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    setup_logging("warning")
    return event_loop.run(_run(config), config.get("event_loop", ServerSettings().event_loop))


if __name__ == "__main__":
    sys.exit(main())
