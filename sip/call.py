"""One SIP call: the INVITE dialog usage from either side (RFC 3261 §13-15, RFC 6026, RFC 3264).

:class:`Call` is an Enum-state machine with ONE transition table (``TABLE``); local commands
(ring, answer, reject, hang up) and remote events (responses, ACK, CANCEL, BYE, timeouts) are
events in it. Local commands the table lacks raise :class:`SipStateError` naming the state and
event; remote events reach every state (absorbed where irrelevant). What the table covers:

* UAS (§13.3): 1xx, then a 2xx the core retransmits (T1 doubling to T2) until the ACK, giving up
  after 64*T1 with a BYE (§13.3.1.4); the call ends right then (``ack-timeout``), not when the
  BYE is answered: a peer that never ACKed has proven nothing and holds nothing longer (issue
  12). CANCEL before the answer -> 487. A hang-up between the 2xx and its ACK waits for the ACK
  before the BYE (§15).
* UAC (§13.2): ACK for a 2xx as its own request (sent again for every retransmitted 2xx);
  CANCEL only after a provisional (§9.1); the 200/CANCEL race -> ACK then BYE (§15).
* BYE from either side (§15.1), with a ``Reason`` (RFC 3326) when the owner gives one.
* Delayed offer (§13.2.1, §13.3.1): an INVITE without SDP is answered with our offer in the
  2xx and the caller's answer is read from its ACK (:class:`CallAnswered` ``ack_sdp``); our
  own INVITE without SDP gets the callee's offer in the 2xx, which the core answers in the ACK
  from the call's :class:`~sip.offer_answer.MediaPrefs`.
* Session timers (RFC 4028, :mod:`sip.session_timer`): the refresher refreshes at half the
  interval (:meth:`CallCore.refresh_session`); a session not refreshed in time ends with BYE
  (``session-expired``).
* A ring timeout on our INVITE (CANCEL after the first provisional, ``no-answer``).
* Failover (RFC 3263 §4.3): an INVITE that times out or gets 503 before any answer is sent
  again, as a new transaction, to the next of ``alternates`` (:meth:`CallCore.retry_elsewhere`).

Mid-dialog requests that do not change the call state (re-INVITE, INFO, REFER, NOTIFY) are
handled by :mod:`sip.ua` and :mod:`sip.midcall`.

A call talks to the core that owns it only through :class:`CallCore`, the small protocol
defined here (headers we advertise, sending, timers, events); :class:`sip.ua.SipCore` satisfies
it. So this module and :mod:`sip.midcall` never import :mod:`sip.ua`, which imports them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sip.dialog import Dialog, make_response
from sip.errors import SipStateError
from sip.events import CallAnswered, CallEnded, CallEvent, CallRinging, EndReason
from sip.headers import Headers, NameAddr
from sip.message import Request, Response
from sip.offer_answer import LocalSession, MediaPrefs
from sip.sdp import SdpError
from sip.session_timer import Timer, TimerPolicy, uac_settle
from sip.transaction import (
    ClientInviteTransaction,
    ClientTx,
    Peer,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimerValues,
)
from sip.uri import SipUri

__all__ = ["Call", "CallCore", "CallEv", "CallState", "Direction", "Pending"]


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(enum.Enum):
    INCOMING = "incoming"  # UAS: INVITE received, nothing but 100 sent
    EARLY_IN = "early-in"  # UAS: 18x sent
    ANSWERING = "answering"  # UAS: 2xx sent, waiting for the ACK
    BYE_PENDING = "bye-pending"  # UAS: hung up before the ACK; BYE once it comes (§15)
    CALLING = "calling"  # UAC: INVITE sent
    EARLY_OUT = "early-out"  # UAC: 1xx received
    CANCELLING = "cancelling"  # UAC: hung up before the answer
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"  # our BYE is out
    TERMINATED = "terminated"


class CallEv(enum.Enum):
    RING = "ring"
    ANSWER = "answer"
    REJECT = "reject"
    HANGUP = "hangup"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    INVITE_TIMEOUT = "invite-timeout"
    ACK = "ack"
    ACK_TIMEOUT = "ack-timeout"
    CANCEL = "cancel"
    BYE = "bye"
    BYE_DONE = "bye-done"
    SESSION_EXPIRED = "session-expired"  # RFC 4028 §10
    RING_TIMEOUT = "ring-timeout"  # our INVITE rang too long


S = CallState
E = CallEv
_REMOTE = (
    E.PROVISIONAL,
    E.SUCCESS,
    E.FAILURE,
    E.INVITE_TIMEOUT,
    E.ACK,
    E.ACK_TIMEOUT,
    E.CANCEL,
    E.BYE,
    E.BYE_DONE,
    E.SESSION_EXPIRED,
    E.RING_TIMEOUT,
)
Table = dict[tuple[CallState, CallEv], tuple[CallState, str | None]]


def _absorb_remote(table: Table) -> Table:
    """Every remote event the table does not name is absorbed in place (never raises)."""
    for state in CallState:
        for ev in _REMOTE:
            table.setdefault((state, ev), (state, None))
    return table


class CallCore(Protocol):
    """What a call (and :mod:`sip.midcall`) needs of the core that owns it.

    The call decides; the core addresses, sends and keeps time. ``send_request`` runs a request
    to the call's peer in a client transaction whose responses and timeout come back to the
    call tagged with ``purpose`` (``"invite"``, ``"bye"``, ``"reinvite"``, ...).
    """

    @property
    def timer_values(self) -> TimerValues: ...

    def timer_policy(self, trunk: str | None) -> TimerPolicy:
        """Our session-timer wishes (RFC 4028) for a call on ``trunk`` (its own, else the
        endpoint's)."""
        ...

    def via(self, transport: str) -> str:
        """A fresh top Via (new branch) for a request we send over ``transport``."""
        ...

    def contact(self, transport: str) -> NameAddr: ...

    def common_headers(self) -> Headers:
        """Allow and User-Agent, for our requests and answers."""
        ...

    def emit(self, event: CallEvent) -> None: ...

    def send_direct(
        self, message: Request | Response, peer: Peer, fallback: Peer | None = None
    ) -> None:
        """Send outside any transaction (the ACK for a 2xx, a retransmitted 2xx)."""
        ...

    def send_request(self, call: Call, request: Request, purpose: str, now: float) -> ClientTx: ...

    def schedule(self, call: Call, when: float) -> None:
        """Run ``call.fire_due`` at ``when`` (or soon after)."""
        ...

    def call_ended(self, call: Call) -> None:
        """The call is terminated: the core may forget it."""
        ...

    def retry_with_auth(self, call: Call, challenge: Response, now: float) -> bool:
        """Resend the call's INVITE with credentials for a 401/407; False when it cannot."""
        ...

    def retry_reinvite(self, call: Call, now: float) -> None:
        """Send the re-INVITE a 491 (glare, §14.1) postponed."""
        ...

    def resend_invite(
        self,
        call: Call,
        now: float,
        headers: Mapping[str, str] | None = None,
        *,
        drop: tuple[str, ...] = (),
    ) -> None:
        """Send the call's INVITE again as a new transaction with ``headers`` set."""
        ...

    def retry_elsewhere(self, call: Call, now: float) -> bool:
        """Send the call's INVITE to the next of its ``alternates`` (RFC 3263 §4.3); False
        when there is none left."""
        ...

    def answer_offer(self, call: Call, offer: bytes) -> bytes:
        """Our answer to an offer the core must answer by itself (a re-INVITE or UPDATE, the
        2xx of our delayed-offer INVITE), from the call's media preferences; raises
        :class:`~sip.sdp.SdpError` (488) when there is none."""
        ...

    def refresh_session(self, call: Call, now: float) -> None:
        """Send a session refresh (UPDATE, or re-INVITE when the peer lacks UPDATE)."""
        ...


@dataclass(slots=True)
class Pending:
    """Parameters of the event being applied (status, body, the message that caused it)."""

    status: int = 0
    reason: str | None = None
    body: bytes = b""
    message: Request | Response | None = None
    extra: tuple[tuple[str, str], ...] = ()


class Call:
    """An INVITE dialog usage. The core (``SipCore``) does the I/O; the call decides."""

    MACHINE = "call"
    TABLE: ClassVar[Table] = _absorb_remote(
        {
            (S.INCOMING, E.RING): (S.EARLY_IN, "_send_provisional"),
            (S.INCOMING, E.ANSWER): (S.ANSWERING, "_send_2xx"),
            (S.INCOMING, E.REJECT): (S.TERMINATED, "_send_reject"),
            (S.INCOMING, E.HANGUP): (S.TERMINATED, "_send_reject"),
            (S.INCOMING, E.CANCEL): (S.TERMINATED, "_cancelled"),
            (S.EARLY_IN, E.RING): (S.EARLY_IN, "_send_provisional"),
            (S.EARLY_IN, E.ANSWER): (S.ANSWERING, "_send_2xx"),
            (S.EARLY_IN, E.REJECT): (S.TERMINATED, "_send_reject"),
            (S.EARLY_IN, E.HANGUP): (S.TERMINATED, "_send_reject"),
            (S.EARLY_IN, E.CANCEL): (S.TERMINATED, "_cancelled"),
            (S.EARLY_IN, E.BYE): (S.TERMINATED, "_early_bye"),
            (S.ANSWERING, E.ACK): (S.CONFIRMED, "_acked"),
            (S.ANSWERING, E.ACK_TIMEOUT): (S.TERMINATED, "_ack_timeout"),
            (S.ANSWERING, E.HANGUP): (S.BYE_PENDING, None),
            (S.ANSWERING, E.BYE): (S.TERMINATED, "_remote_bye"),
            (S.BYE_PENDING, E.HANGUP): (S.BYE_PENDING, None),
            (S.BYE_PENDING, E.ACK): (S.TERMINATING, "_send_bye"),
            (S.BYE_PENDING, E.ACK_TIMEOUT): (S.TERMINATED, "_ack_timeout"),
            (S.BYE_PENDING, E.BYE): (S.TERMINATED, "_remote_bye"),
            (S.CALLING, E.PROVISIONAL): (S.EARLY_OUT, "_ringing"),
            (S.CALLING, E.SUCCESS): (S.CONFIRMED, "_answered"),
            (S.CALLING, E.FAILURE): (S.TERMINATED, "_failed"),
            (S.CALLING, E.INVITE_TIMEOUT): (S.TERMINATED, "_timed_out"),
            (S.CALLING, E.HANGUP): (S.CANCELLING, None),  # CANCEL waits for a 1xx (§9.1)
            (S.EARLY_OUT, E.PROVISIONAL): (S.EARLY_OUT, "_ringing"),
            (S.EARLY_OUT, E.SUCCESS): (S.CONFIRMED, "_answered"),
            (S.EARLY_OUT, E.FAILURE): (S.TERMINATED, "_failed"),
            (S.EARLY_OUT, E.INVITE_TIMEOUT): (S.TERMINATED, "_timed_out"),
            (S.EARLY_OUT, E.HANGUP): (S.CANCELLING, "_send_cancel"),
            (S.CANCELLING, E.HANGUP): (S.CANCELLING, None),
            (S.CANCELLING, E.PROVISIONAL): (S.CANCELLING, "_send_cancel"),
            (S.CANCELLING, E.SUCCESS): (S.TERMINATING, "_ack_then_bye"),
            (S.CANCELLING, E.FAILURE): (S.TERMINATED, "_cancel_done"),
            (S.CANCELLING, E.INVITE_TIMEOUT): (S.TERMINATED, "_cancel_done"),
            (S.CONFIRMED, E.SUCCESS): (S.CONFIRMED, "_resend_ack"),
            (S.CONFIRMED, E.HANGUP): (S.TERMINATING, "_send_bye"),
            (S.CONFIRMED, E.BYE): (S.TERMINATED, "_remote_bye"),
            (S.CONFIRMED, E.ACK): (S.CONFIRMED, "_reinvite_acked"),
            (S.CONFIRMED, E.ACK_TIMEOUT): (S.TERMINATED, "_ack_timeout"),
            (S.CONFIRMED, E.SESSION_EXPIRED): (S.TERMINATED, "_session_expired"),
            (S.CALLING, E.RING_TIMEOUT): (S.CANCELLING, "_no_answer"),
            (S.EARLY_OUT, E.RING_TIMEOUT): (S.CANCELLING, "_no_answer_cancel"),
            (S.TERMINATING, E.SUCCESS): (S.TERMINATING, "_resend_ack"),
            (S.TERMINATING, E.HANGUP): (S.TERMINATING, None),
            (S.TERMINATING, E.BYE): (S.TERMINATED, "_remote_bye"),
            (S.TERMINATING, E.BYE_DONE): (S.TERMINATED, "_bye_done"),
            (S.TERMINATED, E.HANGUP): (S.TERMINATED, None),
        }
    )

    def __init__(
        self,
        core: CallCore,
        call_id: str,
        direction: Direction,
        invite: Request,
        peer: Peer,
        trunk: str | None = None,
    ) -> None:
        self.core = core
        self.id = call_id
        self.direction = direction
        self.invite = invite
        self.peer = peer
        self.trunk = trunk
        self.state = S.INCOMING if direction is Direction.INBOUND else S.CALLING
        self.dialog: Dialog | None = None
        self.server_tx: ServerInviteTransaction | None = None
        self.client_tx: ClientInviteTransaction | None = None
        self.local_tag = ""
        self.local_sdp = b""
        self.remote_sdp = invite.body if direction is Direction.INBOUND else b""
        self.final: Response | None = None  # our 2xx (UAS) while unacknowledged
        self.final_tx: ServerInviteTransaction | None = None  # the transaction it answers
        self.ack: Request | None = None  # our ACK for the 2xx (UAC)
        self.timers: dict[str, float] = {}
        self._retx = 0.0
        self._p = Pending()
        self.end_reason: EndReason | None = None
        self.end_status: int | None = None
        self.cancel_sent = False
        self.remote_hold = False
        #: we hold the peer (our SDP ``sendonly``): every answer we give says so too
        self.local_hold = False
        self.hold_pending: bool | None = None  # the hold our re-INVITE in flight asks for
        self.reinvite_tx: ClientInviteTransaction | None = None  # our pending re-INVITE
        self.reinvite_ack: Request | None = None
        self.pending_offer: bytes | None = None
        self.sdp_session: LocalSession | None = None
        #: an inbound REFER waiting for the owner's answer (:meth:`SipCore.answer_refer`)
        self.refer_in: (
            tuple[ServerNonInviteTransaction | ServerInviteTransaction, Request] | None
        ) = None
        self.auth_tries = 0
        #: how the core answers offers by itself (None: with the codec in use only)
        self.media: MediaPrefs | None = None
        self.session_timer: Timer | None = None
        inbound = direction is Direction.INBOUND
        self.peer_allows_update = inbound and "UPDATE" in _allowed(invite)
        self.alternates: list[Peer] = []  # RFC 3263: where the INVITE goes if this peer fails
        self.cancel_reason = EndReason.LOCAL_CANCEL
        self.refresh_tx: ClientTx | None = None  # our UPDATE refresh in flight
        self.timer_tries = 0  # 422 retries (RFC 4028 §7.3)

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction.value} {self.state.value}>"

    @property
    def ended(self) -> bool:
        return self.state is S.TERMINATED

    def handle(self, event: CallEv, now: float, pending: Pending | None = None) -> None:
        move = self.TABLE.get((self.state, event))
        if move is None:
            raise SipStateError(self.MACHINE, self.state.value, event.value)
        nxt, action = move
        self.state = nxt
        self._p = pending or Pending()
        if action is not None:
            getattr(self, action)(now)

    # --- timers (2xx retransmission §13.3.1.4) -------------------------------------------
    def deadline(self) -> float | None:
        return min(self.timers.values()) if self.timers else None

    def set_timer(self, name: str, when: float) -> None:
        self.timers[name] = when
        self.core.schedule(self, when)

    def fire_due(self, now: float) -> None:
        t1, t2 = self.core.timer_values.t1, self.core.timer_values.t2
        if "2xx-give-up" in self.timers and self.timers["2xx-give-up"] <= now:
            self.timers.clear()
            self.handle(E.ACK_TIMEOUT, now)
            return
        when = self.timers.get("2xx-retransmit")
        if when is not None and when <= now and self.final is not None:
            if self.final_tx is not None and not self.final_tx.terminated:
                self.final_tx.respond(self.final, now)
            else:
                self.core.send_direct(self.final, self.peer)
            self._retx = min(2 * self._retx, t2) if self._retx else t1
            self.set_timer("2xx-retransmit", now + self._retx)
        when = self.timers.get("glare-retry")
        if when is not None and when <= now:
            del self.timers["glare-retry"]
            self.core.retry_reinvite(self, now)
        when = self.timers.get("ring-timeout")
        if when is not None and when <= now:
            del self.timers["ring-timeout"]
            self.handle(E.RING_TIMEOUT, now)
        when = self.timers.get("session-refresh")
        if when is not None and when <= now:
            del self.timers["session-refresh"]
            self.core.refresh_session(self, now)
        when = self.timers.get("session-expire")
        if when is not None and when <= now:
            del self.timers["session-expire"]
            self.handle(E.SESSION_EXPIRED, now)

    def start_session_timer(self, timer: Timer | None, now: float) -> None:
        """A session refresh succeeded (or the dialog began): run ``timer`` from ``now``."""
        self.session_timer = timer
        self.timers.pop("session-refresh", None)
        self.timers.pop("session-expire", None)
        if timer is None or self.ended:
            return
        if timer.we_refresh:
            self.set_timer("session-refresh", timer.refresh_at(now))
        self.set_timer("session-expire", timer.expires_at(now))

    def flow_fallback(self) -> Peer | None:
        """Over TCP/TLS, where a new connection for this dialog goes when its flow is gone:
        the route set or the remote target (§12.2.1.1, RFC 5923's reuse otherwise)."""
        if not self.peer.reliable or self.dialog is None:
            return None
        return uri_peer(self.dialog.next_hop(), self.peer.transport)

    # --- UAS actions ---------------------------------------------------------------------
    def _uas_dialog(self) -> Dialog:
        if self.dialog is None:
            self.dialog = Dialog.as_uas(self.invite, self.local_tag)
        return self.dialog

    def _respond(
        self, status: int, now: float, body: bytes = b"", extra: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        assert self.server_tx is not None
        contact = self.core.contact(self.peer.transport) if status < 300 else None
        resp = make_response(
            self.invite,
            status,
            self._p.reason,
            to_tag=self.local_tag,
            contact=contact,
            body=body,
            extra=Headers([*self.core.common_headers(), *self._p.extra, *extra]),
        )
        if not self.server_tx.terminated:
            self.server_tx.respond(resp, now)
        return resp

    def _send_provisional(self, now: float) -> None:
        self._uas_dialog()
        self._respond(self._p.status or 180, now, self._p.body)

    def _send_2xx(self, now: float) -> None:
        self._uas_dialog()
        self.local_sdp = self._p.body
        resp = self._respond(200, now, self._p.body, timer_headers(self.session_timer))
        self.start_2xx(resp, self.server_tx, now)
        self.start_session_timer(self.session_timer, now)

    def start_2xx(self, final: Response, tx: ServerInviteTransaction | None, now: float) -> None:
        """Retransmit ``final`` (a 2xx to an INVITE or re-INVITE) until the ACK (§13.3.1.4)."""
        self.final, self.final_tx = final, tx
        t1 = self.core.timer_values.t1
        self._retx = t1
        if not self.peer.reliable:
            self.set_timer("2xx-retransmit", now + t1)
        self.set_timer("2xx-give-up", now + 64 * t1)

    def _send_reject(self, now: float) -> None:
        status = self._p.status or 480
        self._respond(status, now)
        self._end(EndReason.REJECTED, status)

    def _cancelled(self, now: float) -> None:
        self._p.reason = None
        self._respond(487, now)
        self._end(EndReason.CANCELLED, 487)

    def _early_bye(self, now: float) -> None:
        """§15: a BYE on the early dialog ends it; the INVITE gets 487."""
        self._p.reason = None
        self._respond(487, now)
        self._end(EndReason.REMOTE_BYE, 487)

    def _acked(self, now: float) -> None:
        self._reinvite_acked(now)
        ack = self._p.message
        delayed = not self.invite.body
        ack_sdp = ack.body if delayed and isinstance(ack, Request) else b""
        if ack_sdp:
            self.remote_sdp = ack_sdp
        self.core.emit(CallAnswered(self.id, self.local_sdp, ack_sdp, delayed))

    def _reinvite_acked(self, now: float) -> None:
        self.timers.pop("2xx-retransmit", None)
        self.timers.pop("2xx-give-up", None)
        self.final = self.final_tx = None

    def _ack_timeout(self, now: float) -> None:
        """§13.3.1.4: BYE, and the call is over (the BYE's answer changes nothing)."""
        self._bye(now)
        self._end(EndReason.ACK_TIMEOUT, None)

    def _session_expired(self, now: float) -> None:
        """RFC 4028 §10: no refresh in time. BYE, and the call is over at once (a peer that
        stopped refreshing is unlikely to answer the BYE)."""
        interval = self.session_timer.interval if self.session_timer else 0
        self._bye(now, (("Reason", f'SIP ;cause=408 ;text="session expired after {interval} s"'),))
        self._end(EndReason.SESSION_EXPIRED, None)

    # --- UAC actions ---------------------------------------------------------------------
    def _ringing(self, now: float) -> None:
        resp = self._p.message
        assert isinstance(resp, Response)
        if resp.to.tag and self.dialog is None and resp.status > 100:
            self.dialog = Dialog.as_uac(self.invite, resp)  # early dialog (§12.1.2)
        if resp.status > 100:
            self.core.emit(CallRinging(self.id, resp.status, resp.body))

    def _answered(self, now: float) -> None:
        resp = self._p.message
        assert isinstance(resp, Response)
        self.timers.pop("ring-timeout", None)
        self.dialog = Dialog.as_uac(self.invite, resp)
        self.remote_sdp = resp.body
        self.peer_allows_update = "UPDATE" in _allowed(resp)
        if self.invite.body:
            self._send_ack(now)
            self.core.emit(CallAnswered(self.id, resp.body))
        else:  # our delayed offer: the 2xx offers, our ACK answers (§13.2.1)
            try:
                self.local_sdp = self.core.answer_offer(self, resp.body)
            except SdpError as exc:
                self._send_ack(now)
                why = "no offer in the 2xx" if not resp.body else str(exc)[:80]
                reason = ("Reason", f'SIP ;cause=488 ;text="{quote_text(why)}"')
                self.end_reason, self.end_status = EndReason.FAILED, 488
                self.state = S.TERMINATING
                self._bye(now, (reason,))
                return
            self._send_ack(now, self.local_sdp)
            self.core.emit(CallAnswered(self.id, resp.body, self.local_sdp, True))
        self.start_session_timer(uac_settle(resp.headers), now)

    def _send_ack(self, now: float, body: bytes = b"") -> None:
        """§13.2.2.4: the ACK for a 2xx is a new request (new branch) along the route set."""
        assert self.dialog is not None
        self.ack = self.dialog.request(
            "ACK",
            self.core.via(self.peer.transport),
            None,
            cseq=self.invite.cseq.seq,
            body=body,
        )
        self.core.send_direct(self.ack, self.peer, self.flow_fallback())

    def _resend_ack(self, now: float) -> None:
        if self.ack is not None:
            self.core.send_direct(self.ack, self.peer, self.flow_fallback())

    def _failed(self, now: float) -> None:
        resp = self._p.message
        assert isinstance(resp, Response)
        self._end(EndReason.FAILED, resp.status)

    def _timed_out(self, now: float) -> None:
        self._end(EndReason.TIMEOUT, 408)

    def _send_cancel(self, now: float) -> None:
        """§9.1: CANCEL copies the INVITE's Request-URI, Call-ID, From, To, CSeq number, Via."""
        if self.cancel_sent:
            return
        self.cancel_sent = True
        inv = self.invite
        h = Headers()
        h.add("Via", inv.headers.get_all("Via")[0])
        h.add("Max-Forwards", "70")
        for route in inv.headers.get_all("Route"):
            h.add("Route", route)
        h.add("From", inv.headers.get("From") or "")
        h.add("To", inv.headers.get("To") or "")
        h.add("Call-ID", inv.call_id)
        h.add("CSeq", f"{inv.cseq.seq} CANCEL")
        cancel = Request(method="CANCEL", uri=inv.uri, headers=h)
        self.core.send_request(self, cancel, "cancel", now)

    def _no_answer(self, now: float) -> None:
        """The ring timeout before any provisional: CANCEL waits for one (§9.1)."""
        self.cancel_reason = EndReason.NO_ANSWER

    def _no_answer_cancel(self, now: float) -> None:
        self.cancel_reason = EndReason.NO_ANSWER
        self._send_cancel(now)

    def _cancel_done(self, now: float) -> None:
        status = self._p.message.status if isinstance(self._p.message, Response) else 408
        self._end(self.cancel_reason, status)

    def _ack_then_bye(self, now: float) -> None:
        """§15: a 2xx that crossed our CANCEL is ACKed, then the call is ended with BYE."""
        self._answered_quiet()
        self._send_ack(now)
        self.end_reason, self.end_status = self.cancel_reason, None
        self._bye(now)

    def _answered_quiet(self) -> None:
        resp = self._p.message
        assert isinstance(resp, Response)
        self.dialog = Dialog.as_uac(self.invite, resp)

    # --- both sides ----------------------------------------------------------------------
    def _send_bye(self, now: float) -> None:
        self.end_reason, self.end_status = EndReason.LOCAL_BYE, None
        self._bye(now, self._p.extra)

    def _bye(self, now: float, extra: tuple[tuple[str, str], ...] = ()) -> None:
        for name in ("2xx-retransmit", "2xx-give-up", "session-refresh", "session-expire"):
            self.timers.pop(name, None)
        self.final = None
        assert self.dialog is not None
        bye = self.dialog.request(
            "BYE", self.core.via(self.peer.transport), None, extra=Headers(extra)
        )
        self.core.send_request(self, bye, "bye", now)

    def _remote_bye(self, now: float) -> None:
        self._end(EndReason.REMOTE_BYE, None)

    def _bye_done(self, now: float) -> None:
        self._end(self.end_reason or EndReason.LOCAL_BYE, self.end_status)

    def _end(self, reason: EndReason, status: int | None) -> None:
        self.state = S.TERMINATED
        self.timers.clear()
        self.core.call_ended(self)
        self.end_reason, self.end_status = reason, status
        self.core.emit(CallEnded(self.id, reason, status))


def _allowed(message: Request | Response) -> set[str]:
    """The methods a peer's ``Allow`` lists (upper case)."""
    return {
        m.strip().upper() for value in message.headers.get_all("Allow") for m in value.split(",")
    }


def timer_headers(timer: Timer | None) -> tuple[tuple[str, str], ...]:
    """``Session-Expires`` (and ``Require: timer`` where needed) for our 2xx (RFC 4028 §9)."""
    if timer is None:
        return ()
    out = [("Session-Expires", str(timer.header))]
    if timer.require:
        out.append(("Require", "timer"))
    return tuple(out)


def quote_text(text: str) -> str:
    """``text`` as the inside of a quoted string (no quotes, backslashes or control chars)."""
    return "".join(ch for ch in text if 32 <= ord(ch) < 127 and ch not in '"\\')


def uri_peer(uri: SipUri, transport: str) -> Peer:
    """Where a request to ``uri`` goes (§8.1.2): its host and port, its ``transport``
    parameter (``sips`` -> TLS), else ``transport``."""
    named = uri.scheme == "sips" or any(k == "transport" for k, _ in uri.params)
    chosen = uri.transport if named else transport
    default = 5061 if chosen == "tls" else 5060
    return Peer(chosen, uri.host.strip("[]"), uri.port or default)
