"""The sideband on a live browser call: several observers, audio deltas only when asked,
client events into the call, a slow observer told about what it missed, and the handshake's
refusals (no key, wrong key, no such call)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bridge.webrtc.peer import ClientPeer
from bridge.webrtc.sideband import DROPPED_EVENT, QUEUE
from media.resample import Resampler
from tests.support.audio import voiced_signal
from tests.webrtc.conftest import KEY, Bridge, place_call


async def _place_call(bridge: Bridge) -> tuple[ClientPeer, str]:
    peer = ClientPeer()
    call_id = await place_call(bridge, peer)
    async with asyncio.timeout(20):
        await peer.wait_event("session.created")
    return peer, call_id


def _ws_url(bridge: Bridge, query: str) -> str:
    return bridge.url.replace("http://", "ws://") + "/v1/realtime?" + query


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return event


async def _until(ws: ClientConnection, kind: str) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(20):
        while kind not in seen:
            seen.append((await _recv(ws))["type"])
    return seen


async def test_observers_audio_client_events_and_drops(bridge: Bridge) -> None:
    peer, call_id = await _place_call(bridge)
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        async with (
            connect(_ws_url(bridge, f"call_id={call_id}"), additional_headers=auth) as plain,
            connect(
                _ws_url(bridge, f"call_id={call_id}&include_audio=true"),
                additional_headers=auth,
                max_size=None,
            ) as audio,
        ):
            for ws in (plain, audio):
                first = await _recv(ws)
                assert first["type"] == "session.created"
                assert first["session"]["audio"]["input"]["format"]["type"] == "audio/pcm"
            r = Resampler(24000, 48000)
            peer.mic.play(np.concatenate([r.process(voiced_signal(1.0)), r.flush()]))
            plain_seen = await _until(plain, "response.done")
            audio_seen = await _until(audio, "response.done")
            assert "response.output_audio.delta" not in plain_seen
            assert "response.output_audio.delta" in audio_seen
            assert "output_audio_buffer.started" in plain_seen  # the leg's own playout events

            # a client event on the sideband goes into the call: the browser sees its effect
            mark = len(peer.events)
            await plain.send(json.dumps({"type": "response.create"}))
            async with asyncio.timeout(20):
                await peer.wait_event("response.created", after=mark)
            await _until(plain, "response.done")

            # a slow observer: the call publishes far more than its queue while it does not
            # read; the call never waits for it, and it learns how many events it missed
            call = bridge.manager.calls[call_id]
            flood = 3 * QUEUE
            for i in range(flood):
                call.events.publish({"type": "rtbridge.test.flood", "i": i})
            got: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while len(got) < QUEUE + 10:
                    got.append(await _recv(audio))
                    if got[-1]["type"] == DROPPED_EVENT:
                        break
            assert got[-1]["type"] == DROPPED_EVENT
            assert got[-1]["dropped"] >= flood - QUEUE
            # then what its queue held: the oldest events, in order, none skipped
            held = [await _recv(audio) for _ in range(QUEUE)]
            flooded = [e["i"] for e in held if e["type"] == "rtbridge.test.flood"]
            assert flooded == list(range(len(flooded)))
            assert len(flooded) > QUEUE // 2
            # the call itself went on: the browser still gets answers
            mark = len(peer.events)
            await plain.send(json.dumps({"type": "response.create"}))
            async with asyncio.timeout(20):
                await peer.wait_event("response.done", after=mark)
    finally:
        await peer.close()


async def test_sideband_session_update_keeps_the_leg_format(bridge: Bridge) -> None:
    peer, call_id = await _place_call(bridge)
    try:
        client = AsyncOpenAI(base_url=f"{bridge.url}/v1", api_key=KEY)
        async with client.realtime.connect(call_id=call_id) as sideband:
            assert (await sideband.recv()).type == "session.created"
            await sideband.session.update(
                session={
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {"output": {"format": {"type": "audio/pcmu"}}},
                }
            )
            async with asyncio.timeout(10):
                while (ev := await sideband.recv()).type != "session.updated":
                    pass
            session = bridge.agent.sessions[-1].session
            assert session["instructions"] == "Be brief."
            assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
            del ev
        await peer.close()
        async with asyncio.timeout(15):
            while call_id in bridge.manager.calls:
                await asyncio.sleep(0.05)
        with pytest.raises(InvalidStatus) as gone:
            async with connect(
                _ws_url(bridge, f"call_id={call_id}"),
                additional_headers={"Authorization": f"Bearer {KEY}"},
            ):
                pass
        assert gone.value.response.status_code == 404
    finally:
        await peer.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": f"Bearer {KEY}"}, 404)],
)
async def test_sideband_refusals(bridge: Bridge, headers: dict[str, str], status: int) -> None:
    with pytest.raises(InvalidStatus) as exc:
        async with connect(_ws_url(bridge, "call_id=call_unknown"), additional_headers=headers):
            pass
    assert exc.value.response.status_code == status


async def test_ephemeral_key_cannot_open_a_sideband(bridge: Bridge) -> None:
    peer, call_id = await _place_call(bridge)
    try:
        secret = await AsyncOpenAI(
            base_url=f"{bridge.url}/v1", api_key=KEY
        ).realtime.client_secrets.create()
        with pytest.raises(InvalidStatus) as exc:
            async with connect(
                _ws_url(bridge, f"call_id={call_id}"),
                additional_headers={"Authorization": f"Bearer {secret.value}"},
            ):
                pass
        assert exc.value.response.status_code == 401
    finally:
        await peer.close()
