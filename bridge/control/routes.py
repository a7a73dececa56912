"""Control-plane routes: validate, then delegate to the call manager, the store, the plane.

Management API (``/v1/calls...``, ``/v1/events``), OpenAI's call API
(``/v1/realtime/calls/{id}/accept|reject|refer|hangup``), and the probes (``/healthz``,
``/readyz``, ``/metrics``; the last keyed when ``server.metrics_auth = "key"``). Unknown call
ids are 404 everywhere. Dial and transfer targets go through the call manager's destination
guard (:mod:`bridge.destinations`): 422 for a malformed target, 403 for one outside the policy,
429 when the profile's cap is reached, each a security event.

In a cluster (``[cluster] redis_url``) the list holds every node's live calls (with their
``node``), and a per-call route for a call another node owns is run by that node
(:mod:`bridge.control.actions` on both sides); when that node does not answer, 503
``owner_unavailable`` at once.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import os
import re
from collections.abc import AsyncIterator
from stat import S_ISREG
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as FPath
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from bridge.apikeys import key_from_request
from bridge.calls.manager import CallManager
from bridge.cluster.commands import Op
from bridge.cluster.proxy import proxy_recording
from bridge.cluster.registry import remote_view
from bridge.control.actions import (
    act,
    error,
    events,
    live_view,
    not_found,
    pending_view,
    record_view,
    refused,
)
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
from bridge.control.recording_file import RecordingFile
from bridge.errors import CallNotAllowed, DestinationRefused, OwnerUnavailable, RemoteCallError
from bridge.records import CallQuery, Cursor
from bridge.security import SecurityKind

__all__ = ["api", "probes"]

probes = APIRouter()
api = APIRouter(dependencies=[Depends(require_key)])

CallId = Annotated[str, FPath(description="a call id (``call_...``)")]


def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane | None = getattr(request.app.state, "control", None)
    if plane is None:
        raise error(503, "Calls are not enabled in this process.", "unavailable")
    return plane


async def _act(
    request: Request, plane: ControlPlane, op: Op, call_id: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run ``op`` here if this process has the call, else on the node that owns it."""
    source = source_of(request)
    cluster = plane.cluster
    if cluster is not None and not plane.has_call(call_id):
        owner = await cluster.owner_of(call_id)
        if owner is not None:
            try:
                return await cluster.command(owner, op, call_id, {**args, "source": source})
            except OwnerUnavailable as exc:
                raise error(exc.status, str(exc), exc.code, "call_id") from exc
            except RemoteCallError as exc:
                raise error(exc.status, str(exc), exc.code, exc.param) from exc
    return await act(plane, op, call_id, args, source=source)


# -- probes -----------------------------------------------------------------------------


# HEAD as GET, without the body (load balancers probe with either); not in the schema twice
@probes.head("/healthz", include_in_schema=False)
@probes.get("/healthz", tags=["probes"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.head("/readyz", include_in_schema=False)
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
            out.append(live_view(call, plane.manager.clock.wall(), plane.node_name))
    for p in list(plane.incoming.pending.values()):
        out.append(pending_view(p, None))
    if plane.cluster is not None:  # the other nodes' live calls, from the registry
        now = plane.manager.clock.wall()
        out.extend(remote_view(c, now) for c in await plane.cluster.remote_calls())
    seen = {c["id"] for c in out}
    if state in (None, "ended", "setting_up"):
        only = "ended" if state == "ended" else None
        records = await asyncio.to_thread(plane.store.list_calls, limit=limit, state=only)
        for r in records:
            if r.call_id in seen or r.call_id in plane.manager.calls:
                continue
            view = record_view(r)
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


def _cursor(text: str | None) -> Cursor | None:
    """``<offered_at>~<call_id>``, as a page's ``next_cursor`` gave it."""
    if text is None:
        return None
    at, sep, call_id = text.partition("~")
    try:
        offered_at = float(at)
    except ValueError:
        offered_at = math.nan
    if not sep or not call_id or not math.isfinite(offered_at):
        raise error(
            422, "Malformed cursor: pass next_cursor as it was returned.", "bad_cursor", "cursor"
        )
    return offered_at, call_id


@api.get("/v1/calls/search", tags=["calls"])
async def search_calls(
    request: Request,
    number: Annotated[str | None, Query(max_length=64)] = None,
    profile: Annotated[str | None, Query(max_length=64)] = None,
    end_reason: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[float | None, Query(description="offered at or after (epoch s)")] = None,
    until: Annotated[float | None, Query(description="offered before (epoch s)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Ended calls, newest first: ``number`` anywhere in the caller's or called URI, an exact
    ``profile`` and ``end_reason``, offered in ``[since, until)``; a page of ``limit``, and
    ``next_cursor`` for the next page (null on the last)."""
    plane = _plane(request)
    query = CallQuery(number, profile, end_reason, since, until)
    records, after = await asyncio.to_thread(
        plane.store.search_calls, query, limit=limit, after=_cursor(cursor)
    )
    return {
        "object": "list",
        "data": [record_view(r) for r in records],
        "next_cursor": f"{after[0]!r}~{after[1]}" if after is not None else None,
    }


@api.get("/v1/trunks", tags=["trunks"])
async def list_trunks(request: Request) -> dict[str, Any]:
    """The SIP trunks with an OPTIONS keepalive and their state (``up``, ``down``,
    ``unknown`` before the first answer). Calls on a ``down`` trunk are refused at once."""
    plane = _plane(request)
    return {"object": "list", "data": [h.view() for h in plane.trunk_health().values()]}


@api.get("/v1/calls/{call_id}", tags=["calls"])
async def get_call(request: Request, call_id: CallId) -> dict[str, Any]:
    """One call: parties, state, timings, codec, session format, live media statistics."""
    return await _act(request, _plane(request), Op.VIEW, call_id, {})


_CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _file_stat(path: os.PathLike[str]) -> os.stat_result | None:
    """``path``'s stat when it is a regular file, else None."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat if S_ISREG(stat.st_mode) else None


@api.get("/v1/calls/{call_id}/recording", tags=["calls"], response_class=FileResponse)
async def get_recording(request: Request, call_id: CallId) -> Response:
    """The call's recording (WAV; HTTP range requests; a live call's file grows as it goes).

    The file is in the data directory of the node that recorded the call: a live call of
    another node, or an ended one recorded by a node that is still alive, is fetched from
    that node; one from a node that is not running is 404 ``recording_elsewhere``, naming it."""
    plane = _plane(request)
    if not _CALL_ID.match(call_id):
        raise not_found(call_id)
    path = plane.manager.recordings.path_for(call_id)
    stat = await asyncio.to_thread(_file_stat, path)
    if stat is not None:
        return RecordingFile(
            path,
            media_type="audio/wav",
            filename=f"{call_id}.wav",
            content_disposition_type="inline",
            headers={"Cache-Control": "no-store"},
            stat_result=stat,
        )
    record_ = await asyncio.to_thread(plane.store.get_call, call_id)
    cluster = plane.cluster
    here = (
        cluster is None
        or call_id in plane.manager.calls
        or (record_ is not None and record_.owner in (None, plane.store.owner))
    )
    node = None
    if not here and cluster is not None:
        try:
            node = await cluster.owner_of(call_id)
        except OwnerUnavailable as exc:
            raise error(exc.status, str(exc), exc.code, "call_id") from exc
        if node is None and record_ is not None and record_.owner is not None:
            node = await cluster.node_of_owner(record_.owner)
        url = None if node is None else await cluster.node_url(node)
        if url is not None:
            return await proxy_recording(
                url,
                call_id=call_id,
                key=key_from_request(request.headers) or "",
                range_header=request.headers.get("range"),
            )
    if record_ is None and call_id not in plane.manager.calls:
        raise not_found(call_id)
    if node is not None:
        raise error(
            404,
            f"Call {call_id!r}'s recording, if it has one, is on node {node!r}, which is not "
            f"running (this is node {plane.node_name!r}).",
            "recording_elsewhere",
            "call_id",
        )
    raise error(404, f"Call {call_id!r} has no recording.", "recording_not_found", "call_id")


async def _pause(request: Request, call_id: str, paused: bool) -> dict[str, Any]:
    return await _act(request, _plane(request), Op.RECORDING, call_id, {"paused": paused})


@api.post("/v1/calls/{call_id}/recording/pause", tags=["calls"])
async def pause_recording(request: Request, call_id: CallId) -> dict[str, Any]:
    """Record silence from now on (a card number is being read out): ``recording.paused``."""
    return await _pause(request, call_id, True)


@api.post("/v1/calls/{call_id}/recording/resume", tags=["calls"])
async def resume_recording(request: Request, call_id: CallId) -> dict[str, Any]:
    """Record the call's audio again: ``recording.resumed``."""
    return await _pause(request, call_id, False)


async def _hold(request: Request, call_id: str, on: bool) -> dict[str, Any]:
    return await _act(request, _plane(request), Op.HOLD, call_id, {"on": on})


@api.post("/v1/calls/{call_id}/hold", tags=["calls"])
async def hold(request: Request, call_id: CallId) -> dict[str, Any]:
    """Put the caller on hold (SIP re-INVITE ``sendonly``): the agent's audio waits, the
    caller's stops going to the agent. ``{id, on_hold, held_by}``; holding twice is one hold."""
    return await _hold(request, call_id, True)


@api.post("/v1/calls/{call_id}/resume", tags=["calls"])
async def resume(request: Request, call_id: CallId) -> dict[str, Any]:
    """Take the caller off our hold (re-INVITE ``sendrecv``); the call stays on hold while
    the caller's side still holds it (``held_by: "peer"``)."""
    return await _hold(request, call_id, False)


@api.post("/v1/calls", tags=["calls"], status_code=201)
async def originate(request: Request, body: OriginateBody) -> dict[str, Any]:
    """Place an outbound SIP call; the id comes back at once (follow it on ``/v1/events``)."""
    plane = _plane(request)
    settings = plane.manager.settings
    if body.profile not in settings.profiles:
        raise error(422, f"Unknown profile {body.profile!r}.", "unknown_profile", "profile")
    sip = plane.sip_leg.endpoint if plane.sip_leg is not None else None
    trunks = (sip.settings if sip is not None else settings.sip).trunks
    if body.trunk is not None and all(t.name != body.trunk for t in trunks):
        raise error(422, f"Unknown trunk {body.trunk!r}.", "unknown_trunk", "trunk")
    if plane.draining:
        raise error(503, "Draining: no new calls.", "draining")
    if plane.sip_leg is None:
        raise error(503, "SIP is not enabled in this process.", "cannot_place_call")
    try:
        call_id = await plane.sip_leg.originate(
            body.target,
            profile_name=body.profile,
            trunk=body.trunk,
            caller=body.caller,
            source=source_of(request),
            record=body.record,
        )
    except DestinationRefused as exc:
        raise refused(exc.verdict, "target") from exc
    except CallNotAllowed as exc:
        raise error(503, str(exc), "cannot_place_call") from exc
    return {"id": call_id, "object": "realtime.call", "state": "setting_up"}


@api.post("/v1/calls/{call_id}/hangup", tags=["calls"])
async def hangup(request: Request, call_id: CallId) -> dict[str, Any]:
    """End a live call (BYE); a ringing inbound call is declined (603); a ringing outbound
    call is cancelled (CANCEL)."""
    return await _act(request, _plane(request), Op.HANGUP, call_id, {})


async def _transfer(request: Request, call_id: str, target: str, param: str) -> dict[str, Any]:
    args = {"target": target, "param": param}
    return await _act(request, _plane(request), Op.TRANSFER, call_id, args)


@api.post("/v1/calls/{call_id}/transfer", tags=["calls"])
async def transfer(request: Request, call_id: CallId, body: TransferBody) -> dict[str, Any]:
    """Blind transfer (SIP REFER) to an allowlisted target; the call ends when it succeeds."""
    return await _transfer(request, call_id, body.target, "target")


@api.post("/v1/calls/{call_id}/dtmf", tags=["calls"])
async def dtmf(request: Request, call_id: CallId, body: DtmfBody) -> dict[str, Any]:
    """Send keypad digits to the caller (RFC 4733)."""
    return await _act(request, _plane(request), Op.DTMF, call_id, {"digits": body.digits})


@api.post("/v1/calls/{call_id}/say", tags=["calls"])
async def say(request: Request, call_id: CallId, body: SayBody) -> dict[str, Any]:
    """Inject a user or system message; a ``response.create`` follows (queued behind the
    active response, never colliding with it)."""
    args = {"text": body.text, "role": body.role, "respond": body.respond}
    return await _act(request, _plane(request), Op.SAY, call_id, args)


@api.post("/v1/calls/{call_id}/session", tags=["calls"])
async def update_session(request: Request, call_id: CallId, body: SessionBody) -> dict[str, Any]:
    """``session.update`` into the call (audio formats and telephony tools are kept)."""
    session = body.model_dump(exclude_none=True)
    return await _act(request, _plane(request), Op.SESSION, call_id, {"session": session})


@api.get("/v1/calls/{call_id}/events", tags=["calls"])
async def call_events(
    request: Request,
    call_id: CallId,
    after_seq: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """A call's event log and transcript, live or ended (from the records; with records that
    are not shared, from the node that has the call)."""
    plane = _plane(request)
    if await asyncio.to_thread(plane.store.get_call, call_id) is not None:
        return await events(plane, call_id, after_seq)
    return await _act(request, plane, Op.EVENTS, call_id, {"after_seq": after_seq})


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


@api.post("/v1/realtime/calls/{call_id}/accept", tags=["realtime"])
async def accept(request: Request, call_id: CallId, body: AcceptBody) -> dict[str, Any]:
    """Answer a ringing SIP call with this GA session (model, instructions, voice, tools)."""
    session = body.model_dump(exclude_none=True)
    await _act(request, _plane(request), Op.ACCEPT, call_id, {"session": session})
    return {}


@api.post("/v1/realtime/calls/{call_id}/reject", tags=["realtime"])
async def reject(
    request: Request, call_id: CallId, body: RejectBody | None = None
) -> dict[str, Any]:
    """Refuse a ringing SIP call with ``status_code`` (default 603 Decline)."""
    args = {"status_code": (body or RejectBody()).status_code}
    await _act(request, _plane(request), Op.REJECT, call_id, args)
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
