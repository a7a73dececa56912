"""Fan-out of a call's server events to observers (sideband sockets, dashboards, tests).

Each observer gets its own bounded queue. A slow observer never stalls the call: when its
queue is full, the event is dropped *for that observer* and counted; the observer learns how
many it missed (``Subscription.dropped``) so it can report it. Audio deltas go only to
observers that ask for them (they are most of the bytes).

A *tap* is the cheap kind of observer for process-wide views (the dashboard's fleet history):
a plain function called synchronously with the few event types it names, no queue, no task.
It must be quick and must not raise; a call holds at most a few.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

__all__ = ["EventFanout", "Subscription"]

AUDIO_EVENTS = frozenset({"response.output_audio.delta"})
_CLOSED = object()


class Subscription:
    def __init__(self, fanout: EventFanout, maxsize: int, audio: bool) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self.audio = audio
        self.dropped = 0
        self.delivered = 0

    def _offer(self, event: Mapping[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def _close(self) -> None:
        # make room so the end marker always fits
        while self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(_CLOSED)

    async def get(self) -> Mapping[str, Any] | None:
        """The next event, or None once the call has ended."""
        item = await self._queue.get()
        if item is _CLOSED:
            return None
        self.delivered += 1
        assert isinstance(item, Mapping)
        return item

    async def __aiter__(self) -> AsyncIterator[Mapping[str, Any]]:
        while (event := await self.get()) is not None:
            yield event

    def close(self) -> None:
        self._fanout.unsubscribe(self)


Tap = Callable[[Mapping[str, Any]], None]


class EventFanout:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._taps: dict[str, list[Tap]] = {}
        self.closed = False

    def tap(self, types: frozenset[str], fn: Tap) -> None:
        """Call ``fn`` with every event of one of ``types`` from now until the call ends."""
        if self.closed:
            return
        for kind in types:
            self._taps.setdefault(kind, []).append(fn)

    def subscribe(self, *, maxsize: int = 512, audio: bool = False) -> Subscription:
        sub = Subscription(self, maxsize, audio)
        if self.closed:
            sub._close()
        else:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: Mapping[str, Any]) -> None:
        if self._taps:
            for fn in self._taps.get(str(event.get("type")), ()):
                fn(event)
        if not self._subs:
            return
        audio = event.get("type") in AUDIO_EVENTS
        for sub in self._subs:
            if audio and not sub.audio:
                continue
            sub._offer(event)

    def close(self) -> None:
        self.closed = True
        self._taps.clear()
        for sub in self._subs:
            sub._close()
        self._subs.clear()

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self._subs)
