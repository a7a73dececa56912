"""Requests inside an established call and the responses to ours (RFC 3261 §14, §15;
RFC 3515 REFER; RFC 6086 INFO; RFC 3264 §8 re-offers).

* re-INVITE in: answered by the core itself from our current SDP (same codec, the RFC 3264 §6.1
  direction rule, so sendonly/inactive offers put us on hold, §8.4); 491 when our own re-INVITE
  is pending (glare, §14.2); 500 with Retry-After while the first INVITE is unacknowledged.
  The 2xx is retransmitted until the ACK like the first one.
* re-INVITE out: 491 -> retry after a random 2.1-4 s (we own the Call-ID) or 0-2 s (§14.1).
* BYE -> 200 (§15.1.2); INFO with application/dtmf-relay or application/dtmf -> DtmfReceived;
  OPTIONS -> 200.
* REFER in -> :class:`ReferReceived` for the owner, who answers it (:func:`answer_refer`): 202
  and an implicit subscription (NOTIFY ``message/sipfrag``, RFC 3515 §2.4.4), or a refusal;
  REFER out -> NOTIFY bodies reported as ReferProgress.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from sip.call import Call, CallCore, CallEv, CallState, Pending
from sip.dialog import Dialog, make_response
from sip.errors import SipStateError
from sip.events import (
    DtmfReceived,
    HoldChanged,
    ReferProgress,
    ReferReceived,
    RemoteSdpChanged,
)
from sip.headers import Headers
from sip.message import Request, Response, reason_phrase
from sip.offer_answer import LocalSession, is_hold, negotiate
from sip.sdp import Attribute, Direction, SdpError, SessionDescription
from sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
)

__all__ = [
    "answer_refer",
    "hold_sdp",
    "invite_2xx",
    "on_request",
    "on_response",
    "on_timeout",
    "parse_dtmf_info",
    "parse_sipfrag",
    "retry_reinvite",
    "send_info_dtmf",
    "send_refer",
    "send_refer_notify",
    "send_reinvite",
]

_DTMF_DIGITS = set("0123456789*#ABCDabcd")
_DTMF_EVENTS = {str(i): str(i) for i in range(10)} | {
    "10": "*",
    "11": "#",
    "12": "A",
    "13": "B",
    "14": "C",
    "15": "D",
}
_SIPFRAG_RE = re.compile(r"^SIP/2\.0 (\d{3})\s*(.*)$")


def parse_dtmf_info(content_type: str, body: bytes) -> tuple[str, int] | None:
    """``Signal=5\\r\\nDuration=160`` (application/dtmf-relay) or ``5`` (application/dtmf)
    -> (digit, duration in ms); None when the body says nothing usable."""
    text = body.decode("utf-8", "replace").strip()
    if content_type == "application/dtmf":
        digit = _DTMF_EVENTS.get(text, text)
        return (digit.upper(), 250) if digit in _DTMF_DIGITS else None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip().lower()] = value.strip()
    signal = fields.get("signal", "")
    signal = _DTMF_EVENTS.get(signal, signal)
    if signal not in _DTMF_DIGITS:
        return None
    duration = fields.get("duration", "250")
    return signal.upper(), int(duration) if duration.isdigit() else 250


def parse_sipfrag(body: bytes) -> tuple[int, str] | None:
    """The status line of a ``message/sipfrag`` body (RFC 3420), e.g. ``SIP/2.0 200 OK``."""
    first = body.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()
    m = _SIPFRAG_RE.match(first)
    return (int(m.group(1)), m.group(2)) if m else None


# --- inbound requests --------------------------------------------------------------------


def on_request(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerInviteTransaction | ServerNonInviteTransaction,
    now: float,
) -> None:
    dialog = call.dialog
    if dialog is not None and dialog.remote_seq is not None and req.cseq.seq < dialog.remote_seq:
        _reply(core, tx, req, 500, now, "Server Internal Error (CSeq out of order)")
        return
    if dialog is not None:
        dialog.remote_seq = req.cseq.seq
    m = req.method
    if m == "BYE":
        _reply(core, tx, req, 200, now)
        call.handle(CallEv.BYE, now)
    elif m == "INVITE":
        assert isinstance(tx, ServerInviteTransaction)
        _on_reinvite(core, call, req, tx, now)
    elif m == "INFO":
        _on_info(core, call, req, tx, now)
    elif m == "REFER":
        _on_refer(core, call, req, tx, now)
    elif m == "NOTIFY":
        _on_notify(core, call, req, tx, now)
    elif m == "OPTIONS":
        _reply(core, tx, req, 200, now, extra=core.common_headers())
    else:
        _reply(core, tx, req, 501, now, extra=core.common_headers())


def _reply(
    core: CallCore,
    tx: ServerInviteTransaction | ServerNonInviteTransaction,
    req: Request,
    status: int,
    now: float,
    reason: str | None = None,
    *,
    body: bytes = b"",
    extra: Headers | None = None,
) -> Response:
    contact = core.contact(tx.peer.transport) if req.method == "INVITE" and status < 300 else None
    resp = make_response(req, status, reason, contact=contact, body=body, extra=extra)
    tx.respond(resp, now)
    return resp


def _on_reinvite(
    core: CallCore, call: Call, req: Request, tx: ServerInviteTransaction, now: float
) -> None:
    if call.state is not CallState.CONFIRMED or call.final is not None:
        retry = Headers([("Retry-After", str(random.randint(0, 10)))])
        _reply(
            core, tx, req, 500, now, "Server Internal Error (previous INVITE pending)", extra=retry
        )
        return
    if call.reinvite_tx is not None:
        _reply(core, tx, req, 491, now)  # glare (§14.2)
        return
    body = call.local_sdp
    if req.body:
        try:
            offer = SessionDescription.parse(req.body)
            body = _answer_reoffer(call, offer)
            hold = is_hold(offer)
        except SdpError as exc:
            _reply(core, tx, req, 488, now, f"Not Acceptable Here ({str(exc)[:60]})")
            return
        call.remote_sdp = req.body
        if req.contact is not None and call.dialog is not None:
            call.dialog.remote_target = req.contact.uri  # §12.2.2 target refresh
        core.emit(RemoteSdpChanged(call.id, req.body))
        if hold != call.remote_hold:
            call.remote_hold = hold
            core.emit(HoldChanged(call.id, hold))
    resp = _reply(core, tx, req, 200, now, body=body, extra=core.common_headers())
    call.local_sdp = body
    call.start_2xx(resp, tx, now)


def _answer_reoffer(call: Call, offer: SessionDescription) -> bytes:
    """Answer a re-offer with our current address, port and codec (RFC 3264 §8)."""
    if not call.local_sdp:
        raise SdpError("no local session to answer a re-offer from")
    ours = SessionDescription.parse(call.local_sdp)
    audio = next((m for m in ours.media if m.media == "audio" and m.port), None)
    if audio is None or not audio.payload_types:
        raise SdpError("our session has no active audio stream")
    conn = audio.connection or ours.connection
    codec = audio.codec(audio.payload_types[0])
    if call.direction.value == "outbound" and call.remote_sdp:
        # our offer listed several codecs; the one in use is the first of the answer's
        theirs = SessionDescription.parse(call.remote_sdp)
        answered = next((m for m in theirs.media if m.media == "audio" and m.port), None)
        if answered is not None and answered.payload_types:
            codec = answered.codec(answered.payload_types[0]) or codec
    if conn is None or codec is None:
        raise SdpError("our session lacks a connection address or codec")
    if call.sdp_session is None:
        o = ours.origin
        call.sdp_session = LocalSession(o.address, o.session_id, o.session_version, o.username)
        call.sdp_session.stamp(ours)
    answer = negotiate(offer, [codec.encoding], conn.address, audio.port, session=call.sdp_session)
    return bytes(answer.sdp)


def _on_info(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerNonInviteTransaction | ServerInviteTransaction,
    now: float,
) -> None:
    ctype = req.content_type
    if ctype not in ("application/dtmf-relay", "application/dtmf"):
        _reply(
            core,
            tx,
            req,
            415,
            now,
            extra=Headers([("Accept", "application/dtmf-relay, application/dtmf")]),
        )
        return
    _reply(core, tx, req, 200, now)
    parsed = parse_dtmf_info(ctype, req.body)
    if parsed is not None:
        core.emit(DtmfReceived(call.id, parsed[0], parsed[1]))


def _on_refer(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerNonInviteTransaction | ServerInviteTransaction,
    now: float,
) -> None:
    refer_to = req.headers.get("Refer-To")
    if not refer_to or len(req.headers.get_all("Refer-To")) != 1:
        _reply(core, tx, req, 400, now, "Bad Request (exactly one Refer-To)")
        return
    if call.refer_in is not None:  # one transfer at a time (RFC 3515 §2.4.4: 491-like)
        _reply(core, tx, req, 491, now, "Request Pending")
        return
    call.refer_in = (tx, req)
    core.emit(ReferReceived(call.id, refer_to, req.headers.get("Referred-By")))


def answer_refer(
    core: CallCore, call: Call, status: int, now: float, reason: str | None = None
) -> None:
    """The owner's answer to an inbound REFER: 2xx accepts it (202, then NOTIFY 100 Trying;
    the owner reports progress with :func:`send_refer_notify`); anything else refuses it."""
    pending, call.refer_in = call.refer_in, None
    if pending is None:
        raise SipStateError("call", call.state.value, "answer_refer")
    tx, req = pending
    if 200 <= status < 300:
        _reply(core, tx, req, 202, now)
        send_refer_notify(core, call, 100, now)
    else:
        _reply(core, tx, req, status, now, reason)


def _on_notify(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerNonInviteTransaction | ServerInviteTransaction,
    now: float,
) -> None:
    event = (req.headers.get("Event") or "").split(";", 1)[0].strip().lower()
    if event != "refer":
        _reply(core, tx, req, 489, now, "Bad Event")
        return
    _reply(core, tx, req, 200, now)
    frag = parse_sipfrag(req.body)
    state = (req.headers.get("Subscription-State") or "").lower()
    if frag is not None:
        final = frag[0] >= 200 or state.startswith("terminated")
        core.emit(ReferProgress(call.id, frag[0], frag[1], final))


# --- our requests --------------------------------------------------------------------------


def send_reinvite(core: CallCore, call: Call, sdp: bytes, now: float) -> None:
    if call.state is not CallState.CONFIRMED or call.dialog is None:
        raise SipStateError("call", call.state.value, "reinvite")
    if call.reinvite_tx is not None:
        raise SipStateError("call", "re-INVITE pending", "reinvite")
    call.pending_offer = sdp
    req = call.dialog.request(
        "INVITE",
        core.via(call.peer.transport),
        core.contact(call.peer.transport),
        body=sdp,
        extra=core.common_headers(),
    )
    tx = core.send_request(call, req, "reinvite", now)
    assert isinstance(tx, ClientInviteTransaction)
    call.reinvite_tx = tx


def hold_sdp(call: Call, on: bool) -> bytes:
    """Our current SDP with the audio direction ``sendonly`` (hold) or ``sendrecv``, with the
    ``o=`` version bumped (RFC 3264 §8, §8.4)."""
    ours = SessionDescription.parse(call.local_sdp)
    direction = Direction.SENDONLY if on else Direction.SENDRECV
    names = {d.value for d in Direction}
    media = tuple(
        replace(
            m,
            attributes=(
                *(a for a in m.attributes if a.name not in names),
                Attribute(direction.value),
            ),
        )
        if m.media == "audio" and m.port
        else m
        for m in ours.media
    )
    session_attrs = tuple(a for a in ours.attributes if a.name not in names)
    if call.sdp_session is None:
        o = ours.origin
        call.sdp_session = LocalSession(o.address, o.session_id, o.session_version, o.username)
        call.sdp_session.stamp(ours)
    return bytes(call.sdp_session.stamp(replace(ours, media=media, attributes=session_attrs)))


def retry_reinvite(core: CallCore, call: Call, now: float) -> None:
    if call.state is CallState.CONFIRMED and call.pending_offer is not None:
        send_reinvite(core, call, call.pending_offer, now)


def send_refer(core: CallCore, call: Call, target: str, now: float) -> None:
    if call.state is not CallState.CONFIRMED or call.dialog is None:
        raise SipStateError("call", call.state.value, "refer")
    extra = Headers(
        [
            ("Refer-To", f"<{target}>" if "<" not in target else target),
            ("Referred-By", str(call.dialog.local.uri)),
        ]
    )
    req = call.dialog.request(
        "REFER", core.via(call.peer.transport), core.contact(call.peer.transport), extra=extra
    )
    core.send_request(call, req, "refer", now)


def send_info_dtmf(core: CallCore, call: Call, digit: str, duration_ms: int, now: float) -> None:
    """INFO with ``application/dtmf-relay`` (the de-facto format; RFC 6086 carries it)."""
    if call.state is not CallState.CONFIRMED or call.dialog is None:
        raise SipStateError("call", call.state.value, "info")
    if len(digit) != 1 or digit not in _DTMF_DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
    req = call.dialog.request(
        "INFO",
        core.via(call.peer.transport),
        core.contact(call.peer.transport),
        body=body,
        content_type="application/dtmf-relay",
    )
    core.send_request(call, req, "info", now)


def send_refer_notify(
    core: CallCore, call: Call, status: int, now: float, reason: str | None = None
) -> None:
    """NOTIFY with ``message/sipfrag`` (RFC 3515 §2.4.5); final statuses end the subscription."""
    if call.dialog is None or call.state is CallState.TERMINATED:
        return
    state = "active;expires=60" if status < 200 else "terminated;reason=noresource"
    extra = Headers([("Event", "refer"), ("Subscription-State", state)])
    body = f"SIP/2.0 {status} {reason or reason_phrase(status)}\r\n".encode()
    req = call.dialog.request(
        "NOTIFY",
        core.via(call.peer.transport),
        core.contact(call.peer.transport),
        body=body,
        content_type="message/sipfrag;version=2.0",
        extra=extra,
    )
    core.send_request(call, req, "notify", now)


# --- responses to our requests -------------------------------------------------------------


def on_response(
    core: CallCore,
    call: Call,
    purpose: str,
    tx: ClientInviteTransaction | ClientNonInviteTransaction,
    resp: Response,
    now: float,
) -> None:
    status = resp.status
    if purpose == "invite":
        if status < 200:
            ev = CallEv.PROVISIONAL
        elif status < 300:
            invite_2xx(core, call, resp, now)
            return
        else:
            if status in (401, 407) and core.retry_with_auth(call, resp, now):
                return
            ev = CallEv.FAILURE
        call.handle(ev, now, Pending(status=status, message=resp))
    elif purpose == "bye" and status >= 200:
        call.handle(CallEv.BYE_DONE, now)
    elif purpose == "reinvite" and status >= 200:
        _reinvite_done(core, call, tx, resp, now)
    elif purpose == "refer" and status >= 300:
        core.emit(ReferProgress(call.id, 0, f"REFER refused: {status} {resp.reason}", True))


def invite_2xx(core: CallCore, call: Call, resp: Response, now: float) -> None:
    """A 2xx to our INVITE, first or retransmitted. A 2xx from another fork (another To tag)
    once our dialog is confirmed is ACKed and ended with BYE (§13.2.2.4)."""
    settled = call.state in (CallState.CONFIRMED, CallState.TERMINATING, CallState.TERMINATED)
    if settled and call.dialog is not None and resp.to.tag != call.dialog.remote_tag:
        fork = Dialog.as_uac(call.invite, resp)
        via = core.via(call.peer.transport)
        core.send_direct(fork.request("ACK", via, None, cseq=call.invite.cseq.seq), call.peer)
        bye = fork.request("BYE", core.via(call.peer.transport), None)
        core.send_request(call, bye, "fork-bye", now)  # its outcome changes nothing
        return
    call.handle(CallEv.SUCCESS, now, Pending(status=resp.status, message=resp))


def _reinvite_done(
    core: CallCore,
    call: Call,
    tx: ClientInviteTransaction | ClientNonInviteTransaction,
    resp: Response,
    now: float,
) -> None:
    if tx is not call.reinvite_tx:
        if 200 <= resp.status < 300 and call.reinvite_ack is not None:
            core.send_direct(call.reinvite_ack, call.peer)  # a retransmitted 2xx
        return
    call.reinvite_tx = None
    status = resp.status
    if 200 <= status < 300 and call.dialog is not None:
        ack = call.dialog.request("ACK", core.via(call.peer.transport), None, cseq=resp.cseq.seq)
        call.reinvite_ack = ack
        core.send_direct(ack, call.peer)
        call.local_sdp = call.pending_offer or call.local_sdp
        call.pending_offer = None
        if resp.body:
            call.remote_sdp = resp.body
            core.emit(RemoteSdpChanged(call.id, resp.body))
    elif status == 491:
        owner = call.direction.value == "outbound"
        delay = random.uniform(2.1, 4.0) if owner else random.uniform(0.0, 2.0)
        call.set_timer("glare-retry", now + delay)
    elif status in (408, 481):
        call.pending_offer = None
        call.handle(CallEv.HANGUP, now)  # §14.1: the dialog is gone
    else:
        call.pending_offer = None


def on_timeout(core: CallCore, call: Call, purpose: str, now: float) -> None:
    if purpose == "invite":
        call.handle(CallEv.INVITE_TIMEOUT, now)
    elif purpose == "bye":
        call.handle(CallEv.BYE_DONE, now)
    elif purpose == "reinvite":
        call.reinvite_tx = None
        call.pending_offer = None
        call.handle(CallEv.HANGUP, now)
