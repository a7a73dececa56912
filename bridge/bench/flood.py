"""``rtbridge bench flood``: a normal call's set-up time and audio pacing, quiet and under a flood.

rtbridge runs in a process of its own (:mod:`bridge.bench._sip_worker`) in front of the local
agent in another, with a trunk that admits 127.0.0.1 (SIPp) and TCP beside UDP. Twice, with a
fresh rtbridge each time:

* ``quiet``: SIPp places ``--calls`` normal calls (default 5), each streaming u-law RTP (1 s of
  tone, 1 s of silence, looped: the agent answers every turn);
* ``flood``: the same calls while attackers, each a process of its own
  (:mod:`bridge.bench._flood`) on another 127.0.0.x address, send INVITEs with distinct
  Call-IDs (``--rate`` a second in all, default 1000, from 8 sources), 58 KB Via datagrams (30
  a second from a trusted and a stranger's address: the issue's probe) and open idle TCP
  connections holding half a header (200, from 25 sources): four processes in all.

For each: the call set-up time (SIPp's INVITE sent -> 200 received, per call, ``-trace_rtt``)
and, over a ``--seconds`` window (default 10) once the calls are up, the RTP send-interval
jitter of the agent audio (``|interval between two sends - 20 ms|`` per call, the
:mod:`bridge.bench._probe` figure), the frame ticker's lateness and rtbridge's CPU, side by
side. The attackers run at a lower priority (nice 10): on the Internet their CPU is elsewhere,
and on one box with two cores they would otherwise starve everything else. The flood
case adds what the attackers saw (responses per INVITE: refused INVITEs get at most one, and a
blocked source none) and what rtbridge counted (dropped unparsed, blocked, strangers, refused
connections, security events).

Targets (issue 12): the p99 send jitter under flood within 2 ms of the quiet one, and at most
one response per refused INVITE (``targets``). The machine is shared: ``machine`` says how
busy it was; a busy machine moves both cases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.bench._flood import Attacker
from bridge.bench._harness import (
    CALL_RATE,
    SETTLE_S,
    SETUP_GRACE_S,
    Load,
    busy_pct,
    machine_ticks,
    start_agent,
    start_worker,
    terminate,
    tone_file,
    wait_all_up,
)
from bridge.bench._probe import percentiles
from bridge.bench._proc import cpu_seconds
from bridge.config import Settings

__all__ = ["run"]

TRUNK = {"name": "bench", "host": "127.0.0.1", "inbound_allow": ["127.0.0.1/32"]}
INVITE_SOURCES = 8
IDLE_SOURCES = 25
IDLE_PER_SOURCE = 8  # the default per-source connection cap
VIA_RATE = 30.0
#: The attackers run at a lower priority: their own CPU would be on other machines.
ATTACKER_NICE = 10


async def _attack(ports: dict[str, int], seconds: float, rate: float) -> list[Attacker]:
    """Four processes: the INVITE flood, Via datagrams from a trusted and from a stranger's
    address, idle TCP connections."""
    invite_sources = ",".join(f"127.0.1.{i + 1}" for i in range(INVITE_SOURCES))
    idle_sources = ",".join(f"127.0.3.{i + 1}" for i in range(IDLE_SOURCES))
    udp, tcp = ports["udp"], ports["tcp"]
    plan: list[tuple[str, int, dict[str, str]]] = [  # kind, port, options
        ("invites", udp, {"source": invite_sources, "rate": f"{rate:g}"}),
        ("vias", udp, {"source": "127.0.0.1", "rate": f"{VIA_RATE:g}"}),  # trusted: bounds only
        ("vias", udp, {"source": "127.0.2.1", "rate": f"{VIA_RATE:g}"}),
        ("hold", tcp, {"source": idle_sources}),
    ]
    count = {"hold": IDLE_SOURCES * IDLE_PER_SOURCE}
    return [
        await Attacker.start(
            kind,
            port,
            count=count.get(kind, 10**9),
            seconds=seconds,
            nice=ATTACKER_NICE,
            **options,
        )
        for kind, port, options in plan
    ]


def _setup_ms(tmp: Path) -> dict[str, float | int]:
    """SIPp's response times (INVITE -> 200) from its ``-trace_rtt`` files."""
    values: list[float] = []
    for path in tmp.glob("*_rtt.csv"):
        with path.open() as f:
            for row in csv.reader(f, delimiter=";"):
                with contextlib.suppress(ValueError, IndexError):
                    values.append(float(row[1]))
    return percentiles(values, 1)


async def _case(
    agent_url: str, calls: int, seconds: float, flood_rate: float | None, tone: Path, tmp: Path
) -> dict[str, Any]:
    tmp.mkdir()
    attack_s = calls / CALL_RATE + SETUP_GRACE_S + SETTLE_S + seconds + 10
    hold = attack_s + 5
    child = await start_worker(agent_url, calls, tmp, sip={"trunks": [TRUNK]})
    load = Load(calls, hold, tone, tmp, extra=("-trace_rtt", "-rtt_freq", "1"))
    attackers: list[Attacker] = []
    try:
        ports = {k: int(v) for k, v in child.ready["ports"].items()}
        if flood_rate is not None:
            attackers = await _attack(ports, attack_s, flood_rate)
            await asyncio.sleep(2.0)  # the flood is on, its sources blocked, the caps full
        started = time.monotonic()
        await load.start(ports["udp"])
        up = await wait_all_up(child, load)
        setup_window_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        before = await child.ask("snapshot before")
        await child.ask("arm")
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu_pct = 100.0 * (cpu_seconds(child.pid) - cpu0) / (time.monotonic() - t0)
        snap = await child.ask("snapshot latency")
        defences = await child.ask("defences")
        await child.ask(f"hangup {max(20.0, calls / 10)}", timeout=max(60.0, calls / 5))
        sipp = await load.finish()
        attack = [await a.result(attack_s + 30) for a in attackers]
        await child.stop()
    except BaseException as exc:
        exc.add_note(f"worker stderr: {child.stderr_tail()}")
        raise
    finally:
        for a in attackers:
            await a.kill()
        await load.kill()
        await child.stop()
    probe = snap["probe"]
    result: dict[str, Any] = {
        "calls_up": up,
        "setup_ms": _setup_ms(tmp),
        "setup_window_s": round(setup_window_s, 2),
        "rtp_send_interval_jitter_ms": probe["rtp_send_interval_jitter_ms"],
        "tick_lateness_ms": snap["tick_lateness_ms"],
        "ticker_reanchors": {  # the grid restarted after a stall of more than 3 ticks
            "in_window": snap["ticker_reanchors"] - before["ticker_reanchors"],
            "since_start": snap["ticker_reanchors"],
        },
        "rtbridge_cpu_pct_of_core": round(cpu_pct, 1),
        "gc": snap["gc"],
        "sipp": sipp,
    }
    if attackers:
        invites, vias_trusted, vias_stranger, held = attack
        result["attack"] = {
            "invites": {
                "sent": invites.get("sent", 0),
                "per_s": round(invites.get("sent", 0) / attack_s, 1),
                "responses": invites.get("responses", 0),
                "responses_per_invite": invites.get("responses_per_request", 0.0),
                "statuses": invites.get("statuses", {}),
            },
            "via_datagrams": {
                "sent": vias_trusted.get("sent", 0) + vias_stranger.get("sent", 0),
                "responses": vias_trusted.get("responses", 0) + vias_stranger.get("responses", 0),
            },
            "idle_tcp": {
                k: held.get(k) for k in ("attempted", "reset_at_once", "closed_later", "still_open")
            },
        }
        result["rtbridge"] = defences
    return result


async def _bench(calls: int, seconds: float, rate: float) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "flood",
        "calls": calls,
        "seconds": seconds,
        "flood": {
            "invites_per_s": rate,
            "invite_sources": INVITE_SOURCES,
            "via_datagrams_per_s": 2 * VIA_RATE,
            "idle_tcp_connections": IDLE_SOURCES * IDLE_PER_SOURCE,
        },
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="rtbridge-bench-flood-") as tmp_name:
        tmp = Path(tmp_name)
        tone = tone_file(tmp / "tone.ulaw")
        agent, agent_url = await start_agent("pcm16,g711_ulaw,g711_alaw", tmp)
        try:
            machine0 = machine_ticks()
            quiet = await _case(agent_url, calls, seconds, None, tone, tmp / "quiet")
            flood = await _case(agent_url, calls, seconds, rate, tone, tmp / "flood")
            result["machine_busy_pct"] = busy_pct(machine0, machine_ticks())
        finally:
            await terminate(agent)
    result["quiet"], result["under_flood"] = quiet, flood
    q, f = quiet["rtp_send_interval_jitter_ms"], flood["rtp_send_interval_jitter_ms"]
    delta = round(float(f["p99"]) - float(q["p99"]), 2)
    per_invite = flood.get("attack", {}).get("invites", {}).get("responses_per_invite", 0.0)
    result["side_by_side"] = {
        "setup_ms_p50": [quiet["setup_ms"]["p50"], flood["setup_ms"]["p50"]],
        "setup_ms_p99": [quiet["setup_ms"]["p99"], flood["setup_ms"]["p99"]],
        "jitter_ms_p50": [q["p50"], f["p50"]],
        "jitter_ms_p99": [q["p99"], f["p99"]],
    }
    result["targets"] = {
        "p99_jitter_delta_ms": delta,
        "p99_jitter_within_2_ms": delta <= 2.0,
        "responses_per_invite": per_invite,
        "at_most_one_response_per_invite": per_invite <= 1.0,
    }
    with contextlib.suppress(OSError):
        result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return result


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    calls = getattr(args, "calls", None) or 5
    seconds = getattr(args, "seconds", None) or 10.0
    rate = getattr(args, "rate", None) or 1000.0
    return asyncio.run(_bench(int(calls), float(seconds), float(rate)))
