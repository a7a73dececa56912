"""``rtbridge bench cluster``: the same SIP load through Kamailio on 1 and on 2 workers.

Does a second worker cost anything per call, does Kamailio spread calls evenly, and what does
Kamailio itself cost? Both runs happen one after the other in one command, in front of one
local agent (``rtbridge agent``, its own process), so they see the same machine as nearly as
a shared one allows. Each run is ``rtbridge serve --workers N`` with ``[cluster] kamailio =
true`` (the supervisor writes Kamailio's configuration and starts it on the front SIP port),
and SIPp places ``--calls`` calls (default 50) through Kamailio, routed as a caller behind a
record-routing proxy (:func:`bridge.bench._sipp.uac` with ``routed=True``); each streams the
sip benchmark's u-law tone (20 ms packets, 1 s tone, 1 s silence) until hung up.

Once all calls are up (and a 1 s settle), one CPU window of ``--seconds`` (default 20):

* per worker: its process CPU time (``/proc/<pid>/stat``; pids from the supervisor's
  ``<data_dir>/cluster/state.json``) over the window, divided by the calls it carries (its
  ``GET /v1/calls?state=active``): ``pct_of_core_per_call``; and the p99 of its frame ticker's
  lateness over the window (the difference of two scrapes of its ``/metrics`` histogram
  ``rtbridge_tick_lateness_seconds``: a bucket bound, ``p99_le_ms``);
* Kamailio: the CPU time of its master and every child process (``/proc/PID/task/*/schedstat``,
  nanoseconds: it is too light for ``/proc/PID/stat``'s 10 ms ticks) over the window, per call
  (Kamailio only sees SIP: while calls are up that is little more than its OPTIONS probes),
  and over the whole run, from before the first INVITE to after the last BYE, in ms per call
  (``whole_run_cpu_ms_per_call``: what each call's set-up and tear-down cost it);
* per worker, its event loop's wake-ups a second per call (``loop_wakeups_per_call_s``: the
  main thread's voluntary context switches): fewer calls per worker means fewer packets per
  wake-up, so the loop's fixed cost per wake-up weighs more per call;
* for context: SIPp's and the agent's CPU, and how busy the machine was.

``comparison``: CPU per call of all workers together on 2 workers over 1 worker's (the goal
is within 10%), and the balance of the 2-worker run (fewest calls on a worker over most).
Every process binds 127.0.0.1 on free ports and has a bounded lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bridge.bench._harness import (
    CALL_RATE,
    SETTLE_S,
    SETUP_GRACE_S,
    CpuWindow,
    Load,
    child_env,
    cpu_figures,
    free_port,
    free_range,
    start_agent,
    terminate,
    tone_file,
)
from bridge.bench._proc import run_seconds
from bridge.config import Settings

__all__ = ["run"]

WORKER_COUNTS = (1, 2)
_KEY = "rtbridge-bench-cluster"
_AUTH = {"Authorization": f"Bearer {_KEY}"}
_LISTEN = re.compile(rb"listening on (\S+)")


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/*/stat``'s parent pids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, ()))
    return found


def _kamailio_seconds(pids: list[int]) -> float:
    """CPU time of Kamailio's processes, to the nanosecond (a call costs it well under the
    10 ms tick of ``/proc/PID/stat``)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += run_seconds(pid)
    return total


def tick_lateness_histogram(metrics_text: str) -> dict[float, float]:
    """The cumulative buckets (upper bound in ms -> ticks) of ``rtbridge_tick_lateness``."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "rtbridge_tick_lateness_seconds":
            return {
                float(s.labels["le"]) * 1000.0: s.value
                for s in family.samples
                if s.name.endswith("_bucket")
            }
    raise RuntimeError("no rtbridge_tick_lateness_seconds in /metrics")


def p99_between(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """The ticks between two scrapes and the bucket bound their 99th percentile falls under."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    p99 = next((b for b, c in zip(bounds, counts, strict=True) if c >= 0.99 * total), None)
    return {"ticks": int(total), "p99_le_ms": p99 if total else None}


class _Cluster:
    """``rtbridge serve --workers N`` with Kamailio in front, and an HTTP client for it."""

    def __init__(self, proc: asyncio.subprocess.Process, data: Path, front: int) -> None:
        self.proc = proc
        self.data = data
        self.front = front
        self.http = httpx.AsyncClient(headers=_AUTH, timeout=15)
        self.state: dict[str, Any] = {}
        self._stderr: asyncio.Task[bytes] | None = None
        self._stdout: asyncio.Task[bytes] | None = None

    @classmethod
    async def start(cls, workers: int, calls: int, agent_url: str, tmp: Path) -> _Cluster:
        data, front = tmp / "data", free_port()
        rtp = free_range(4 * calls + 16 * workers)
        env = {
            **child_env(),
            "RTBRIDGE_API_KEY": _KEY,
            "RTBRIDGE_SERVER__DATA_DIR": str(data),
            "RTBRIDGE_SERVER__LOG_LEVEL": "warning",
            "RTBRIDGE_UPSTREAM__URL": agent_url,  # every profile's, none set its own
            "RTBRIDGE_CALLS__RTP_HOST": "127.0.0.1",
            "RTBRIDGE_CALLS__RTP_PORT_MIN": str(rtp),
            "RTBRIDGE_CALLS__RTP_PORT_MAX": str(rtp + 4 * calls + 16 * workers - 2),
            "RTBRIDGE_CALLS__MAX_CALLS": str(calls + 4),
            "RTBRIDGE_SIP__BIND_HOST": "127.0.0.1",
            "RTBRIDGE_SIP__CODECS": '["PCMU", "PCMA"]',
            "RTBRIDGE_CLUSTER__KAMAILIO": "true",
            "RTBRIDGE_CLUSTER__PROBE_INTERVAL_S": "1",
            "RTBRIDGE_CLUSTER__WORKER_SIP_PORT_MIN": str(free_range(workers, 20000, 30000)),
            "RTBRIDGE_CLUSTER__WORKER_HTTP_PORT_MIN": str(free_range(workers, 20000, 30000)),
        }
        args = ["serve", "--workers", str(workers), "--sip-port", str(front)]
        args += ["--http-port", str(free_port())]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge.cli",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        cluster = cls(proc, data, front)
        assert proc.stdout is not None and proc.stderr is not None
        cluster._stderr = asyncio.create_task(proc.stderr.read())
        try:
            async with asyncio.timeout(120):
                while line := await proc.stdout.readline():
                    if _LISTEN.search(line):
                        break
                else:
                    raise RuntimeError(f"rtbridge serve exited: {await cluster.stderr_tail()}")
            # drain the banner's rest: a full pipe would stall the supervisor
            cluster._stdout = asyncio.create_task(proc.stdout.read())
            cluster.state = json.loads((data / "cluster" / "state.json").read_text())
            if not cluster.state.get("kamailio"):
                raise RuntimeError("Kamailio did not start (is it installed?)")
            await cluster.wait_dispatchable()
        except BaseException:
            await cluster.stop()
            raise
        return cluster

    async def stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(Exception):
            return (await asyncio.wait_for(self._stderr, 5)).decode(errors="replace")[-2000:]
        return ""

    @property
    def workers(self) -> dict[str, dict[str, Any]]:
        workers: dict[str, dict[str, Any]] = self.state["workers"]
        return workers

    async def wait_dispatchable(self) -> None:
        """Every worker ready, and Kamailio's OPTIONS probe (every 1 s) has seen them."""
        for w in self.workers.values():
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await self.http.get(w["control_url"] + "/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)

    async def live(self) -> dict[str, list[str]]:
        """The ids of the active calls of each worker."""
        out = {}
        for name, w in self.workers.items():
            r = await self.http.get(w["control_url"] + "/v1/calls", params={"state": "active"})
            r.raise_for_status()
            out[name] = [c["id"] for c in r.json()["data"]]
        return out

    async def lateness(self) -> dict[str, dict[float, float]]:
        out = {}
        for name, w in self.workers.items():
            r = await self.http.get(w["control_url"] + "/metrics")
            r.raise_for_status()
            out[name] = tick_lateness_histogram(r.text)
        return out

    async def hangup(self, live: dict[str, list[str]]) -> None:
        for name, ids in live.items():
            url = self.workers[name]["control_url"]
            for call_id in ids:
                with contextlib.suppress(httpx.HTTPError):
                    await self.http.post(f"{url}/v1/calls/{call_id}/hangup")

    async def stop(self) -> None:
        await self.http.aclose()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)  # no drain: the calls are hung up already
        await terminate(self.proc, timeout=30)


async def _run(workers: int, calls: int, seconds: float, agent: Any, tone: Path, tmp: Path) -> Any:
    agent_proc, agent_url = agent
    hold = calls / CALL_RATE + SETUP_GRACE_S + SETTLE_S + seconds + 30
    cluster = await _Cluster.start(workers, calls, agent_url, tmp)
    load = Load(calls, hold, tone, tmp, routed=True)
    kamailio = _children(int(cluster.state["kamailio"]))
    kamailio_run0 = _kamailio_seconds(kamailio)
    try:
        await load.start(cluster.front)
        assert load.proc is not None
        deadline = asyncio.get_running_loop().time() + load.ramp_s + SETUP_GRACE_S
        live = await cluster.live()
        while sum(map(len, live.values())) < calls and load.running:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
            live = await cluster.live()
        await asyncio.sleep(SETTLE_S)

        pids = {name: int(w["pid"]) for name, w in cluster.workers.items()}
        pids |= {"sipp": load.proc.pid, "agent": agent_proc.pid}
        late0 = await cluster.lateness()
        kamailio0 = _kamailio_seconds(kamailio)
        window = CpuWindow(pids)
        await asyncio.sleep(seconds)
        wall, cpu = window.close()
        kamailio_cpu = _kamailio_seconds(kamailio) - kamailio0
        late1 = await cluster.lateness()
        after = await cluster.live()
        # a call counts for the window if it was up at both ends of it
        per_worker = {n: len(set(live[n]) & set(after[n])) for n in cluster.workers}
        await cluster.hangup(after)
        sipp = await load.finish()
        kamailio_run_s = _kamailio_seconds(kamailio) - kamailio_run0
    except BaseException as exc:
        exc.add_note(f"rtbridge serve stderr: {await cluster.stderr_tail()}")
        raise
    finally:
        await load.kill()
        await cluster.stop()

    total = sum(per_worker.values())
    worker_cpu = {n: cpu_figures(cpu[n], wall, per_worker[n]) for n in cluster.workers}
    counts = list(per_worker.values())
    return {
        "workers": workers,
        "calls_requested": calls,
        "calls_up": total,
        "calls_per_worker": per_worker,
        "balance": round(min(counts) / max(counts), 3) if max(counts) else 0.0,
        "cpu_per_worker": worker_cpu,
        # an event loop that wakes for fewer packets at a time pays its per-wake-up cost
        # (epoll, the loop's own step) more often per call: the fixed part of a worker's cost
        "loop_wakeups_per_call_s": {
            n: round(window.wakeups_per_s[n] / max(1, per_worker[n]), 2) for n in cluster.workers
        },
        "cpu_all_workers": cpu_figures(sum(cpu[n] for n in cluster.workers), wall, total),
        "tick_lateness_ms": {n: p99_between(late0[n], late1[n]) for n in cluster.workers},
        "kamailio": {
            "processes": len(kamailio),
            **cpu_figures(kamailio_cpu, wall, total),
            # every SIP message of the run: INVITE to BYE, and the probes meanwhile
            "whole_run_cpu_ms_per_call": round(1000 * kamailio_run_s / max(1, calls), 3),
        },
        "context_cpu_pct_of_core": {k: round(100 * cpu[k] / wall, 1) for k in ("sipp", "agent")},
        "machine": window.machine,
        "sipp": sipp,
    }


async def _bench(calls: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "cluster",
        "calls": calls,
        "seconds": seconds,
        "call_rate_cps": CALL_RATE,
        "cpus": os.cpu_count(),
        "workload": "u-law 20 ms RTP through Kamailio, 1 s tone / 1 s silence looped; "
        "the agent parrots turns (pass-through)",
    }
    with tempfile.TemporaryDirectory(prefix="rtbridge-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        tone = tone_file(tmp / "tone.ulaw")
        agent = await start_agent("pcm16,g711_ulaw,g711_alaw", tmp)
        try:
            for n in WORKER_COUNTS:
                run_tmp = tmp / f"workers-{n}"
                run_tmp.mkdir()
                result[f"workers_{n}"] = await _run(n, calls, seconds, agent, tone, run_tmp)
        finally:
            await terminate(agent[0])
    one, two = result["workers_1"], result["workers_2"]
    base = one["cpu_all_workers"]["pct_of_core_per_call"]
    result["comparison"] = {
        "cpu_per_call_2_over_1": (
            round(two["cpu_all_workers"]["pct_of_core_per_call"] / base, 3) if base else None
        ),
        "balance_2_workers": two["balance"],
        "kamailio_cpu_ms_per_call": {
            "workers_1": one["kamailio"]["whole_run_cpu_ms_per_call"],
            "workers_2": two["kamailio"]["whole_run_cpu_ms_per_call"],
        },
    }
    with contextlib.suppress(OSError):
        result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    calls = getattr(args, "calls", None) or 50
    seconds = getattr(args, "seconds", None) or 20.0
    return asyncio.run(_bench(int(calls), float(seconds)))
