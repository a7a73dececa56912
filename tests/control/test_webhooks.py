"""``realtime.call.incoming`` end to end: a SIPp call arrives, the test's webhook receiver
verifies the signature with the openai SDK (``client.webhooks.unwrap``) and decides with
OpenAI's call API: accept with a session (the local agent runs with its instructions), reject
(SIPp sees the status after ringing), accept then refer (SIPp sees the REFER). A receiver that
cannot be reached applies the route's fallback."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request, Response

from bridge.config import Route, WebhookSettings
from tests.calls import sipp_scenario as sc
from tests.control.conftest import Control, serve_app, sipp_call
from tests.sip.sipp_support import free_port

pytestmark = pytest.mark.peer("sipp")

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
SECRET_ENV = "RTB_TEST_WEBHOOK_SECRET"

Decide = Callable[[httpx.AsyncClient, str], Awaitable[None]]


@dataclass
class Receiver:
    events: list[Any] = field(default_factory=list)
    raw_headers: list[dict[str, str]] = field(default_factory=list)
    decisions: list[httpx.Response] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@pytest.fixture
async def webhook(
    control: Control, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Receiver, list[Decide]]]:
    """A receiving application; ``decide[0]`` says what it does with each call."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    sdk = openai.AsyncOpenAI(api_key="unused", base_url=control.url + "/v1", webhook_secret=SECRET)
    rec = Receiver()
    decide: list[Decide] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        event = sdk.webhooks.unwrap(body, request.headers)  # raises on a bad signature
        rec.events.append(event)
        rec.raw_headers.append(dict(request.headers))
        assert event.type == "realtime.call.incoming"

        async def act() -> None:
            await decide[0](control.client, event.data.call_id)

        task = asyncio.create_task(act())
        rec.tasks.add(task)
        return Response(status_code=200)

    async with serve_app(app) as url:
        control.stack.settings.webhooks = WebhookSettings(
            url=url + "/hook", secret_env=SECRET_ENV, timeout_s=5, decision_timeout_s=15
        )
        yield rec, decide
        for task in rec.tasks:
            if not task.done():
                task.cancel()
                pytest.fail("the application's decision never finished")
            task.result()  # a decision that failed fails the test
    await sdk.close()


def _reject_caller(status: int) -> str:
    """INVITE; 180 must come first (ringing while the application decides), then ``status``."""
    return sc.uac().replace(
        """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:bot@[remote_ip]:[remote_port] SIP/2.0
""",
        f"""  <recv response="100" optional="true"/>
  <recv response="180"/>
  <recv response="{status}"/>
  <send>
    <![CDATA[
      ACK sip:bot@[remote_ip]:[remote_port] SIP/2.0
""",
    )


async def test_accept_with_a_session_runs_the_call_with_it(
    control: Control, webhook: tuple[Receiver, list[Decide]], tmp_path: Path
) -> None:
    rec, decide = webhook
    instructions = "You are the webhook-configured agent " + secrets.token_hex(4)

    async def accept(client: httpx.AsyncClient, call_id: str) -> None:
        # while the application decides, the call is listed as ringing
        ringing = (await client.get("/v1/calls", params={"state": "ringing"})).json()["data"]
        assert [c["id"] for c in ringing] == [call_id]
        assert (await client.get(f"/v1/calls/{call_id}")).json()["state"] == "ringing"
        early = await client.post(
            f"/v1/realtime/calls/{call_id}/refer", json={"target_uri": "sip:desk@127.0.0.1"}
        )
        assert early.status_code == 409, early.text
        early = await client.post(f"/v1/calls/{call_id}/hold")  # nothing to hold yet
        assert early.status_code == 409 and early.json()["error"]["code"] == "hold_unavailable"
        r = await client.post(
            f"/v1/realtime/calls/{call_id}/accept",
            json={"type": "realtime", "model": "gpt-realtime", "instructions": instructions},
        )
        assert r.status_code == 200, r.text

    decide.append(accept)
    rc, out = await sipp_call(control.stack, tmp_path, sc.uac(sc.pause(1500), sc.send_bye(2)))
    assert rc == 0, out
    (event,) = rec.events
    headers = {h.name: h.value for h in event.data.sip_headers}
    assert "sipp" in headers["From"] and "Call-ID" in headers
    assert headers["CSeq"] == "1 INVITE" and headers["Content-Type"] == "application/sdp"
    assert "Via" in headers and "Contact" in headers
    assert rec.raw_headers[0]["webhook-signature"].startswith("v1,")
    # the local agent ran the call with the accepted session
    (session,) = control.stack.agent.sessions
    assert session.instructions == instructions
    await control.stack.manager.wait_idle()
    control.stack.store.flush()
    call = (await control.client.get(f"/v1/calls/{event.data.call_id}")).json()
    assert call["state"] == "ended" and call["end_reason"] == "remote-bye"
    assert call["answered_at"] is not None
    log = (await control.client.get(f"/v1/calls/{event.data.call_id}/events")).json()
    (decided,) = [e["data"] for e in log["data"] if e["kind"] == "webhook"]
    assert decided == {"decision": "application", "profile": "default"}


async def test_reject_sends_the_status_after_ringing(
    control: Control, webhook: tuple[Receiver, list[Decide]], tmp_path: Path
) -> None:
    rec, decide = webhook

    async def reject(client: httpx.AsyncClient, call_id: str) -> None:
        r = await client.post(f"/v1/realtime/calls/{call_id}/reject", json={"status_code": 486})
        assert r.status_code == 200, r.text

    decide.append(reject)
    rc, out = await sipp_call(control.stack, tmp_path, _reject_caller(486))
    assert rc == 0, out
    assert "SIP/2.0 486" in out
    assert control.stack.agent.sessions == []  # nobody paid for an agent session
    (event,) = rec.events
    control.stack.store.flush()
    record = control.stack.store.get_call(event.data.call_id)
    assert record is not None and record.sip_status == 486 and record.state == "ended"


async def test_reject_defaults_to_603(
    control: Control, webhook: tuple[Receiver, list[Decide]], tmp_path: Path
) -> None:
    _rec, decide = webhook

    async def reject(client: httpx.AsyncClient, call_id: str) -> None:
        r = await client.post(f"/v1/realtime/calls/{call_id}/reject")
        assert r.status_code == 200, r.text

    decide.append(reject)
    rc, out = await sipp_call(control.stack, tmp_path, _reject_caller(603))
    assert rc == 0, out


@pytest.mark.parametrize("stack_options", [{"profile": {"transfer_targets": ["sip:desk@*"]}}])
async def test_refer_after_accept_sends_a_sip_refer(
    control: Control, webhook: tuple[Receiver, list[Decide]], tmp_path: Path
) -> None:
    rec, decide = webhook

    async def accept_then_refer(client: httpx.AsyncClient, call_id: str) -> None:
        r = await client.post(f"/v1/realtime/calls/{call_id}/accept", json={"type": "realtime"})
        assert r.status_code == 200, r.text
        while call_id not in control.stack.manager.calls:
            await asyncio.sleep(0.05)
        refused = await client.post(
            f"/v1/realtime/calls/{call_id}/refer", json={"target_uri": "sip:evil@192.0.2.9"}
        )
        assert refused.status_code == 403, refused.text
        r = await client.post(
            f"/v1/realtime/calls/{call_id}/refer", json={"target_uri": "sip:desk@127.0.0.1"}
        )
        assert r.status_code == 200, r.text

    decide.append(accept_then_refer)
    rc, out = await sipp_call(control.stack, tmp_path, sc.uac(sc.accept_refer(2), sc.wait_bye()))
    assert rc == 0, out
    assert "REFER sip:" in out and "sip:desk@127.0.0.1" in out
    await control.stack.manager.wait_idle()
    control.stack.store.flush()
    record = control.stack.store.get_call(rec.events[0].data.call_id)
    assert record is not None and record.end_reason == "transferred"


async def test_unreachable_receiver_applies_the_route_fallback(
    control: Control, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = control.stack.settings
    settings.routes = [Route(name="all", profile="default", fallback="reject:480")]
    settings.webhooks = WebhookSettings(
        url=f"http://127.0.0.1:{free_port(kind=1)}/nobody", secret_env=SECRET_ENV, timeout_s=2
    )
    rc, out = await sipp_call(control.stack, tmp_path, _reject_caller(480))
    assert rc == 0, out
    assert control.plane.incoming.stats.failed == 1
    assert control.plane.incoming.stats.fallbacks == 1
    control.stack.store.flush()
    (record,) = control.stack.store.list_calls()
    (decided,) = [e.data for e in control.stack.store.events(record.call_id) if e.kind == "webhook"]
    assert decided == {"decision": "fallback", "status": 480}
    # fallback to a profile: the call is answered without the application
    settings.routes = [Route(name="all", profile="default", fallback=None)]
    rc, out = await sipp_call(
        control.stack, tmp_path, sc.uac(sc.pause(500), sc.send_bye(2)), name="d"
    )
    assert rc == 0, out
    assert len(control.stack.agent.sessions) == 1


async def test_no_decision_in_time_applies_the_fallback(
    control: Control, webhook: tuple[Receiver, list[Decide]], tmp_path: Path
) -> None:
    rec, decide = webhook

    async def ignore(client: httpx.AsyncClient, call_id: str) -> None:
        return None  # the application took the webhook (200) but never decides

    decide.append(ignore)
    settings = control.stack.settings
    settings.webhooks = settings.webhooks.model_copy(update={"decision_timeout_s": 1.0})
    settings.routes = [Route(name="all", profile="default", fallback="reject:486")]
    rc, out = await sipp_call(control.stack, tmp_path, _reject_caller(486))
    assert rc == 0, out
    assert len(rec.events) == 1
    stats = control.plane.incoming.stats
    assert (stats.delivered, stats.failed, stats.fallbacks) == (1, 0, 1)
    # a decision that comes too late finds nothing to decide
    r = await control.client.post(
        f"/v1/realtime/calls/{rec.events[0].data.call_id}/accept", json={}
    )
    assert r.status_code == 409, r.text
