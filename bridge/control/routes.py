"""Control-plane routes: validate, then delegate to the call manager, the store, the plane.

Management API (``/v1/calls...``, ``/v1/events``), OpenAI's call API
(``/v1/realtime/calls/{id}/accept|reject|refer|hangup``), and the probes (``/healthz``,
``/readyz``, ``/metrics``; the last keyed when ``server.metrics_auth = "key"``). Unknown call
ids are 404 everywhere. Dial and transfer targets go through the call manager's destination
guard (:mod:`bridge.destinations`): 422 for a malformed target, 403 for one outside the policy,
429 when the profile's cap is reached, each a security event.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as FPath
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bridge.apikeys import key_from_request
from bridge.calls.end import EndReason
from bridge.calls.live import LiveCall
from bridge.calls.manager import CallManager
from bridge.control.auth import record, require_key, source_of
from bridge.control.metrics import CONTENT_TYPE
from bridge.control.models import (
    AcceptBody,
    DtmfBody,
    OriginateBody,
    ReferBody,
    RejectBody,
    SayBody,
    SessionBody,
    TransferBody,
)
from bridge.control.plane import ControlPlane
from bridge.control.webhooks import PendingCall, profile_from_session
from bridge.destinations import Purpose, Verdict, VerdictCode
from bridge.errors import CallNotAllowed, DestinationRefused, NotTransferable
from bridge.records import CallRecord, CallStore
from bridge.security import SecurityKind
from sip.driver import Reject

__all__ = ["api", "probes"]

probes = APIRouter()
api = APIRouter(dependencies=[Depends(require_key)])

CallId = Annotated[str, FPath(description="a call id (``call_...``)")]


def _error(status: int, message: str, code: str, param: str | None = None) -> HTTPException:
    type_ = "invalid_request_error" if status < 500 else "server_error"
    return HTTPException(
        status, detail={"message": message, "type": type_, "code": code, "param": param}
    )


_REFUSAL_STATUS = {
    VerdictCode.MALFORMED: 422,
    VerdictCode.NOT_ALLOWED: 403,
    VerdictCode.INTERNATIONAL: 403,
    VerdictCode.CAP_REACHED: 429,
}


def _refused(verdict: Verdict, param: str) -> HTTPException:
    """A destination refusal (already recorded as a security event by the guard)."""
    return _error(_REFUSAL_STATUS.get(verdict.code, 403), verdict.reason, verdict.code, param)


def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    if plane is None:
        raise _error(503, "Calls are not enabled in this process.", "unavailable")
    return plane


def _not_found(call_id: str) -> HTTPException:
    return _error(404, f"No call with id {call_id!r}.", "call_not_found", "call_id")


def _live(plane: ControlPlane, call_id: str) -> LiveCall:
    call = plane.manager.calls.get(call_id)
    if call is not None and not call.ended:
        return call
    if call_id in plane.incoming.pending:
        raise _error(409, f"Call {call_id!r} is still ringing: accept it first.", "call_ringing")
    if plane.store.get_call(call_id) is not None:
        raise _error(409, f"Call {call_id!r} has ended.", "call_ended")
    raise _not_found(call_id)


# -- views ------------------------------------------------------------------------------


def _live_view(call: LiveCall, now: float) -> dict[str, Any]:
    info = call.info
    try:
        media = call.stats()
    except Exception:
        media = {}
    _timed, barge = call.barge_in_latencies_ms()
    levels: dict[str, float | None] = {}
    try:  # dBFS of the latest frame each way, where the leg measures it
        level_in, level_out = call.levels()
        levels = {"in_dbfs": level_in, "out_dbfs": level_out}
    except Exception:
        levels = {}
    return {
        "id": call.id,
        "object": "realtime.call",
        "state": "on_hold" if info.on_hold else "active",
        "leg": call.leg,
        "direction": info.direction,
        "from": info.from_uri,
        "to": info.to_uri,
        "profile": info.profile_name,
        "trunk": info.trunk,
        "codec": info.codec,
        "session_format": info.session_format,
        "offered_at": info.offered_at,
        "answered_at": info.answered_at,
        "ended_at": None,
        "duration_s": round(now - (info.answered_at or info.offered_at), 3),
        "end_reason": None,
        "sip_status": None,
        "media": media,
        "levels": levels,
        "added_latency_ms": call.profile.downstream_delay_ms,
        "barge_in_latency_ms": barge[-10:],
    }


def _pending_view(p: PendingCall, record: CallRecord | None) -> dict[str, Any]:
    offer = p.sip_call.offer
    return {
        "id": p.call_id,
        "object": "realtime.call",
        "state": "ringing",
        "leg": "sip",
        "direction": "inbound",
        "from": str(offer.caller.uri) if offer else None,
        "to": offer.request_uri if offer else None,
        "profile": p.profile_name,
        "trunk": offer.trunk if offer else None,
        "codec": None,
        "session_format": None,
        "offered_at": record.offered_at if record else p.offered_at,
        "answered_at": None,
        "ended_at": None,
        "duration_s": None,
        "end_reason": None,
        "sip_status": None,
        "media": {},
    }


def _record_view(r: CallRecord) -> dict[str, Any]:
    end = r.ended_at
    return {
        "id": r.call_id,
        "object": "realtime.call",
        "state": "ended" if r.state == "ended" else r.state,
        "leg": r.leg,
        "direction": r.direction,
        "from": r.from_uri,
        "to": r.to_uri,
        "profile": r.profile,
        "trunk": r.trunk,
        "codec": r.codec,
        "session_format": r.session_format,
        "offered_at": r.offered_at,
        "answered_at": r.answered_at,
        "ended_at": end,
        "duration_s": round(end - r.answered_at, 3) if end and r.answered_at else None,
        "end_reason": r.end_reason,
        "sip_status": r.sip_status,
        "media": r.stats,
    }


def _view(plane: ControlPlane, call_id: str) -> dict[str, Any] | None:
    call = plane.manager.calls.get(call_id)
    if call is not None and not call.ended:
        return _live_view(call, plane.manager.clock.wall())
    pending = plane.incoming.pending.get(call_id)
    if pending is not None:
        return _pending_view(pending, plane.store.get_call(call_id))
    record = plane.store.get_call(call_id)
    if record is not None and record.state != "ended" and call_id not in plane.manager.calls:
        # offered or dialing right now (outbound ringing), not yet answered
        return {**_record_view(record), "state": "setting_up"}
    return _record_view(record) if record is not None else None


# -- probes -----------------------------------------------------------------------------


@probes.get("/healthz", tags=["probes"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.get("/readyz", tags=["probes"], responses={503: {"description": "draining"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 503 while draining (load balancers stop sending new calls)."""
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    if plane is not None and plane.draining:
        return JSONResponse({"status": "draining", **plane.status()}, status_code=503)
    return JSONResponse({"status": "ready", **(plane.status() if plane else {})})


def _metrics_key_ok(request: Request) -> bool:
    """``server.metrics_auth = "key"``: the server key, or the scrape-only key held in the
    environment variable ``server.metrics_key_env``."""
    server = request.app.state.settings.server
    if server.metrics_auth == "none":
        return True
    token = key_from_request(request.headers)
    if token is None:
        return False
    if request.app.state.server_key.matches(token):
        return True
    scrape = os.environ.get(server.metrics_key_env) if server.metrics_key_env else None
    if scrape and hmac.compare_digest(token.encode(), scrape.encode()):
        return True
    record(request, SecurityKind.AUTH_FAILURE, "wrong key on /metrics")
    return False


@probes.get("/metrics", tags=["probes"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition; every series is ``rtbridge_*``. Needs a key when
    ``server.metrics_auth = "key"``."""
    if not _metrics_key_ok(request):
        raise HTTPException(
            401,
            detail={
                "message": "Send 'Authorization: Bearer <key>' (the server key or the metrics "
                "key) to read /metrics.",
                "type": "invalid_request_error",
                "code": "missing_api_key",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    body = plane.metrics.render() if plane is not None else b""
    return Response(body, media_type=CONTENT_TYPE)


# -- management API -----------------------------------------------------------------------


@api.get("/v1/calls", tags=["calls"])
async def list_calls(
    request: Request,
    state: Literal["active", "ringing", "setting_up", "ended"] | None = None,
    leg: Literal["sip", "webrtc"] | None = None,
    profile: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Live calls first, then ringing ones, then the most recent others from the records
    (ended, or outbound still being set up)."""
    plane = _plane(request)
    out: list[dict[str, Any]] = []
    for call in list(plane.manager.calls.values()):
        if not call.ended:
            out.append(_live_view(call, plane.manager.clock.wall()))
    for p in list(plane.incoming.pending.values()):
        out.append(_pending_view(p, None))
    seen = {c["id"] for c in out}
    if state in (None, "ended", "setting_up"):
        only = "ended" if state == "ended" else None
        records = await asyncio.to_thread(plane.store.list_calls, limit=limit, state=only)
        for r in records:
            if r.call_id in seen or r.call_id in plane.manager.calls:
                continue
            view = _record_view(r)
            if r.state != "ended":
                view["state"] = "setting_up"
            out.append(view)
    data = [
        c
        for c in out
        if (state is None or c["state"] == state or (state == "active" and c["state"] == "on_hold"))
        and (leg is None or c["leg"] == leg)
        and (profile is None or c["profile"] == profile)
    ]
    return {"object": "list", "data": data[:limit]}


@api.get("/v1/calls/{call_id}", tags=["calls"])
async def get_call(request: Request, call_id: CallId) -> dict[str, Any]:
    """One call: parties, state, timings, codec, session format, live media statistics."""
    view = _view(_plane(request), call_id)
    if view is None:
        raise _not_found(call_id)
    return view


@api.post("/v1/calls", tags=["calls"], status_code=201)
async def originate(request: Request, body: OriginateBody) -> dict[str, Any]:
    """Place an outbound SIP call; the id comes back at once (follow it on ``/v1/events``)."""
    plane = _plane(request)
    settings = plane.manager.settings
    if body.profile not in settings.profiles:
        raise _error(422, f"Unknown profile {body.profile!r}.", "unknown_profile", "profile")
    sip = plane.sip_leg.endpoint if plane.sip_leg is not None else None
    trunks = (sip.settings if sip is not None else settings.sip).trunks
    if body.trunk is not None and all(t.name != body.trunk for t in trunks):
        raise _error(422, f"Unknown trunk {body.trunk!r}.", "unknown_trunk", "trunk")
    if plane.draining:
        raise _error(503, "Draining: no new calls.", "draining")
    if plane.sip_leg is None:
        raise _error(503, "SIP is not enabled in this process.", "cannot_place_call")
    try:
        call_id = await plane.sip_leg.originate(
            body.target,
            profile_name=body.profile,
            trunk=body.trunk,
            caller=body.caller,
            source=source_of(request),
        )
    except DestinationRefused as exc:
        raise _refused(exc.verdict, "target") from exc
    except CallNotAllowed as exc:
        raise _error(503, str(exc), "cannot_place_call") from exc
    return {"id": call_id, "object": "realtime.call", "state": "setting_up"}


@api.post("/v1/calls/{call_id}/hangup", tags=["calls"])
async def hangup(request: Request, call_id: CallId) -> dict[str, Any]:
    """End a live call (BYE); a ringing inbound call is declined (603); a ringing outbound
    call is cancelled (CANCEL)."""
    plane = _plane(request)
    pending = plane.incoming.pending.get(call_id)
    if pending is not None:
        pending.decide(Reject(603, "Declined"))
        return {"id": call_id, "status": "rejected"}
    if not plane.manager.hangup(call_id, EndReason.API_HANGUP):
        _live(plane, call_id).end(EndReason.API_HANGUP)  # raises 409 (ended) or 404
    return {"id": call_id, "status": "ending"}


async def _transfer(request: Request, call_id: str, target: str, param: str) -> dict[str, Any]:
    plane = _plane(request)
    call = _live(plane, call_id)
    if call.leg != "sip":
        raise _error(409, "Only SIP calls can be transferred.", "not_sip")
    verdict = plane.manager.destinations.check(
        Purpose.TRANSFER,
        call.info.profile_name,
        call.profile,
        target,
        source=source_of(request),
        call_id=call_id,
    )
    if not verdict or verdict.target is None:
        raise _refused(verdict, param)
    try:
        await call.transfer(verdict.target)
    except NotTransferable as exc:
        raise _error(409, str(exc), exc.code) from exc
    return {"id": call_id, "status": "transferring", "target": verdict.target}


@api.post("/v1/calls/{call_id}/transfer", tags=["calls"])
async def transfer(request: Request, call_id: CallId, body: TransferBody) -> dict[str, Any]:
    """Blind transfer (SIP REFER) to an allowlisted target; the call ends when it succeeds."""
    return await _transfer(request, call_id, body.target, "target")


@api.post("/v1/calls/{call_id}/dtmf", tags=["calls"])
async def dtmf(request: Request, call_id: CallId, body: DtmfBody) -> dict[str, Any]:
    """Send keypad digits to the caller (RFC 4733)."""
    call = _live(_plane(request), call_id)
    if not call.send_dtmf(body.digits):
        raise _error(409, "This call cannot send DTMF now.", "dtmf_unavailable")
    return {"id": call_id, "status": "sent", "digits": body.digits}


@api.post("/v1/calls/{call_id}/say", tags=["calls"])
async def say(request: Request, call_id: CallId, body: SayBody) -> dict[str, Any]:
    """Inject a user or system message; a ``response.create`` follows (queued behind the
    active response, never colliding with it)."""
    call = _live(_plane(request), call_id)
    kind = "input_text"
    item = {"type": "message", "role": body.role, "content": [{"type": kind, "text": body.text}]}
    call.say(item, respond=body.respond)
    return {"id": call_id, "status": "queued"}


@api.post("/v1/calls/{call_id}/session", tags=["calls"])
async def update_session(request: Request, call_id: CallId, body: SessionBody) -> dict[str, Any]:
    """``session.update`` into the call (audio formats and telephony tools are kept)."""
    call = _live(_plane(request), call_id)
    session = body.model_dump(exclude_none=True)
    await call.client_event({"type": "session.update", "session": session})
    return {"id": call_id, "status": "sent"}


@api.get("/v1/calls/{call_id}/events", tags=["calls"])
async def call_events(
    request: Request,
    call_id: CallId,
    after_seq: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A call's event log and transcript, live or ended."""
    plane = _plane(request)
    store: CallStore = plane.store
    if store.get_call(call_id) is None and call_id not in plane.manager.calls:
        raise _not_found(call_id)
    events = await asyncio.to_thread(store.events, call_id, after_seq=after_seq)
    transcript = [
        {"role": "user" if e.kind == "transcript.user" else "assistant", "ts": e.ts, **e.data}
        for e in events
        if e.kind in ("transcript.user", "transcript.agent")
    ]
    return {
        "object": "list",
        "call_id": call_id,
        "data": [{"seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data} for e in events],
        "transcript": transcript,
    }


@api.get(
    "/v1/events",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def lifecycle_events(request: Request) -> StreamingResponse:
    """Server-sent events: ``call.offered``, ``call.answered``, ``call.ended`` as they happen
    (``data:`` is the event's JSON; ``: ping`` comments keep the connection alive). A client
    too slow to keep up gets ``rtbridge.events_dropped`` with how many it has missed."""
    plane = _plane(request)
    manager: CallManager = plane.manager
    sub = manager.lifecycle.subscribe(maxsize=1024)

    async def stream() -> AsyncIterator[bytes]:
        closing = asyncio.ensure_future(plane.closing.wait())
        reported = 0
        try:
            yield b"retry: 2000\n: connected\n\n"
            while not plane.closing.is_set():
                get = asyncio.ensure_future(sub.get())
                done, _ = await asyncio.wait(
                    {get, closing}, timeout=15.0, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    get.cancel()
                    if closing in done:
                        return
                    yield b": ping\n\n"
                    continue
                event = get.result()
                if event is None:
                    return
                if sub.dropped > reported:  # this client was too slow: say how much it missed
                    plane.metrics.stream_dropped += sub.dropped - reported
                    reported = sub.dropped
                    note = orjson.dumps({"type": "rtbridge.events_dropped", "dropped": reported})
                    yield b"event: rtbridge.events_dropped\ndata: " + note + b"\n\n"
                kind = str(event.get("type", "message"))
                yield f"event: {kind}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"
        finally:
            closing.cancel()
            sub.close()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


# -- OpenAI's call API ---------------------------------------------------------------------


def _pending(plane: ControlPlane, call_id: str) -> PendingCall:
    p = plane.incoming.pending.get(call_id)
    if p is not None:
        return p
    if call_id in plane.manager.calls or plane.store.get_call(call_id) is not None:
        raise _error(409, f"Call {call_id!r} is not waiting for a decision.", "call_not_ringing")
    raise _not_found(call_id)


@api.post("/v1/realtime/calls/{call_id}/accept", tags=["realtime"])
async def accept(request: Request, call_id: CallId, body: AcceptBody) -> dict[str, Any]:
    """Answer a ringing SIP call with this GA session (model, instructions, voice, tools)."""
    p = _pending(_plane(request), call_id)
    session = body.model_dump(exclude_none=True)
    p.decide((p.profile_name, profile_from_session(p.profile, session)))
    return {}


@api.post("/v1/realtime/calls/{call_id}/reject", tags=["realtime"])
async def reject(
    request: Request, call_id: CallId, body: RejectBody | None = None
) -> dict[str, Any]:
    """Refuse a ringing SIP call with ``status_code`` (default 603 Decline)."""
    p = _pending(_plane(request), call_id)
    p.decide(Reject((body or RejectBody()).status_code, None))
    return {}


@api.post("/v1/realtime/calls/{call_id}/refer", tags=["realtime"])
async def refer(request: Request, call_id: CallId, body: ReferBody) -> dict[str, Any]:
    """Transfer an answered call (SIP REFER to ``target_uri``, allowlisted)."""
    await _transfer(request, call_id, body.target_uri, "target_uri")
    return {}


@api.post("/v1/realtime/calls/{call_id}/hangup", tags=["realtime"])
async def realtime_hangup(request: Request, call_id: CallId) -> dict[str, Any]:
    """End a SIP or WebRTC call (a ringing one is declined)."""
    await hangup(request, call_id)
    return {}
