"""The small lifecycle holes, closed: a peer's REFER is refused (403, a security event) and the
call goes on; a caller who CANCELs while the agent session opens ends the attempt at once, with
its record and a ``call.ended`` (no ghost row); a ringing outbound call can be hung up (CANCEL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.calls.end import EndReason
from bridge.security import SecurityKind
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack
from tests.sip.sipp_support import SCENARIOS, free_port, run_sipp
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")

REFER_IN = """  <send retrans="500">
    <![CDATA[
      REFER sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 REFER
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Refer-To: <sip:+19005550100@198.51.100.7>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="403"/>
"""


async def test_a_peers_refer_is_refused_and_the_call_goes_on(stack: Stack, tmp_path: Path) -> None:
    res = await stack.sipp_caller(
        tmp_path, sc.uac(sc.pause(500), REFER_IN, sc.pause(1000), sc.send_bye(3))
    )
    assert res.returncode == 0, res.summary()  # 403 for the REFER, then 200 for our BYE
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye"  # the REFER did not end or move the call
    refused = [e.data for e in stack.store.events(record.call_id) if e.kind == "refer.refused"]
    assert refused == [{"refer_to": "<sip:+19005550100@198.51.100.7>"}]
    (event,) = stack.manager.security.recent(kinds=[SecurityKind.REFUSED_REQUEST])
    assert event.call_id == record.call_id and "198.51.100.7" in event.detail


@pytest.fixture
async def tarpit() -> AsyncIterator[str]:
    """An upstream that accepts the TCP connection and never answers the handshake."""

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            w.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.close()


@pytest.fixture
def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    if "tarpit" in request.fixturenames:
        url = request.getfixturevalue("tarpit")
        return {"profile": {"upstream": {"url": url, "connect_timeout_s": 30}}}
    return {"profile": {"dial_targets": ["sip:*@127.0.0.1:*"]}}


async def test_cancel_while_the_agent_session_opens_ends_the_attempt_at_once(
    tarpit: str, stack: Stack, tmp_path: Path
) -> None:
    lifecycle = stack.manager.lifecycle.subscribe()
    res = await run_sipp(
        require_peer("sipp"),
        "-sf",
        str(SCENARIOS / "uac_cancel.xml"),
        f"127.0.0.1:{stack.sip_port}",
        "-m",
        "1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        cwd=tmp_path,
        timeout=60,
    )
    assert res.returncode == 0, res.summary()  # 180, CANCEL answered 200, INVITE 487
    async with asyncio.timeout(10):  # well before the 30 s connect timeout: not waited out
        kinds: list[Any] = []
        while "call.ended" not in kinds:
            event = await lifecycle.get()
            assert event is not None
            kinds.append(event["type"])
            ended = event
    assert ended["reason"] == EndReason.CANCELLED
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert (record.state, record.end_reason) == ("ended", "cancelled")
    assert stack.manager.ports.in_use == 0 and not stack.manager.calls


async def test_a_ringing_outbound_call_can_be_hung_up(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    callee = asyncio.create_task(
        run_sipp(
            require_peer("sipp"),
            "-sf",
            str(Path(__file__).parent / "scenarios" / "uas_ring_until_cancel.xml"),
            "-m",
            "1",
            "-p",
            str(port),
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)  # let SIPp bind
    call_id = await stack.sip_leg.originate(f"sip:ring@127.0.0.1:{port}")
    async with asyncio.timeout(10):
        while not [e for e in stack.store.events(call_id) if e.kind == "ringing"]:
            await asyncio.sleep(0.05)
    assert stack.manager.hangup(call_id, EndReason.API_HANGUP)  # ringing: CANCEL
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert (result.outcome, result.sip_status) == ("api-hangup", 487)
    res = await callee
    assert res.returncode == 0, res.summary()  # the callee got our CANCEL and ACK
    await stack.manager.wait_idle()
    stack.store.flush()
    record = stack.store.get_call(call_id)
    assert record is not None and record.end_reason == "api-hangup"
    assert stack.manager.ports.in_use == 0
