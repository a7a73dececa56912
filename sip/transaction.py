"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state and timers L and M).

Four machines: INVITE client (§17.1.1), non-INVITE client (§17.1.2), INVITE server (§17.2.1)
and non-INVITE server (§17.2.2). Each is an Enum of states plus ONE transition table, a dict
from ``(state, event)`` to ``(next state, action)``. The rules of every table:

* Events from the network (requests, responses, ACKs) and timers appear in the table for every
  state they can reach; a state that ignores them maps them to itself with no action (absorbing
  retransmissions, §17.2.1). So remote input never raises.
* Events from the transaction user (TU) that the table lacks raise :class:`SipStateError` naming
  the machine, the state and the event: that is a bug in the caller.
* Timers are absolute deadlines on the caller's clock (``now`` in seconds); reliable transports
  run timers A, E and G never and D, I, J, K at zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).

RFC 6026: a 2xx moves the INVITE client to Accepted (timer M) where further 2xx are passed to the
TU (which re-sends its ACK); the INVITE server moves to Accepted (timer L) where retransmitted
INVITEs are absorbed, so an INVITE retransmitted after the 2xx never becomes a second call.
The ACK for a non-2xx final is built inside the INVITE client transaction (§17.1.1.3).

:class:`TransactionLayer` owns the transactions and matches messages to them by branch
(§17.1.3, §17.2.3, CANCEL included); it is sans-IO: outputs accumulate in ``outbox``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from sip.errors import SipStateError
from sip.headers import Headers
from sip.message import Request, Response
from sip.timers import TimerHeap

__all__ = [
    "MAGIC_COOKIE",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Peer",
    "Send",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "TimerValues",
    "TransactionLayer",
    "TxAckReceived",
    "TxResponse",
    "TxTimeout",
    "TxTransportError",
]

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from or goes to: transport (``udp``/``tcp``/``tls``), host, port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


@dataclass(frozen=True, slots=True)
class TimerValues:
    """RFC 3261 §17.1.1.1 / Table 4 base values, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


# --- outputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Put ``message`` on the wire to ``peer``; ``key`` names the transaction (for errors).

    Over TCP/TLS ``peer`` names a flow (the connection a dialog or request came on); when that
    connection is gone, ``fallback`` says where to open a new one (the route set or Contact for
    a request, §12.2.1.1; the Via's ``received``/``rport`` for a response, §18.2.2)."""

    message: Request | Response
    peer: Peer
    key: str = ""
    fallback: Peer | None = None


@dataclass(frozen=True, slots=True)
class TxResponse:
    """A response a client transaction passes up to its TU."""

    tx: ClientInviteTransaction | ClientNonInviteTransaction
    response: Response


@dataclass(frozen=True, slots=True)
class TxTimeout:
    """Timer B/F (client: no final response) or H (INVITE server: no ACK for a non-2xx)."""

    tx: Transaction


@dataclass(frozen=True, slots=True)
class TxTransportError:
    tx: Transaction


@dataclass(frozen=True, slots=True)
class TxAckReceived:
    """An ACK matched an INVITE server transaction in the Accepted state (RFC 6026 §8.7)."""

    tx: ServerInviteTransaction
    ack: Request


Output = Send | TxResponse | TxTimeout | TxTransportError | TxAckReceived


class Ev(enum.Enum):
    """Transaction events. TIMER_* are the RFC 3261 timer names; TU_* come from the TU."""

    REQUEST = "request"  # (server) a retransmission of the request
    ACK = "ack"
    PROVISIONAL = "1xx"  # (client) a provisional response arrived
    FINAL_2XX = "2xx"
    FINAL_ERR = "3xx-6xx"
    TU_PROVISIONAL = "tu-1xx"
    TU_2XX = "tu-2xx"
    TU_FINAL = "tu-final"  # non-INVITE server: any final
    TU_ERR = "tu-3xx-6xx"
    TRANSPORT_ERROR = "transport-error"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"


class S(enum.Enum):
    TRYING = "Trying"
    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


Table = dict[tuple[S, Ev], tuple[S, str | None]]

_TIMER_EVENTS = {e.value: e for e in Ev if e.name.startswith("TIMER_")}


class Transaction:
    """Shared plumbing: state, the table walk, timers and the outbox."""

    MACHINE: ClassVar[str] = "transaction"
    TABLE: ClassVar[Table] = {}

    def __init__(self, request: Request, peer: Peer, key: str, layer: TransactionLayer) -> None:
        self.request = request
        self.peer = peer
        self.key = key
        self.t = layer.timers
        self.reliable = peer.reliable
        self.state = S.TRYING
        self.timers: dict[str, float] = {}
        self._layer = layer
        self._outbox = layer.outbox
        self.last_response: Response | None = None
        self.fallback: Peer | None = None  # a new connection's target when the flow is gone

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} {self.state.value}>"

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def handle(self, event: Ev, message: Request | Response | None, now: float) -> None:
        """Apply ``event``; raise :class:`SipStateError` if the table has no such move."""
        move = self.TABLE.get((self.state, event))
        if move is None:
            raise SipStateError(self.MACHINE, self.state.value, event.value)
        nxt, action = move
        self.state = nxt
        if nxt is S.TERMINATED:
            self.timers.clear()
            self._layer.dead.append(self)
        if action is not None:
            getattr(self, action)(message, now)

    def deadline(self) -> float | None:
        return min(self.timers.values()) if self.timers else None

    def fire_due(self, now: float) -> None:
        """Fire every timer whose deadline is ``<= now``, earliest first."""
        while self.timers:
            name, when = min(self.timers.items(), key=lambda kv: kv[1])
            if when > now:
                return
            del self.timers[name]
            self.handle(_TIMER_EVENTS[name], None, now)

    def transport_error(self, now: float) -> None:
        if not self.terminated:
            self.handle(Ev.TRANSPORT_ERROR, None, now)

    # actions shared by several machines
    def _send(self, message: Request | Response) -> None:
        self._outbox.append(Send(message, self.peer, self.key, self.fallback))

    def _report_timeout(self, _m: Request | Response | None, _now: float) -> None:
        self._outbox.append(TxTimeout(self))

    def _report_transport_error(self, _m: Request | Response | None, _now: float) -> None:
        self._outbox.append(TxTransportError(self))

    def _start(self, name: str, now: float, delay: float) -> None:
        self.timers[name] = now + delay
        self._layer.heap.push(now + delay, self)

    def _send_response(self, m: Request | Response | None, _now: float) -> None:
        assert isinstance(m, Response)
        self.last_response = m
        self._send(m)

    def _resend_last(self, _m: Request | Response | None, _now: float) -> None:
        if self.last_response is not None:
            self._send(self.last_response)


class ClientInviteTransaction(Transaction):
    """§17.1.1 with RFC 6026 §8.4: Calling -> Proceeding -> Accepted | Completed -> Terminated."""

    MACHINE = "INVITE client transaction"
    TABLE: ClassVar[Table] = {
        (S.CALLING, Ev.TIMER_A): (S.CALLING, "_retransmit"),
        (S.CALLING, Ev.TIMER_B): (S.TERMINATED, "_report_timeout"),
        (S.CALLING, Ev.PROVISIONAL): (S.PROCEEDING, "_proceed"),
        (S.CALLING, Ev.FINAL_2XX): (S.ACCEPTED, "_accept"),
        (S.CALLING, Ev.FINAL_ERR): (S.COMPLETED, "_complete"),
        (S.CALLING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.PROCEEDING, Ev.PROVISIONAL): (S.PROCEEDING, "_pass_up"),
        (S.PROCEEDING, Ev.FINAL_2XX): (S.ACCEPTED, "_accept"),
        (S.PROCEEDING, Ev.FINAL_ERR): (S.COMPLETED, "_complete"),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.PROCEEDING, Ev.TIMER_B): (S.TERMINATED, "_report_timeout"),
        (S.ACCEPTED, Ev.PROVISIONAL): (S.ACCEPTED, None),
        (S.ACCEPTED, Ev.FINAL_2XX): (S.ACCEPTED, "_pass_up"),
        (S.ACCEPTED, Ev.FINAL_ERR): (S.ACCEPTED, None),
        (S.ACCEPTED, Ev.TIMER_M): (S.TERMINATED, None),
        (S.ACCEPTED, Ev.TRANSPORT_ERROR): (S.ACCEPTED, None),
        (S.COMPLETED, Ev.PROVISIONAL): (S.COMPLETED, None),
        (S.COMPLETED, Ev.FINAL_2XX): (S.COMPLETED, None),
        (S.COMPLETED, Ev.FINAL_ERR): (S.COMPLETED, "_resend_ack"),
        (S.COMPLETED, Ev.TIMER_D): (S.TERMINATED, None),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.TERMINATED, Ev.PROVISIONAL): (S.TERMINATED, None),
        (S.TERMINATED, Ev.FINAL_2XX): (S.TERMINATED, None),
        (S.TERMINATED, Ev.FINAL_ERR): (S.TERMINATED, None),
        (S.TERMINATED, Ev.TRANSPORT_ERROR): (S.TERMINATED, None),
    }

    def start(self, now: float) -> None:
        self.state = S.CALLING
        self._send(self.request)
        self._a = self.t.t1
        if not self.reliable:
            self._start("A", now, self._a)
        self._start("B", now, 64 * self.t.t1)
        self.ack: Request | None = None

    def _retransmit(self, _m: Request | Response | None, now: float) -> None:
        self._send(self.request)
        self._a *= 2
        self._start("A", now, self._a)

    def _pass_up(self, m: Request | Response | None, _now: float) -> None:
        assert isinstance(m, Response)
        self.timers.pop("A", None)
        self.last_response = m
        self._outbox.append(TxResponse(self, m))

    def _proceed(self, m: Request | Response | None, now: float) -> None:
        self.timers.clear()  # §17.1.1.2: A stops; B only guards Calling (the TU owns timer C)
        self._pass_up(m, now)

    def _accept(self, m: Request | Response | None, now: float) -> None:
        self.timers.clear()
        self._start("M", now, 64 * self.t.t1)
        self._pass_up(m, now)

    def _complete(self, m: Request | Response | None, now: float) -> None:
        assert isinstance(m, Response)
        self.timers.clear()
        self.ack = self._build_ack(m)
        self._send(self.ack)
        self._start("D", now, 0.0 if self.reliable else 32.0)
        self._pass_up(m, now)

    def _resend_ack(self, _m: Request | Response | None, _now: float) -> None:
        if self.ack is not None:
            self._send(self.ack)

    def _build_ack(self, response: Response) -> Request:
        """§17.1.1.3: same Request-URI, Call-ID, From, CSeq number, top Via and Route."""
        req = self.request
        h = Headers()
        h.add("Via", req.headers.get_all("Via")[0])
        for route in req.headers.get_all("Route"):
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", req.headers.get("From") or "")
        h.add("To", response.headers.get("To") or "")
        h.add("Call-ID", req.call_id)
        h.add("CSeq", f"{req.cseq.seq} ACK")
        return Request(method="ACK", uri=req.uri, headers=h)


class ClientNonInviteTransaction(Transaction):
    """§17.1.2: Trying -> Proceeding -> Completed -> Terminated (timers E, F, K)."""

    MACHINE = "non-INVITE client transaction"
    TABLE: ClassVar[Table] = {
        (S.TRYING, Ev.TIMER_E): (S.TRYING, "_retransmit"),
        (S.TRYING, Ev.TIMER_F): (S.TERMINATED, "_report_timeout"),
        (S.TRYING, Ev.PROVISIONAL): (S.PROCEEDING, "_pass_up"),
        (S.TRYING, Ev.FINAL_2XX): (S.COMPLETED, "_complete"),
        (S.TRYING, Ev.FINAL_ERR): (S.COMPLETED, "_complete"),
        (S.TRYING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.PROCEEDING, Ev.TIMER_E): (S.PROCEEDING, "_retransmit"),
        (S.PROCEEDING, Ev.TIMER_F): (S.TERMINATED, "_report_timeout"),
        (S.PROCEEDING, Ev.PROVISIONAL): (S.PROCEEDING, "_pass_up"),
        (S.PROCEEDING, Ev.FINAL_2XX): (S.COMPLETED, "_complete"),
        (S.PROCEEDING, Ev.FINAL_ERR): (S.COMPLETED, "_complete"),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.COMPLETED, Ev.PROVISIONAL): (S.COMPLETED, None),
        (S.COMPLETED, Ev.FINAL_2XX): (S.COMPLETED, None),
        (S.COMPLETED, Ev.FINAL_ERR): (S.COMPLETED, None),
        (S.COMPLETED, Ev.TIMER_K): (S.TERMINATED, None),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.COMPLETED, None),
        (S.TERMINATED, Ev.PROVISIONAL): (S.TERMINATED, None),
        (S.TERMINATED, Ev.FINAL_2XX): (S.TERMINATED, None),
        (S.TERMINATED, Ev.FINAL_ERR): (S.TERMINATED, None),
        (S.TERMINATED, Ev.TRANSPORT_ERROR): (S.TERMINATED, None),
    }

    def start(self, now: float) -> None:
        self.state = S.TRYING
        self._send(self.request)
        self._e = self.t.t1
        if not self.reliable:
            self._start("E", now, self._e)
        self._start("F", now, 64 * self.t.t1)

    def _retransmit(self, _m: Request | Response | None, now: float) -> None:
        self._send(self.request)
        self._e = self.t.t2 if self.state is S.PROCEEDING else min(2 * self._e, self.t.t2)
        self._start("E", now, self._e)

    def _pass_up(self, m: Request | Response | None, _now: float) -> None:
        assert isinstance(m, Response)
        self.last_response = m
        self._outbox.append(TxResponse(self, m))

    def _complete(self, m: Request | Response | None, now: float) -> None:
        self.timers.clear()
        self._start("K", now, 0.0 if self.reliable else self.t.t4)
        self._pass_up(m, now)


class ServerInviteTransaction(Transaction):
    """§17.2.1 with RFC 6026 §7.1: Proceeding -> Accepted | Completed -> Confirmed -> Terminated."""

    MACHINE = "INVITE server transaction"
    TABLE: ClassVar[Table] = {
        (S.PROCEEDING, Ev.REQUEST): (S.PROCEEDING, "_resend_last"),
        (S.PROCEEDING, Ev.ACK): (S.PROCEEDING, None),
        (S.PROCEEDING, Ev.TU_PROVISIONAL): (S.PROCEEDING, "_send_response"),
        (S.PROCEEDING, Ev.TU_2XX): (S.ACCEPTED, "_accept"),
        (S.PROCEEDING, Ev.TU_ERR): (S.COMPLETED, "_complete"),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.ACCEPTED, Ev.REQUEST): (S.ACCEPTED, None),
        (S.ACCEPTED, Ev.ACK): (S.ACCEPTED, "_pass_ack"),
        (S.ACCEPTED, Ev.TU_2XX): (S.ACCEPTED, "_send_response"),
        (S.ACCEPTED, Ev.TIMER_L): (S.TERMINATED, None),
        (S.ACCEPTED, Ev.TRANSPORT_ERROR): (S.ACCEPTED, None),
        (S.COMPLETED, Ev.REQUEST): (S.COMPLETED, "_resend_last"),
        (S.COMPLETED, Ev.ACK): (S.CONFIRMED, "_confirm"),
        (S.COMPLETED, Ev.TIMER_G): (S.COMPLETED, "_retransmit_final"),
        (S.COMPLETED, Ev.TIMER_H): (S.TERMINATED, "_report_timeout"),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.CONFIRMED, Ev.REQUEST): (S.CONFIRMED, None),
        (S.CONFIRMED, Ev.ACK): (S.CONFIRMED, None),
        (S.CONFIRMED, Ev.TIMER_I): (S.TERMINATED, None),
        (S.CONFIRMED, Ev.TRANSPORT_ERROR): (S.CONFIRMED, None),
        (S.TERMINATED, Ev.REQUEST): (S.TERMINATED, None),
        (S.TERMINATED, Ev.ACK): (S.TERMINATED, None),
        (S.TERMINATED, Ev.TRANSPORT_ERROR): (S.TERMINATED, None),
    }

    def start(self, now: float) -> None:
        self.state = S.PROCEEDING

    def respond(self, response: Response, now: float) -> None:
        """The TU's response: 1xx, 2xx (also 2xx retransmissions, §13.3.1.4) or 3xx-6xx."""
        if response.status < 200:
            ev = Ev.TU_PROVISIONAL
        elif response.status < 300:
            ev = Ev.TU_2XX
        else:
            ev = Ev.TU_ERR
        self.handle(ev, response, now)

    def _accept(self, m: Request | Response | None, now: float) -> None:
        self._send_response(m, now)
        self._start("L", now, 64 * self.t.t1)

    def _complete(self, m: Request | Response | None, now: float) -> None:
        self._send_response(m, now)
        self._g = self.t.t1
        if not self.reliable:
            self._start("G", now, self._g)
        self._start("H", now, 64 * self.t.t1)

    def _retransmit_final(self, _m: Request | Response | None, now: float) -> None:
        self._resend_last(None, now)
        self._g = min(2 * self._g, self.t.t2)
        self._start("G", now, self._g)

    def _confirm(self, _m: Request | Response | None, now: float) -> None:
        self.timers.clear()
        self._start("I", now, 0.0 if self.reliable else self.t.t4)

    def _pass_ack(self, m: Request | Response | None, _now: float) -> None:
        assert isinstance(m, Request)
        self._outbox.append(TxAckReceived(self, m))


class ServerNonInviteTransaction(Transaction):
    """§17.2.2: Trying -> Proceeding -> Completed -> Terminated (timer J)."""

    MACHINE = "non-INVITE server transaction"
    TABLE: ClassVar[Table] = {
        (S.TRYING, Ev.REQUEST): (S.TRYING, None),
        (S.TRYING, Ev.TU_PROVISIONAL): (S.PROCEEDING, "_send_response"),
        (S.TRYING, Ev.TU_FINAL): (S.COMPLETED, "_complete"),
        (S.TRYING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.PROCEEDING, Ev.REQUEST): (S.PROCEEDING, "_resend_last"),
        (S.PROCEEDING, Ev.TU_PROVISIONAL): (S.PROCEEDING, "_send_response"),
        (S.PROCEEDING, Ev.TU_FINAL): (S.COMPLETED, "_complete"),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, "_report_transport_error"),
        (S.COMPLETED, Ev.REQUEST): (S.COMPLETED, "_resend_last"),
        (S.COMPLETED, Ev.TIMER_J): (S.TERMINATED, None),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, None),
        (S.TERMINATED, Ev.REQUEST): (S.TERMINATED, None),
        (S.TERMINATED, Ev.TRANSPORT_ERROR): (S.TERMINATED, None),
    }

    def start(self, now: float) -> None:
        self.state = S.TRYING

    def respond(self, response: Response, now: float) -> None:
        ev = Ev.TU_PROVISIONAL if response.status < 200 else Ev.TU_FINAL
        self.handle(ev, response, now)

    def _complete(self, m: Request | Response | None, now: float) -> None:
        self._send_response(m, now)
        self._start("J", now, 0.0 if self.reliable else 64 * self.t.t1)


ClientTx = ClientInviteTransaction | ClientNonInviteTransaction
ServerTx = ServerInviteTransaction | ServerNonInviteTransaction


def _response_event(status: int) -> Ev:
    if status < 200:
        return Ev.PROVISIONAL
    return Ev.FINAL_2XX if status < 300 else Ev.FINAL_ERR


class TransactionLayer:
    """Creates, matches and times out transactions; outputs collect in ``outbox``."""

    def __init__(self, timers: TimerValues | None = None) -> None:
        self.timers = timers or TimerValues()
        self.outbox: list[Output] = []
        self.clients: dict[str, ClientTx] = {}
        self.servers: dict[str, ServerTx] = {}
        self.heap: TimerHeap[Transaction] = TimerHeap(_holds)
        self.dead: list[Transaction] = []
        self.reaped: list[str] = []  # keys of client transactions gone (for the TU's maps)

    # --- keys (§17.1.3, §17.2.3) ---------------------------------------------------------
    @staticmethod
    def client_key(branch: str, method: str) -> str:
        return f"c|{branch}|{'INVITE' if method == 'ACK' else method}"

    @staticmethod
    def server_key(request: Request, method: str | None = None) -> str:
        via = request.top_via
        m = method or ("INVITE" if request.method == "ACK" else request.method)
        branch = via.branch or ""
        if branch.startswith(MAGIC_COOKIE):
            host, port = via.sent_by
            return f"s|{branch}|{host}:{port}|{m}"
        # RFC 2543 peers: fall back to the dialog-identifying fields (§17.2.3, simplified)
        cseq = request.cseq.seq
        return f"s2543|{request.call_id}|{request.from_.tag}|{cseq}|{via}|{m}"

    # --- client side ---------------------------------------------------------------------
    def send_request(
        self, request: Request, peer: Peer, now: float, fallback: Peer | None = None
    ) -> ClientTx:
        """Start a client transaction for ``request`` (whose top Via carries a fresh branch)."""
        branch = request.top_via.branch or ""
        key = self.client_key(branch, request.method)
        tx: ClientTx
        if request.method == "INVITE":
            tx = ClientInviteTransaction(request, peer, key, self)
        else:
            tx = ClientNonInviteTransaction(request, peer, key, self)
        tx.fallback = fallback
        self.clients[key] = tx
        tx.start(now)
        return tx

    def receive_response(self, response: Response, now: float) -> bool:
        """Feed a response to its client transaction; False when none matches (stray)."""
        key = self.client_key(response.top_via.branch or "", response.cseq.method)
        tx = self.clients.get(key)
        if tx is None:
            return False
        tx.handle(_response_event(response.status), response, now)
        return True

    # --- server side ---------------------------------------------------------------------
    def receive_request(
        self, request: Request, peer: Peer, now: float, fallback: Peer | None = None
    ) -> ServerTx | None:
        """Match ``request``. Returns a NEW server transaction for the TU, or None when the
        request was a retransmission or an ACK that a transaction absorbed. An ACK that matches
        nothing (the ACK for a 2xx, §17.2.3) also returns None: callers check ``is_stray_ack``.
        """
        key = self.server_key(request)
        tx = self.servers.get(key)
        if request.method == "ACK":
            if isinstance(tx, ServerInviteTransaction):
                tx.handle(Ev.ACK, request, now)
            return None
        if tx is not None:
            tx.handle(Ev.REQUEST, request, now)
            return None
        new: ServerTx
        if request.method == "INVITE":
            new = ServerInviteTransaction(request, peer, key, self)
        else:
            new = ServerNonInviteTransaction(request, peer, key, self)
        new.fallback = fallback
        self.servers[key] = new
        new.start(now)
        return new

    def has_server(self, request: Request) -> bool:
        """Whether ``request`` belongs to a server transaction already (a retransmission)."""
        return self.server_key(request) in self.servers

    def matches_server_invite(self, ack: Request) -> bool:
        """True when ``ack`` belongs to an INVITE server transaction (non-2xx ACK)."""
        tx = self.servers.get(self.server_key(ack))
        return isinstance(tx, ServerInviteTransaction) and tx.state is not S.ACCEPTED

    def invite_for_cancel(self, cancel: Request) -> ServerInviteTransaction | None:
        """§9.2: the INVITE server transaction a CANCEL targets (same branch and sent-by)."""
        tx = self.servers.get(self.server_key(cancel, "INVITE"))
        return tx if isinstance(tx, ServerInviteTransaction) else None

    # --- time and errors -----------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.heap.next_deadline()

    def tick(self, now: float) -> None:
        for tx in self.heap.pop_due(now):
            tx.fire_due(now)
        self._reap()

    def transport_error(self, key: str, now: float) -> None:
        tx = self.clients.get(key) or self.servers.get(key)
        if tx is not None:
            tx.transport_error(now)
        self._reap()

    def drain(self) -> list[Output]:
        out, self.outbox[:] = list(self.outbox), []
        self._reap()
        return out

    def _reap(self) -> None:
        for tx in self.dead:
            if self.clients.get(tx.key) is tx:
                del self.clients[tx.key]
                self.reaped.append(tx.key)
            elif self.servers.get(tx.key) is tx:
                del self.servers[tx.key]
        self.dead.clear()


def _holds(tx: Transaction, when: float) -> bool:
    """A heap entry is live while its transaction still runs a timer due then."""
    return not tx.terminated and when in tx.timers.values()
