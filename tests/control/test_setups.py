"""Calls still being set up (ringing while the agent connects) are calls to the API and to a
drain: a hang-up stops one, a drain's limit stops them, and their records say why.

The agent here is an upstream that accepts the connection and never answers (a stalled
provider), so every inbound call stays in set-up until something stops it. Before, the API
answered 409 "has ended" for such a call, which was then answered anyway; a drain ended only
live calls and left the set-up's record open."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sip.message import Request, Response, parse_message
from tests.control.conftest import Control
from tests.sip.sipp_support import UdpClient, open_client


@pytest.fixture
def stack_options() -> Iterator[dict[str, Any]]:
    stalled = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    port = stalled.getsockname()[1]
    yield {
        "profile": {"upstream": {"url": f"ws://127.0.0.1:{port}/v1/realtime"}},
        "calls": {"session_ready_timeout_s": 60},
    }
    stalled.close()


SDP = (
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n"
)


def _invite(client: UdpClient, n: int) -> Request:
    request = parse_message(
        (
            f"INVITE sip:bot@127.0.0.1:{client.peer[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bKsetup{n};rport\r\n"
            f"From: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:bot@127.0.0.1>\r\n"
            f"Call-ID: setup-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:alice@127.0.0.1:{client.port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}"
        ).encode()
    )
    assert isinstance(request, Request)
    return request


async def _ringing(control: Control, n: int) -> tuple[asyncio.Task[Response | None], str]:
    """An inbound call left ringing (its agent never connects): the INVITE's final answer to
    come, and the call's id."""
    _, client = await open_client(control.stack.sip.ports["udp"])
    answer = asyncio.create_task(client(_invite(client, n)))
    async with asyncio.timeout(20):
        while True:
            calls = (await control.client.get("/v1/calls")).json()["data"]
            ringing = [c["id"] for c in calls if c["state"] == "setting_up"]
            if ringing:
                return answer, ringing[0]
            await asyncio.sleep(0.05)


async def _record(control: Control, call_id: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            view: dict[str, Any] = (await control.client.get(f"/v1/calls/{call_id}")).json()
            if view["state"] == "ended":
                return view
            await asyncio.sleep(0.05)


async def test_the_api_hangs_up_a_call_still_being_set_up(control: Control) -> None:
    answer, call_id = await _ringing(control, 1)
    r = await control.client.post(f"/v1/calls/{call_id}/dtmf", json={"digits": "1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_ringing", r.text
    r = await control.client.post(f"/v1/calls/{call_id}/hangup")
    assert r.status_code == 200 and r.json()["status"] == "ending", r.text
    final = await asyncio.wait_for(answer, 30)
    assert final is not None and 400 <= final.status < 500  # declined, never answered
    view = await _record(control, call_id)
    assert view["end_reason"] == "api-hangup"
    manager = control.stack.manager
    assert manager.ports.in_use == 0 and manager.admission() is None  # port and slot back


async def test_a_drain_s_limit_stops_calls_still_being_set_up(control: Control) -> None:
    answer, call_id = await _ringing(control, 2)
    await asyncio.wait_for(control.plane.drain(limit_s=0.5), 30)
    final = await asyncio.wait_for(answer, 30)
    assert final is not None and final.status >= 400
    view = await _record(control, call_id)
    assert view["end_reason"] == "drain-timeout"
    assert control.stack.manager.ports.in_use == 0
