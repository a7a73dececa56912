"""The sideband: ``GET /v1/realtime?call_id=ID`` attaches a WebSocket to a live call.

OpenAI's sideband lets a server watch and steer a call a browser (or a phone) is having. Here it
works for any call the :class:`~bridge.calls.manager.CallManager` owns, WebRTC or SIP:

* the first frame is ``session.created`` with the call's current session;
* then every server event of the call, in order (``response.output_audio.delta`` only when
  the URL asks for it with ``include_audio=true``: it is most of the bytes);
* client events sent on the socket go into the call (``session.update`` keeps the leg's audio
  formats: the leg, not the observer, owns them).

Several observers may attach. Each reads from its own bounded queue
(:class:`~bridge.calls.observers.EventFanout`): a slow observer never stalls the call; events
it could not take are dropped for it alone and counted, and before its next event it receives
``rtbridge.events_dropped`` with how many it has missed in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from bridge.calls.live import LiveCall
from bridge.tasks import cancel_and_wait

__all__ = ["DROPPED_EVENT", "attach"]

DROPPED_EVENT = "rtbridge.events_dropped"
QUEUE = 512


def _event_id() -> str:
    return "event_sb_" + secrets.token_hex(8)


def _error(message: str, code: str) -> str:
    return orjson.dumps(
        {
            "type": "error",
            "event_id": _event_id(),
            "error": {"type": "invalid_request_error", "code": code, "message": message},
        }
    ).decode()


async def attach(ws: WebSocket, call: LiveCall, *, audio: bool, subprotocol: str | None) -> None:
    """Serve one observer until the call ends or the observer leaves."""
    sub = call.events.subscribe(maxsize=QUEUE, audio=audio)
    try:
        await ws.accept(subprotocol=subprotocol)
        created = {
            "type": "session.created",
            "event_id": _event_id(),
            "session": {**call.session, "id": call.id, "object": "realtime.session"},
        }
        await ws.send_text(orjson.dumps(created).decode())

        async def to_observer() -> None:
            reported = 0
            async for event in sub:
                if sub.dropped > reported:
                    reported = sub.dropped
                    note = {"type": DROPPED_EVENT, "event_id": _event_id(), "dropped": reported}
                    await ws.send_text(orjson.dumps(note).decode())
                await ws.send_text(orjson.dumps(event).decode())

        async def from_observer() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                text = msg.get("text")
                try:
                    event = orjson.loads(text) if text is not None else None
                except orjson.JSONDecodeError:
                    event = None
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    await ws.send_text(_error("send JSON Realtime client events", "invalid_event"))
                    continue
                await call.client_event(event)

        down = asyncio.create_task(to_observer())
        up = asyncio.create_task(from_observer())
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(down, up, expected=(Exception,))
        if down in done and ws.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close(code=1000, reason="call ended")
    finally:
        sub.close()
