"""``rtbridge bench relay``: what the WebSocket relay adds per event.

The relay runs as a real ``rtbridge serve`` subprocess in front of a scripted upstream; the load
generator and the upstream run in this process, so the relay's CPU (read from /proc) is its own.

Figures, for a GA upstream (frames forwarded unchanged) and a beta upstream (every frame parsed
and translated):

* ``append_added_latency_us``: p50/p90/p99 of (client -> relay -> upstream) minus
  (client -> upstream directly) for one 20 ms PCM16 24 kHz append at a time;
* ``append_cpu_us``: relay CPU per append in a burst;
* ``delta_cpu_us``: relay CPU per 100 ms ``response.output_audio.delta`` (upstream -> client).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bridge.bench._proc import cpu_seconds
from bridge.config import Settings

__all__ = ["run"]

KEY = "rtb_bench_relay"
APPEND = (
    '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(bytes(960)).decode() + '"}'
)
DELTA = (
    '{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1",'
    '"item_id":"item_1","output_index":0,"content_index":0,"delta":"'
    + base64.b64encode(bytes(4800)).decode()
    + '"}'
)
BETA_DELTA = DELTA.replace("response.output_audio.delta", "response.audio.delta")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class _Upstream:
    def __init__(self) -> None:
        self.got: asyncio.Queue[None] = asyncio.Queue()
        self.delta_frame = DELTA
        self.burst: asyncio.Queue[int] = asyncio.Queue()

    async def handler(self, ws: ServerConnection) -> None:
        async def sender() -> None:
            while True:
                n = await self.burst.get()
                for _ in range(n):
                    await ws.send(self.delta_frame)

        task = asyncio.create_task(sender())
        try:
            await ws.send('{"type":"session.created","event_id":"e0","session":{}}')
            async for _ in ws:
                self.got.put_nowait(None)
        finally:
            task.cancel()


async def _ping_pong(ws: ClientConnection, up: _Upstream, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await ws.send(APPEND)
        await up.got.get()
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


async def _measure(dialect: str, appends: int, deltas: int, pings: int) -> dict[str, Any]:
    up = _Upstream()
    if dialect == "beta":
        up.delta_frame = BETA_DELTA
    async with serve(up.handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        up_port = next(iter(server.sockets)).getsockname()[1]
        up_url = f"ws://127.0.0.1:{up_port}/v1/realtime"
        env = {**os.environ, "RTBRIDGE_API_KEY": KEY, "RTBRIDGE_SERVER__LOG_LEVEL": "warning"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge.cli",
            "serve",
            "--http-port",
            "0",
            "--upstream",
            up_url,
            "--upstream-dialect",
            dialect,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            relay_url = line.split("listening on ", 1)[1].strip().replace("http", "ws")
            async with connect(up_url, compression=None, max_size=None) as direct:
                await direct.recv()
                await _ping_pong(direct, up, 50)
                direct_lat = await _ping_pong(direct, up, pings)
            async with connect(
                relay_url + "/v1/realtime",
                compression=None,
                max_size=None,
                additional_headers={"Authorization": f"Bearer {KEY}"},
            ) as ws:
                await ws.recv()
                await _ping_pong(ws, up, 50)
                relay_lat = await _ping_pong(ws, up, pings)

                cpu0 = cpu_seconds(proc.pid)
                for _ in range(appends):
                    await ws.send(APPEND)
                for _ in range(appends):
                    await up.got.get()
                append_cpu = (cpu_seconds(proc.pid) - cpu0) / appends * 1e6

                cpu0 = cpu_seconds(proc.pid)
                up.burst.put_nowait(deltas)
                for _ in range(deltas):
                    await ws.recv()
                delta_cpu = (cpu_seconds(proc.pid) - cpu0) / deltas * 1e6
        finally:
            proc.terminate()
            await proc.wait()
    base = statistics.median(direct_lat)
    added = [x - base for x in relay_lat]
    return {
        "append_added_latency_us": {
            "p50": round(_pct(added, 0.50), 1),
            "p90": round(_pct(added, 0.90), 1),
            "p99": round(_pct(added, 0.99), 1),
        },
        "direct_round_trip_us_p50": round(base, 1),
        "append_cpu_us": round(append_cpu, 2),
        "delta_cpu_us": round(delta_cpu, 2),
        "appends": appends,
        "deltas": deltas,
    }


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    scale = max(0.1, (args.seconds or 10) / 10)
    appends, deltas, pings = int(20000 * scale), int(5000 * scale), int(1000 * scale)
    result: dict[str, Any] = {
        "benchmark": "relay",
        "cpu_clock_ticks_per_s": os.sysconf("SC_CLK_TCK"),
    }
    for dialect in ("ga", "beta"):
        result[dialect] = asyncio.run(_measure(dialect, appends, deltas, pings))
    return result
