"""The OpenAI-compatible browser-call routes and the demo page.

* ``POST /v1/realtime/client_secrets``: mint an ``ek_`` key (server key only; see
  :mod:`bridge.webrtc.ephemeral`).
* ``POST /v1/realtime/calls``: a raw SDP offer (``Content-Type: application/sdp``) or multipart
  (``sdp`` + ``session`` JSON), authorised by the server key or an ``ek_`` key; ``201`` with the
  SDP answer and ``Location: /v1/realtime/calls/{call_id}``. The openai SDK retries a POST after
  a 5xx without an idempotency key, so retries are recognised by the offer's ICE ufrag and DTLS
  fingerprint (unique per peer connection) and get the same answer and Location: one call.
* ``GET /``: the demo page (:mod:`bridge.static`). ``POST /demo/client_secret`` mints a key
  for it without the server key **only** for the page itself on this machine: a loopback
  visitor, a loopback ``Host`` (``127.0.0.1``, ``localhost``, ``[::1]``: a DNS-rebound name is
  not one), and an ``Origin`` equal to that host (so another page the same browser has open,
  even on another local port, gets nothing). Anyone else must type the server key into the
  page, which then mints with it like any backend would.

CORS is open on ``POST /v1/realtime/calls`` and ``/v1/realtime/client_secrets`` only (bearer
keys, no cookies), and exposes ``Location``, which the browser SDKs read for the call id; no
other route answers cross-origin requests. Routes validate and delegate to
:func:`bridge.webrtc.leg.open_call`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.apikeys import ServerKey, key_from_request
from bridge.calls.manager import CallManager
from bridge.control.auth import origin_allowed, record
from bridge.errors import CallSetupError
from bridge.http_errors import error_body
from bridge.logs import log_incident
from bridge.security import SecurityKind
from bridge.webrtc.ephemeral import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    MIN_TTL_S,
    EphemeralKey,
    EphemeralKeys,
    is_ephemeral,
)
from bridge.webrtc.leg import merge_session, open_call

log = logging.getLogger(__name__)

__all__ = ["WebRtcService", "install", "router"]

router = APIRouter()

_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)
_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+ \S+)", re.MULTILINE)
#: How deep a session object (a client secret's, a browser call's) may nest: far deeper than
#: any real session (tools' JSON schemas included), far shallower than what the upstream's
#: JSON encoder (255 levels, the event around it included) and Python's stack take
MAX_SESSION_DEPTH = 64


@dataclass
class WebRtcService:
    """Per-app state of the browser leg: live ``ek_`` keys and call creations by offer."""

    keys: EphemeralKeys = field(default_factory=EphemeralKeys)
    created: dict[tuple[str, str], asyncio.Future[tuple[str, str]]] = field(default_factory=dict)
    #: browser calls being set up or up, by call (or set-up) id: (source address, ek_ key)
    holders: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def over_cap(self, manager: CallManager, host: str, key: str | None) -> str | None:
        """Why one more browser call from ``host`` with ``key`` is refused (None: it is not)."""
        for held in [h for h in self.holders if h.startswith("call_")]:
            if held not in manager.calls:
                del self.holders[held]  # ended
        limits = manager.settings.webrtc
        values = self.holders.values()
        local = host in ("127.0.0.1", "::1")  # a reverse proxy on this host, or a demo
        if not local and sum(h == host for h, _ in values) >= limits.max_calls_per_source:
            return f"this address already has {limits.max_calls_per_source} browser calls"
        if key is not None and sum(k == key for _, k in values) >= limits.max_calls_per_key:
            return f"this key already has {limits.max_calls_per_key} browser calls"
        return None


#: the routes browsers on other origins call with a bearer key (the OpenAI-compatible API)
CORS_PATHS = frozenset({"/v1/realtime/calls", "/v1/realtime/client_secrets"})


class _ApiCors:
    """CORS for :data:`CORS_PATHS` only; every other route stays same-origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Location"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the browser-call routes, the demo page and CORS (on :data:`CORS_PATHS`) to ``app``."""
    app.state.webrtc = WebRtcService()
    app.add_middleware(_ApiCors)
    app.include_router(router)


def _service(request: Request) -> WebRtcService:
    svc = getattr(request.app.state, "webrtc", None)
    if svc is None:
        svc = request.app.state.webrtc = WebRtcService()
    assert isinstance(svc, WebRtcService)
    return svc


def _error(status: int, message: str, code: str, *, param: str | None = None) -> JSONResponse:
    type_ = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        error_body(message, type_=type_, code=code, param=param), status_code=status
    )


def _unauthorized(request: Request, key: str | None) -> JSONResponse:
    if key is None:
        return _error(
            401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key"
        )
    record(request, SecurityKind.AUTH_FAILURE, f"wrong or expired key on {request.url.path}")
    return _error(401, "Incorrect API key provided.", "invalid_api_key")


# -- client secrets --------------------------------------------------------------------


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: str = Field(default="created_at", pattern="^created_at$")
    seconds: int = Field(default=DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S)


class ClientSecretRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    expires_after: ExpiresAfter = Field(default_factory=ExpiresAfter)
    session: dict[str, Any] = Field(default_factory=lambda: {"type": "realtime"})


def _mint(svc: WebRtcService, body: ClientSecretRequest) -> dict[str, Any]:
    session = dict(body.session)
    session.setdefault("type", "realtime")
    key = svc.keys.mint(session, body.expires_after.seconds)
    return {
        "value": key.value,
        "expires_at": key.expires_at,
        "session": {**session, "object": "realtime.session", "expires_at": key.expires_at},
    }


def _depth(value: Any) -> int:
    """How deep ``value``'s objects and arrays nest (without recursion: it may be deep)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in children)
    return deepest


def _json_object(raw: bytes | str, what: str, param: str | None = None) -> dict[str, Any] | str:
    """``raw`` parsed as a JSON object nested at most :data:`MAX_SESSION_DEPTH` deep, else
    why not (``what`` names it: "The body", "The 'session' part")."""
    try:
        data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return f"{what} is not valid JSON (UTF-8)."
    if not isinstance(data, dict):
        return f"{what} must be a JSON object."
    if _depth(data) > MAX_SESSION_DEPTH:
        return f"{what} nests deeper than {MAX_SESSION_DEPTH} levels."
    return data


async def _parse_json(request: Request) -> dict[str, Any] | JSONResponse:
    data = _json_object(await request.body() or b"{}", "The body")
    if isinstance(data, str):
        return _error(400, data, "invalid_json")
    return data


@router.post("/v1/realtime/client_secrets")
async def client_secrets(request: Request) -> Response:
    server_key: ServerKey = request.app.state.server_key
    key = key_from_request(request.headers)
    if not server_key.matches(key):
        if key is not None and is_ephemeral(key) and _service(request).keys.lookup(key):
            return _error(
                403,
                "An ephemeral client key cannot create client secrets; use the server key.",
                "ephemeral_key_not_allowed",
            )
        return _unauthorized(request, key)
    data = await _parse_json(request)
    if isinstance(data, JSONResponse):
        return data
    try:
        body = ClientSecretRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _error(
            400,
            f"Invalid request: {first['msg']}",
            "invalid_value",
            param=".".join(str(x) for x in first["loc"]),
        )
    return JSONResponse(_mint(_service(request), body))


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_host(request: Request) -> bool:
    """The ``Host`` the browser sent names this machine (a rebound DNS name does not)."""
    host = request.headers.get("host", "").strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in _LOOPBACK_NAMES


@router.post("/demo/client_secret", include_in_schema=False)
async def demo_client_secret(request: Request) -> Response:
    """The demo page's key, without the server key, only for the demo page itself on this
    machine: a loopback visitor, a loopback Host, and an Origin equal to it."""
    if not request.app.state.settings.webrtc.demo:
        return _error(404, "The demo page is disabled.", "not_found")
    if not _is_loopback(request):
        return _error(
            401, "Only visitors on loopback get a key without the server key.", "missing_api_key"
        )
    if not _loopback_host(request) or not origin_allowed(request):
        origin = request.headers.get("origin") or "none"
        host = request.headers.get("host") or "none"
        record(
            request,
            SecurityKind.ORIGIN_REFUSED,
            f"demo key requested by Origin {origin} for Host {host}",
        )
        return _error(
            403,
            "Only the demo page itself, opened at http://127.0.0.1 or http://localhost, gets a "
            "key without the server key.",
            "origin_not_allowed",
        )
    return JSONResponse(_mint(_service(request), ClientSecretRequest()))


@router.get("/", include_in_schema=False)
async def demo_page(request: Request) -> Response:
    if not request.app.state.settings.webrtc.demo:
        return _error(404, "The demo page is disabled.", "not_found")
    page = resources.files("bridge").joinpath("static", "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


# -- calls -----------------------------------------------------------------------------


async def _read_offer(request: Request) -> tuple[str, dict[str, Any]] | JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/sdp":
        return (await request.body()).decode("utf-8", "replace"), {}
    if ctype == "multipart/form-data":
        form = await request.form()
        sdp_part, session_part = form.get("sdp"), form.get("session")
        if sdp_part is None:
            return _error(400, "Missing the 'sdp' part.", "missing_required_parameter", param="sdp")
        # as an application/sdp body is read; a file part's bytes are not decoded by Starlette
        sdp = (
            sdp_part
            if isinstance(sdp_part, str)
            else (await sdp_part.read()).decode("utf-8", "replace")
        )
        session: dict[str, Any] = {}
        if session_part is not None:
            raw = session_part if isinstance(session_part, str) else await session_part.read()
            parsed = _json_object(raw, "The 'session' part") if raw.strip() else {}
            if isinstance(parsed, str):
                return _error(400, parsed, "invalid_json", param="session")
            session = parsed
        return sdp, session
    return _error(
        415,
        "Send the SDP offer as application/sdp, or multipart/form-data with 'sdp' and 'session'.",
        "unsupported_media_type",
    )


#: m-lines an offer may carry: a browser sends two (audio, the data channel); each one costs
#: aiortc a transceiver to parse and answer (800 bundled ones stalled every call ~1 s)
MAX_MEDIA_LINES = 8


def _unreasonable_offer(sdp: str, max_bytes: int) -> JSONResponse | None:
    """An offer too large (a multipart ``sdp`` part is held to ``max_sdp_bytes`` too, as an
    ``application/sdp`` body is) or with too many m-lines: 413 / 400 before aiortc sees it."""
    if len(sdp.encode("utf-8", "replace")) > max_bytes:
        msg = f"The SDP offer is larger than {max_bytes} bytes."
        return _error(413, msg, "request_too_large", param="sdp")
    if sdp.count("\nm=") + sdp.startswith("m=") > MAX_MEDIA_LINES:
        msg = f"The SDP offer has more than {MAX_MEDIA_LINES} m-lines."
        return _error(400, msg, "invalid_sdp", param="sdp")
    return None


def _offer_identity(sdp: str) -> tuple[str, str] | None:
    ufrag, fingerprint = _UFRAG.search(sdp), _FINGERPRINT.search(sdp)
    if ufrag is None or fingerprint is None:
        return None
    return ufrag.group(1), fingerprint.group(1).lower()


def _created(call_id: str, answer: str) -> Response:
    return Response(
        answer,
        status_code=201,
        media_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call_id}"},
    )


@router.post("/v1/realtime/calls")
async def create_call(request: Request) -> Response:
    svc = _service(request)
    server_key: ServerKey = request.app.state.server_key
    key = key_from_request(request.headers)
    bound: dict[str, Any] = {}
    ek: EphemeralKey | None = None
    if not server_key.matches(key):
        ek = svc.keys.lookup(key) if key is not None and is_ephemeral(key) else None
        if ek is None:
            return _unauthorized(request, key)
        bound = ek.session
    offer = await _read_offer(request)
    if isinstance(offer, JSONResponse):
        return offer
    sdp, session = offer
    unreasonable = _unreasonable_offer(sdp, request.app.state.settings.server.max_sdp_bytes)
    if unreasonable is not None:
        return unreasonable
    identity = _offer_identity(sdp)
    if identity is None:
        return _error(
            400, "The offer lacks a=ice-ufrag or a=fingerprint.", "invalid_sdp", param="sdp"
        )
    manager: CallManager | None = getattr(request.app.state, "manager", None)
    if manager is None:
        return _error(503, "Calls are not enabled in this process.", "unavailable")
    _forget_ended(svc, manager)
    existing = svc.created.get(identity)
    if existing is not None:  # a retry of the same offer: the same call
        try:
            call_id, answer = await asyncio.shield(existing)
        except CallSetupError as exc:
            return _setup_error(request, exc)
        return _created(call_id, answer)
    future: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
    svc.created[identity] = future
    hosts = list(getattr(request.app.state, "ice_hosts", None) or [])
    hosts = hosts or list(request.app.state.settings.webrtc.ice_hosts)
    host = request.client.host if request.client else "unknown"
    holder = (host, None if ek is None else ek.value)
    why = svc.over_cap(manager, *holder)
    if why is not None:
        svc.created.pop(identity, None)
        refused = CallSetupError(429, f"Too many calls: {why}.", "too_many_calls")
        future.set_exception(refused)
        future.exception()
        return _setup_error(request, refused)
    setting_up = f"setup_{id(future)}"
    svc.holders[setting_up] = holder
    try:
        call, answer = await open_call(
            manager,
            offer_sdp=sdp,
            session=merge_session(bound, session),
            ice_hosts=hosts,
            source=f"webrtc:{host}",
        )
        svc.holders[call.id] = holder
    except CallSetupError as exc:
        svc.created.pop(identity, None)  # a failed attempt may be retried afresh
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waits
        return _setup_error(request, exc)
    except BaseException as exc:
        svc.created.pop(identity, None)
        future.set_exception(CallSetupError(500, "call setup failed", "server_error"))
        future.exception()
        if isinstance(exc, Exception):
            ref = log_incident(log, "browser call setup failed", exc)
            return _error(500, f"Call setup failed ({ref}).", "server_error")
        raise
    finally:
        del svc.holders[setting_up]
    future.set_result((call.id, answer))
    return _created(call.id, answer)


def _setup_error(request: Request, exc: CallSetupError) -> JSONResponse:
    response = _error(exc.status, str(exc), exc.code)
    if exc.status in (429, 503):
        response.headers["Retry-After"] = str(request.app.state.settings.calls.retry_after_s)
    return response


def _forget_ended(svc: WebRtcService, manager: CallManager) -> None:
    for identity, fut in list(svc.created.items()):
        if fut.done() and not fut.exception() and fut.result()[0] not in manager.calls:
            del svc.created[identity]
