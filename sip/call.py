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
* BYE from either side (§15.1).

Mid-dialog requests that do not change the call state (re-INVITE, INFO, REFER, NOTIFY) are
handled by :mod:`sip.ua` and :mod:`sip.midcall`.

A call talks to the core that owns it only through :class:`CallCore`, the small protocol
defined here (headers we advertise, sending, timers, events); :class:`sip.ua.SipCore` satisfies
it. So this module and :mod:`sip.midcall` never import :mod:`sip.ua`, which imports them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sip.dialog import Dialog, make_response
from sip.errors import SipStateError
from sip.events import CallAnswered, CallEnded, CallEvent, CallRinging, EndReason
from sip.headers import Headers, NameAddr
from sip.message import Request, Response
from sip.offer_answer import LocalSession
from sip.transaction import (
    ClientInviteTransaction,
    ClientTx,
    Peer,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimerValues,
)

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

    def via(self, transport: str) -> str:
        """A fresh top Via (new branch) for a request we send over ``transport``."""
        ...

    def contact(self, transport: str) -> NameAddr: ...

    def common_headers(self) -> Headers:
        """Allow and User-Agent, for our requests and answers."""
        ...

    def emit(self, event: CallEvent) -> None: ...

    def send_direct(self, message: Request | Response, peer: Peer) -> None:
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
        self.reinvite_tx: ClientInviteTransaction | None = None  # our pending re-INVITE
        self.reinvite_ack: Request | None = None
        self.pending_offer: bytes | None = None
        self.sdp_session: LocalSession | None = None
        #: an inbound REFER waiting for the owner's answer (:meth:`SipCore.answer_refer`)
        self.refer_in: (
            tuple[ServerNonInviteTransaction | ServerInviteTransaction, Request] | None
        ) = None
        self.auth_tries = 0

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

    # --- UAS actions ---------------------------------------------------------------------
    def _uas_dialog(self) -> Dialog:
        if self.dialog is None:
            self.dialog = Dialog.as_uas(self.invite, self.local_tag)
        return self.dialog

    def _respond(self, status: int, now: float, body: bytes = b"") -> Response:
        assert self.server_tx is not None
        contact = self.core.contact(self.peer.transport) if status < 300 else None
        resp = make_response(
            self.invite,
            status,
            self._p.reason,
            to_tag=self.local_tag,
            contact=contact,
            body=body,
            extra=Headers([*self.core.common_headers(), *self._p.extra]),
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
        self.start_2xx(self._respond(200, now, self._p.body), self.server_tx, now)

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
        self.core.emit(CallAnswered(self.id, self.local_sdp))

    def _reinvite_acked(self, now: float) -> None:
        self.timers.pop("2xx-retransmit", None)
        self.timers.pop("2xx-give-up", None)
        self.final = self.final_tx = None

    def _ack_timeout(self, now: float) -> None:
        """§13.3.1.4: BYE, and the call is over (the BYE's answer changes nothing)."""
        self._bye(now)
        self._end(EndReason.ACK_TIMEOUT, None)

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
        self.dialog = Dialog.as_uac(self.invite, resp)
        self.remote_sdp = resp.body
        self._send_ack(now)
        self.core.emit(CallAnswered(self.id, resp.body))

    def _send_ack(self, now: float) -> None:
        """§13.2.2.4: the ACK for a 2xx is a new request (new branch) along the route set."""
        assert self.dialog is not None
        self.ack = self.dialog.request(
            "ACK",
            self.core.via(self.peer.transport),
            None,
            cseq=self.invite.cseq.seq,
        )
        self.core.send_direct(self.ack, self.peer)

    def _resend_ack(self, now: float) -> None:
        if self.ack is not None:
            self.core.send_direct(self.ack, self.peer)

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

    def _cancel_done(self, now: float) -> None:
        status = self._p.message.status if isinstance(self._p.message, Response) else 408
        self._end(EndReason.LOCAL_CANCEL, status)

    def _ack_then_bye(self, now: float) -> None:
        """§15: a 2xx that crossed our CANCEL is ACKed, then the call is ended with BYE."""
        self._answered_quiet()
        self._send_ack(now)
        self.end_reason, self.end_status = EndReason.LOCAL_CANCEL, None
        self._bye(now)

    def _answered_quiet(self) -> None:
        resp = self._p.message
        assert isinstance(resp, Response)
        self.dialog = Dialog.as_uac(self.invite, resp)

    # --- both sides ----------------------------------------------------------------------
    def _send_bye(self, now: float) -> None:
        self.end_reason, self.end_status = EndReason.LOCAL_BYE, None
        self._bye(now)

    def _bye(self, now: float) -> None:
        self.timers.pop("2xx-retransmit", None)
        self.timers.pop("2xx-give-up", None)
        self.final = None
        assert self.dialog is not None
        bye = self.dialog.request("BYE", self.core.via(self.peer.transport), None)
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
