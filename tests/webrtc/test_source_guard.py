"""A stranger who sprays a browser call's ICE port with unauthenticated DTLS fatal alerts while
the call connects cannot kill its handshake (before: 3 calls of 3 ended before their media
started): DTLS and SRTP are taken only from addresses ICE vouched for, and the rest is counted."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

from bridge.webrtc.peer import ClientPeer
from tests.webrtc.conftest import Bridge, post_offer

#: DTLS 1.2, epoch 0, an alert record: fatal (2) handshake_failure (40)
ALERT = b"\x15\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x28"


async def test_a_stranger_spraying_dtls_alerts_cannot_kill_the_handshake(bridge: Bridge) -> None:
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.9", 0))
    stranger.setblocking(False)
    peer = ClientPeer()
    spraying = True
    try:
        r = await post_offer(bridge, await peer.offer())
        assert r.status_code == 201, r.text
        port_match = re.search(r"m=audio (\d+)", r.text)
        assert port_match is not None
        target = ("127.0.0.1", int(port_match.group(1)))
        call_id = r.headers["location"].rsplit("/", 1)[-1]

        async def spray() -> None:
            while spraying:
                for _ in range(5):
                    with contextlib.suppress(BlockingIOError):
                        stranger.sendto(ALERT, target)
                await asyncio.sleep(0.002)

        sprayer = asyncio.create_task(spray())
        await peer.accept(r.text)
        async with asyncio.timeout(15):
            await peer.wait_event("session.created")  # the data channel is up: DTLS held
        spraying = False
        await sprayer
        call = bridge.manager.calls.get(call_id)
        assert call is not None, "the call ended"
        stats = call.stats()
        assert stats["foreign_datagrams"] > 0
        # the browser call's media counters of this stop's bounds are reported too
        assert stats["agent_audio_dropped_ms"] == 0 and stats["packets_over_rate"] == 0
    finally:
        spraying = False
        stranger.close()
        await peer.close()
