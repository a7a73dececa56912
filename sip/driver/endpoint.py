"""The SIP endpoint: sockets and timers around the sans-IO core, calls for their owners.

``start_sip(settings, handler)`` binds the configured transports and returns a
:class:`SipEndpoint`. For every inbound call that passes policy it creates a :class:`SipCall`
and runs ``handler.on_offer(call)`` in a task; the returned :class:`Answer` or :class:`Reject`
is applied (``None`` means the handler acted on the call itself). Events of a call
(:mod:`sip.events`) are handed, in order and at once, to the listener its owner attaches with
``call.listen()``: no queue, so no call-control event (the end, a digit, a transfer's NOTIFY)
is ever dropped. Outbound calls:
``await endpoint.invite(target, sdp, trunk=...)``. The driver keeps one ``call_later`` handle
armed for the core's next deadline, re-armed whenever input or a command moves it. Trunks with
``register_enabled`` are kept registered (:mod:`sip.driver.registration_runner`). RTP is not
here: SDP bodies are passed in and out as data.

What the core and the transports refuse or catch (``settings.limits``: bounds, strangers,
rates, digest failures, connection caps) reaches the handler's ``on_security`` as
:class:`~sip.events.SecurityNotice` values, in order, synchronously; with no such method they
are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from sip.driver.dns import DnsError, TrunkResolver
from sip.driver.registration_runner import register_once, run_registration
from sip.driver.transport import Transports
from sip.driver.trunk_targets import TrunkTargets
from sip.errors import LocalProtocolError, SipError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallOffered,
    CallRefused,
    NoticeKind,
    SecurityNotice,
)
from sip.headers import NameAddr
from sip.keepalive import TrunkHealth, options_request
from sip.message import Request, Response
from sip.offer_answer import MediaPrefs
from sip.policy import make_policy
from sip.registration import (
    Registered,
    Registration,
    RegistrationConfig,
    RegistrationError,
    RegistrationEvent,
)
from sip.registration import State as RegState
from sip.session_timer import Refresher, TimerPolicy
from sip.settings import SessionTimerSettings, SipSettings, TrunkSettings
from sip.transaction import Peer, Send, TimerValues
from sip.ua import CoreConfig, Credentials, Policy, RequestDone, SipCore
from sip.uri import SipUri

__all__ = [
    "Answer",
    "CallHandler",
    "Decision",
    "DefaultHandler",
    "Reject",
    "SipCall",
    "SipEndpoint",
    "start_sip",
]

log = logging.getLogger("rtbridge.sip")
trace = logging.getLogger("rtbridge.sip.trace")  # every message in and out, at DEBUG


def peer_fields(peer: Peer) -> tuple[str, str, int]:
    return (peer.transport, peer.host, peer.port)


#: Events kept for a call whose owner has not attached its listener yet (only the set-up's
#: first moments: a CANCEL, a provisional response). Beyond this, non-final events are dropped
#: and counted; the final :class:`CallEnded` is always kept.
EARLY_EVENTS = 16

CallListener = Callable[[CallEvent], None]


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the offered call with this SDP (an answer; our offer when the INVITE had none).
    ``media`` says how the core answers the peer's later offers (re-INVITE, UPDATE)."""

    sdp: bytes
    media: MediaPrefs | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call; ``retry_after`` (seconds) adds Retry-After (e.g. 503 when full)."""

    status: int = 480
    reason: str | None = None
    retry_after: int | None = None


Decision = Answer | Reject | None


class CallHandler(Protocol):
    """The owner of inbound calls. ``on_offer`` may ring first (``call.ring()``). A handler
    may also define ``on_refused(event: CallRefused) -> None`` to learn of INVITEs the core
    refused before offering them while draining (503), and ``on_security(notice:
    SecurityNotice) -> None`` for what the stack refused or caught; each is called when
    present."""

    async def on_offer(self, call: SipCall) -> Decision: ...


class DefaultHandler:
    """Used until the calls issue lands: answer with a fixed SDP, or reject with 480."""

    def __init__(self, answer_sdp: bytes | None = None) -> None:
        self.answer_sdp = answer_sdp

    async def on_offer(self, call: SipCall) -> Decision:
        if self.answer_sdp is None:
            return Reject(480)
        return Answer(self.answer_sdp)


class SipCall:
    """One call as its owner sees it: commands, and its events handed to a listener."""

    def __init__(self, endpoint: SipEndpoint, call_id: str, offer: CallOffered | None) -> None:
        self._ep = endpoint
        self.id = call_id
        self.offer = offer
        self.trunk = offer.trunk if offer else None
        self.source = offer.source if offer else None
        self.ended: CallEnded | None = None
        self._listener: CallListener | None = None
        self._early: list[CallEvent] = []
        self._queue: asyncio.Queue[CallEvent] | None = None  # events() / next_event()
        self.dropped_events = 0
        self._done = asyncio.Event()
        self._confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<SipCall {self.id}>"

    @property
    def inbound(self) -> bool:
        return self.offer is not None

    # commands -----------------------------------------------------------------------------
    def ring(self, status: int = 180, sdp: bytes = b"") -> None:
        self._ep._do(lambda now: self._ep.core.ring(self.id, now, status=status, sdp=sdp))

    def answer(self, sdp: bytes, media: MediaPrefs | None = None) -> None:
        self._ep._do(lambda now: self._ep.core.answer(self.id, sdp, now, media=media))

    def set_media(self, media: MediaPrefs) -> None:
        """The codecs and SRTP policy the core answers later offers with (re-INVITE, UPDATE)."""
        self._ep._do(lambda _now: self._ep.core.set_media(self.id, media))

    def reject(
        self, status: int = 480, reason: str | None = None, *, retry_after: int | None = None
    ) -> None:
        headers = () if retry_after is None else (("Retry-After", str(retry_after)),)
        self._ep._do(
            lambda now: self._ep.core.reject(self.id, now, status, reason, headers=headers)
        )

    def hangup(self, cause: tuple[int, str] | None = None) -> None:
        """End the call (480, CANCEL or BYE); ``cause`` goes in the BYE's Reason header."""
        if self.ended is None:
            self._ep._do(lambda now: self._ep.core.hangup(self.id, now, cause=cause))

    def reinvite(self, sdp: bytes) -> None:
        self._ep._do(lambda now: self._ep.core.reinvite(self.id, sdp, now))

    def hold(self, on: bool = True) -> None:
        """Put the peer on hold (re-INVITE with our SDP ``sendonly``) or resume."""
        self._ep._do(lambda now: self._ep.core.hold(self.id, on, now))

    def send_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        """One digit as SIP INFO (application/dtmf-relay)."""
        self._ep._do(lambda now: self._ep.core.send_dtmf(self.id, digit, now, duration_ms))

    def refer(self, target: str) -> None:
        self._ep._do(lambda now: self._ep.core.refer(self.id, target, now))

    def answer_refer(self, status: int, reason: str | None = None) -> None:
        """Accept (2xx: 202 and NOTIFY 100) or refuse the peer's REFER (ReferReceived)."""
        self._ep._do(lambda now: self._ep.core.answer_refer(self.id, status, now, reason))

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        self._ep._do(lambda now: self._ep.core.notify_refer(self.id, status, now, reason))

    # events -------------------------------------------------------------------------------
    def listen(self, listener: CallListener) -> None:
        """Hand every event of this call to ``listener``, in order, as the core emits it
        (events that came before are handed over first). The listener runs inside the
        driver's input handling: it must not block, and it should not raise (if it does, the
        error is logged and the event is considered delivered)."""
        self._listener = listener
        early, self._early = self._early, []
        for event in early:
            self._hand(listener, event)

    def _hand(self, listener: CallListener, event: CallEvent) -> None:
        try:
            listener(event)
        except Exception:
            log.exception("call %s: the listener failed on %s", self.id, type(event).__name__)

    def _deliver(self, event: CallEvent) -> None:
        if isinstance(event, CallAnswered) and not self._confirmed.done():
            self._confirmed.set_result(True)
        elif isinstance(event, CallEnded):
            self.ended = event
            self._done.set()
            if not self._confirmed.done():
                self._confirmed.set_result(False)
        if self._listener is not None:
            self._hand(self._listener, event)
        elif len(self._early) < EARLY_EVENTS or isinstance(event, CallEnded):
            self._early.append(event)
        else:
            self.dropped_events += 1
            log.warning("call %s: no listener yet, dropped %s", self.id, type(event).__name__)

    def _script_queue(self) -> asyncio.Queue[CallEvent]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self.listen(self._queue.put_nowait)
        return self._queue

    async def events(self) -> AsyncIterator[CallEvent]:
        """Every event in order, for scripts and tests; the iteration stops after
        :class:`CallEnded`. (A call's owner uses :meth:`listen`.)"""
        queue = self._script_queue()
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, CallEnded):
                return

    async def next_event(self) -> CallEvent:
        return await self._script_queue().get()

    async def wait_ended(self) -> CallEnded:
        await self._done.wait()
        assert self.ended is not None
        return self.ended

    async def confirmed(self, timeout: float) -> bool:
        """Whether the dialog is confirmed (inbound: our 2xx was ACKed; outbound: the callee
        answered), waiting up to ``timeout`` seconds. False if it ended first or in time."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._confirmed), timeout)
        except TimeoutError:
            return False


class SipEndpoint:
    """Sockets + timer task + the core; see the module docstring."""

    def __init__(
        self,
        settings: SipSettings,
        handler: CallHandler,
        *,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.clock = clock
        ctx: ssl.SSLContext | None = None
        if settings.tls_cert and settings.tls_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
        client = ssl.create_default_context(
            cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
        )
        if not settings.tls_verify:
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
        self.transports = Transports(
            self._on_message,
            ssl_context=ctx,
            client_context=client,
            limits=settings.limits,
            on_notice=self._transport_notice,
            in_use=self._peers_in_use,
            trusted=lambda host: self.core.policy.exempt(host),
        )
        t = settings.timers
        self.core = SipCore(
            CoreConfig(
                host=settings.advertised,
                ports={},
                user_agent=settings.user_agent,
                timers=TimerValues(t.t1, t.t2, t.t4),
                limits=settings.limits,
                session_timer=policy_of(settings.session_timers),
                trunk_session_timers={
                    trunk.name: policy_of(trunk.session_timers)
                    for trunk in settings.trunks
                    if trunk.session_timers is not None
                },
            ),
            policy or make_policy(settings),
        )
        self.calls: dict[str, SipCall] = {}
        self.resolver = TrunkResolver(settings.dns_servers or None, clock=clock)
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._flushing = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, asyncio.Future[Response | None]] = {}
        self._stop_registration = asyncio.Event()
        self.registrations: dict[str, Registration] = {}
        self.registration_events: list[tuple[str, RegistrationEvent]] = []
        #: trunks with an OPTIONS keepalive: their up/down state (sip.keepalive)
        self.trunk_health: dict[str, TrunkHealth] = {
            t.name: TrunkHealth(t.name) for t in settings.trunks if t.options_interval_s
        }
        #: each trunk's servers: where its REGISTER, OPTIONS and INVITEs go, and in what order
        self.trunk_targets: dict[str, TrunkTargets] = {}
        #: outbound calls through a trunk until answered or ended: its targets, in the order
        #: the INVITE tries them
        self._dialing: dict[str, tuple[TrunkTargets, list[Peer]]] = {}

    async def start(self) -> None:
        s = self.settings
        for transport, port in (("udp", s.udp_port), ("tcp", s.tcp_port), ("tls", s.tls_port)):
            if port is not None:
                bound = await self.transports.listen(transport, s.bind_host, port)
                self.core.config.ports[transport] = bound
        self._arm()
        for trunk in s.trunks:
            if trunk.register_enabled:
                self._spawn(self._keep_registered(trunk.name))
            if trunk.options_interval_s:
                self._spawn(self._keepalive(trunk.name, trunk.options_interval_s))

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.transports.ports)

    async def close(self, *, hangup: bool = True, grace_s: float = 2.0) -> None:
        """Stop: hang up live calls (BYE/CANCEL/480, waiting up to ``grace_s``), unregister,
        cancel handler tasks and the timer, close the sockets."""
        if hangup and self.calls:
            for call in list(self.calls.values()):
                with contextlib.suppress(SipError):
                    call.hangup()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    for call in list(self.calls.values()):
                        await call.wait_ended()
        self._stop_registration.set()
        if self.registrations:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registrations_done(), 5.0)
        for task in list(self._tasks):
            task.cancel()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        await self.transports.close()

    def drain(self, retry_after: int | None = None) -> None:
        """New calls and OPTIONS get 503 from now on (§21.5.4), with Retry-After if given."""
        if retry_after is not None:
            self.core.retry_after = retry_after
        self.core.draining = True

    async def invite(
        self,
        target: str | SipUri,
        sdp: bytes,
        *,
        trunk: str | None = None,
        caller: str | None = None,
        media: MediaPrefs | None = None,
        ring_timeout: float | None = None,
    ) -> SipCall:
        """Place a call to ``target`` (directly, or through trunk ``trunk`` with its creds,
        its caller id and identity headers, its ring timeout). An empty ``sdp`` is a delayed
        offer: the callee offers in its 2xx and the core answers it from ``media``."""
        uri = target if isinstance(target, SipUri) else SipUri.parse(target)
        peer: Peer | None = None
        alternates: tuple[Peer, ...] = ()
        creds: Credentials | None = None
        headers: list[tuple[str, str]] = []
        if trunk is not None:
            t = self.settings.trunk(trunk)
            down = self.trunk_health.get(trunk)
            if down is not None and not down.up:
                raise SipError(f"trunk {trunk!r} is down: {down.detail}")
            targets = self._targets(t)
            peer, *others = await targets.targets()
            alternates = tuple(others)
            password = t.password()
            if t.username and password is not None:
                creds = Credentials(t.username, password)
            caller = caller or t.caller_id
            if t.asserted_identity:
                headers.append(("P-Asserted-Identity", f"<{t.asserted_identity}>"))
            if t.diversion:
                headers.append(("Diversion", f"<{t.diversion}>;reason=unconditional"))
            if ring_timeout is None:
                ring_timeout = t.ring_timeout_s
        else:
            host = await self._resolve(uri.host.strip("[]"))
            default = 5061 if uri.transport == "tls" else 5060
            peer = Peer(uri.transport, host, uri.port or default)
            if ring_timeout is None:  # it rang for ever, holding its port pair and slot
                ring_timeout = self.settings.ring_timeout_s
        local = None
        if caller is not None:
            local = NameAddr(SipUri(host=self.core.host, user=caller))
        now = self.clock()
        call_id = self.core.invite(
            uri,
            sdp,
            now,
            peer=peer,
            caller=local,
            credentials=creds,
            trunk=trunk,
            media=media,
            alternates=alternates,
            ring_timeout=ring_timeout,
            headers=tuple(headers),
        )
        call = SipCall(self, call_id, None)
        self.calls[call_id] = call
        if trunk is not None:
            self._dialing[call_id] = (targets, [peer, *alternates])
        self._flush()
        return call

    # --- REGISTER (sip.registration, run by sip.driver.registration_runner) -----------------
    async def send_request(self, request: Request, peer: Peer) -> Response | None:
        """Run ``request`` in a non-INVITE client transaction; its final response or None."""
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        key = self.core.request(request, peer, self.clock())
        self._pending[key] = future
        self._flush()
        return await future

    def registration_for(self, trunk_name: str) -> Registration:
        """The REGISTER machine for a trunk (RFC 3261 §10.2), built from its settings."""
        t = self.settings.trunk(trunk_name)
        password = t.password()
        if not t.username or password is None:
            raise SipError(f"trunk {t.name!r} needs a username and ${t.password_env} set")
        ports = self.core.config.ports
        port = ports.get(t.transport) or next(iter(ports.values()))
        host = self.core.host
        params = () if t.transport == "udp" else (("transport", t.transport),)
        config = RegistrationConfig(
            registrar=SipUri(host=t.host, port=t.port, params=params),
            aor=SipUri(host=t.realm or t.host, user=t.username),
            contact=SipUri(host=host, user=t.username, port=port, params=params),
            username=t.username,
            password=password,
            via_host=host,
            via_port=port,
            transport=t.transport.upper(),
            expires=t.register_expires,
            user_agent=self.settings.user_agent,
        )
        return Registration(config)

    async def register(self, trunk_name: str) -> Registered:
        """Register once with a trunk's registrar (raises RegistrationError on refusal)."""
        reg = self.registration_for(trunk_name)
        self.registrations[trunk_name] = reg
        targets = self._targets(self.settings.trunk(trunk_name))
        return await register_once(
            reg, targets.send_once, clock=self.clock, failover=targets.another
        )

    async def _keep_registered(self, trunk_name: str) -> None:
        reg = self.registration_for(trunk_name)
        self.registrations[trunk_name] = reg

        def on_event(event: RegistrationEvent) -> None:
            self.registration_events.append((trunk_name, event))
            log.info("trunk %s: %s", trunk_name, event)

        targets = self._targets(self.settings.trunk(trunk_name))
        try:
            await run_registration(
                reg,
                targets.send_once,
                self._stop_registration,
                clock=self.clock,
                on_event=on_event,
                failover=targets.another,
            )
        except RegistrationError as exc:
            log.error("trunk %s: registration failed: %s", trunk_name, exc)

    async def _keepalive(self, trunk_name: str, interval: float) -> None:
        """OPTIONS to the trunk every ``interval`` seconds; its state in ``trunk_health``."""
        t = self.settings.trunk(trunk_name)
        health = self.trunk_health[trunk_name]
        params = () if t.transport == "udp" else (("transport", t.transport),)
        target = SipUri(host=t.host, port=t.port, params=params)
        targets = self._targets(t)
        while not self._closed:
            try:
                request = options_request(
                    target,
                    self.core.via(t.transport),
                    str(self.core.contact(t.transport)),
                    self.settings.user_agent,
                    self.core.host,
                )
                response = await targets.send(request)
            except SipError as exc:  # the name does not resolve
                log.info("trunk %s: keepalive not sent: %s", trunk_name, exc)
                response = None
            if health.observe(response, self.clock()):
                level = logging.INFO if health.up else logging.WARNING
                log.log(level, "trunk %s is %s (%s)", trunk_name, health.state, health.detail)
            await asyncio.sleep(interval)

    async def _registrations_done(self) -> None:
        """Until every registration is settled: unbound (IDLE) or refused for good (FAILED:
        nothing will change, so closing must not wait for it)."""
        settled = (RegState.IDLE, RegState.FAILED)
        while any(r.state not in settled for r in self.registrations.values()):
            await asyncio.sleep(0.05)

    def _targets(self, t: TrunkSettings) -> TrunkTargets:
        targets = self.trunk_targets.get(t.name)
        if targets is None:
            targets = self.trunk_targets[t.name] = TrunkTargets(
                t.name, functools.partial(self._trunk_peers, t), self.send_request, self.clock
            )
        return targets

    async def _trunk_peers(self, t: TrunkSettings) -> list[Peer]:
        """Where a trunk's requests go: its RFC 3263 targets in order (``srv``), else its
        host's address on its port."""
        if t.srv:
            try:
                return await self.resolver.targets(t.host, t.transport)
            except DnsError as exc:
                raise SipError(f"trunk {t.name!r}: {exc}") from None
        return [Peer(t.transport, await self._resolve(t.host), t.port)]

    async def _resolve(self, host: str) -> str:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None)
        return str(infos[0][4][0])

    # --- plumbing ------------------------------------------------------------------------
    def _do(self, command: Callable[[float], None]) -> None:
        command(self.clock())
        self._flush()

    def _on_message(self, data: bytes, peer: Peer) -> None:
        if trace.isEnabledFor(logging.DEBUG):  # per-message tracing costs nothing when off
            trace.debug("<- %s:%s:%d\n%s", *peer_fields(peer), data.decode("utf-8", "replace"))
        self.core.receive(data, peer, self.clock())
        self._flush()

    def _flush(self) -> None:
        """Send what the core has to send, then hand its events to their owners. Owners act
        synchronously (a digit may start a REFER): their commands reach the core while this
        runs, so a nested call returns at once and this loop picks their output up next, after
        every message of the current batch is out (a response before the request it caused)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while items := self.core.drain():
                events: list[CallEvent] = []
                for item in items:
                    if isinstance(item, Send):
                        on_error = functools.partial(self._failed, item.key)
                        try:
                            data = bytes(item.message)
                        except LocalProtocolError as exc:  # injection refused: a send failure
                            log.error("refused to send %r: %s", item.message, exc)
                            asyncio.get_running_loop().call_soon(on_error)
                            continue
                        if trace.isEnabledFor(logging.DEBUG):
                            text = data.decode("utf-8", "replace")
                            trace.debug("-> %s:%s:%d\n%s", *peer_fields(item.peer), text)
                        self.transports.send(data, item.peer, on_error, item.fallback)
                    elif isinstance(item, RequestDone):
                        future = self._pending.pop(item.key, None)
                        if future is not None and not future.done():
                            future.set_result(item.response)
                    elif isinstance(item, SecurityNotice):
                        self._security(item)
                    else:
                        events.append(item)
                for event in events:
                    self._dispatch(event)
        finally:
            self._flushing = False
        self._arm()

    def _dispatch(self, item: CallEvent) -> None:
        if isinstance(item, CallOffered):
            call = SipCall(self, item.call_id, item)
            self.calls[item.call_id] = call
            self._spawn(self._offer(call))
        elif isinstance(item, CallRefused):
            on_refused = getattr(self.handler, "on_refused", None)
            if on_refused is not None:
                on_refused(item)
        else:
            if isinstance(item, (CallAnswered, CallEnded)):
                self._dialed(item)
            call_or_none = self.calls.get(item.call_id)
            if call_or_none is not None:
                call_or_none._deliver(item)
                if isinstance(item, CallEnded):
                    del self.calls[item.call_id]

    def _dialed(self, item: CallAnswered | CallEnded) -> None:
        """An outbound trunk call answered: which of the trunk's targets failed before the
        one that answered (:meth:`TrunkTargets.reached`); an end says nothing sure."""
        dialing = self._dialing.pop(item.call_id, None)
        if dialing is None or not isinstance(item, CallAnswered):
            return
        core_call = self.core.calls.get(item.call_id)
        if core_call is not None:
            targets, tried = dialing
            targets.reached(core_call.peer, tried)

    def _security(self, notice: SecurityNotice) -> None:
        on_security = getattr(self.handler, "on_security", None)
        if on_security is not None:
            on_security(notice)
        else:
            log.info("%s from %s: %s", notice.kind.value, notice.source, notice.detail)

    def _transport_notice(self, kind: NoticeKind, peer: Peer, detail: str) -> None:
        self._security(SecurityNotice(kind, peer, detail))

    def _peers_in_use(self) -> set[Peer]:
        """Where live calls' messages go: their connections stay open however idle."""
        return {call.peer for call in self.core.calls.values() if not call.ended}

    def _failed(self, key: str) -> None:
        if key:
            self.core.send_failed(key, self.clock())
            self._flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer(self, call: SipCall) -> None:
        try:
            decision = await self.handler.on_offer(call)
        except Exception:
            log.exception("call handler failed for %s", call.id)
            decision = Reject(500, "Server Internal Error (handler failed)")
        if call.ended is not None or decision is None:
            return
        try:
            if isinstance(decision, Answer):
                call.answer(decision.sdp, decision.media)
            else:
                call.reject(decision.status, decision.reason, retry_after=decision.retry_after)
        except Exception:
            log.exception("cannot apply the decision for %s", call.id)

    def _arm(self) -> None:
        """(Re)schedule the one timer callback for the core's next deadline."""
        if self._closed:
            return
        deadline = self.core.next_deadline()
        if deadline == self._armed and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed = deadline
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed = None
        self.core.tick(self.clock())
        self._flush()


def policy_of(st: SessionTimerSettings) -> TimerPolicy:
    """A session-timer policy from ``[sip.session_timers]`` or a trunk's own."""
    return TimerPolicy(st.enabled, st.session_expires, st.min_se, Refresher(st.refresher))


async def start_sip(
    settings: SipSettings, handler: CallHandler | None = None, *, policy: Policy | None = None
) -> SipEndpoint:
    """Bind the configured SIP transports and start serving calls (``close()`` to stop)."""
    endpoint = SipEndpoint(settings, handler or DefaultHandler(), policy=policy)
    await endpoint.start()
    return endpoint
