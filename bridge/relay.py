"""The OpenAI-compatible WebSocket relay: ``GET /v1/realtime?model=M``.

A client written for OpenAI connects here instead of ``wss://api.openai.com/v1/realtime``: it
authenticates with the server key, or a browser's ``ek_`` key whose bound session is applied
first, as ``Authorization: Bearer`` or the browser subprotocol
``openai-insecure-api-key.<key>`` (the answer names subprotocol ``realtime``, which Chromium
requires), and gets a session on the configured upstream, translated between GA and the
upstream's dialect by :class:`~bridge.upstream.UpstreamSession`.

Handshake failures are HTTP errors with OpenAI's error body, sent before the WebSocket opens:
401 without or with a wrong key, 400 for a malformed request, 502/503 when the upstream cannot
be reached (503 when a retry may help; the body names a correlation id that is in the log, never
the upstream's URL or error text). In a cluster, the sideband of a call another node has is
carried to that node (:mod:`bridge.cluster.proxy`); 503 ``owner_unavailable`` when it is gone.
After the handshake, a bad client frame gets an ``error`` event and the session goes on; an
upstream that goes away closes the client with 1011 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from bridge.apikeys import ServerKey, key_from_request
from bridge.cluster.proxy import proxy_sideband
from bridge.errors import OwnerUnavailable, ProtocolError, UpstreamError
from bridge.http_errors import error_body
from bridge.logs import log_incident
from bridge.realtime import wire
from bridge.security import SecurityKind
from bridge.tasks import cancel_and_wait
from bridge.upstream import UpstreamSession
from bridge.webrtc.ephemeral import bound_session
from bridge.webrtc.sideband import attach  # the sideband: observers of a live call

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()


def error_event(exc: ProtocolError) -> str:
    return wire.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": exc.code,
                "message": str(exc),
                "param": exc.param,
            },
        }
    )


async def _deny(ws: WebSocket, status: int, body: dict[str, Any]) -> None:
    await ws.send_denial_response(JSONResponse(body, status_code=status))


@router.websocket("/v1/realtime")
async def realtime(ws: WebSocket) -> None:
    server_key: ServerKey = ws.app.state.server_key
    subprotocols: list[str] = list(ws.scope.get("subprotocols") or [])
    key = key_from_request(ws.headers, subprotocols)
    if key is None:
        await _deny(
            ws,
            401,
            error_body(
                "Missing API key: send 'Authorization: Bearer <key>' or the subprotocol "
                "'openai-insecure-api-key.<key>'.",
                code="missing_api_key",
            ),
        )
        return
    params = ws.query_params
    bound: dict[str, Any] | None = None  # the session an ephemeral (browser) key carries
    if not server_key.matches(key):
        keys = getattr(getattr(ws.app.state, "webrtc", None), "keys", None)
        bound = None if "call_id" in params else bound_session(keys, key)
        if bound is None:
            security = getattr(ws.app.state, "security", None)
            if security is not None:
                client = ws.client.host if ws.client else "unknown"
                security.record(
                    SecurityKind.AUTH_FAILURE,
                    source=f"http:{client}",
                    detail="wrong or expired key on the WebSocket relay",
                )
            await _deny(ws, 401, error_body("Incorrect API key provided.", code="invalid_api_key"))
            return
    if "call_id" in params:
        manager = getattr(ws.app.state, "manager", None)
        call = manager.calls.get(params["call_id"]) if manager is not None else None
        audio = params.get("include_audio", "").lower() in ("1", "true", "yes")
        proto = "realtime" if "realtime" in subprotocols else None
        if (call is None or call.ended) and await _elsewhere(
            ws, params["call_id"], key, audio, proto
        ):
            return
        if call is None or call.ended:
            await _deny(
                ws,
                404,
                error_body(
                    f"No live call with id {params['call_id']!r}.",
                    code="call_not_found",
                    param="call_id",
                ),
            )
            return
        await attach(ws, call, audio=audio, subprotocol=proto)
        return
    model = params.get("model") or None
    if bound is not None and isinstance(bound.get("model"), str) and bound["model"]:
        # the model the key was minted for, not one the browser names (a dearer one)
        model = bound["model"]

    upstream = UpstreamSession(ws.app.state.upstream_settings, model=model)
    try:
        await upstream.connect()
    except UpstreamError as exc:  # the client gets a reference, never the upstream's words
        ref = log_incident(log, "relay: upstream unavailable", exc)
        await _deny(
            ws,
            503 if exc.retryable else 502,
            error_body(
                f"Upstream unavailable ({ref}).",
                type_="server_error",
                code="upstream_unavailable",
            ),
        )
        return

    if bound is not None and set(bound) - {"type"}:
        await upstream.send({"type": "session.update", "session": bound})
    await ws.accept(subprotocol="realtime" if "realtime" in subprotocols else None)
    try:
        await _pump(ws, upstream)
    finally:
        await upstream.close()


async def _elsewhere(
    ws: WebSocket, call_id: str, key: str, audio: bool, subprotocol: str | None
) -> bool:
    """Serve the sideband of a call another node of the cluster has (proxied to it); False
    when no node has it."""
    cluster = getattr(getattr(ws.app.state, "control", None), "cluster", None)
    if cluster is None:
        return False
    try:
        owner = await cluster.owner_of(call_id)
    except OwnerUnavailable as exc:
        await _deny(ws, 503, error_body(str(exc), type_="server_error", code=exc.code))
        return True
    if owner is None:
        return False
    url = await cluster.node_url(owner)
    if url is None:
        body = error_body(
            f"Call {call_id!r} is on node {owner!r}, which is gone (stopped or died).",
            type_="server_error",
            code="owner_unavailable",
            param="call_id",
        )
        await _deny(ws, 503, body)
        return True
    await proxy_sideband(ws, url, call_id=call_id, audio=audio, key=key, subprotocol=subprotocol)
    return True


async def _pump(ws: WebSocket, upstream: UpstreamSession) -> None:
    """Client <-> upstream until either side ends; then the other side is closed."""

    async def client_to_upstream() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            text = msg.get("text")
            if text is None:
                await ws.send_text(
                    error_event(
                        ProtocolError(
                            "binary frames are not part of the Realtime protocol; send JSON text",
                            code="invalid_json",
                        )
                    )
                )
                continue
            try:
                await upstream.send_frame(text)
            except ProtocolError as exc:
                await ws.send_text(error_event(exc))

    async def upstream_to_client() -> tuple[int, str]:
        try:
            async for frame in upstream.frames():
                await ws.send_text(frame)
        except UpstreamError as exc:
            ref = log_incident(log, "relay: upstream ended", exc)
            return 1011, f"upstream lost ({ref})"
        return 1000, "upstream closed the session"

    up_task = asyncio.create_task(upstream_to_client())
    down_task = asyncio.create_task(client_to_upstream())
    done, _ = await asyncio.wait({up_task, down_task}, return_when=asyncio.FIRST_COMPLETED)
    if up_task in done:
        down_task.cancel()
        code, reason = up_task.result() if not up_task.exception() else (1011, "relay error")
        if ws.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.close(code=code, reason=reason)
    else:
        up_task.cancel()
    # a closed socket on the way out is no news
    await cancel_and_wait(
        up_task, down_task, expected=(WebSocketDisconnect, RuntimeError, UpstreamError)
    )
