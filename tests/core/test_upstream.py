"""The upstream writer: order kept across batched writes, back-pressure honoured, nothing lost."""

from __future__ import annotations

import asyncio
import base64
import json

from websockets.asyncio.server import ServerConnection

from bridge.config import UpstreamSettings
from bridge.upstream import UpstreamSession
from tests.support.servers import run_ws_server


async def test_order_kept_and_back_pressure_waits_instead_of_dropping_control() -> None:
    got: list[dict[str, object]] = []
    reading = asyncio.Event()

    async def sink(ws: ServerConnection) -> None:
        await reading.wait()  # stall: the client's transport fills and pauses
        async for msg in ws:
            got.append(json.loads(msg))

    async with run_ws_server(sink) as (_, url):
        up = UpstreamSession(UpstreamSettings(url=url + "/v1/realtime", send_queue=100_000))
        await up.connect()
        n = 3000
        for i in range(n):
            assert up.send_audio(i.to_bytes(4, "big") * 240)  # 960 bytes, numbered
            if i % 500 == 0:
                await up.send({"type": "conversation.item.create", "n": i})
        await asyncio.sleep(0.3)
        assert up.stats.frames_sent < n  # the stalled peer pushed back
        reading.set()
        await up.close()
        for _ in range(1500):  # under load the stalled peer takes its time
            if len(got) == n + n // 500:
                break
            await asyncio.sleep(0.02)
    audio = [
        int.from_bytes(base64.b64decode(str(e["audio"]))[:4], "big")
        for e in got
        if e["type"] == "input_audio_buffer.append"
    ]
    assert audio == list(range(n))  # every append, in order
    marks = [i for i, e in enumerate(got) if e["type"] == "conversation.item.create"]
    assert [got[i]["n"] for i in marks] == list(range(0, n, 500))
    # control event k was sent right after append 500k: 500k + 1 appends and k controls
    assert marks == [501 * k + 1 for k in range(len(marks))]


async def test_an_append_to_an_idle_writer_goes_out_at_once_and_after_queued_events() -> None:
    got: list[dict[str, object]] = []

    async def sink(ws: ServerConnection) -> None:
        async for msg in ws:
            got.append(json.loads(msg))

    async with run_ws_server(sink) as (_, url):
        up = UpstreamSession(UpstreamSettings(url=url + "/v1/realtime"))
        await up.connect()
        await asyncio.sleep(0.05)  # the writer task waits for work
        assert up.send_audio(b"\x01" * 160)
        assert up.stats.frames_sent == 1  # written in this step: no task wake-up to wait for
        # a queued control event the writer has not taken yet: the next append queues behind it
        await up.send({"type": "input_audio_buffer.clear"})
        assert up.send_audio(b"\x02" * 160)
        assert up.stats.frames_sent == 1
        await up.close()
        for _ in range(250):
            if len(got) == 3:
                break
            await asyncio.sleep(0.02)
    kinds = [(e["type"], base64.b64decode(str(e.get("audio", "")))[:1]) for e in got]
    assert kinds == [
        ("input_audio_buffer.append", b"\x01"),
        ("input_audio_buffer.clear", b""),
        ("input_audio_buffer.append", b"\x02"),
    ]
