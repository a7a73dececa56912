"""What the control plane can do to one call, wherever the request arrived.

The management API's per-call routes (:mod:`bridge.control.routes`) and the cluster's command
channel (:mod:`bridge.cluster.commands`) both run these: a request for a call this process
owns runs here at once; one for a call another node owns is sent to that node, which runs the
same action and answers with the same result or the same error (status, code, param). Errors
are :class:`fastapi.HTTPException` with OpenAI's error fields as ``detail``.

Every read of the call records runs in a thread (:func:`_record`): a read may wait for the
records writer (read-your-writes, up to two seconds) and for a remote database, and on the
event loop that wait would stall every live call's audio. Only a call that is not live here
is looked up: the live ones answer from memory.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from bridge.calls.end import EndReason
from bridge.calls.live import LiveCall
from bridge.calls.turns import TurnLatency, latency_summary
from bridge.cluster.commands import Command, Op
from bridge.control.webhooks import PendingCall, profile_from_session
from bridge.destinations import Purpose, Verdict, VerdictCode
from bridge.errors import NotHoldable, NotTransferable, RemoteCallError
from bridge.recording.writer import read_wav_info
from bridge.records import CallRecord
from sip.driver import Reject

if TYPE_CHECKING:
    from bridge.control.plane import ControlPlane

__all__ = [
    "act",
    "ended_extras",
    "error",
    "hold",
    "live",
    "live_view",
    "not_found",
    "pending",
    "pending_view",
    "record_view",
    "refused",
    "run_command",
    "view",
]


def error(status: int, message: str, code: str, param: str | None = None) -> HTTPException:
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


def refused(verdict: Verdict, param: str) -> HTTPException:
    """A destination refusal (already recorded as a security event by the guard)."""
    return error(_REFUSAL_STATUS.get(verdict.code, 403), verdict.reason, verdict.code, param)


def not_found(call_id: str) -> HTTPException:
    return error(404, f"No call with id {call_id!r}.", "call_not_found", "call_id")


async def _record(plane: ControlPlane, call_id: str) -> CallRecord | None:
    """The call's record, read off the event loop (see the module docstring)."""
    return await asyncio.to_thread(plane.store.get_call, call_id)


async def live(plane: ControlPlane, call_id: str) -> LiveCall:
    """The live call, or 409 (ringing, ended) or 404."""
    call = plane.manager.calls.get(call_id)
    if call is not None:
        if not call.ended:
            return call
        raise error(409, f"Call {call_id!r} has ended.", "call_ended")  # being torn down
    if call_id in plane.incoming.pending:
        raise error(409, f"Call {call_id!r} is still ringing: accept it first.", "call_ringing")
    record = await _record(plane, call_id)
    if record is not None and record.state != "ended":
        raise error(409, f"Call {call_id!r} is still being set up.", "call_ringing")
    if record is not None:
        raise error(409, f"Call {call_id!r} has ended.", "call_ended")
    raise not_found(call_id)


async def pending(plane: ControlPlane, call_id: str) -> PendingCall:
    """The ringing call waiting for a decision, or 409 (not ringing) or 404."""
    p = plane.incoming.pending.get(call_id)
    if p is not None:
        return p
    if call_id in plane.manager.calls or await _record(plane, call_id) is not None:
        raise error(409, f"Call {call_id!r} is not waiting for a decision.", "call_not_ringing")
    raise not_found(call_id)


# -- views ------------------------------------------------------------------------------


def live_view(call: LiveCall, now: float, node: str | None = None) -> dict[str, Any]:
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
        "held_by": info.held_by,  # "us", "peer", "both" (RFC 3264 §8.4: either side may hold)
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
        **turns_view(call.turn_latencies()[1]),
        "recording": call.recording_status(),
        "node": node,
    }


def turns_view(turns: list[TurnLatency]) -> dict[str, Any]:
    return {"turns": [t.event() for t in turns], "turn_latency": latency_summary(turns)}


async def ended_extras(plane: ControlPlane, call_id: str) -> dict[str, Any]:
    """An ended call's turns (from its event log) and recording (from its file, when this
    node holds it)."""
    found, recording = await asyncio.gather(
        asyncio.to_thread(plane.store.events, call_id),
        asyncio.to_thread(_recording_view, plane, call_id),
    )
    turns = [
        TurnLatency(
            str(e.data.get("response_id", "")),
            float(e.data.get("speech_end_s", 0.0)),
            float(e.data.get("upstream_s", 0.0)),
            float(e.data.get("bridge_s", 0.0)),
        )
        for e in found
        if e.kind == "turn.latency"
    ]
    return {**turns_view(turns), "recording": recording}


def _recording_view(plane: ControlPlane, call_id: str) -> dict[str, Any] | None:
    """An ended call's recording, when this node holds its file (reads the file: run it in a
    thread)."""
    path = plane.manager.recordings.path_for(call_id)
    if not path.is_file():
        return None
    try:
        info = read_wav_info(path)
    except (OSError, ValueError):
        return None
    return {
        "mode": "stereo" if info.channels == 2 else "mixed",
        "format": "wav",
        "sample_rate": info.rate,
        "url": f"/v1/calls/{call_id}/recording",
        "paused": False,
    }


def pending_view(p: PendingCall, record: CallRecord | None) -> dict[str, Any]:
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


def record_view(r: CallRecord) -> dict[str, Any]:
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


async def view(plane: ControlPlane, call_id: str) -> dict[str, Any] | None:
    call = plane.manager.calls.get(call_id)
    if call is not None and not call.ended:
        return live_view(call, plane.manager.clock.wall(), plane.node_name)
    pending = plane.incoming.pending.get(call_id)
    if pending is not None:
        return pending_view(pending, await _record(plane, call_id))
    record = await _record(plane, call_id)
    if record is not None and record.state != "ended" and call_id not in plane.manager.calls:
        # offered or dialing right now (outbound ringing), not yet answered
        return {**record_view(record), "state": "setting_up"}
    if record is None:
        return None
    return {**record_view(record), **await ended_extras(plane, call_id)}


# -- actions ----------------------------------------------------------------------------


async def act(
    plane: ControlPlane, op: Op, call_id: str, args: dict[str, Any], *, source: str
) -> dict[str, Any]:
    """Run ``op`` on a call of this process; raises :class:`HTTPException` as the route
    would answer."""
    if op is Op.VIEW:
        found = await view(plane, call_id)
        if found is None:
            raise not_found(call_id)
        return found
    if op is Op.HANGUP:
        return await hangup(plane, call_id)
    if op is Op.TRANSFER:
        return await transfer(
            plane, call_id, str(args.get("target", "")), str(args.get("param", "target")), source
        )
    if op is Op.DTMF:
        digits = str(args.get("digits", ""))
        if not (await live(plane, call_id)).send_dtmf(digits):
            raise error(409, "This call cannot send DTMF now.", "dtmf_unavailable")
        return {"id": call_id, "status": "sent", "digits": digits}
    if op is Op.SAY:
        call = await live(plane, call_id)
        text, role = str(args.get("text", "")), str(args.get("role", "user"))
        item = {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}
        call.say(item, respond=bool(args.get("respond", True)))
        return {"id": call_id, "status": "queued"}
    if op is Op.SESSION:
        call = await live(plane, call_id)
        session = args.get("session")
        await call.client_event(
            {"type": "session.update", "session": session if isinstance(session, dict) else {}}
        )
        return {"id": call_id, "status": "sent"}
    if op is Op.RECORDING:
        call = await live(plane, call_id)
        if call.pause_recording(bool(args.get("paused", True))) is None:
            raise error(409, f"Call {call_id!r} is not being recorded.", "not_recording")
        return {"id": call_id, "recording": call.recording_status()}
    if op is Op.HOLD:
        return await hold(plane, call_id, bool(args.get("on", True)))
    if op is Op.EVENTS:
        return await events(plane, call_id, int(args.get("after_seq", 0)))
    if op is Op.ACCEPT:
        p = await pending(plane, call_id)
        session = args.get("session")
        p.decide((p.profile_name, profile_from_session(p.profile, dict(session or {}))))
        return {}
    if op is Op.REJECT:
        (await pending(plane, call_id)).decide(Reject(int(args.get("status_code", 603)), None))
        return {}
    raise AssertionError(op)


async def run_command(plane: ControlPlane, cmd: Command) -> dict[str, Any]:
    """Run a command another node sent for a call of this one; a refusal becomes
    :class:`RemoteCallError` carrying the status, code and param the route would answer."""
    args = dict(cmd.args)
    source = str(args.pop("source", "cluster"))
    try:
        return await act(plane, cmd.op, cmd.call_id, args, source=source)
    except HTTPException as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        raise RemoteCallError(
            exc.status_code,
            str(detail.get("message", "")),
            str(detail.get("code", "error")),
            detail.get("param"),
        ) from exc


async def hangup(plane: ControlPlane, call_id: str) -> dict[str, Any]:
    """End a live call (BYE); a ringing inbound call is declined (603); a ringing outbound
    call is cancelled (CANCEL)."""
    pending = plane.incoming.pending.get(call_id)
    if pending is not None:
        pending.decide(Reject(603, "Declined"))
        return {"id": call_id, "status": "rejected"}
    if not plane.manager.hangup(call_id, EndReason.API_HANGUP):
        (await live(plane, call_id)).end(EndReason.API_HANGUP)  # raises 409 (ended) or 404
    return {"id": call_id, "status": "ending"}


async def hold(plane: ControlPlane, call_id: str, on: bool) -> dict[str, Any]:
    """Put a live SIP call's caller on hold or resume it (re-INVITE); 409 ``hold_unavailable``
    for a call not answered yet or one that cannot (WebRTC, a re-INVITE in progress)."""
    record = None if call_id in plane.manager.calls else await _record(plane, call_id)
    if call_id in plane.incoming.pending or (record is not None and record.state == "offered"):
        raise error(409, f"Call {call_id!r} is not answered yet.", "hold_unavailable")
    call = await live(plane, call_id)
    try:
        call.hold(on)
    except NotHoldable as exc:
        raise error(409, str(exc), exc.code) from exc
    return {"id": call_id, "on_hold": call.info.on_hold, "held_by": call.info.held_by}


async def transfer(
    plane: ControlPlane, call_id: str, target: str, param: str, source: str
) -> dict[str, Any]:
    call = await live(plane, call_id)
    if call.leg != "sip":
        raise error(409, "Only SIP calls can be transferred.", "not_sip")
    verdict = plane.manager.destinations.check(
        Purpose.TRANSFER,
        call.info.profile_name,
        call.profile,
        target,
        source=source,
        call_id=call_id,
    )
    if not verdict or verdict.target is None:
        raise refused(verdict, param)
    try:
        await call.transfer(verdict.target)
    except NotTransferable as exc:
        raise error(409, str(exc), exc.code) from exc
    return {"id": call_id, "status": "transferring", "target": verdict.target}


async def events(plane: ControlPlane, call_id: str, after_seq: int) -> dict[str, Any]:
    """A call's event log and transcript, live or ended."""
    if call_id not in plane.manager.calls and await _record(plane, call_id) is None:
        raise not_found(call_id)
    found = await asyncio.to_thread(plane.store.events, call_id, after_seq=after_seq)
    transcript = [
        {"role": "user" if e.kind == "transcript.user" else "assistant", "ts": e.ts, **e.data}
        for e in found
        if e.kind in ("transcript.user", "transcript.agent")
    ]
    return {
        "object": "list",
        "call_id": call_id,
        "data": [{"seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data} for e in found],
        "transcript": transcript,
    }
