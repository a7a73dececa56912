"""``/dashboard``: the ops dashboard's page, login, and its two live streams.

* ``GET /dashboard``: the dashboard (``bridge/static/dashboard.html``), or the login form when
  the request carries neither the server key (Bearer) nor the login cookie.
* ``POST /dashboard/login``: the key in a form body (never a URL); starts a login session (a
  random token in the cookie, :mod:`bridge.control.auth`) and redirects to the dashboard.
  ``POST /dashboard/logout`` revokes it. Both refuse a form posted from another origin.
  The page's views: the fleet's last hour as SVG charts (``dashboard-charts.js``, our own:
  ``dashboard-fleet.js``), live calls, one call's timeline with its recording player
  (``dashboard-timeline.js``), the security events, the search of ended calls
  (``dashboard-search.js`` over ``GET /v1/calls/search``) and the recent ended calls.
* ``GET /dashboard/api/stream`` (SSE): a ``snapshot`` (live calls, recent ended calls, recent
  security events, the fleet's last hour), then ``offered`` / ``answered`` / ``ended`` from the
  call manager's lifecycle fan-out, a ``stats`` event every half second with the numbers that
  move (and the fleet buckets that changed: the one closed since, the open one), and
  ``security`` with the security events recorded since (:mod:`bridge.security`). Every tick
  the set of live calls is reconciled with what this client was told, so a dropped lifecycle
  event or a leg that does not publish one (browser calls) still appears and disappears. On
  reconnect the browser gets a fresh snapshot. In a cluster (``cluster.redis_url``) the
  snapshot and every tick also hold the other nodes' live calls from the registry (each row
  names its ``node``): they appear as ``answered`` and leave as ``ended`` (their statistics
  stay on their node). The fleet charts are this node's.
* ``GET /dashboard/api/calls/{id}/stream`` (SSE): one call's stored event log (transcripts,
  DTMF, tool calls, REFER, both parties' speech and playback, barge-ins, turn latencies:
  what the call view's timeline draws), then until it ends: its live server events (``event``),
  what it logs meanwhile (``logged``: DTMF, REFER progress, hold) and its full statistics
  (``stats``); then ``ended`` with the reason. For an ended call: the log and ``ended``.

Actions (hang up, transfer) go to the control plane's ``/v1/calls/{id}/...`` routes, which
accept the same cookie. Pages get a strict Content-Security-Policy: no inline script, no
framing (the hang-up button cannot be clickjacked).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from bridge.apikeys import ServerKey
from bridge.calls.end import EndReason
from bridge.calls.live import LiveCall
from bridge.calls.manager import CallManager
from bridge.calls.observers import Subscription
from bridge.cluster.registry import Registry
from bridge.control.auth import (
    COOKIE_NAME,
    is_authorized,
    log_in,
    log_out,
    origin_allowed,
    record,
)
from bridge.dashboard.fleet import LATENCY_EDGES_S, FleetHistory
from bridge.dashboard.views import (
    call_stats,
    ended_view,
    live_view,
    log_entry,
    slim_event,
)
from bridge.http_errors import error_body
from bridge.records import CallEvent, CallStore, RecordsUnavailable
from bridge.security import SecurityKind, SecurityLog

__all__ = ["STATS_INTERVAL_S", "router"]

router = APIRouter(include_in_schema=False)

STATS_INTERVAL_S = 0.5
RECENT_LIMIT = 50
SECURITY_LIMIT = 50  # security events in the panel
#: log kinds the detail stream already sent as live server events (the transcripts; the rest
#: of the log goes on as "logged": the timeline draws from it)
_LIVE_KINDS = frozenset({"transcript.user", "transcript.agent"})
_ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard-charts.js": "text/javascript",
    "dashboard-fleet.js": "text/javascript",
    "dashboard-timeline.js": "text/javascript",
    "dashboard-search.js": "text/javascript",
    "dashboard.css": "text/css",
}
#: the search form's end reasons: the closed set, in the page as <option>s
_END_REASONS = "".join(f'<option value="{r.value}">' for r in EndReason)
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not "no-referrer": under it browsers send "Origin: null" even on the page's own POSTs,
    # and the Origin check (bridge.control.auth) would refuse the dashboard itself
    "Referrer-Policy": "same-origin",
}


def _static(name: str) -> str:
    return resources.files("bridge").joinpath("static", name).read_text(encoding="utf-8")


def _key(request: Request) -> ServerKey:
    key = request.app.state.server_key
    assert isinstance(key, ServerKey)
    return key


def _authorized(request: Request) -> bool:
    return is_authorized(request)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        error_body(
            "Log in at /dashboard or send 'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        ),
        status_code=401,
    )


def _closing(request: Request) -> asyncio.Event:
    """Set when the process has drained and is going away: open streams end then (the server
    waits for open responses before it exits)."""
    closing = getattr(getattr(request.app.state, "control", None), "closing", None)
    return closing if isinstance(closing, asyncio.Event) else asyncio.Event()


def _runtime(request: Request) -> tuple[CallManager, CallStore] | JSONResponse:
    manager = getattr(request.app.state, "manager", None)
    store = getattr(request.app.state, "store", None)
    if not isinstance(manager, CallManager) or not isinstance(store, CallStore):
        return JSONResponse(
            error_body("Calls are not running in this process.", type_="server_error"),
            status_code=503,
        )
    return manager, store


def _login_page(error: str | None, status: int) -> HTMLResponse:
    page = _static("dashboard-login.html")
    if error:
        page = page.replace(
            "<!--error-->", f'<p class="error" role="alert">{html.escape(error)}</p>'
        )
    return HTMLResponse(page, status_code=status, headers=_SECURITY_HEADERS)


# -- pages ---------------------------------------------------------------------------------


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    if not _authorized(request):
        return _login_page(None, 401)
    page = _static("dashboard.html").replace("<!--end-reasons-->", _END_REASONS)
    return HTMLResponse(page, headers=_SECURITY_HEADERS)


@router.get("/dashboard/static/{name}")
async def asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        return JSONResponse(error_body("Not found.", code="not_found"), status_code=404)
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})


def _cross_origin(request: Request, what: str) -> HTMLResponse:
    origin = request.headers.get("origin") or "none"
    record(request, SecurityKind.ORIGIN_REFUSED, f"dashboard {what} from Origin {origin}")
    return _login_page("Refused: this form was not sent from this server's own page.", 403)


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    if "origin" in request.headers and not origin_allowed(request):  # login CSRF
        return _cross_origin(request, "login")
    form = await request.form()
    key = form.get("key")
    if not isinstance(key, str) or not _key(request).matches(key.strip()):
        record(request, SecurityKind.AUTH_FAILURE, "dashboard login with a wrong key")
        return _login_page("That is not the server key.", 401)
    response = RedirectResponse("/dashboard", status_code=303)
    log_in(request, response)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    if COOKIE_NAME in request.cookies and not origin_allowed(request):
        return _cross_origin(request, "logout")
    response = RedirectResponse("/dashboard", status_code=303)
    log_out(request, response)
    return response


# -- live streams --------------------------------------------------------------------------


def _sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _live(manager: CallManager) -> dict[str, LiveCall]:
    return dict(manager.calls)


async def _recent(store: CallStore) -> list[dict[str, Any]]:
    """The most recent ended calls ([] while the records are unavailable: the live calls are
    shown all the same)."""
    try:
        records = await asyncio.to_thread(store.list_calls, limit=RECENT_LIMIT, state="ended")
    except RecordsUnavailable:
        return []
    return [ended_view(r) for r in records]


async def _logged(
    store: CallStore, call_id: str, after_seq: int = 0, *, settle: bool = False
) -> list[CallEvent]:
    """The call's event log after ``after_seq``; ``settle``: first wait (up to 5 s) for what
    was just logged to be written. [] while the records are unavailable: the live view goes
    on, and the log catches up at a later read."""
    try:
        if settle:
            with contextlib.suppress(TimeoutError):
                await asyncio.to_thread(store.flush, 5.0)
        return await asyncio.to_thread(store.events, call_id, after_seq=after_seq)
    except RecordsUnavailable:
        return []


async def _next(sub: Subscription, timeout: float) -> Mapping[str, Any] | bool | None:
    """The next event, None when the fan-out closed, False on timeout."""
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            return await sub.get()
    except TimeoutError:
        return False


@router.get("/dashboard/api/stream")
async def stream(request: Request) -> Response:
    if not _authorized(request):
        return _unauthorized()
    rt = _runtime(request)
    if isinstance(rt, JSONResponse):
        return rt
    security: SecurityLog = request.app.state.security
    plane = getattr(request.app.state, "control", None)
    cluster = getattr(plane, "cluster", None)
    node = getattr(plane, "node_name", None) if cluster is not None else None
    fleet = getattr(request.app.state, "fleet", None)
    fleet = fleet if isinstance(fleet, FleetHistory) else None

    def trunks() -> list[dict[str, object]]:
        health = getattr(plane, "trunk_health", None)  # the SIP trunks' keepalive states
        return [h.view() for h in health().values()] if health is not None else []

    return _stream(_overview(*rt, _closing(request), security, fleet, cluster, node, trunks))


async def _remote(cluster: Registry | None) -> dict[str, dict[str, Any]]:
    """The other nodes' live calls (none without a cluster, or while Redis is away)."""
    if cluster is None:
        return {}
    return {str(c.get("id")): c for c in await cluster.remote_calls()}


def _fleet_view(fleet: FleetHistory | None) -> dict[str, Any] | None:
    if fleet is None:
        return None
    return {
        "bucket_s": fleet.bucket_s,
        "edges": LATENCY_EDGES_S,
        "security_kinds": [k.value for k in SecurityKind],
        "buckets": fleet.history(),
    }


async def _overview(
    manager: CallManager,
    store: CallStore,
    closing: asyncio.Event,
    security: SecurityLog,
    fleet: FleetHistory | None,
    cluster: Registry | None = None,
    node: str | None = None,
    trunks: Callable[[], list[dict[str, object]]] = list,
) -> AsyncIterator[bytes]:
    sub = manager.lifecycle.subscribe(maxsize=4096)
    loop = asyncio.get_running_loop()
    mine = {"node": node} if node is not None else {}
    # what this client was told: call id -> the live call (None: offered, still ringing)
    known: dict[str, LiveCall | None] = {}
    remote: dict[str, dict[str, Any]] = {}  # the other nodes' calls this client was told of
    gone: dict[str, float] = {}  # told "ended" by a tick; its lifecycle event may follow
    told_seq = 0  # the newest security event this client has
    fleet_from = 0.0  # the open fleet bucket this client was sent last (it may close)
    try:
        yield b"retry: 1000\n\n"

        async def snapshot() -> bytes:
            nonlocal told_seq, fleet_from
            known.clear()
            views = []
            for call in _live(manager).values():
                known[call.id] = call
                views.append({**live_view(call), **mine, "stats": call_stats(call)})
            remote.clear()
            remote.update(await _remote(cluster))
            views.extend(remote.values())
            told_seq = security.last_seq
            alerts = [e.to_json() for e in security.recent(limit=SECURITY_LIMIT)]
            history = _fleet_view(fleet)
            if history is not None:
                fleet_from = history["buckets"][-1]["t"]
            return _sse(
                "snapshot",
                {
                    "now": manager.clock.wall(),
                    "calls": views,
                    "recent": await _recent(store),
                    "security": alerts,
                    "fleet": history,
                    "trunks": trunks(),
                },
            )

        yield await snapshot()
        dropped = sub.dropped
        next_tick = loop.time() + STATS_INTERVAL_S
        while True:
            event = await _next(sub, next_tick - loop.time())
            if event is None:
                return
            if sub.dropped != dropped:  # we missed lifecycle events: start over
                dropped = sub.dropped
                yield await snapshot()
                continue
            if event is not False:
                assert isinstance(event, dict)
                if event.get("type") == "call.ended" and gone.pop(str(event.get("call_id")), 0):
                    continue  # already told
                out = _lifecycle(event, manager, known)
                if out is not None:
                    yield out
                continue
            next_tick = loop.time() + STATS_INTERVAL_S
            live = _live(manager)
            now = loop.time()
            for cid in [c for c, t in gone.items() if now - t > 30.0]:
                del gone[cid]
            for cid, seen in list(known.items()):
                if seen is None or cid in live:
                    continue
                # gone without a lifecycle event (yet): browser legs publish none, and a SIP
                # call's "call.ended" may still be queued behind this tick
                del known[cid]
                gone[cid] = now
                yield _sse("ended", _ended(seen, manager.clock.wall()))
            stats: dict[str, Any] = {}
            for cid, call in live.items():
                if known.get(cid) is None:
                    known[cid] = call
                    yield _sse("answered", {**live_view(call), **mine})
                stats[cid] = call_stats(call)
            if cluster is not None:
                others = await _remote(cluster)
                for cid in remote.keys() - others.keys():
                    yield _sse("ended", {**remote.pop(cid), "state": "ended"})
                for cid in others.keys() - remote.keys():
                    remote[cid] = others[cid]
                    yield _sse("answered", others[cid])
            tick: dict[str, Any] = {
                "now": manager.clock.wall(),
                "calls": stats,
                "trunks": trunks(),
            }
            if fleet is not None:
                tick["fleet"] = fleet.since(fleet_from)
                fleet_from = tick["fleet"][-1]["t"]
            yield _sse("stats", tick)
            if security.last_seq > told_seq:
                fresh = security.recent(limit=SECURITY_LIMIT, after_seq=told_seq)
                told_seq = security.last_seq
                yield _sse("security", [e.to_json() for e in reversed(fresh)])
            if closing.is_set():
                return
    finally:
        sub.close()


def _ended(call: LiveCall, now: float) -> dict[str, Any]:
    i = call.info
    return {
        **live_view(call),
        "state": "ended",
        "ended_at": i.ended_at if i.ended_at is not None else now,
        "end_reason": i.end_reason,
        "sip_status": i.sip_status,
    }


def _lifecycle(
    event: Mapping[str, Any], manager: CallManager, known: dict[str, LiveCall | None]
) -> bytes | None:
    kind, cid = event.get("type"), event.get("call_id")
    if not isinstance(cid, str):
        return None
    at = event.get("at")
    if kind == "call.offered":
        if cid in known:
            return None
        known[cid] = None
        return _sse(
            "offered",
            {
                "id": cid,
                "state": "offered",
                "leg": event.get("leg"),
                "direction": event.get("direction"),
                "from": event.get("from_uri"),
                "to": event.get("to_uri"),
                "profile": event.get("profile"),
                "offered_at": at,
                "answered_at": None,
            },
        )
    if kind == "call.answered":
        call = _live(manager).get(cid)
        if call is None:
            return None
        known[cid] = call
        return _sse("answered", live_view(call))
    if kind == "call.ended":
        known.pop(cid, None)
        return _sse(
            "ended",
            {
                "id": cid,
                "state": "ended",
                "ended_at": at,
                "end_reason": event.get("reason"),
                "sip_status": event.get("sip_status"),
            },
        )
    return None


@router.get("/dashboard/api/calls/{call_id}/stream")
async def call_stream(call_id: str, request: Request) -> Response:
    if not _authorized(request):
        return _unauthorized()
    rt = _runtime(request)
    if isinstance(rt, JSONResponse):
        return rt
    manager, store = rt
    call = _live(manager).get(call_id)
    if call is None and await asyncio.to_thread(store.get_call, call_id) is None:
        return JSONResponse(
            error_body(f"No call with id {call_id!r}.", code="not_found", param="call_id"),
            status_code=404,
        )
    return _stream(_detail(call_id, call, store, _closing(request), manager.clock.wall))


async def _detail(
    call_id: str,
    call: LiveCall | None,
    store: CallStore,
    closing: asyncio.Event,
    wall: Callable[[], float],
) -> AsyncIterator[bytes]:
    events = getattr(call, "events", None)
    sub: Subscription | None = events.subscribe(maxsize=1024) if events is not None else None
    loop = asyncio.get_running_loop()
    try:
        if call is not None:
            yield _sse("info", {**live_view(call), "stats": call_stats(call, full=True)})
        # what was logged just before (a call that just ended: its record too) may still sit
        # in the writer's queue
        log = await _logged(store, call_id, settle=True)
        yield _sse("log", [log_entry(e) for e in log])
        seq = log[-1].seq if log else 0
        if sub is not None and call is not None:
            next_tick = loop.time() + STATS_INTERVAL_S
            while True:
                event = await _next(sub, next_tick - loop.time())
                if event is None:
                    break
                if event is False:
                    if closing.is_set():
                        return
                    next_tick = loop.time() + STATS_INTERVAL_S
                    yield _sse("stats", call_stats(call, full=True))
                    # what the call logs besides agent events (DTMF, REFER, hold, ...);
                    # transcripts arrive live as events
                    more = await _logged(store, call_id, seq)
                    if more:
                        seq = more[-1].seq
                        fresh = [log_entry(e) for e in more if e.kind not in _LIVE_KINDS]
                        if fresh:
                            yield _sse("logged", fresh)
                    continue
                assert isinstance(event, dict)
                slim = slim_event(event, wall())
                if slim is not None:
                    yield _sse("event", slim)
            if sub.dropped:
                yield _sse("dropped", {"count": sub.dropped})
            # the event stream closes first; the call records why it ended a moment later
            for _ in range(50):
                if call.info.end_reason is not None:
                    break
                await asyncio.sleep(0.1)
            more = await _logged(store, call_id, seq, settle=True)
            fresh = [log_entry(e) for e in more if e.kind not in _LIVE_KINDS]
            if fresh:
                yield _sse("logged", fresh)
            yield _sse("ended", _ended(call, wall()))
            return
        record = await asyncio.to_thread(store.get_call, call_id)
        yield _sse("ended", ended_view(record) if record is not None else {"id": call_id})
    finally:
        if sub is not None:
            sub.close()
