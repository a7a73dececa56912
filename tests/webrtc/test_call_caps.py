"""How many browser calls one party may hold: every set-up counts against ``max_calls`` the
moment it starts (offers sent at once cannot all pass), and one address or one ``ek_`` key
holds at most its share (``max_calls_per_source``, ``max_calls_per_key``), so a browser's key
cannot take every slot from phone callers. A refusal is 429 ``too_many_calls`` with
``Retry-After``, and the slot is free again once a call ends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bridge.calls.end import EndReason
from bridge.webrtc.peer import ClientPeer
from tests.webrtc.conftest import KEY, Bridge, post_offer


@pytest.fixture
def webrtc_options() -> dict[str, Any]:
    return {"max_calls_per_source": 4, "max_calls_per_key": 2}


async def _offers(n: int) -> tuple[list[ClientPeer], list[str]]:
    peers = [ClientPeer() for _ in range(n)]
    return peers, [await p.offer() for p in peers]


async def _post(
    bridge: Bridge, offer: str, key: str = KEY, source: str = "127.0.0.2"
) -> httpx.Response:
    """From ``source``: 127.0.0.1 (a local reverse proxy) is under no per-address cap."""
    return await post_offer(bridge, offer, key, source)


async def _mint(bridge: Bridge) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{bridge.url}/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"session": {"type": "realtime"}},
        )
    assert r.status_code == 200, r.text
    value: str = r.json()["value"]
    return value


def _too_many(r: httpx.Response) -> bool:
    return (
        r.status_code == 429
        and r.json()["error"]["code"] == "too_many_calls"
        and int(r.headers["retry-after"]) > 0
    )


async def test_offers_sent_at_once_cannot_all_pass_max_calls(bridge: Bridge) -> None:
    bridge.manager.settings.calls.max_calls = 3
    peers, offers = await _offers(4)
    try:
        answers = await asyncio.gather(*(_post(bridge, o) for o in offers))
        statuses = sorted(r.status_code for r in answers)
        # before: 4 x 201 (set-ups were counted only once up), each with an upstream session
        assert statuses == [201, 201, 201, 503], [r.text for r in answers]
        assert len(bridge.manager.calls) == 3 and len(bridge.agent.sessions) == 3
    finally:
        for p in peers:
            await p.close()


async def test_one_key_holds_at_most_its_share_of_calls(bridge: Bridge) -> None:
    key, other = await _mint(bridge), await _mint(bridge)
    peers, offers = await _offers(4)
    try:
        first = [await _post(bridge, o, key) for o in offers[:3]]
        assert [r.status_code for r in first[:2]] == [201, 201]
        assert _too_many(first[2]), first[2].text
        assert "this key" in first[2].json()["error"]["message"]
        assert (await _post(bridge, offers[3], other)).status_code == 201  # another key
        # a call of the first key ends: its share has room again
        ended = first[0].headers["location"].rsplit("/", 1)[-1]
        assert bridge.manager.hangup(ended, EndReason.API_HANGUP)
        async with asyncio.timeout(10):
            while ended in bridge.manager.calls:
                await asyncio.sleep(0.05)
        assert (await _post(bridge, offers[2], key)).status_code == 201
    finally:
        for p in peers:
            await p.close()


async def test_one_address_holds_at_most_its_share_of_calls(bridge: Bridge) -> None:
    peers, offers = await _offers(5)
    try:
        answers = [await _post(bridge, o) for o in offers]
        assert [r.status_code for r in answers[:4]] == [201] * 4
        assert _too_many(answers[4]), answers[4].text
        assert "this address" in answers[4].json()["error"]["message"]
        assert len(bridge.manager.calls) == 4
        local = await _post(bridge, offers[4], source="127.0.0.1")
        assert local.status_code == 201, local.text
    finally:
        for p in peers:
            await p.close()
