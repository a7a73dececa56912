"""Request-size limits for the HTTP app: 413 before a body is read whole.

Without a limit, one ``POST /v1/realtime/calls`` with a 200 MB "SDP" body and a browser's
``ek_`` key held 176 MB. :class:`BodyLimits` is an ASGI middleware that caps every request body
by its kind, which is what each route takes: an SDP offer (``application/sdp``,
``server.max_sdp_bytes``), a multipart offer with its session (``multipart/form-data``,
``max_multipart_bytes``), the dashboard's login form (``application/x-www-form-urlencoded``,
``max_form_bytes``), and JSON for everything else (``max_json_bytes``). A declared
``Content-Length`` over the cap is answered at once, without reading a byte; a chunked body is
counted as it arrives and refused as soon as it passes the cap (the route never sees more).
The answer is OpenAI's error shape with code ``request_too_large``, and each refusal is an
``oversized-message`` security event.

Before answering, up to :data:`DISCARD_BYTES` more of the body are read and thrown away (for at
most :data:`DISCARD_S`): a client slightly over the limit then reads a clean 413 instead of a
connection reset, while a flood is cut off after that much. A client that sent
``Expect: 100-continue`` and declared too much gets the 413 without ``100 Continue``: it has sent
no body, and reading would ask it for one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.errors import RtbridgeError
from bridge.security import SecurityKind

__all__ = ["DISCARD_BYTES", "DISCARD_S", "BodyLimits", "BodyTooLarge"]

DISCARD_BYTES = 1024 * 1024
DISCARD_S = 0.5


class BodyTooLarge(HTTPException, RtbridgeError):
    """Raised from ``receive`` when a body passes its cap; FastAPI and Starlette pass HTTP
    exceptions through to the app's error handler, which answers 413 in OpenAI's shape."""

    def __init__(self, limit: int, kind: str) -> None:
        super().__init__(413, detail=_detail(limit, kind), headers={"Connection": "close"})


def _detail(limit: int, kind: str) -> dict[str, Any]:
    return {
        "message": f"The request body is larger than {limit} bytes, the limit for {kind}.",
        "type": "invalid_request_error",
        "code": "request_too_large",
        "param": None,
    }


def _limit(scope: Scope) -> tuple[int, str]:
    server = scope["app"].state.settings.server
    ctype = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            ctype = value.decode("latin-1").split(";", 1)[0].strip().lower()
            break
    if ctype == "application/sdp":
        return server.max_sdp_bytes, "an SDP offer"
    if ctype == "multipart/form-data":
        return server.max_multipart_bytes, "a multipart body"
    if ctype == "application/x-www-form-urlencoded":
        return server.max_form_bytes, "a form"
    return server.max_json_bytes, "a JSON body"


async def _discard(receive: Receive) -> None:
    """Read and drop what follows of the body, within the discard budget."""
    left = DISCARD_BYTES
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DISCARD_S):
            while left > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return
                left -= len(message.get("body", b""))
                if not message.get("more_body"):
                    return


def _expects_continue(scope: Scope) -> bool:
    """The client waits for ``100 Continue`` before it sends the body (RFC 9110 §10.1.1)."""
    return any(k == b"expect" and v.strip().lower() == b"100-continue" for k, v in scope["headers"])


class BodyLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, kind = _limit(scope)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            self._record(scope, f"{declared.decode('latin-1')[:20]} bytes declared", limit)
            if not _expects_continue(scope):  # else receiving would ask for the body (100)
                await _discard(receive)
            response = JSONResponse({"error": _detail(limit, kind)}, status_code=413)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    self._record(scope, f"over {seen} bytes sent", limit)
                    if message.get("more_body"):
                        await _discard(receive)
                    raise BodyTooLarge(limit, kind)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    def _record(scope: Scope, what: str, limit: int) -> None:
        security = getattr(scope["app"].state, "security", None)
        if security is None:
            return
        client = scope.get("client")
        security.record(
            SecurityKind.OVERSIZED_MESSAGE,
            source=f"http:{client[0] if client else 'unknown'}",
            detail=f"{scope.get('method')} {scope.get('path')}: {what}, limit {limit}",
        )
