"""What every call is, whatever its leg: a scope that owns its tasks and is released once.

:class:`CallScope` holds the lifetime shared by the SIP :class:`~bridge.calls.call.Call` and the
browser :class:`~bridge.webrtc.call.WebRtcCall`: ``end(reason)`` (the first reason wins),
``run()`` (the leg's tasks run until the call ends, then are cancelled, never left behind), and
``_release()``, the one place where a call lets go of everything (its tick sinks, observers,
the leg itself, the agent session that someone pays for) and writes its record. Each call also
gets its :class:`~bridge.calls.control.CallControl` here, wired the same way for every leg.

A leg supplies :meth:`_tasks`, :meth:`_tick_sinks`, :meth:`_close_leg` and :meth:`stats`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from bridge.calls.agent_session import AgentSession
from bridge.calls.control import CallControl, MediaControl
from bridge.calls.info import CallInfo
from bridge.calls.observers import EventFanout
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.config import AgentProfile
from bridge.errors import UpstreamError
from bridge.records import CallStore

__all__ = ["CallScope", "LegMedia"]

log = logging.getLogger(__name__)

#: Transcripts the upstream provides, and the event-log kind each becomes.
_TRANSCRIPTS = {
    "response.output_audio_transcript.done": "transcript.agent",
    "conversation.item.input_audio_transcription.completed": "transcript.user",
}


class LegMedia(MediaControl, Protocol):
    """A leg's media as the call's scope uses it: call control's needs plus agent audio in."""

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool: ...

    def mark_done(self, response_id: str) -> None: ...


class CallScope:
    leg_name = "call"

    def __init__(
        self,
        info: CallInfo,
        *,
        agent: AgentSession,
        media: LegMedia,
        profile: AgentProfile,
        store: CallStore,
        ticker: FrameTicker,
        on_released: Callable[[Any], None],
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.info = info
        self.id = info.call_id
        self.agent = agent
        self._leg_media = media
        self.profile = profile
        self.store = store
        self.ticker = ticker
        self._on_released = on_released
        self._now = time_fn
        self._ended = asyncio.Event()
        self._end_reason = "unknown"
        self._end_status: int | None = None
        self._started_at = time_fn()
        self.events = EventFanout()  # every server event of the call, for observers
        self.control = CallControl(
            profile=profile,
            media=media,
            leg=self,
            send=agent.send,
            emit=self._publish,
            log_event=lambda kind, data: store.log_event(self.id, kind, data),
            session=lambda: agent.session,
            now=time_fn,
        )

    # -- what a leg provides ----------------------------------------------------------------

    def _tasks(self) -> list[Coroutine[Any, Any, None]]:
        """The leg's own tasks (besides call control's writer)."""
        raise NotImplementedError

    def _tick_sinks(self) -> list[TickSink]:
        """What the shared frame ticker drives for this call."""
        return [self.control]

    async def _close_leg(self) -> None:
        """Let go of the leg (BYE, close the peer connection, sockets)."""

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def transfer(self, target: str) -> bool:
        """Blind transfer; legs that cannot transfer say so."""
        del target
        return False

    def _publish(self, event: dict[str, Any]) -> None:
        """A server event for the call's clients and observers."""
        self.events.publish(event)

    # -- the agent's events (the same for every leg) -----------------------------------------

    async def _agent_events(self) -> None:
        try:
            async for event in self.agent.events():
                self._on_agent_event(event)
        except UpstreamError as exc:
            reason = "upstream-expired" if "expire" in str(exc).lower() else "upstream-lost"
            self.store.log_event(self.id, "error", {"source": "upstream", "message": str(exc)})
            self.end(reason)
            return
        self.end("upstream-lost")

    def _on_agent_event(self, event: dict[str, Any]) -> None:
        """Call control first (it decides what clients see), then audio and the event log."""
        if self.control.on_agent_event(event):
            self._publish(event)
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            delta = event.get("delta")
            if isinstance(delta, str):
                self._leg_media.push_agent_audio(
                    str(event.get("response_id", "")),
                    str(event.get("item_id", "")),
                    base64.b64decode(delta),
                )
        elif kind == "response.done":
            response = event.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            if isinstance(rid, str):
                self._leg_media.mark_done(rid)
        elif kind in _TRANSCRIPTS:
            self.store.log_event(
                self.id,
                _TRANSCRIPTS[kind],
                {"item_id": event.get("item_id"), "text": event.get("transcript", "")},
            )
        elif kind == "error":
            err = event.get("error")
            err = err if isinstance(err, dict) else {}
            self.store.log_event(self.id, "error", {"source": "upstream", **err})
            if err.get("code") == "session_expired":
                self.end("upstream-expired")
        elif kind == "session.expired":
            self.end("upstream-expired")

    # -- lifetime ---------------------------------------------------------------------------

    def end(self, reason: str, status: int | None = None) -> None:
        """Ask the call to end (idempotent: the first reason wins)."""
        if not self._ended.is_set():
            self._end_reason, self._end_status = reason, status
            self._ended.set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def send_client_event(self, event: dict[str, Any]) -> None:
        """A GA client event from outside the call (data channel, sideband, control plane)
        into the agent session through call control (``session.update`` keeps the leg's
        formats and the telephony tools; ``response.create`` waits for the active response)."""
        forward = self.control.on_client_event(event)
        if forward is not None:
            self.control.forward(forward)

    async def run(self) -> None:
        """The call's scope: its tasks run until it ends; then everything is released."""
        sinks = self._tick_sinks()
        for sink in sinks:
            self.ticker.add(sink)
        coros = [self.control.run(), *self._tasks()]
        tasks = [asyncio.create_task(c, name=f"{self.id} {i}") for i, c in enumerate(coros)]
        try:
            await self._ended.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._release(sinks)

    async def _release(self, sinks: list[TickSink]) -> None:
        for sink in sinks:
            self.ticker.remove(sink)
        self.events.close()
        await self._close_leg()
        await self.agent.close()
        info = self.info
        info.ended_at = time.time()
        info.end_reason = self._end_reason
        info.sip_status = self._end_status
        self.store.call_ended(
            self.id, reason=self._end_reason, sip_status=self._end_status, stats=self.stats()
        )
        log.info("%s %s ended: %s", self.leg_name, self.id, self._end_reason)
        self._on_released(self)
