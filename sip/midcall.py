"""Requests inside an established call and the responses to ours (RFC 3261 §14, §15;
RFC 3515 REFER; RFC 6086 INFO; RFC 3264 §8 re-offers).

* re-INVITE in: answered by the core itself from our current SDP (same codec, the RFC 3264 §6.1
  direction rule, so sendonly/inactive offers put us on hold, §8.4); 491 when our own re-INVITE
  is pending (glare, §14.2); 500 with Retry-After while the first INVITE is unacknowledged.
  The 2xx is retransmitted until the ACK like the first one.
* re-INVITE out: 491 -> retry after a random 2.1-4 s (we own the Call-ID) or 0-2 s (§14.1);
  408/481 end the call; any other error leaves the session as it was and is reported as
  :class:`ReinviteRefused` (a hold the peer would not take).
* UPDATE in (RFC 3311): a body-less one is a session refresh (200); one with an offer is
  answered like a re-offer, in its 200. Outside a confirmed dialog an offer gets 500 with
  Retry-After (our answer to the INVITE is not settled, RFC 3311 §5.2), and 491 while our own
  offer is pending.
* Session timers (RFC 4028): every re-INVITE or UPDATE we answer renegotiates the timer (422
  under our Min-SE) and restarts it; as the refresher we send UPDATE when the peer allows it,
  else a re-INVITE with our SDP unchanged; a 2xx to any of our re-INVITEs or UPDATEs restarts
  the timer, a 408/481 or a timeout of a refresh ends the call.
* Our INVITE: 422 (Session Interval Too Small) -> sent again with the interval asked for;
  401/407 -> digest (the core); a timeout, transport error or 503 before an answer -> the next
  target (RFC 3263 §4.3, the core).
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

from sip.call import Call, CallCore, CallEv, CallState, Pending, timer_headers
from sip.dialog import Dialog, make_response
from sip.errors import SipParseError, SipStateError
from sip.events import (
    DtmfReceived,
    HoldChanged,
    ReferProgress,
    ReferReceived,
    ReinviteRefused,
    RemoteSdpChanged,
)
from sip.headers import Headers, NameAddr
from sip.message import Request, Response, reason_phrase
from sip.offer_answer import LocalSession, is_hold
from sip.sdp import Attribute, Direction, SdpError, SessionDescription
from sip.session_timer import (
    Refresher,
    Timer,
    TooSmall,
    uac_request,
    uac_retry_interval,
    uac_settle,
    uas_settle,
)
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
    "send_refresh",
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
    elif m == "UPDATE":
        _on_update(core, call, req, tx, now)
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
    refresh = req.method in ("INVITE", "UPDATE") and status < 300  # target refresh (§12.2)
    contact = core.contact(tx.peer.transport) if refresh else None
    resp = make_response(req, status, reason, contact=contact, body=body, extra=extra)
    tx.respond(resp, now)
    return resp


def _settle_timer(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerInviteTransaction | ServerNonInviteTransaction,
    now: float,
) -> tuple[bool, Timer | None]:
    """RFC 4028 §9 for a re-INVITE or UPDATE we answer: (go on, the timer to run after our
    2xx); go on is False when the request was answered here (422, 400)."""
    try:
        settled = uas_settle(req.headers, core.timer_policy(call.trunk))
    except SipParseError as exc:
        _reply(core, tx, req, 400, now, exc.reason)
        return False, None
    if isinstance(settled, TooSmall):
        _reply(core, tx, req, 422, now, extra=Headers([("Min-SE", str(settled.min_se))]))
        return False, None
    return True, settled


def _take_offer(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerInviteTransaction | ServerNonInviteTransaction,
    now: float,
) -> bytes | None:
    """Answer the offer ``req`` carries (RFC 3264 §8); None when it was refused here (488)."""
    try:
        offer = SessionDescription.parse(req.body)
        body = core.answer_offer(call, req.body)
        hold = is_hold(offer)
    except SdpError as exc:
        _reply(core, tx, req, 488, now, f"Not Acceptable Here ({str(exc)[:60]})")
        return None
    call.remote_sdp = req.body
    call.local_sdp = body
    if req.contact is not None and call.dialog is not None:
        call.dialog.remote_target = req.contact.sip_uri  # §12.2.2 target refresh
    core.emit(RemoteSdpChanged(call.id, req.body, body, True))
    if hold != call.remote_hold:
        call.remote_hold = hold
        core.emit(HoldChanged(call.id, hold))
    return body


def _settle(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerInviteTransaction | ServerNonInviteTransaction,
    now: float,
    body: bytes,
) -> tuple[bytes, Headers, Timer | None] | None:
    """A re-INVITE's or UPDATE's session timer settled (RFC 4028) and its offer, if it carries
    one, answered (RFC 3264): the 200's body (``body`` when no offer), its headers and the
    timer; None when a refusal was sent instead."""
    go_on, timer = _settle_timer(core, call, req, tx, now)
    if not go_on:
        return None
    if req.body:
        answered = _take_offer(core, call, req, tx, now)
        if answered is None:
            return None
        body = answered
    return body, Headers([*core.common_headers(), *timer_headers(timer)]), timer


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
    settled = _settle(core, call, req, tx, now, call.local_sdp)
    if settled is None:
        return
    body, extra, timer = settled
    resp = _reply(core, tx, req, 200, now, body=body, extra=extra)
    call.local_sdp = body
    call.start_2xx(resp, tx, now)
    call.start_session_timer(timer, now)


def _on_update(
    core: CallCore,
    call: Call,
    req: Request,
    tx: ServerNonInviteTransaction | ServerInviteTransaction,
    now: float,
) -> None:
    """RFC 3311 §5.2: a refresh (no body) or a new offer answered in the 200."""
    if req.body:
        if call.state is not CallState.CONFIRMED or call.final is not None:
            retry = Headers([("Retry-After", str(random.randint(1, 10)))])
            _reply(core, tx, req, 500, now, "Server Internal Error (offer pending)", extra=retry)
            return
        if call.reinvite_tx is not None:
            _reply(core, tx, req, 491, now)
            return
    settled = _settle(core, call, req, tx, now, b"")
    if settled is None:
        return
    body, extra, timer = settled
    _reply(core, tx, req, 200, now, body=body, extra=extra)
    if call.state is CallState.CONFIRMED:
        call.start_session_timer(timer, now)


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


def _refresh_headers(core: CallCore, call: Call) -> Headers:
    """Our Session-Expires for a re-INVITE or UPDATE while a timer runs: we ask to refresh
    when we already do (``refresher=uac`` for this transaction), else leave it to the peer."""
    h = core.common_headers()
    timer = call.session_timer
    if timer is not None:
        who = Refresher.UAC if timer.we_refresh else Refresher.UAS
        for k, v in uac_request(core.timer_policy(call.trunk), timer.interval, who):
            h.add(k, v)
    return h


def send_reinvite(core: CallCore, call: Call, sdp: bytes, now: float) -> None:
    if call.state is not CallState.CONFIRMED or call.dialog is None:
        raise SipStateError("call", call.state.value, "reinvite")
    if call.reinvite_tx is not None or "glare-retry" in call.timers:
        raise SipStateError("call", "re-INVITE pending", "reinvite")
    call.pending_offer = sdp
    req = call.dialog.request(
        "INVITE",
        core.via(call.peer.transport),
        core.contact(call.peer.transport),
        body=sdp,
        extra=_refresh_headers(core, call),
    )
    tx = core.send_request(call, req, "reinvite", now)
    assert isinstance(tx, ClientInviteTransaction)
    call.reinvite_tx = tx


def send_refresh(core: CallCore, call: Call, now: float) -> None:
    """RFC 4028 §7.4: refresh the session. A re-INVITE or UPDATE already in flight is one;
    else UPDATE without a body where the peer allows it, a re-INVITE with our SDP otherwise."""
    if call.state is not CallState.CONFIRMED or call.dialog is None or call.final is not None:
        return
    if call.reinvite_tx is not None or call.refresh_tx is not None:
        return
    if "glare-retry" in call.timers:  # the postponed re-INVITE will refresh it
        return
    if not call.peer_allows_update:
        send_reinvite(core, call, call.local_sdp, now)
        return
    req = call.dialog.request(
        "UPDATE",
        core.via(call.peer.transport),
        core.contact(call.peer.transport),
        extra=_refresh_headers(core, call),
    )
    call.refresh_tx = core.send_request(call, req, "refresh", now)


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
    if (
        call.state is CallState.CONFIRMED
        and call.pending_offer is not None
        and call.reinvite_tx is None
    ):
        send_reinvite(core, call, call.pending_offer, now)


def send_refer(core: CallCore, call: Call, target: str, now: float) -> None:
    if call.state is not CallState.CONFIRMED or call.dialog is None:
        raise SipStateError("call", call.state.value, "refer")
    extra = Headers(
        [
            ("Refer-To", f"<{target}>" if "<" not in target else target),
            ("Referred-By", str(NameAddr(call.dialog.local.uri))),  # <>: a tel: URI's params
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
            if status == 422 and _retry_with_interval(core, call, resp, now):
                return
            if status == 503 and core.retry_elsewhere(call, now):
                return
            ev = CallEv.FAILURE
        call.handle(ev, now, Pending(status=status, message=resp))
    elif purpose == "bye" and status >= 200:
        call.handle(CallEv.BYE_DONE, now)
    elif purpose == "reinvite" and status >= 200:
        _reinvite_done(core, call, tx, resp, now)
    elif purpose == "refresh" and status >= 200:
        _refresh_done(core, call, resp, now)
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
        core.send_direct(ack, call.peer, call.flow_fallback())
        call.local_sdp = call.pending_offer or call.local_sdp
        call.pending_offer = None
        if call.hold_pending is not None:
            call.local_hold, call.hold_pending = call.hold_pending, None
        if resp.body:
            call.remote_sdp = resp.body
            core.emit(RemoteSdpChanged(call.id, resp.body, call.local_sdp, False))
        _restart_timer(core, call, resp, now)
    elif status == 491:
        owner = call.direction.value == "outbound"
        delay = random.uniform(2.1, 4.0) if owner else random.uniform(0.0, 2.0)
        call.set_timer("glare-retry", now + delay)
    elif status in (408, 481):
        call.pending_offer = call.hold_pending = None
        call.handle(CallEv.HANGUP, now)  # §14.1: the dialog is gone
    else:
        call.pending_offer = call.hold_pending = None  # §14.1: the session goes on as it was
        core.emit(ReinviteRefused(call.id, status, resp.reason))


def _restart_timer(core: CallCore, call: Call, resp: Response, now: float) -> None:
    """A 2xx to our re-INVITE or UPDATE refreshed the session: the timer it settles (ours
    again when it names none while one runs: the refresh still counts, RFC 4028 §7.4)."""
    try:
        settled = uac_settle(resp.headers)
    except SipParseError:
        settled = None
    call.start_session_timer(settled or call.session_timer, now)


def _refresh_done(core: CallCore, call: Call, resp: Response, now: float) -> None:
    call.refresh_tx = None
    status = resp.status
    if 200 <= status < 300:
        _restart_timer(core, call, resp, now)
    elif status == 422 and call.session_timer is not None:
        wanted = uac_retry_interval(resp.headers, call.session_timer.interval)
        if wanted is not None and call.timer_tries < 2:
            call.timer_tries += 1
            t = call.session_timer
            call.session_timer = Timer(wanted, t.we_refresh, replace(t.header, interval=wanted))
            send_refresh(core, call, now)
    elif status in (408, 481):
        call.handle(CallEv.SESSION_EXPIRED, now)  # the dialog is gone (RFC 4028 §10)
    elif status in (405, 501):  # UPDATE refused after all: refresh by re-INVITE from now on
        call.peer_allows_update = False
        send_refresh(core, call, now)


def _retry_with_interval(core: CallCore, call: Call, resp: Response, now: float) -> bool:
    """RFC 4028 §7.3: a 422 to our INVITE names the Min-SE to ask with; once or twice."""
    asked = _asked_interval(call.invite)
    wanted = uac_retry_interval(resp.headers, asked or 0)
    if wanted is None or call.timer_tries >= 2 or call.client_tx is None:
        return False
    call.timer_tries += 1
    core.resend_invite(call, now, {"Session-Expires": str(wanted), "Min-SE": str(wanted)})
    return True


def _asked_interval(invite: Request) -> int | None:
    value = invite.headers.get("Session-Expires")
    head = (value or "").split(";", 1)[0].strip()
    return int(head) if head.isdigit() else None


def on_timeout(core: CallCore, call: Call, purpose: str, now: float) -> None:
    if purpose == "invite":
        if call.state is CallState.CALLING and core.retry_elsewhere(call, now):
            return
        call.handle(CallEv.INVITE_TIMEOUT, now)
    elif purpose == "bye":
        call.handle(CallEv.BYE_DONE, now)
    elif purpose == "reinvite":
        call.reinvite_tx = None
        call.pending_offer = None
        call.handle(CallEv.HANGUP, now)
    elif purpose == "refresh":
        call.refresh_tx = None
        call.handle(CallEv.SESSION_EXPIRED, now)  # RFC 4028 §10: the refresh went unanswered
