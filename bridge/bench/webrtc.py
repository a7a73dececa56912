"""``rtbridge bench webrtc``: rtbridge's CPU per browser call.

Three processes, so rtbridge's CPU (read from /proc, all its threads) is its own: the local
agent (``rtbridge agent``), rtbridge (``rtbridge serve --upstream ... --ice-host 127.0.0.1``)
and this load generator, which places ``--calls N`` aiortc calls (``POST /v1/realtime/calls``,
Opus both ways, the ``oai-events`` channel). Each caller talks in a loop: 1.2 s of a voiced,
speech-like signal, then 2.4 s of silence, so the agent's server VAD ends each turn and the
parrot answers: audio flows both ways most of the time, as in a conversation.

Figures: ``cpu_pct_per_call`` (rtbridge's CPU while the calls run, in percent of one core,
divided by the calls; target <= 3), ``idle_cpu_pct`` (the same process before any call) and
``cpu_pct_per_call_above_idle``, the total, the agent's CPU for reference, and sanity figures
from the callers (``heard_ratio``: seconds of audio each caller received per second of
measurement, ~1.0 when rtbridge keeps real time; ``answers``: parrot responses received).
``rss_mb_per_call``: rtbridge's resident memory with the calls up, above its idle
footprint, per call. The callers send pre-encoded Opus and only count what they receive, so
the load generator keeps real time at 20 calls on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from bridge.bench._proc import cpu_seconds, rss_kb
from bridge.config import Settings
from bridge.webrtc.peer import ClientPeer
from media.codecs._pyav import PyAVEncoder

__all__ = ["run"]

KEY = "rtb_bench_webrtc"
TALK_S = 1.2
PAUSE_S = 2.4
IDLE_S = 3.0


def _utterance() -> NDArray[np.int16]:
    """A voiced, pitch-gliding pulse train with a syllabic envelope at 48 kHz."""
    rate = 48000
    t = np.arange(int(TALK_S * rate)) / rate
    pitch = 140 * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t) ** 2
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    y = x * env * ramp
    out: NDArray[np.int16] = (y / np.max(np.abs(y)) * 12000).astype(np.int16)
    return out


async def _spawn(*args: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.cli", *args, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    return proc, line


async def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _call(http: httpx.AsyncClient, url: str) -> ClientPeer:
    peer = ClientPeer(keep_audio=False)
    offer = await peer.offer()
    r = await http.post(
        f"{url}/v1/realtime/calls",
        content=offer,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
    )
    if r.status_code != 201:
        raise RuntimeError(f"call refused: {r.status_code} {r.text}")
    await peer.accept(r.text)
    await asyncio.wait_for(peer.opened.wait(), 30)
    return peer


def _encoded(pcm: NDArray[np.int16]) -> list[bytes]:
    """The utterance as 20 ms Opus payloads, encoded once for every caller."""
    enc = PyAVEncoder("libopus", 48000, 1, 960, 32000, {"application": "voip"})
    frames = len(pcm) // 960
    return [enc.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(frames)]


async def _talk(peer: ClientPeer, utterance: list[bytes], offset: float) -> None:
    await asyncio.sleep(offset)
    while True:
        peer.mic.play_encoded(utterance)
        await asyncio.sleep(TALK_S + PAUSE_S)


async def _measure(calls: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "RTBRIDGE_API_KEY": KEY,
            "RTBRIDGE_SERVER__LOG_LEVEL": "warning",
            "RTBRIDGE_SERVER__DATA_DIR": tmp,
            "RTBRIDGE_CALLS__RTP_TIMEOUT_S": "60",
        }
        agent_port = await _free_port()
        # calls use the default profile's upstream: the agent process, not an in-process one
        env["RTBRIDGE_PROFILES__DEFAULT__UPSTREAM__URL"] = (
            f"ws://127.0.0.1:{agent_port}/v1/realtime"
        )
        agent, _ = await _spawn("agent", "--port", str(agent_port), env=env)
        serve: asyncio.subprocess.Process | None = None
        peers: list[ClientPeer] = []
        talkers: list[asyncio.Task[None]] = []
        try:
            serve, line = await _spawn(
                "serve",
                "--http-port",
                "0",
                "--upstream",
                f"ws://127.0.0.1:{agent_port}/v1/realtime",
                "--ice-host",
                "127.0.0.1",
                env=env,
            )
            url = line.split("listening on ", 1)[1].strip()
            await asyncio.sleep(1.0)
            idle0, ti0 = cpu_seconds(serve.pid), time.monotonic()
            await asyncio.sleep(IDLE_S)  # the process with no calls: ticker, loop, records
            idle = (cpu_seconds(serve.pid) - idle0) / (time.monotonic() - ti0)
            rss_idle = rss_kb(serve.pid)
            utterance = _encoded(_utterance())
            async with httpx.AsyncClient(timeout=60) as http:
                for _ in range(calls):
                    peers.append(await _call(http, url))
            period = TALK_S + PAUSE_S
            talkers = [
                asyncio.create_task(_talk(p, utterance, period * i / calls))
                for i, p in enumerate(peers)
            ]
            await asyncio.sleep(3.0)  # warm-up: every call connected and talking
            heard0 = [p.heard_samples for p in peers]
            answers0 = [_answers(p) for p in peers]
            cpu0, agent0, t0 = cpu_seconds(serve.pid), cpu_seconds(agent.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, agent1, t1 = cpu_seconds(serve.pid), cpu_seconds(agent.pid), time.monotonic()
            rss_calls = rss_kb(serve.pid)
            wall = t1 - t0
            heard = [
                (p.heard_samples - h) / 48000 / wall for p, h in zip(peers, heard0, strict=True)
            ]
            answers = [_answers(p) - a for p, a in zip(peers, answers0, strict=True)]
        finally:
            for task in talkers:
                task.cancel()
            for peer in peers:
                await peer.close()
            for proc in (serve, agent):
                if proc is not None and proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
    cpu = cpu1 - cpu0
    return {
        "calls": calls,
        "seconds": round(wall, 2),
        "cpu_pct_total": round(cpu / wall * 100, 2),
        "cpu_pct_per_call": round(cpu / wall * 100 / calls, 3),
        "idle_cpu_pct": round(idle * 100, 2),
        "cpu_pct_per_call_above_idle": round((cpu / wall - idle) * 100 / calls, 3),
        "rss_mb_idle": round(rss_idle / 1024, 1),
        "rss_mb_per_call": round((rss_calls - rss_idle) / 1024 / calls, 2),
        "agent_cpu_pct_total": round((agent1 - agent0) / wall * 100, 2),
        "heard_ratio_min": round(min(heard), 3),
        "heard_ratio_median": round(statistics.median(heard), 3),
        "answers_per_call_min": min(answers),
        "target_cpu_pct_per_call": 3.0,
    }


def _answers(peer: ClientPeer) -> int:
    return sum(1 for e in peer.events if e.get("type") == "output_audio_buffer.started")


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    calls = args.calls or 1
    seconds = args.seconds or 15.0
    result = asyncio.run(_measure(calls, seconds))
    return {"benchmark": "webrtc", **result}
