"""A call's agent session outlives its upstream sessions, in every dialect, against the local
agent ending each session on a timer the way its dialect does (Gemini ``goAway`` then the close;
OpenAI, Azure, beta, xAI: ``error`` ``session_expired`` then the close; GPT-Live
``session.closed``): the next session is resumed (Gemini's handle) or told the conversation
again (a replay), the caller's words reach it, and only ``rtbridge.session_renewed`` says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.agent import LocalAgent
from bridge.calls.agent_events import (
    AgentEvent,
    ItemTruncated,
    Other,
    ResponseDone,
    Resumption,
    SessionEnding,
    SessionRenewed,
    TranscriptDelta,
    UpstreamErrorEvent,
)
from bridge.calls.agent_session import MAX_RENEWALS, AgentSession
from bridge.config import AgentProfile, AgentSettings, Dialect, UpstreamSettings
from bridge.errors import UpstreamClosedError
from bridge.realtime.dialects import CAPABILITIES
from bridge.realtime.formats import AudioFormat


def _text(text: str) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item}


class Reader:
    """Reads a session's events in the background."""

    def __init__(self, session: AgentSession) -> None:
        self.session = session
        self.seen: list[AgentEvent] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.session.events():
            self.seen.append(event)

    def renewals(self) -> list[SessionRenewed]:
        return [e for e in self.seen if isinstance(e, SessionRenewed)]

    async def until(self, what: type, count: int = 1, after: int = 0) -> None:
        async with asyncio.timeout(20):
            while sum(isinstance(e, what) for e in self.seen[after:]) < count:
                if self.task.done():
                    self.task.result()
                    raise AssertionError("the session's events ended")
                await asyncio.sleep(0.02)


async def _turn(session: AgentSession, reader: Reader, text: str) -> None:
    """A text turn; waits for its answer where the client asks for answers."""
    mark = len(reader.seen)
    await session.send(_text(text))
    await session.send({"type": "response.create"})
    if not session.capabilities.model_owns_turns:  # GPT-Live: the model decides
        await reader.until(ResponseDone, after=mark)


@pytest.mark.parametrize("dialect", [d.value for d in Dialect])
async def test_a_call_session_outlives_two_upstream_session_ends(dialect: str) -> None:
    settings = AgentSettings(
        port=0, dialect=Dialect(dialect), session_max_s=2.0, go_away_notice_s=0.8
    )
    async with LocalAgent(settings) as agent:
        profile = AgentProfile(
            upstream=UpstreamSettings(url=agent.url, dialect=dialect), instructions="Be brief."
        )
        session = AgentSession(profile, preferred=AudioFormat.PCM16, reconnect_window_s=5)
        await session.open()
        reader = Reader(session)
        try:
            await _turn(session, reader, "My order number is 427.")
            await reader.until(SessionRenewed)
            await _turn(session, reader, "My name is Ada.")
            await reader.until(SessionRenewed, 2)
            await _turn(session, reader, "Where is it?")  # the third session answers too
        finally:
            await session.close()
            reader.task.cancel()
        _first, second, third = agent.sessions[:3]
    renewed = reader.renewals()
    assert len(renewed) == 2
    resumable = CAPABILITIES[Dialect(dialect)].resumption
    expected_cause = "going_away" if resumable else "session_expired"
    assert [r.cause for r in renewed] == [expected_cause] * 2
    if resumable:  # Gemini: resumed from its own handle, before the old session closed
        assert [r.how for r in renewed] == ["resumed", "resumed"]
        assert [r.gap_ms for r in renewed] == [0, 0]
        assert second.resumed_from and third.resumed_from
        assert second.texts == [("user", "My name is Ada.")]
    else:  # told the conversation again: what the caller said first, then the rest
        assert [r.how for r in renewed] == ["replayed", "replayed"]
        said = [text for _, text in second.texts]
        assert said[0] == "My order number is 427."
        assert "My name is Ada." in said
        told = [text for _, text in third.texts]
        assert told[:1] == ["My order number is 427."] and "My name is Ada." in told
        assert told.index("My name is Ada.") < told.index("Where is it?")
        if not CAPABILITIES[Dialect(dialect)].model_owns_turns:
            # the agent's own answers were replayed as what it said
            assert any(role == "assistant" for role, _ in third.texts)
    # the upstream's own end-of-session events never reach the call
    assert not [
        e
        for e in reader.seen
        if isinstance(e, Resumption | SessionEnding)
        or (isinstance(e, UpstreamErrorEvent) and e.code == "session_expired")
    ]
    assert not [e for e in reader.seen if isinstance(e, UpstreamErrorEvent)], reader.seen


async def test_a_resumption_the_upstream_refuses_falls_back_to_a_replay() -> None:
    settings = AgentSettings(port=0, dialect=Dialect.GEMINI, session_max_s=1.5)
    async with LocalAgent(settings) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url, dialect="gemini"))
        session = AgentSession(profile, preferred=AudioFormat.PCM16, reconnect_window_s=5)
        await session.open()
        reader = Reader(session)
        try:
            await session.send(_text("Remember 427."))
            session._resume_handle = "a-handle-it-never-issued"  # (as an expired one)
            await reader.until(SessionRenewed)
        finally:
            await session.close()
            reader.task.cancel()
        (renewed,) = reader.renewals()
        assert renewed.how == "replayed" and renewed.attempts == 2
        assert agent.sessions[1].close_code == 1007  # the refused resumption
        assert ("user", "Remember 427.") in agent.sessions[2].texts


@pytest.mark.parametrize("dialect", ["ga", "gemini"])
async def test_a_barge_in_on_the_old_sessions_item_after_a_renewal(dialect: str) -> None:
    """The caller still hears the old session's answer (rtbridge's playout) when the new
    session takes over, then talks over it: the truncation is answered with what was heard,
    and a replayed copy of the item (OpenAI) is cut to it too."""
    settings = AgentSettings(port=0, dialect=Dialect(dialect), session_max_s=1.5)
    async with LocalAgent(settings) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url, dialect=dialect))
        session = AgentSession(profile, preferred=AudioFormat.PCM16, reconnect_window_s=5)
        await session.open()
        reader = Reader(session)
        try:
            await _turn(session, reader, "Hello?")
            (answer,) = [
                e.item_id for e in reader.seen if isinstance(e, TranscriptDelta) and e.item_id
            ][:1]
            await reader.until(SessionRenewed)
            mark = len(reader.seen)
            cut = {
                "type": "conversation.item.truncate",
                "item_id": answer,
                "content_index": 0,
                "audio_end_ms": 250,
            }
            await session.send(cut)
            await reader.until(ItemTruncated, after=mark)
            await asyncio.sleep(0.3)  # what the upstream answers to the copy's edit
        finally:
            await session.close()
            reader.task.cancel()
    (truncated,) = [e for e in reader.seen[mark:] if isinstance(e, ItemTruncated)]
    assert truncated.item_id == answer and truncated.audio_end_ms == 250
    assert truncated.transcript == "tones: 3 x "  # one word per 100 ms chunk: 0, 100, 200 ms
    assert not [e for e in reader.seen[mark:] if isinstance(e, UpstreamErrorEvent)]
    assert not [e for e in reader.seen[mark:] if isinstance(e, Other)]  # acks not forwarded
    if dialect == "ga":
        told = [t for role, t in agent.sessions[1].texts if role == "assistant"]
        assert told == ["tones: 3 x 200 ms", "tones: 3 x "]


async def test_a_known_session_length_is_renewed_before_it_is_reached() -> None:
    """OpenAI's sessions last 60 minutes: the next session is made ready, and taken over at an
    idle moment, before the first one expires (here 3 s, so at 2 s): no gap, no expiry."""
    settings = AgentSettings(port=0, session_max_s=3.0)
    async with LocalAgent(settings) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url))
        session = AgentSession(
            profile, preferred=AudioFormat.PCM16, reconnect_window_s=5, session_limit_s=3.0
        )
        await session.open()
        reader = Reader(session)
        try:
            await _turn(session, reader, "My order number is 427.")
            await reader.until(SessionRenewed)
        finally:
            await session.close()
            reader.task.cancel()
        first, second = agent.sessions[:2]
    (renewed,) = reader.renewals()
    assert (renewed.how, renewed.cause, renewed.gap_ms) == ("replayed", "session_limit", 0)
    assert "error" not in first.sent_types  # it never reached its limit: we left it first
    assert ("user", "My order number is 427.") in second.texts


async def test_a_long_session_remembers_only_its_newest_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long call's upstream session holds thousands of items; the call remembers which ones
    only for the newest (what a truncation or deletion names), so its memory stays flat, and a
    truncation of the latest agent message still goes to the upstream."""
    from bridge.calls import agent_session

    monkeypatch.setattr(agent_session, "SESSION_ITEMS_KEPT", 6)
    async with LocalAgent(AgentSettings(port=0)) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url), instructions="Be brief.")
        session = AgentSession(profile, preferred=AudioFormat.PCM16, reconnect_window_s=5)
        await session.open()
        reader = Reader(session)
        try:
            for n in range(10):
                await _turn(session, reader, f"Turn {n}.")
            remembered = list(session._session_items)
            assert len(remembered) == 6
            latest = [e.item_id for e in reader.seen if isinstance(e, TranscriptDelta)][-1]
            assert latest in remembered
            mark = len(reader.seen)
            truncate = {"type": "conversation.item.truncate", "item_id": latest}
            await session.send({**truncate, "content_index": 0, "audio_end_ms": 0})
            await reader.until(ItemTruncated, after=mark)
        finally:
            await session.close()
            reader.task.cancel()
    assert [t.get("item_id") for t in agent.sessions[0].truncations] == [latest]


async def test_an_upstream_that_ends_every_session_ends_the_call_instead_of_a_storm() -> None:
    """An upstream out of quota, or broken, ends each session as soon as it is configured:
    the call renews a few times, then gives up (upstream-lost) rather than opening thousands
    of (billed) sessions a second until the call's time limit (seen: 3,475 in 5 s)."""
    settings = AgentSettings(port=0, dialect=Dialect.GA, session_max_s=0.2)
    async with LocalAgent(settings) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url, dialect="ga"))
        session = AgentSession(profile, preferred=AudioFormat.PCM16, reconnect_window_s=5)
        await session.open()
        reader = Reader(session)
        try:
            async with asyncio.timeout(30):
                with pytest.raises(UpstreamClosedError, match="giving up"):
                    await reader.task
        finally:
            await session.close()
        opened = len(agent.sessions)
    assert len(reader.renewals()) == MAX_RENEWALS
    assert opened == 1 + MAX_RENEWALS
