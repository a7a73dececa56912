"""A call's scope with a scripted agent: events are logged once, a session_expired error ends
the call with its reason, and the record is written when the scope releases the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from bridge.calls.info import CallInfo
from bridge.calls.scope import CallScope
from bridge.calls.ticker import FrameTicker
from bridge.config import AgentProfile
from bridge.records import CallStore
from tests.calls.test_control import FakeMedia


class ScriptedAgent:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.session: dict[str, Any] = {}
        self._events = events
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event
        await asyncio.Event().wait()  # the socket stays open

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    async def close(self) -> None:
        self.closed = True


class Media(FakeMedia):
    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        return self.playout.push(response_id, item_id, audio)

    def mark_done(self, response_id: str) -> None:
        self.playout.mark_done(response_id)


class ScriptedCall(CallScope):
    def _tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._agent_events()]

    def stats(self) -> dict[str, Any]:
        return {}


async def test_session_expired_error_ends_the_call_and_events_are_logged_once(
    tmp_path: Path,
) -> None:
    store = CallStore(tmp_path / "calls.db")
    store.call_offered("c1", direction="inbound", leg="test")
    agent = ScriptedAgent(
        [
            {"type": "response.created", "response": {"id": "r1"}},
            {"type": "response.output_audio_transcript.done", "item_id": "i1", "transcript": "hi"},
            {
                "type": "response.function_call_arguments.done",
                "name": "lookup",
                "call_id": "t1",
                "arguments": "{}",
            },
            {"type": "response.done", "response": {"id": "r1"}},
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": "Your session hit the maximum duration.",
                },
            },
        ]
    )
    released: list[CallScope] = []
    call = ScriptedCall(
        CallInfo("c1", "inbound", "sip:a@x", "sip:b@x", "default", None, "PCMU", "g711_ulaw", 0.0),
        agent=agent,  # type: ignore[arg-type]
        media=Media(),
        profile=AgentProfile(),
        store=store,
        ticker=FrameTicker(),
        on_released=released.append,
    )
    await asyncio.wait_for(call.run(), 10)
    assert released == [call] and agent.closed
    store.flush()
    record = store.get_call("c1")
    assert record is not None and record.end_reason == "upstream-expired"
    kinds = [e.kind for e in store.events("c1")]
    assert kinds.count("transcript.agent") == 1
    assert kinds.count("tool_call") == 1  # logged by call control only
    assert kinds.count("error") == 1
    store.close()
