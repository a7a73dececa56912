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
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.calls.agent_session import AgentSession
from bridge.calls.control import CallControl, MediaControl
from bridge.calls.info import CallInfo
from bridge.calls.observers import EventFanout
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.config import AgentProfile
from bridge.records import CallStore

__all__ = ["CallScope"]

log = logging.getLogger(__name__)


class CallScope:
    leg_name = "call"

    def __init__(
        self,
        info: CallInfo,
        *,
        agent: AgentSession,
        media: MediaControl,
        profile: AgentProfile,
        store: CallStore,
        ticker: FrameTicker,
        on_released: Callable[[Any], None],
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.info = info
        self.id = info.call_id
        self.agent = agent
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
