"""A call's scope with a scripted agent: events are logged once, a renewal of the agent's
session is logged and forwarded once and frees the response gate (the call goes on), a crash in
any of the call's tasks or tick sinks ends that call with ``internal-error`` (record written, leg
closed), and the record is written when the scope releases the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.calls.agent_events import AgentEvent, SessionRenewed, parse_agent_event
from bridge.calls.conversation import CallConversation
from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.scope import LOGGED_TEXT_MAX, UPSTREAM_ERROR_BURST, CallScope, Task
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.calls.watchdog import Watchdog
from bridge.config import AgentProfile, Dialect
from bridge.realtime.dialects import CAPABILITIES
from bridge.records import CallStore
from media.clock import SystemClock
from tests.calls.test_control import FakeMedia


class ScriptedAgent:
    capabilities = CAPABILITIES[Dialect.GA]

    def __init__(
        self, events: list[dict[str, Any] | AgentEvent], *, send_fails: bool = False
    ) -> None:
        self.session: dict[str, Any] = {}
        self.conversation = CallConversation()
        self._events = events
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self.send_fails = send_fails

    async def events(self) -> AsyncIterator[AgentEvent]:
        for event in self._events:
            yield parse_agent_event(event) if isinstance(event, dict) else event
        await asyncio.Event().wait()  # the socket stays open

    async def send(self, event: dict[str, Any]) -> None:
        if self.send_fails:
            raise RuntimeError("a bug in the writer path")
        self.sent.append(event)

    async def close(self) -> None:
        self.closed = True


class Media(FakeMedia):
    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        return self.playout.push(response_id, item_id, audio)

    def mark_done(self, response_id: str) -> None:
        self.playout.mark_done(response_id)


class Boom:
    def on_tick(self, deadline: float, now: float) -> None:
        raise ZeroDivisionError("a bug in a tick sink")


class ScriptedCall(CallScope):
    leg = "test"

    def __init__(self, *args: Any, leg_task: Any = None, sink: Any = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._leg_task = leg_task
        self._sink = sink
        self.leg_closed = False

    def _tasks(self) -> list[Task]:
        return [("leg", self._leg_task())] if self._leg_task else []

    def _tick_sinks(self) -> list[TickSink]:
        return [self._sink] if self._sink else []

    async def _close_leg(self) -> None:
        self.leg_closed = True

    def stats(self) -> dict[str, Any]:
        return {"frames": 1}


def make_call(
    tmp_path: Path, call_id: str, agent: ScriptedAgent, ticker: FrameTicker, **kw: Any
) -> tuple[ScriptedCall, CallStore]:
    store = CallStore(tmp_path / f"{call_id}.db")
    store.call_offered(call_id, direction="inbound", leg="test")
    clock = SystemClock()
    call = ScriptedCall(
        CallInfo(call_id, "inbound", "sip:a@x", "sip:b@x", "default", None, "PCMU", "g711", 0.0),
        agent=agent,  # type: ignore[arg-type]
        media=Media(),
        profile=AgentProfile(),
        store=store,
        ticker=ticker,
        watchdog=Watchdog(clock.now(), 3600.0, 30.0, lambda: None),
        clock=clock,
        **kw,
    )
    return call, store


async def test_a_renewal_is_logged_and_forwarded_once_and_the_call_goes_on(
    tmp_path: Path,
) -> None:
    renewed = SessionRenewed(
        how="replayed",
        cause="session_expired",
        gap_ms=12,
        attempts=1,
        items_replayed=2,
        audio_dropped_ms=20,
    )
    agent = ScriptedAgent(
        [
            {"type": "response.created", "response": {"id": "r1"}},
            {"type": "response.output_audio_transcript.done", "item_id": "i1", "transcript": "hi"},
            {
                "type": "response.function_call_arguments.done",
                "response_id": "r1",
                "name": "lookup",
                "call_id": "t1",
                "arguments": "{}",
            },
            renewed,  # the old session died with r1 active
        ]
    )
    call, store = make_call(tmp_path, "c1", agent, FrameTicker())
    seen = call.events.subscribe()
    run = asyncio.create_task(call.run())
    async with asyncio.timeout(10):
        while "session.renewed" not in [e.kind for e in store.events("c1")]:
            await asyncio.sleep(0.01)
            store.flush()
    assert not call.ended  # the call goes on
    assert call.control.active_response is None  # r1 died with the old session
    call.say({"type": "message", "role": "user", "content": []}, respond=True)
    async with asyncio.timeout(10):  # the gate is open: the response is asked for at once
        while not any(e["type"] == "response.create" for e in agent.sent):
            await asyncio.sleep(0.01)
    call.end(EndReason.LOCAL_HANGUP)
    await asyncio.wait_for(run, 10)
    store.flush()
    record = store.get_call("c1")
    assert record is not None and record.end_reason == "local-hangup"
    logged = store.events("c1")
    kinds = [e.kind for e in logged]
    assert kinds.count("transcript.agent") == 1
    assert kinds.count("tool_call") == 1  # logged by call control only
    assert kinds.count("session.renewed") == 1
    (entry,) = [e.data for e in logged if e.kind == "session.renewed"]
    assert entry == {k: v for k, v in renewed.raw.items() if k != "type"}
    forwarded = [e["type"] async for e in seen]
    assert forwarded == [
        "response.created",
        "response.output_audio_transcript.done",
        "response.function_call_arguments.done",
        "rtbridge.session_renewed",
    ]
    store.close()


async def _raises() -> None:
    await asyncio.sleep(0.01)
    raise KeyError("a bug in a leg task")


@pytest.mark.parametrize(
    "fault",
    ["leg task", "agent events", "control writer", "tick sink"],
)
async def test_a_crash_in_any_of_a_calls_tasks_ends_that_call_only(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    ticker = FrameTicker(period=0.005)
    ticker.start()
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {"id": "r1"}}]
    if fault == "agent events":
        events.append({"type": "response.done", "response": {"id": "r1", "output": "bad"}})
    bad_agent = ScriptedAgent(events, send_fails=fault == "control writer")
    kw: dict[str, Any] = {}
    if fault == "leg task":
        kw["leg_task"] = _raises
    if fault == "tick sink":
        kw["sink"] = Boom()
    bad, bad_store = make_call(tmp_path, "bad", bad_agent, ticker, **kw)
    if fault == "agent events":  # call control raises on the agent's event
        bad.control.on_response_done = lambda _e: 1 / 0  # type: ignore[method-assign,assignment,misc]
    if fault == "control writer":
        bad.control.queue({"type": "conversation.item.delete", "item_id": "x"})
    good_agent = ScriptedAgent([{"type": "response.created", "response": {"id": "g"}}])
    good, good_store = make_call(tmp_path, "good", good_agent, ticker)
    good_task = asyncio.create_task(good.run())
    await asyncio.wait_for(bad.run(), 10)
    assert bad.leg_closed and bad_agent.closed  # the leg said goodbye; nobody pays on
    bad_store.flush()
    record = bad_store.get_call("bad")
    assert record is not None and record.end_reason == "internal-error"
    assert record.stats == {"frames": 1}
    errors = [e.data for e in bad_store.events("bad") if e.kind == "error"]
    assert errors and errors[0]["source"] == "internal"
    tracebacks = [r for r in caplog.records if r.exc_info and "bad" in r.getMessage()]
    assert len(tracebacks) == 1  # logged once
    # the other call goes on, still ticking
    assert not good.ended
    ticks = ticker.stats.ticks
    await asyncio.sleep(0.05)
    assert ticker.stats.ticks > ticks and len(ticker) == 1  # the good call's own sink
    good.end(EndReason.LOCAL_HANGUP)
    await asyncio.wait_for(good_task, 10)
    await ticker.stop()
    good_store.flush()
    good_record = good_store.get_call("good")
    assert good_record is not None and good_record.end_reason == "local-hangup"
    bad_store.close()
    good_store.close()


async def test_huge_transcripts_are_cut_and_an_error_flood_is_rate_limited(
    tmp_path: Path,
) -> None:
    """15 MB transcripts were logged whole and a flood of upstream errors made 162,000 rows in
    20 s: a transcript row keeps 16 KiB (marked truncated, with its length), and error rows
    come at a burst then a rate, the rest counted; the call goes on."""
    huge = "x" * 15_000_000
    flood = [
        {"type": "error", "error": {"type": "server_error", "message": f"boom {n} " + "y" * 50_000}}
        for n in range(5000)
    ]
    agent = ScriptedAgent(
        [
            {"type": "response.output_audio_transcript.done", "item_id": "i1", "transcript": huge},
            *flood,
            {"type": "response.output_audio_transcript.done", "item_id": "i2", "transcript": "ok"},
        ]
    )
    call, store = make_call(tmp_path, "c1", agent, FrameTicker())
    run = asyncio.create_task(call.run())
    async with asyncio.timeout(10):
        while "i2" not in [e.data.get("item_id") for e in store.events("c1")]:
            await asyncio.sleep(0.01)
            store.flush()
    assert not call.ended  # the call goes on
    call.end(EndReason.LOCAL_HANGUP)
    await asyncio.wait_for(run, 10)
    store.flush()
    logged = store.events("c1")
    (first, second) = [e.data for e in logged if e.kind == "transcript.agent"]
    assert first == {
        "item_id": "i1",
        "text": "x" * LOGGED_TEXT_MAX,
        "truncated": True,
        "length": 15_000_000,
    }
    assert second == {"item_id": "i2", "text": "ok"}
    errors = [e.data for e in logged if e.kind == "error"]
    assert UPSTREAM_ERROR_BURST <= len(errors) <= UPSTREAM_ERROR_BURST + 15
    assert errors[0]["message"].startswith("boom 0 ") and errors[0]["truncated"] is True
    assert len(errors[0]["message"]) == LOGGED_TEXT_MAX
    record = store.get_call("c1")
    assert record is not None
    assert record.stats["upstream_errors_not_logged"] == 5000 - len(errors)
    store.close()
