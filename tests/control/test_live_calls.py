"""The management API, the lifecycle stream, /metrics and the sideband on live SIPp calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.calls import sipp_scenario as sc
from tests.control.conftest import KEY, Control, sipp_call
from tests.support.audio import ulaw_file

pytestmark = pytest.mark.peer("sipp")


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of the exposition (``labels`` like ``leg="sip"``); 0 when absent."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def scrape(control: Control) -> str:
    async with httpx.AsyncClient(base_url=control.url) as anon:  # /metrics needs no key
        return (await anon.get("/metrics")).text


async def live_call_id(control: Control) -> str:
    async with asyncio.timeout(20):
        while True:
            r = await control.client.get("/v1/calls", params={"state": "active"})
            data = r.json()["data"]
            if data:
                return str(data[0]["id"])
            await asyncio.sleep(0.1)


async def collect_sse(control: Control, into: list[dict[str, Any]]) -> None:
    async with control.client.stream("GET", "/v1/events", timeout=None) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))


async def test_manage_a_live_call_and_watch_metrics_move(control: Control, tmp_path: Path) -> None:
    lifecycle: list[dict[str, Any]] = []
    sse = asyncio.create_task(collect_sse(control, lifecycle))
    before = await scrape(control)
    assert metric(before, "rtbridge_active_calls", 'leg="sip"') == 0
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 20.0))
    sipp = asyncio.create_task(
        sipp_call(control.stack, tmp_path, sc.uac(sc.stream(audio), sc.wait_bye(40000)))
    )
    call_id = await live_call_id(control)
    # live media statistics
    async with asyncio.timeout(15):
        while True:
            view = (await control.client.get(f"/v1/calls/{call_id}")).json()
            if view["media"].get("rtp_in", 0) >= 25:
                break
            await asyncio.sleep(0.1)
    assert view["state"] == "active" and view["leg"] == "sip" and view["direction"] == "inbound"
    assert view["codec"] == "PCMU" and view["session_format"] == "g711_ulaw"
    assert "sipp@" in view["from"] and view["answered_at"] >= view["offered_at"]
    assert "lost" in view["media"] and "late" in view["media"]
    if view["levels"]:  # where the leg measures levels: dBFS of the latest frame each way
        assert view["levels"]["in_dbfs"] is None or view["levels"]["in_dbfs"] <= 0
    # filters
    assert (
        len((await control.client.get("/v1/calls", params={"leg": "webrtc"})).json()["data"]) == 0
    )
    assert len((await control.client.get("/v1/calls", params={"profile": "x"})).json()["data"]) == 0
    listed = (await control.client.get("/v1/calls", params={"profile": "default"})).json()
    assert [c["id"] for c in listed["data"] if c["state"] == "active"] == [call_id]
    # metrics while the call is up
    during = await scrape(control)
    assert metric(during, "rtbridge_active_calls", 'leg="sip"') == 1
    assert metric(during, "rtbridge_frames_in_total") >= 25
    assert metric(during, "rtbridge_call_setups_total", 'direction="inbound",leg="sip"') == 1
    assert metric(during, "rtbridge_call_setup_latency_seconds_count") == 1
    # DTMF out, an injected system message with a queued response, a session update
    agent = control.stack.agent.sessions[0]
    r = await control.client.post(f"/v1/calls/{call_id}/dtmf", json={"digits": "1#"})
    assert r.status_code == 200, r.text
    creates = agent.received_types.count("conversation.item.create")
    r = await control.client.post(
        f"/v1/calls/{call_id}/say", json={"text": "The caller is a VIP.", "role": "system"}
    )
    assert r.status_code == 200, r.text
    r = await control.client.post(
        f"/v1/calls/{call_id}/session", json={"instructions": "Be very brief."}
    )
    assert r.status_code == 200, r.text
    async with asyncio.timeout(10):
        while agent.instructions != "Be very brief." or (
            agent.received_types.count("conversation.item.create") <= creates
        ):
            await asyncio.sleep(0.05)
    assert "response.create" in agent.received_types
    # the leg kept its audio format through the update
    assert agent.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # a transfer outside the allowlist is refused
    r = await control.client.post(f"/v1/calls/{call_id}/transfer", json={"target": "tel:+1900"})
    assert r.status_code == 403
    # hang up through the API: SIPp receives our BYE
    r = await control.client.post(f"/v1/calls/{call_id}/hangup")
    assert r.status_code == 200
    rc, out = await sipp
    assert rc == 0, out
    await control.stack.manager.wait_idle()
    control.stack.store.flush()
    listed = (await control.client.get("/v1/calls", params={"state": "ended"})).json()["data"]
    assert [c["id"] for c in listed] == [call_id]
    assert (await control.client.get("/v1/calls", params={"state": "active"})).json()["data"] == []
    ended = (await control.client.get(f"/v1/calls/{call_id}")).json()
    assert ended["state"] == "ended" and ended["end_reason"] == "api-hangup"
    assert ended["media"]["rtp_in"] >= 25
    log = (await control.client.get(f"/v1/calls/{call_id}/events")).json()
    kinds = [e["kind"] for e in log["data"]]
    assert "answered" in kinds
    r = await control.client.post(f"/v1/calls/{call_id}/hangup")
    assert r.status_code == 409  # ended, not unknown
    after = await scrape(control)
    assert metric(after, "rtbridge_active_calls", 'leg="sip"') == 0
    assert metric(after, "rtbridge_calls_ended_total", 'reason="api-hangup"') == 1
    assert metric(after, "rtbridge_frames_in_total") >= metric(during, "rtbridge_frames_in_total")
    assert metric(after, "rtbridge_frames_out_total") > 0
    # the lifecycle stream saw the whole call
    async with asyncio.timeout(5):
        while not any(e["type"] == "call.ended" for e in lifecycle):
            await asyncio.sleep(0.05)
    sse.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sse
    mine = [e["type"] for e in lifecycle if e["call_id"] == call_id]
    assert mine == ["call.offered", "call.answered", "call.ended"]


LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "description": "Where an order is.",
    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
}


def _tool_stack(dialect: str) -> dict[str, Any]:
    return {
        "agent": {"tool_after_turns": 1, "tool_name": "lookup_order", "dialect": dialect},
        "profile": {"upstream": {"dialect": dialect}, "tools": [LOOKUP]},
    }


@pytest.mark.parametrize(
    "stack_options",
    [_tool_stack(d) for d in ("ga", "azure", "gemini", "gpt-live")],
    ids=["ga", "azure", "gemini", "gpt-live"],
)
async def test_sideband_sdk_answers_the_agents_tool_call(
    control: Control, tmp_path: Path, stack_options: dict[str, Any]
) -> None:
    """The agent calls a tool; an application answers it over the sideband with the openai SDK
    and the agent goes on with the answer, on every upstream dialect. The caller's keypad digit
    reaches the agent as text (no upstream has a DTMF event the call path could use)."""
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.2), ("silence", 20.0))
    steps = sc.uac(sc.stream(audio), sc.pause(2500), sc.info("7", 2), sc.wait_bye(40000))
    sipp = asyncio.create_task(sipp_call(control.stack, tmp_path, steps))
    call_id = await live_call_id(control)
    client = openai.AsyncOpenAI(api_key=KEY, base_url=control.url + "/v1")
    seen: list[str] = []
    dtmf: list[Any] = []
    async with client.realtime.connect(call_id=call_id) as sideband:
        first = await asyncio.wait_for(sideband.recv(), 10)
        assert first.type == "session.created"
        answered = False
        async with asyncio.timeout(40):
            while True:
                event = await sideband.recv()
                seen.append(event.type)
                if event.type == "input_audio_buffer.dtmf_event_received":
                    dtmf.append(event)
                if event.type == "response.function_call_arguments.done" and not answered:
                    assert event.name == "lookup_order"
                    await sideband.conversation.item.create(
                        item={
                            "type": "function_call_output",
                            "call_id": event.call_id,
                            "output": '{"status": "shipped"}',
                        }
                    )
                    await sideband.response.create()
                    answered = True
                agent = control.stack.agent.sessions[0]
                if (
                    any(
                        r.source == "tool_answer" and r.status == "completed"
                        for r in agent.responses
                    )
                    and dtmf
                ):
                    break
    assert answered
    assert "output_audio_buffer.started" in seen
    assert dtmf and getattr(dtmf[0], "event", None) == "7"
    agent = control.stack.agent.sessions[0]
    (tool_answer,) = [r for r in agent.responses if r.source == "tool_answer"]
    assert "shipped" in tool_answer.transcript
    # the digit as text: a user message, or GPT-Live's appended instructions
    async with asyncio.timeout(10):
        while not [t for _, t in agent.texts if "pressed 7" in t]:
            await asyncio.sleep(0.05)
    ((role, text),) = [(r, t) for r, t in agent.texts if "pressed 7" in t]
    assert text == "The caller pressed 7 on the keypad."
    assert role == ("system" if stack_options["agent"]["dialect"] == "gpt-live" else "user")
    r = await control.client.post(f"/v1/realtime/calls/{call_id}/hangup")
    assert r.status_code == 200
    rc, out = await sipp
    assert rc == 0, out
    await client.close()
