"""Offers a browser would never send are refused before they cost anything, and a refused
offer leaves nothing behind: no call record setting up for ever, no upstream session open."""

from __future__ import annotations

import asyncio

import httpx

from bridge.webrtc.peer import ClientPeer
from tests.webrtc.conftest import KEY, Bridge, place_call, post_offer

AUTH = {"Authorization": f"Bearer {KEY}"}


async def _offer() -> str:
    peer = ClientPeer()
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def _nothing_left(bridge: Bridge) -> None:
    async with asyncio.timeout(10):
        while any(not s.closed for s in bridge.agent.sessions):
            await asyncio.sleep(0.05)
    assert not bridge.manager.calls
    for record in bridge.store.list_calls():
        assert record.state == "ended", record


async def test_an_offer_bundling_a_missing_mid_is_refused_and_leaves_nothing(
    bridge: Bridge,
) -> None:
    lines = (await _offer()).split("\r\n")
    first, second = (i for i, line in enumerate(lines) if line.startswith("m="))
    broken = "\r\n".join(lines[:first] + lines[second:])  # BUNDLE 0 1 with only mid 1 left
    r = await post_offer(bridge, broken)
    # before: 500, the record setting up for ever and the upstream session open
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_sdp"
    await _nothing_left(bridge)


async def test_an_offer_with_too_many_m_lines_is_refused_before_parsing(bridge: Bridge) -> None:
    sdp = await _offer()
    audio = sdp[sdp.index("m=audio") : sdp.index("m=application")]
    r = await post_offer(bridge, sdp.replace(audio, audio * 9))
    assert r.status_code == 400 and "m-lines" in r.json()["error"]["message"], r.text
    assert not bridge.agent.sessions  # refused before the agent was asked
    await _nothing_left(bridge)


async def test_a_multipart_sdp_part_is_held_to_the_sdp_size_limit(bridge: Bridge) -> None:
    sdp = await _offer()
    padded = sdp + "a=x-pad:" + "p" * (70 * 1024) + "\r\n"  # under the multipart cap
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            f"{bridge.url}/v1/realtime/calls",
            headers=AUTH,
            files={"sdp": (None, padded), "session": (None, "{}")},
        )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"
    assert not bridge.agent.sessions


async def test_a_client_event_over_the_advertised_size_is_refused_and_the_call_goes_on(
    bridge: Bridge,
) -> None:
    peer = ClientPeer()
    try:
        await place_call(bridge, peer)
        async with asyncio.timeout(15):
            await peer.wait_event("session.created")
        mark = len(peer.events)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text"}]}
        item["content"][0]["text"] = "x" * 300_000  # over the 256 KiB in our answer's SDP
        sctp = peer.pc.sctp
        assert sctp is not None
        sctp._remote_max_message_size = 0  # a client that ignores our answer's limit
        peer.send({"type": "conversation.item.create", "item": item})
        async with asyncio.timeout(15):
            error = await peer.wait_event("error", after=mark)
        assert error["error"]["code"] == "too_large"
        item["content"][0]["text"] = "Hello."
        peer.send({"type": "conversation.item.create", "item": item})
        async with asyncio.timeout(15):
            await peer.wait_event("conversation.item.done", after=mark)  # the call goes on
        # before: forwarded whole; only the small one reached the agent now
        assert [text for s in bridge.agent.sessions for _, text in s.texts] == ["Hello."]
    finally:
        await peer.close()
