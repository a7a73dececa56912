"""The sans-IO SIP user agent core: messages in, sends and call events out (RFC 3261 §8, §12-17).

``SipCore.receive(data, peer, now)`` parses a datagram or framed stream message, runs it through
the transaction layer and the call it belongs to, and queues outputs; ``drain()`` returns them
(:class:`~sip.transaction.Send` for the wire, :mod:`sip.events` values for call owners);
``tick(now)`` fires timers and ``next_deadline()`` says when to call it again. Local commands
(``ring``, ``answer``, ``reject``, ``hangup``, ``invite``, ``refer``, ``reinvite``) queue their
outputs the same way. Nothing here touches a socket or a clock.

Behaviours implemented here: RFC 3581 ``received``/``rport`` on arrival and symmetric response
routing (§18.2.2); 100 Trying at once for INVITE; inbound policy before a call is offered;
OPTIONS (200 while serving, 503 while draining, §11.2); CANCEL matching (§9.2); 481 for
requests outside any dialog (§12.2.2); 400 with a reason for malformed requests (§8.2 / §21.4).
In-dialog requests go to the address the dialog's messages come from (connection reuse and
NAT-friendly), with the route set in Route headers; over TCP/TLS every in-dialog request and
response goes on the connection the dialog came on, and only when it is gone on a new one to the
route set or Contact (requests) or the Via's ``received``/``rport`` (responses, §18.2.2)
(:attr:`~sip.transaction.Send.fallback`). ``Allow`` lists exactly the methods handled here;
``Supported: timer`` (RFC 4028, :mod:`sip.session_timer`): a new INVITE asking for a session
interval under our ``Min-SE`` gets 422. An outbound INVITE may name ``alternates`` (RFC 3263
targets): a timeout, transport error or 503 before any answer sends it to the next one.

Defences, cheapest first, so that a flood costs little and never a call's audio (issue 12;
``CoreConfig.limits``): a blocked source is dropped before anything else; every message must
pass :func:`sip.sanity.check` (size, header and Via bounds) before it is parsed; a source over
its rate (:mod:`sip.ratelimit`) is blocked for a while; a request from a source no trunk can
admit (a *stranger*) gets one stateless 403 built from its raw header lines, or nothing, and is
never parsed; a new INVITE is screened (draining, policy with its digest check, per-source and
per-trunk call caps) *before* a transaction exists, so a refusal is one stateless response
(§8.2.7): no 100 Trying, no retransmission, no call. Wrong digests count against their source.
What is refused or caught is reported as :class:`~sip.events.SecurityNotice` outputs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sip import midcall, sanity
from sip.auth import AuthError, DigestClient, choose_challenge
from sip.call import Call, CallEv, Direction, Pending, quote_text
from sip.dialog import make_response, new_branch, new_tag
from sip.errors import SipError, SipParseError, SipStateError
from sip.events import CallEvent, CallOffered, CallRefused, NoticeKind, SecurityNotice
from sip.headers import Headers, NameAddr, Via
from sip.message import Request, Response, parse_message
from sip.offer_answer import LocalSession, MediaPrefs, negotiate
from sip.policy import Allow, Deny, Policy, loopback_only
from sip.ratelimit import RateKind, SourceGuard
from sip.sdes import CryptoAttribute, Encryption
from sip.sdp import Direction as MediaDirection
from sip.sdp import SdpError, SessionDescription
from sip.session_timer import TimerPolicy, TooSmall, uac_request, uas_settle
from sip.settings import SipLimits
from sip.timers import TimerHeap
from sip.transaction import (
    ClientInviteTransaction,
    ClientTx,
    Peer,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimerValues,
    TransactionLayer,
    TxAckReceived,
    TxResponse,
    TxTimeout,
    TxTransportError,
)
from sip.uri import SipUri

__all__ = [
    "ALLOW",
    "SUPPORTED",
    "Allow",
    "CoreConfig",
    "Credentials",
    "Deny",
    "Output",
    "Policy",
    "RequestDone",
    "SipCore",
    "loopback_only",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE"
SUPPORTED = "timer"  # option tags we support (RFC 4028); 100rel is not (PRACK: 420)
_SUPPORTED_TAGS = frozenset(t.strip() for t in SUPPORTED.split(","))
_KNOWN = frozenset({"REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"})


@dataclass(frozen=True, slots=True)
class RequestDone:
    """The final response (None: timeout or transport error) to a :meth:`SipCore.request`."""

    key: str
    response: Response | None


Output = Send | CallEvent | RequestDone | SecurityNotice


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials for an outbound INVITE (used with :mod:`sip.auth`)."""

    username: str
    password: str


@dataclass(slots=True)
class CoreConfig:
    """What the core advertises: ``host`` goes into Via/Contact (the advertised address, not
    necessarily the bind address); ``ports`` maps each enabled transport to its port."""

    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: {"udp": 5060})
    user: str = "rtbridge"
    user_agent: str = "rtbridge"
    timers: TimerValues = field(default_factory=TimerValues)
    limits: SipLimits = field(default_factory=SipLimits)
    session_timer: TimerPolicy = field(default_factory=TimerPolicy)
    #: trunks with session timers of their own (the others have ``session_timer``)
    trunk_session_timers: dict[str, TimerPolicy] = field(default_factory=dict)


class SipCore:
    """One SIP user agent (UAC and UAS) over a transaction layer; see the module docstring."""

    def __init__(self, config: CoreConfig, policy: Policy = loopback_only) -> None:
        self.config = config
        self.policy = policy
        self.timer_values = config.timers
        self.layer = TransactionLayer(config.timers)
        self.calls: dict[str, Call] = {}
        self.draining = False
        self.retry_after: int | None = None  # seconds, sent with the 503s of draining
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed": 0,
            "malformed_answered": 0,
            "stray": 0,
            "oversized": 0,  # dropped unparsed (sip.sanity)
            "blocked": 0,  # from a blocked source, dropped first thing
            "strangers": 0,  # requests from sources no trunk admits, refused unparsed
            "refused": 0,  # new INVITEs refused statelessly (policy, caps, draining)
        }
        limits = config.limits
        self.guard = SourceGuard(limits)
        self.bounds = sanity.Bounds(
            limits.max_message_bytes, limits.max_header_bytes, limits.max_headers, limits.max_vias
        )
        self._out: list[Output] = []
        self._purpose: dict[str, tuple[Call, str]] = {}
        self.credentials: dict[str, Credentials] = {}
        self._digest: dict[str, DigestClient] = {}
        self._standalone: set[str] = set()
        self._call_timers: TimerHeap[Call] = TimerHeap(_call_holds)
        self._ended_calls: list[Call] = []

    # --- I/O seam ------------------------------------------------------------------------
    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """Feed one message from ``peer``. Never raises: bad input is answered or counted."""
        self.stats["received"] += 1
        host = peer.host
        exempt = self.policy.exempt(host)
        if not exempt and self.guard.blocked(host, now):
            self.stats["blocked"] += 1
            return
        problem = sanity.check(data, self.bounds)
        if problem is not None:
            self.stats["oversized"] += 1
            if exempt or self._within_rate(peer, RateKind.MESSAGE, now):
                self._notice(NoticeKind.OVERSIZED_MESSAGE, peer, f"dropped unparsed: {problem}")
            return
        if not exempt:
            if not self._within_rate(peer, RateKind.MESSAGE, now):
                return
            kind = RateKind.for_method(sanity.method(data))
            if kind is not None and not self._within_rate(peer, kind, now):
                return
            if not self.policy.admits(host) and self._stranger(data, peer):
                return
        try:
            msg = parse_message(data, stream=peer.reliable)
        except SipParseError as exc:
            self._malformed(data, peer, exc)
            return
        try:
            if isinstance(msg, Request):
                self._on_request(msg, peer, now)
            else:
                self._on_response(msg, now)
        except SipError as exc:  # a header that is valid SIP but unusable for us
            self._malformed(data, peer, SipParseError(str(exc)))
        self._pump(now)

    def _within_rate(self, peer: Peer, kind: RateKind, now: float) -> bool:
        """Take one from ``peer``'s ``kind`` bucket; over it, the source is blocked (reported
        once, here: what it sends while blocked is dropped unanswered and uncounted)."""
        if self.guard.take(peer.host, kind, now):
            return True
        self._notice(NoticeKind.RATE_LIMITED, peer, self.guard.describe(kind))
        return False

    def _stranger(self, data: bytes, peer: Peer) -> bool:
        """A message from a source no trunk admits. Responses and requests of our own calls'
        dialogs (an outbound callee's BYE) go on; any other request is refused unparsed: one
        stateless 403 (or nothing, per ``stranger_reply``). True when it was handled here."""
        head = sanity.peek(data)
        if head is None:  # a response, or garbage the parser will drop
            return False
        if head.call_id in self.calls:
            return False
        self.stats["strangers"] += 1
        if head.method == "ACK":  # for a 403 of ours: nothing to answer
            return True
        self._notice(
            NoticeKind.REFUSED_REQUEST, peer, f"{head.method[:20]} from a source no trunk admits"
        )
        if self.config.limits.stranger_reply == "reply":
            resp = sanity.reply(head, 403, "Forbidden")
            if resp is not None:
                self._out.append(Send(resp, peer))
        return True

    def _notice(
        self, kind: NoticeKind, peer: Peer, detail: str, call_id: str | None = None
    ) -> None:
        self._out.append(SecurityNotice(kind, peer, detail, call_id))

    def tick(self, now: float) -> None:
        self.layer.tick(now)
        self._pump(now)
        for call in self._call_timers.pop_due(now):
            call.fire_due(now)
        self._pump(now)
        self._reap()

    def next_deadline(self) -> float | None:
        pending = (self.layer.next_deadline(), self._call_timers.next_deadline())
        times = [t for t in pending if t is not None]
        return min(times) if times else None

    def drain(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def send_failed(self, key: str, now: float) -> None:
        """The driver could not deliver a :class:`Send` of transaction ``key`` (§17.1.4)."""
        self.layer.transport_error(key, now)
        self._pump(now)

    # --- local commands (the call owner's API) -------------------------------------------
    def ring(self, call_id: str, now: float, *, status: int = 180, sdp: bytes = b"") -> None:
        self._command(call_id, CallEv.RING, now, Pending(status=status, body=sdp))

    def answer(
        self, call_id: str, sdp: bytes, now: float, *, media: MediaPrefs | None = None
    ) -> None:
        """Answer with ``sdp`` (an answer, or our offer when the INVITE had none); ``media``:
        how the core answers the peer's later offers (re-INVITE, UPDATE) by itself."""
        call = self._call(call_id)
        if media is not None:
            call.media = media
        self._command(call_id, CallEv.ANSWER, now, Pending(status=200, body=sdp))

    def set_media(self, call_id: str, media: MediaPrefs) -> None:
        """How the core answers the peer's later offers by itself (re-INVITE, UPDATE)."""
        self._call(call_id).media = media

    def reject(
        self,
        call_id: str,
        now: float,
        status: int = 480,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Refuse the offered call with a 3xx-6xx (``headers``: e.g. Retry-After, Warning)."""
        if not 300 <= status < 700:
            raise ValueError(f"a rejection needs a 3xx-6xx status, not {status}")
        pending = Pending(status=status, reason=reason, extra=headers)
        self._command(call_id, CallEv.REJECT, now, pending)

    def hangup(self, call_id: str, now: float, *, cause: tuple[int, str] | None = None) -> None:
        """End the call whatever its state: 480, CANCEL or BYE as fits (§15). ``cause`` (a
        status and a text) goes in the BYE's ``Reason`` header (RFC 3326)."""
        extra: tuple[tuple[str, str], ...] = ()
        if cause is not None:
            extra = (("Reason", f'SIP ;cause={cause[0]} ;text="{quote_text(cause[1])[:120]}"'),)
        self._command(call_id, CallEv.HANGUP, now, Pending(status=480, extra=extra))

    def invite(
        self,
        target: SipUri,
        sdp: bytes,
        now: float,
        *,
        peer: Peer | None = None,
        caller: NameAddr | None = None,
        credentials: Credentials | None = None,
        trunk: str | None = None,
        media: MediaPrefs | None = None,
        alternates: tuple[Peer, ...] = (),
        ring_timeout: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """Place a call (§13.2.1). ``peer`` is the next hop (a trunk or proxy); by default the
        target URI's host/port/transport; ``alternates`` are the next ones to try (RFC 3263).
        An empty ``sdp`` is a delayed offer: the callee offers in its 2xx and the core answers
        in the ACK from ``media``. ``ring_timeout`` seconds after the INVITE an unanswered call
        is cancelled (``no-answer``). ``headers`` are added as they are (identity headers:
        P-Asserted-Identity, Diversion). Returns the call's id (its Call-ID)."""
        transport = peer.transport if peer else target.transport
        if peer is None:
            default = 5061 if transport == "tls" else 5060
            peer = Peer(transport, target.host.strip("[]"), target.port or default)
        call_id = f"{secrets.token_hex(10)}@{self.host}"
        local = caller or NameAddr(SipUri(host=self.host, user=self.config.user))
        h = Headers()
        h.add("Via", self.via(transport))
        h.add("Max-Forwards", "70")
        h.add("From", str(local.with_tag(new_tag())))
        h.add("To", str(NameAddr(target.without_headers())))
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", str(self.contact(transport)))
        for k, v in (*self.common_headers(), *uac_request(self.timer_policy(trunk)), *headers):
            h.add(k, v)
        if sdp:
            h.add("Content-Type", "application/sdp")
        req = Request(method="INVITE", uri=target.without_headers(), headers=h, body=sdp)
        call = Call(self, call_id, Direction.OUTBOUND, req, peer, trunk)
        call.local_sdp = sdp
        call.media = media
        call.alternates = list(alternates)
        if ring_timeout is not None:
            call.set_timer("ring-timeout", now + ring_timeout)
        self.calls[call_id] = call
        if credentials is not None:
            self.credentials[call_id] = credentials
        tx = self.send_request(call, req, "invite", now)
        assert isinstance(tx, ClientInviteTransaction)
        call.client_tx = tx
        self._pump(now)
        return call_id

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """Send a re-INVITE with ``sdp`` (§14.1); the same SDP again is a session refresh."""
        midcall.send_reinvite(self, self._call(call_id), sdp, now)
        self._pump(now)

    def hold(self, call_id: str, on: bool, now: float) -> None:
        """Put the peer on hold (our SDP ``sendonly``, RFC 3264 §8.4) or take it off."""
        call = self._call(call_id)
        midcall.send_reinvite(self, call, midcall.hold_sdp(call, on), now)
        call.hold_pending = on
        self._pump(now)

    def refer(self, call_id: str, target: str, now: float) -> None:
        """Blind transfer (RFC 3515 §2.4.2): REFER with Refer-To ``target``."""
        midcall.send_refer(self, self._call(call_id), target, now)
        self._pump(now)

    def send_dtmf(self, call_id: str, digit: str, now: float, duration_ms: int = 160) -> None:
        """Send one DTMF digit as SIP INFO (application/dtmf-relay)."""
        midcall.send_info_dtmf(self, self._call(call_id), digit, duration_ms, now)
        self._pump(now)

    def answer_refer(
        self, call_id: str, status: int, now: float, reason: str | None = None
    ) -> None:
        """Accept (2xx) or refuse an inbound REFER the owner was told of (ReferReceived)."""
        midcall.answer_refer(self, self._call(call_id), status, now, reason)
        self._pump(now)

    def notify_refer(
        self, call_id: str, status: int, now: float, reason: str | None = None
    ) -> None:
        """Report the progress of a REFER we accepted (RFC 3515 §2.4.5)."""
        midcall.send_refer_notify(self, self._call(call_id), status, now, reason)
        self._pump(now)

    def request(self, request: Request, peer: Peer, now: float) -> str:
        """Send an out-of-dialog non-INVITE request (REGISTER, OPTIONS) in a client
        transaction; its final response arrives as :class:`RequestDone` with the returned key."""
        if request.method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError(f"{request.method} is not a standalone request")
        tx = self.layer.send_request(request, peer, now)
        self._standalone.add(tx.key)
        self._pump(now)
        return tx.key

    # --- sip.call.CallCore: what Call and midcall use ------------------------------------
    def via(self, transport: str) -> str:
        port = self.config.ports.get(transport) or next(iter(self.config.ports.values()))
        via = Via(transport.upper(), self.host, port, (("branch", new_branch()), ("rport", None)))
        return str(via)

    @property
    def host(self) -> str:
        """The advertised host as it goes into a URI or Via (IPv6 in brackets, §19.1.1)."""
        h = self.config.host
        return f"[{h}]" if ":" in h and not h.startswith("[") else h

    def contact(self, transport: str) -> NameAddr:
        port = self.config.ports.get(transport) or next(iter(self.config.ports.values()))
        params = () if transport == "udp" else (("transport", transport),)
        return NameAddr(SipUri(host=self.host, user=self.config.user, port=port, params=params))

    def common_headers(self) -> Headers:
        return Headers(
            [("Allow", ALLOW), ("Supported", SUPPORTED), ("User-Agent", self.config.user_agent)]
        )

    def timer_policy(self, trunk: str | None) -> TimerPolicy:
        """See :meth:`sip.call.CallCore.timer_policy`."""
        own = self.config.trunk_session_timers.get(trunk) if trunk is not None else None
        return own or self.config.session_timer

    def emit(self, event: CallEvent) -> None:
        self._out.append(event)

    def send_direct(
        self, message: Request | Response, peer: Peer, fallback: Peer | None = None
    ) -> None:
        """Outside any transaction: the ACK for a 2xx, a 2xx retransmitted after timer L."""
        self._out.append(Send(message, peer, fallback=fallback))

    def send_request(self, call: Call, request: Request, purpose: str, now: float) -> ClientTx:
        """Send ``request`` to the call's peer in a client transaction; its responses and
        timeout go to :mod:`sip.midcall` for ``call`` as ``purpose``. In a dialog over TCP/TLS
        the call's flow is used while it lasts (:meth:`Call.flow_fallback` otherwise)."""
        fallback = call.flow_fallback() if request.method != "INVITE" or call.dialog else None
        tx = self.layer.send_request(request, call.peer, now, fallback)
        self._purpose[tx.key] = (call, purpose)
        return tx

    def retry_elsewhere(self, call: Call, now: float) -> bool:
        """RFC 3263 §4.3: the INVITE again, as a new transaction, to the next target."""
        if not call.alternates or call.client_tx is None:
            return False
        call.peer = call.alternates.pop(0)
        self.resend_invite(call, now, {"Contact": str(self.contact(call.peer.transport))})
        return True

    def answer_offer(self, call: Call, offer: bytes) -> bytes:
        """See :meth:`sip.call.CallCore.answer_offer`: the codec in use is kept when the offer
        still has it (else the next of the call's preferences: a codec change), our address and
        port stay, and so do our SRTP keys when the suite does (RFC 4568 §7.1.4)."""
        desc = SessionDescription.parse(offer)
        prefs = call.media or MediaPrefs(codecs=())
        address, port, current, key = _our_media(call)
        codecs = tuple(dict.fromkeys(c for c in (current, *prefs.codecs) if c))
        if not codecs:
            raise SdpError("no codec to answer a re-offer with")
        address = address or prefs.address
        port = port or prefs.port
        if not address or not port:
            raise SdpError("our media address is unknown")
        if call.sdp_session is None:
            if call.local_sdp:  # our o= line goes on: same id, the version up on a change
                ours = SessionDescription.parse(call.local_sdp)
                o = ours.origin
                call.sdp_session = LocalSession(
                    o.address, o.session_id, o.session_version, o.username
                )
                call.sdp_session.stamp(ours)
            else:
                call.sdp_session = LocalSession.create(address)
        if call.media is not None:
            encryption = prefs.encryption
        else:  # no preferences given: SRTP goes on only where it already runs
            encryption = Encryption.OPTIONAL if key is not None else Encryption.OFF
        answer = negotiate(
            desc,
            codecs,
            address,
            port,
            session=call.sdp_session,
            encryption=encryption,
            keep_key=key,
            # while we hold the peer, a re-offer of theirs (a refresh) does not resume it
            direction=MediaDirection.SENDONLY if call.local_hold else MediaDirection.SENDRECV,
        )
        return bytes(answer.sdp)

    def refresh_session(self, call: Call, now: float) -> None:
        midcall.send_refresh(self, call, now)

    def schedule(self, call: Call, when: float) -> None:
        self._call_timers.push(when, call)

    def call_ended(self, call: Call) -> None:
        self._ended_calls.append(call)

    def retry_with_auth(self, call: Call, challenge: Response, now: float) -> bool:
        """401/407 to our INVITE: resend it with digest credentials (§22.2): once, or twice
        when the second challenge says ``stale=true``. False when we cannot answer it."""
        creds = self.credentials.get(call.id)
        if creds is None or call.auth_tries >= 2:
            return False
        proxy = challenge.status == 407
        values = challenge.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        try:
            chosen = choose_challenge(values)
        except AuthError:
            return False
        if call.auth_tries == 1 and not chosen.stale:
            return False  # the same credentials were refused: surface the 401/407
        call.auth_tries += 1
        client = self._digest.setdefault(call.id, DigestClient(creds.username, creds.password))
        old = call.invite
        value = client.authorize(chosen, "INVITE", str(old.uri), old.body)
        name = "Proxy-Authorization" if proxy else "Authorization"
        self.resend_invite(call, now, {name: value}, drop=("Authorization", "Proxy-Authorization"))
        return True

    def resend_invite(
        self,
        call: Call,
        now: float,
        headers: Mapping[str, str] | None = None,
        *,
        drop: tuple[str, ...] = (),
    ) -> None:
        """Our INVITE again as a new transaction (a new branch, the CSeq up): with digest
        credentials (§22.2), a larger ``Session-Expires`` (RFC 4028 §7.3) or to another target
        (RFC 3263 §4.3). ``headers`` are set (replacing theirs), ``drop`` removed first."""
        old = call.invite
        h = old.headers.copy()
        for name in drop:
            h.remove(name)
        vias = h.get_all("Via")
        h.replace_all("Via", [self.via(call.peer.transport), *vias[1:]])
        h.set("CSeq", f"{old.cseq.seq + 1} INVITE")
        for name, value in (headers or {}).items():
            h.set(name, value)
        call.invite = Request(method="INVITE", uri=old.uri, headers=h, body=old.body)
        tx = self.send_request(call, call.invite, "invite", now)
        assert isinstance(tx, ClientInviteTransaction)
        call.client_tx = tx

    def retry_reinvite(self, call: Call, now: float) -> None:
        midcall.retry_reinvite(self, call, now)

    # --- inbound -------------------------------------------------------------------------
    def _on_request(self, req: Request, peer: Peer, now: float) -> None:
        self._stamp_via(req, peer)
        reply_to = self._response_peer(req.top_via, peer)
        if req.method == "ACK":
            if self.layer.matches_server_invite(req):
                self.layer.receive_request(req, reply_to, now)
                return
            call = self._dialog_call(req)
            if call is not None:
                call.handle(CallEv.ACK, now, Pending(message=req))
            else:
                self.stats["stray"] += 1
            return
        in_dialog = req.to.tag is not None
        verdict: Allow | None = None
        if req.method == "INVITE" and not in_dialog and not self.layer.has_server(req):
            verdict = self._screen_invite(req, peer, now)
            if verdict is None:
                return  # refused statelessly: no transaction, no call
        tx = self.layer.receive_request(req, reply_to, now, self._via_fallback(req.top_via, peer))
        if tx is None:
            return  # a retransmission, absorbed
        if self._refuse_early(req, tx, now):
            return
        if req.method == "CANCEL":
            self._on_cancel(req, tx, now)
        elif req.method == "INVITE" and not in_dialog:
            assert isinstance(tx, ServerInviteTransaction) and verdict is not None
            self._on_new_invite(req, peer, tx, now, verdict)
        elif req.method == "OPTIONS" and not in_dialog:
            status = 503 if self.draining else 200
            extra = self.common_headers()
            extra.add("Accept", "application/sdp")
            if self.draining and self.retry_after is not None:
                extra.add("Retry-After", str(self.retry_after))
            self._reply(tx, req, status, now, extra=extra)
        elif in_dialog:
            call = self._dialog_call(req)
            if call is None or call.ended:
                self._reply(tx, req, 481, now)
            else:
                midcall.on_request(self, call, req, tx, now)
        elif req.method in _KNOWN or req.method in ALLOW:
            self._reply(
                tx, req, 405 if req.method in _KNOWN else 481, now, extra=self.common_headers()
            )
        else:
            self._reply(tx, req, 501, now, extra=self.common_headers())

    def _refuse_early(
        self, req: Request, tx: ServerInviteTransaction | ServerNonInviteTransaction, now: float
    ) -> bool:
        """§8.2.2-8.2.3: Max-Forwards 0 (483), Require we lack (420), a body we cannot read
        (415). CANCEL is exempt (§9.2)."""
        if req.method == "CANCEL":
            return False
        if req.headers.get("Max-Forwards") == "0" and req.method != "OPTIONS":
            self._reply(tx, req, 483, now)
            return True
        required = [
            tag.strip()
            for value in req.headers.get_all("Require")
            for tag in value.split(",")
            if tag.strip() and tag.strip().lower() not in _SUPPORTED_TAGS
        ]
        if required:
            self._reply(tx, req, 420, now, extra=Headers([("Unsupported", ", ".join(required))]))
            return True
        if req.method == "INVITE" and req.body and req.content_type != "application/sdp":
            extra = Headers([("Accept", "application/sdp")])
            self._reply(tx, req, 415, now, extra=extra)
            return True
        if req.method == "INVITE" and req.contact is None and not isinstance(req.from_.uri, SipUri):
            # §8.1.1.8: in-dialog requests go to the Contact (a SIP URI: checked as the
            # message was parsed), else to the From: a tel: From leaves nowhere to send them
            self._reply(tx, req, 400, now, "Missing Contact Header")
            return True
        return False

    def _screen_invite(self, req: Request, peer: Peer, now: float) -> Allow | None:
        """A new INVITE before any transaction: draining, policy (digest included) and the
        call caps. A refusal is one stateless response (§8.2.7: a lost one makes the caller
        retransmit, and the retransmission is answered again); None then."""
        if self.draining:
            retry = () if self.retry_after is None else (("Retry-After", str(self.retry_after)),)
            self._stateless(req, peer, 503, None, retry)
            self._refused(req, peer, 503, "draining")
            return None
        verdict = self.policy(req, peer, now)
        exempt = self.policy.exempt(peer.host)
        if isinstance(verdict, Deny):
            self._stateless(req, peer, verdict.status, verdict.reason, verdict.headers)
            if verdict.failure is not None:
                self._auth_failed(req, peer, verdict.failure, exempt, now)
            elif verdict.status not in (401, 407):  # a first challenge is no refusal
                self._notice(NoticeKind.REFUSED_REQUEST, peer, verdict.reason or "policy")
            return None
        why = None
        if verdict.max_calls is not None and self._live_inbound(trunk=verdict.trunk) >= (
            verdict.max_calls
        ):
            why = f"trunk {verdict.trunk!r} has {verdict.max_calls} calls (its max_calls)"
        elif not exempt and self._live_inbound(host=peer.host) >= (
            self.config.limits.max_calls_per_source
        ):
            limit = self.config.limits.max_calls_per_source
            why = f"this source has {limit} calls (max_calls_per_source)"
        if why is not None:
            self._stateless(req, peer, 503, "Service Unavailable (too many calls)")
            self._notice(NoticeKind.RATE_LIMITED, peer, f"INVITE refused: {why}")
            return None
        return verdict

    def _auth_failed(
        self, req: Request, peer: Peer, failure: str, exempt: bool, now: float
    ) -> None:
        """Wrong credentials: reported, and counted against the source (a lockout past
        ``auth_failures`` per ``auth_window_s``), trunk addresses excepted."""
        self._notice(NoticeKind.AUTH_FAILURE, peer, f"{req.method} digest refused: {failure}")
        if not exempt and not self.guard.take(peer.host, RateKind.AUTH_FAILURE, now):
            self._notice(
                NoticeKind.BLOCKED_SOURCE, peer, self.guard.describe(RateKind.AUTH_FAILURE)
            )

    def _live_inbound(self, *, host: str | None = None, trunk: str | None = None) -> int:
        """Inbound calls not yet ended, from ``host`` or on ``trunk``."""
        return sum(
            1
            for c in self.calls.values()
            if c.direction is Direction.INBOUND
            and not c.ended
            and (host is None or c.peer.host == host)
            and (trunk is None or c.trunk == trunk)
        )

    def _stateless(
        self,
        req: Request,
        peer: Peer,
        status: int,
        reason: str | None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer ``req`` outside any transaction, back to where it came from (never to an
        address its Via names: that would reflect it onto a third party)."""
        self.stats["refused"] += 1
        resp = make_response(req, status, reason, to_tag=new_tag(), extra=Headers(extra))
        self._out.append(Send(resp, peer))

    def _on_new_invite(
        self, req: Request, peer: Peer, tx: ServerInviteTransaction, now: float, verdict: Allow
    ) -> None:
        self._reply(tx, req, 100, now)  # at once: a slow answer must not make a proxy retry
        if req.call_id in self.calls:
            self._reply(tx, req, 482, now)  # a merged request (§8.2.2.2)
            return
        settled = uas_settle(req.headers, self.timer_policy(verdict.trunk))
        if isinstance(settled, TooSmall):  # RFC 4028 §9
            self._reply(tx, req, 422, now, extra=Headers([("Min-SE", str(settled.min_se))]))
            return
        call = Call(self, req.call_id, Direction.INBOUND, req, tx.peer, verdict.trunk)
        call.server_tx = tx
        call.local_tag = new_tag()
        call.session_timer = settled
        self.calls[call.id] = call
        self.emit(
            CallOffered(
                call.id,
                req.from_,
                req.to,
                str(req.uri),
                req.body,
                peer,
                verdict.trunk,
                headers=tuple(req.headers),
            )
        )

    def _refused(self, req: Request, peer: Peer, status: int, reason: str) -> None:
        self.emit(CallRefused(req.call_id, req.from_, req.to, str(req.uri), peer, status, reason))

    def _on_cancel(self, req: Request, tx: object, now: float) -> None:
        invite_tx = self.layer.invite_for_cancel(req)
        assert isinstance(tx, ServerNonInviteTransaction)
        if invite_tx is None:
            self._reply(tx, req, 481, now)
            return
        self._reply(tx, req, 200, now)
        call = self.calls.get(req.call_id)
        if call is not None and call.server_tx is invite_tx:
            call.handle(CallEv.CANCEL, now)

    def _on_response(self, resp: Response, now: float) -> None:
        if self.layer.receive_response(resp, now):
            return
        call = self.calls.get(resp.call_id)
        if (
            call is not None
            and call.direction is Direction.OUTBOUND
            and resp.cseq.method == "INVITE"
            and resp.cseq.seq == call.invite.cseq.seq
            and resp.from_.tag == call.invite.from_.tag
            and 200 <= resp.status < 300
        ):
            # a 2xx to our INVITE past its transaction (a retransmission, another fork):
            # only ours can be; one forged with a live call's Call-ID made us ACK and BYE
            midcall.invite_2xx(self, call, resp, now)
        else:
            self.stats["stray"] += 1

    def _pump(self, now: float) -> None:
        """Move transaction outputs: sends to the wire, TU events to their calls."""
        while True:
            items = self.layer.drain()
            if not items:
                return
            for item in items:
                if isinstance(item, Send):
                    self._out.append(item)
                elif isinstance(item, TxResponse) and item.tx.key in self._standalone:
                    if item.response.status >= 200:
                        self._standalone.discard(item.tx.key)
                        self._out.append(RequestDone(item.tx.key, item.response))
                elif isinstance(item, TxTimeout | TxTransportError) and (
                    item.tx.key in self._standalone
                ):
                    self._standalone.discard(item.tx.key)
                    self._out.append(RequestDone(item.tx.key, None))
                elif isinstance(item, TxResponse):
                    owner = self._purpose.get(item.tx.key)
                    if owner is not None:
                        midcall.on_response(self, owner[0], owner[1], item.tx, item.response, now)
                elif isinstance(item, TxTimeout | TxTransportError):
                    owner = self._purpose.get(item.tx.key)
                    if owner is not None:
                        midcall.on_timeout(self, owner[0], owner[1], now)
                elif isinstance(item, TxAckReceived):
                    pass  # an ACK reusing the INVITE's branch; the dialog already saw the 2xx

    # --- small helpers -------------------------------------------------------------------
    def _command(self, call_id: str, ev: CallEv, now: float, pending: Pending) -> None:
        self._call(call_id).handle(ev, now, pending)
        self._pump(now)

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise SipStateError("call", "unknown", f"command for call {call_id!r}")
        return call

    def _dialog_call(self, req: Request) -> Call | None:
        """The call whose dialog ``req`` belongs to (§12.2.2): same Call-ID, To tag = our tag
        and From tag = the peer's (once known: a callee's comes with its answer)."""
        call = self.calls.get(req.call_id)
        if call is None:
            return None
        local: str | None
        remote: str | None
        if call.direction is Direction.INBOUND:
            local, remote = call.local_tag, call.invite.from_.tag
        else:
            local = call.invite.from_.tag
            remote = call.dialog.remote_tag if call.dialog is not None else None
        if req.to.tag != local or (remote and req.from_.tag != remote):
            return None
        return call

    def _reply(
        self,
        tx: object,
        req: Request,
        status: int,
        now: float,
        reason: str | None = None,
        extra: Headers | None = None,
    ) -> None:
        assert isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction)
        tag = new_tag() if status > 100 and req.to.tag is None else None
        tx.respond(make_response(req, status, reason, to_tag=tag, extra=extra), now)

    @staticmethod
    def _stamp_via(req: Request, peer: Peer) -> None:
        """RFC 3261 §18.2.1 ``received`` and RFC 3581 §4 ``rport`` on the top Via."""
        vias = req.headers.get_all("Via")
        top = Via.parse(vias[0])
        if top.host.strip("[]") != peer.host or top.param("received") is not None:
            # where the request came from, never what the sender wrote (a forged received
            # would send our responses, over a connection we open, where it points)
            top = top.with_param("received", peer.host)
        if top.param("rport") == "":
            top = top.with_param("rport", str(peer.port))
        vias[0] = str(top)
        req.headers.replace_all("Via", vias)

    @staticmethod
    def _via_fallback(via: Via, peer: Peer) -> Peer | None:
        """§18.2.2: over TCP/TLS, where a response goes when the request's connection is
        gone: the ``received`` address and the ``rport`` or sent-by port."""
        if not peer.reliable:
            return None
        host = peer.host  # the request's source: what received says once stamped
        rport = via.param("rport")
        port = int(rport) if rport and rport.isdigit() else via.port
        return Peer(peer.transport, host, port or (5061 if peer.transport == "tls" else 5060))

    @staticmethod
    def _response_peer(via: Via, peer: Peer) -> Peer:
        """§18.2.2, RFC 3581: reliable -> same connection; rport -> source; else sent-by port."""
        if peer.reliable or via.param("rport") is not None:
            return peer
        return replace(peer, port=via.port or 5060)

    def _malformed(self, data: bytes, peer: Peer, exc: SipParseError) -> None:
        """Answer a malformed request with 4xx when its Via/From/To/Call-ID/CSeq survive (read
        from its raw lines: the parse failed), back to where it came from."""
        self.stats["malformed"] += 1
        head = sanity.peek(data)
        if head is None or head.method == "ACK":
            return
        resp = sanity.reply(head, exc.status, exc.reason)
        if resp is not None:
            self.stats["malformed_answered"] += 1
            self._out.append(Send(resp, peer))

    def _reap(self) -> None:
        """Forget ended calls and the bindings of finished client transactions."""
        for call in self._ended_calls:
            if self.calls.get(call.id) is call:
                del self.calls[call.id]
                self.credentials.pop(call.id, None)
                self._digest.pop(call.id, None)
        self._ended_calls.clear()
        for key in self.layer.reaped:
            self._purpose.pop(key, None)
            self._standalone.discard(key)
        self.layer.reaped.clear()


def _our_media(call: Call) -> tuple[str, int, str, CryptoAttribute | None]:
    """From our current SDP: address, RTP port, the codec in use and our SRTP key."""
    if not call.local_sdp:
        return "", 0, "", None
    ours = SessionDescription.parse(call.local_sdp)
    index = next((i for i, m in enumerate(ours.media) if m.media == "audio" and m.port), None)
    if index is None:
        return "", 0, "", None
    audio = ours.media[index]
    conn = ours.media_connection(index)
    codec = ""
    source = audio
    if call.direction is Direction.OUTBOUND and call.remote_sdp and call.invite.body:
        # our offer listed several codecs; the one in use is the answer's first
        theirs = SessionDescription.parse(call.remote_sdp)
        answered = next((m for m in theirs.media if m.media == "audio" and m.port), None)
        if answered is not None:
            source = answered
    for pt in source.payload_types:
        rtpmap = source.codec(pt)
        if rtpmap is not None and rtpmap.encoding.lower() != "telephone-event":
            codec = rtpmap.encoding
            break
    key = None
    for attr in audio.attributes:
        if attr.name == "crypto":
            try:
                parsed = CryptoAttribute.parse(attr.value or "")
            except SdpError:
                continue
            if parsed.usable:
                key = parsed
                break
    return (conn.address if conn else ""), audio.port, codec, key


def _call_holds(call: Call, when: float) -> bool:
    return not call.ended and when in call.timers.values()
