"""Keypad digits on a browser call: a data-channel event becomes the call's DTMF, and the
browser sees ``input_audio_buffer.dtmf_event_received`` like a phone caller's client would."""

from __future__ import annotations

import asyncio

from bridge.webrtc.peer import ClientPeer
from tests.webrtc.conftest import Bridge, place_call


async def test_datachannel_digit_reaches_the_agent_as_a_message(bridge: Bridge) -> None:
    peer = ClientPeer()
    try:
        await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        mark = len(peer.events)
        peer.send({"type": "input_audio_buffer.dtmf", "event": "7"})
        async with asyncio.timeout(20):
            echoed = await peer.wait_event("input_audio_buffer.dtmf_event_received", after=mark)
            await peer.wait_event("response.done", after=mark)
        assert echoed["event"] == "7" and isinstance(echoed["received_at"], int)
        session = bridge.agent.sessions[-1]
        assert "conversation.item.create" in session.received_types
        assert "response.create" in session.received_types
        assert "input_audio_buffer.dtmf" not in session.received_types  # handled by rtbridge
    finally:
        await peer.close()
