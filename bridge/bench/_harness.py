"""What the process benchmarks share: helper processes speaking JSON lines (rtbridge's worker,
the floor), the local agent in its own process, a SIPp load, free loopback ports, a test tone.

Every process binds 127.0.0.1 on ports picked here and has a bounded lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.bench import _sipp
from bridge.bench._proc import cpu_seconds, sleeps
from media.g711 import ulaw_encode

__all__ = [
    "CALL_RATE",
    "SETTLE_S",
    "SETUP_GRACE_S",
    "Child",
    "CpuWindow",
    "Load",
    "busy_pct",
    "cpu_figures",
    "free_port",
    "free_range",
    "machine_ticks",
    "start_agent",
    "start_worker",
    "terminate",
    "tone_file",
    "wait_all_up",
]

CALL_RATE = 25.0  # calls per second SIPp places
SETTLE_S = 1.0  # after the last call is up, before the first window
SETUP_GRACE_S = 60.0  # how long past the ramp we wait for all calls to be up


def machine_ticks() -> list[int]:
    """The aggregate ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq softirq
    steal ...), in clock ticks."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def busy_pct(before: list[int], after: list[int]) -> float:
    """How busy every process on the machine (other tenants included) kept all its cores
    between two :func:`machine_ticks` readings, in percent."""
    d = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(d[:8]) or 1
    return round(100.0 * (total - d[3] - d[4]) / total, 1)


def cpu_figures(cpu_s: float, wall_s: float, calls: int) -> dict[str, float]:
    """CPU time over a window as % of one core per call, and the calls per core it implies."""
    pct = 100.0 * cpu_s / wall_s / max(1, calls)
    return {
        "window_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 3),
        "pct_of_core_per_call": round(pct, 4),
        "calls_per_core": round(100.0 / pct, 1) if pct > 0 else 0.0,
    }


def _cpu_pressure_us() -> int | None:
    """Total time some runnable task waited for a CPU (PSI ``/proc/pressure/cpu``), in us."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


class CpuWindow:
    """CPU time of some processes, and how busy the whole machine was, over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        self.sleeps0 = {k: sleeps(p) for k, p in pids.items()}
        #: per process, its main thread's wake-ups a second over the window (see ``sleeps``)
        self.wakeups_per_s: dict[str, float] = {}
        self.machine0 = machine_ticks()
        self.pressure0 = _cpu_pressure_us()
        self.machine: dict[str, float | None] = {}

    def close(self) -> tuple[float, dict[str, float]]:
        wall = time.monotonic() - self.t0
        cpu = {k: cpu_seconds(p) - self.cpu0[k] for k, p in self.pids.items()}
        self.wakeups_per_s = {
            k: round((sleeps(p) - self.sleeps0[k]) / wall, 1) for k, p in self.pids.items()
        }
        after = machine_ticks()
        d = [b - a for a, b in zip(self.machine0, after, strict=False)]
        total = sum(d[:8]) or 1
        self.machine = {
            # every process on the machine (other tenants included), % of all cores
            "busy_pct": busy_pct(self.machine0, after),
            "steal_pct": round(100.0 * d[7] / total, 1) if len(d) > 7 else 0.0,
            # share of the window in which some runnable task waited for a CPU
            "cpu_pressure_some_pct": None,
        }
        pressure = _cpu_pressure_us()
        if pressure is not None and self.pressure0 is not None:
            self.machine["cpu_pressure_some_pct"] = round(
                (pressure - self.pressure0) / 1e4 / wall, 1
            )
        return wall, cpu


def port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port_free(port):
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def free_range(size: int, lo: int = 30000, hi: int = 60000) -> int:
    """The first port of ``size`` consecutive ports free on 127.0.0.1 now (even)."""
    rng = np.random.default_rng()
    for _ in range(50):
        base = int(rng.integers(lo // 2, (hi - size) // 2)) * 2
        if all(port_free(p) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports on 127.0.0.1")


def tone_file(path: Path) -> Path:
    """1 s of a two-partial tone at about -16 dBFS, then 1 s of silence, as raw u-law."""
    t = np.arange(8000) / 8000.0
    tone = 3500 * np.sin(2 * np.pi * 440 * t) + 1500 * np.sin(2 * np.pi * 1320 * t)
    pcm = np.concatenate([np.rint(tone), np.zeros(8000)]).astype(np.int16)
    path.write_bytes(ulaw_encode(pcm))
    return path


def caller_scenario(path: Path, tone: Path, hold_s: float, *, routed: bool = False) -> Path:
    """A caller streaming the tone until the callee hangs up (or, as a bound, for ``hold_s``,
    after which it sends BYE itself); ``routed``: through a record-routing proxy."""
    path.write_text(
        _sipp.uac(
            _sipp.stream(tone, loops=-1),
            _sipp.bye_or_hang_up(int(hold_s * 1000), 2),
            routed=routed,
        )
    )
    return path


@dataclass
class Child:
    """A helper process speaking JSON lines: commands on stdin, one answer line each."""

    name: str
    proc: asyncio.subprocess.Process
    err_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(cls, name: str, args: list[str], tmp: Path, *, timeout: float = 60) -> Child:
        err_path = tmp / f"{name}.stderr"
        with err_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=child_env(),
            )
        child = cls(name, proc, err_path)
        child.ready = await child.read(timeout)
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def read(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited: {self.stderr_tail()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read(timeout)

    async def stop(self, timeout: float = 30) -> None:
        """Close stdin (the child writes its stats and exits); kill it if it does not."""
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def stderr_tail(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


async def start_worker(agent_url: str, calls: int, tmp: Path, **more: object) -> Child:
    """rtbridge under test (:mod:`bridge.bench._sip_worker`) for ``calls`` calls in front of
    ``agent_url``: its config, data and ``worker-stats.json`` in ``tmp``; ``more`` adds config
    keys (``sip``: more ``[sip]`` settings)."""
    rtp_base = free_range(4 * calls + 8)
    config = {
        "agent_url": agent_url,
        "rtp_port_min": rtp_base,
        "rtp_port_max": rtp_base + 4 * calls + 6,
        "max_calls": calls + 4,
        "data_dir": str(tmp / "data"),
        "stats_path": str(tmp / "worker-stats.json"),
        **more,
    }
    (tmp / "worker.json").write_text(json.dumps(config))
    return await Child.start(
        "worker", [sys.executable, "-m", "bridge.bench._sip_worker", str(tmp / "worker.json")], tmp
    )


def child_env() -> dict[str, str]:
    # the benchmark is self-contained: no config file or RTBRIDGE_* setting of the caller's
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTBRIDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start_agent(formats: str, tmp: Path) -> tuple[asyncio.subprocess.Process, str]:
    """``rtbridge agent --port P --formats F`` in its own process; returns it and its URL."""
    port = free_port()
    err = (tmp / f"agent-{port}.stderr").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        "agent",
        "--port",
        str(port),
        "--formats",
        formats,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=err,
        env=child_env(),
    )
    err.close()
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    match = re.search(r"ws://\S+", line)
    if match is None:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the agent did not start: {line!r}")
    return proc, match.group(0)


async def terminate(proc: asyncio.subprocess.Process, timeout: float = 10) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@dataclass
class Load:
    """One SIPp run: N calls at CALL_RATE, each streaming until BYE (bounded by ``hold_s``)."""

    calls: int
    hold_s: float
    tone: Path
    tmp: Path
    extra: tuple[str, ...] = ()  # more SIPp options
    routed: bool = False  # through a record-routing proxy (Kamailio in front of workers)
    proc: asyncio.subprocess.Process | None = None
    result: dict[str, Any] = field(default_factory=dict)
    _output: asyncio.Task[tuple[bytes, bytes]] | None = None

    @property
    def ramp_s(self) -> float:
        return self.calls / CALL_RATE

    async def start(self, target_port: int) -> None:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise RuntimeError("SIPp is not installed (Debian package sip-tester)")
        scenario = caller_scenario(
            self.tmp / "caller.xml", self.tone, self.hold_s, routed=self.routed
        )
        media = free_range(4)
        self.proc = await asyncio.create_subprocess_exec(
            sipp,
            "-sf",
            str(scenario),
            f"127.0.0.1:{target_port}",
            "-m",
            str(self.calls),
            "-l",
            str(self.calls),
            "-r",
            f"{CALL_RATE:g}",
            "-p",
            str(free_port()),
            "-mp",
            str(media),
            "-cp",
            str(free_port()),
            "-nostdin",
            "-timeout",
            f"{int(self.hold_s + self.ramp_s + 30)}s",
            "-timeout_error",
            "-i",
            "127.0.0.1",
            *self.extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.tmp,
        )
        # drain SIPp's output as it comes: a full pipe would stall SIPp and its RTP
        self._output = asyncio.create_task(self.proc.communicate())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """Stop SIPp now if it still runs (an error path)."""
        if self.running and self.proc is not None:
            self.proc.kill()
        if self._output is not None:
            with contextlib.suppress(Exception):
                await self._output

    async def finish(self) -> dict[str, Any]:
        """Wait for SIPp (bounded; killed past its own timeout) and parse its counters."""
        assert self.proc is not None and self._output is not None
        try:
            out, err = await asyncio.wait_for(
                asyncio.shield(self._output), self.hold_s + self.ramp_s + 45
            )
        except TimeoutError:
            self.proc.kill()
            out, err = await self._output
        text = out.decode(errors="replace")

        def counter(name: str) -> int | None:
            found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", text)
            return int(found[-1]) if found else None

        self.result = {
            "returncode": self.proc.returncode,
            "successful_calls": counter("Successful call"),
            "failed_calls": counter("Failed call"),
        }
        if self.proc.returncode != 0:
            self.result["stderr"] = err.decode(errors="replace")[-500:]
        return self.result


async def wait_all_up(child: Child, load: Load) -> int:
    """Poll until all calls are up (or SIPp ended, or the grace period passed)."""
    deadline = time.monotonic() + load.ramp_s + SETUP_GRACE_S
    up = 0
    while time.monotonic() < deadline and load.running:
        up = int((await child.ask("status"))["calls"])
        if up >= load.calls:
            break
        await asyncio.sleep(0.25)
    return up
