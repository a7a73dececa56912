"""A call's sideband (``GET /v1/realtime?call_id=``, :mod:`bridge.webrtc.sideband`) opened on a
node that does not have the call, carried to the node that does; likewise a call's recording
(``GET /v1/calls/{id}/recording``), whose file is in the data directory of the node that
recorded it.

The asking node opens the same sideband on the owner's HTTP address (``cluster.control_url``,
from the registry) with the server key the client presented (every node of a cluster shares
it: the client was checked against it already), then copies frames both ways until either
side closes, passing the close code on. An owner that cannot be reached answers the client's
handshake 503 ``owner_unavailable``; a refusal from the owner (the call ended meanwhile: 404)
is passed on as it came. A recording is fetched from the owner with the client's ``Range``
and streamed back with the owner's status and range headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import httpx
import orjson
from fastapi import WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bridge.http_errors import error_body

__all__ = ["proxy_recording", "proxy_sideband"]

log = logging.getLogger(__name__)

#: the largest frame either side may send (the relay's own limit)
MAX_FRAME = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0


def _ws_url(base: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    return "ws://" + base.removeprefix("http://")


async def proxy_sideband(
    ws: WebSocket,
    owner_url: str,
    *,
    call_id: str,
    audio: bool,
    key: str,
    subprotocol: str | None,
) -> None:
    """Serve the client's sideband for ``call_id`` from the node at ``owner_url``."""
    query = urlencode({"call_id": call_id, "include_audio": "true" if audio else "false"})
    target = f"{_ws_url(owner_url)}/v1/realtime?{query}"
    try:
        upstream = await connect(
            target,
            additional_headers={"Authorization": f"Bearer {key}"},
            subprotocols=None if subprotocol is None else [subprotocol],  # type: ignore[list-item]
            max_size=MAX_FRAME,
            open_timeout=CONNECT_TIMEOUT_S,
        )
    except InvalidStatus as exc:  # the owner refused: pass its answer on
        refusal = exc.response.body or b""
        await ws.send_denial_response(
            Response(refusal, status_code=exc.response.status_code, media_type="application/json")
        )
        return
    except (OSError, TimeoutError, WebSocketException):
        body = error_body(
            f"Call {call_id!r} is on a node that cannot be reached.",
            type_="server_error",
            code="owner_unavailable",
            param="call_id",
        )
        await ws.send_denial_response(
            Response(orjson.dumps(body), status_code=503, media_type="application/json")
        )
        return
    async with upstream:
        await ws.accept(subprotocol=subprotocol)
        await _pump(ws, upstream)


#: the owner's response headers a proxied recording keeps
_RECORDING_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "content-disposition",
    "cache-control",
    "etag",
    "last-modified",
)


async def proxy_recording(
    owner_url: str, *, call_id: str, key: str, range_header: str | None
) -> Response:
    """The recording of ``call_id`` as the node at ``owner_url`` serves it (ranges included);
    503 ``owner_unavailable`` when that node cannot be reached."""
    headers = {"Authorization": f"Bearer {key}"}
    if range_header:
        headers["Range"] = range_header
    client = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=None))
    try:
        request = client.build_request(
            "GET", f"{owner_url}/v1/calls/{quote(call_id, safe='')}/recording", headers=headers
        )
        answer = await client.send(request, stream=True)
    except httpx.HTTPError:
        await client.aclose()
        refusal = error_body(
            f"Call {call_id!r}'s recording is on a node that cannot be reached.",
            type_="server_error",
            code="owner_unavailable",
            param="call_id",
        )
        return Response(orjson.dumps(refusal), status_code=503, media_type="application/json")

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.aiter_raw():
                yield chunk
        finally:
            await answer.aclose()
            await client.aclose()

    kept = {k: v for k, v in answer.headers.items() if k.lower() in _RECORDING_HEADERS}
    return StreamingResponse(body(), status_code=answer.status_code, headers=kept)


async def _pump(ws: WebSocket, upstream: ClientConnection) -> None:
    async def to_client() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in upstream:
                if isinstance(frame, str):
                    await ws.send_text(frame)
                else:
                    await ws.send_bytes(frame)

    async def to_owner() -> None:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") is not None:
                    await upstream.send(msg["text"])
                elif msg.get("bytes") is not None:
                    await upstream.send(msg["bytes"])

    tasks = [asyncio.create_task(to_client()), asyncio.create_task(to_owner())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    code = upstream.close_code or 1000
    reason = upstream.close_reason or ""
    with contextlib.suppress(Exception):
        await ws.close(code=code if code != 1006 else 1011, reason=reason)
