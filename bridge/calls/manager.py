"""The call manager: one owner for every call, inbound and outbound.

Inbound (it is the SIP driver's :class:`~sip.driver.CallHandler`): admission (draining,
``max_calls``, free RTP ports: 503 otherwise), routing to an agent profile, SDP negotiation
(one codec plus telephone-event: 488 when none fits), 180 Ringing while the agent session
opens and is configured (``session.updated``), then 200 with our SDP. An unreachable or
refusing upstream answers 503 with a reason: a caller never rings forever.

Outbound (:meth:`CallManager.originate`, used by ``rtbridge call`` and later the control
plane): the target must match the profile's allowlist (toll fraud is the classic loss of an
exposed SIP service), INVITE through a trunk (digest auth by the driver), 18x early media not
sent to the agent, the agent session opened on 200; busy, no-answer, rejected and failed are
recorded with their SIP status.

Every call, whatever happens to it, has a record and an event log (:mod:`bridge.records`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bridge.calls.agent_session import AgentSession
from bridge.calls.call import Call, CallInfo
from bridge.calls.observers import EventFanout
from bridge.calls.rtp_endpoint import PortAllocator, PortsExhausted, RtpEndpoint
from bridge.calls.sip_media import SipMedia, pass_through_format
from bridge.calls.ticker import FrameTicker
from bridge.config import AgentProfile, SessionFormat, Settings
from bridge.errors import RtbridgeError, UpstreamError
from bridge.realtime.session import AudioFormat
from bridge.records import CallStore
from media.codecs import codec_for
from media.codecs.base import AudioCodec, UnsupportedCodecError
from media.rtp import RtpPacket
from sip.driver import Answer, Decision, Reject, SipCall, SipEndpoint
from sip.events import CallAnswered, CallEnded, CallRefused, CallRinging
from sip.offer_answer import Negotiated, NegotiationError, make_offer, negotiate, parse_answer
from sip.sdp import SdpError, SessionDescription

__all__ = ["CallManager", "CallNotAllowed", "IncomingHook", "OutboundResult", "outbound_outcome"]

log = logging.getLogger(__name__)


class CallNotAllowed(RtbridgeError):
    """The target is not in the profile's allowlist, or calls cannot be placed now."""


IncomingHook = Callable[
    [str, SipCall, str, AgentProfile], Awaitable[tuple[str, AgentProfile] | Reject]
]


@dataclass(slots=True)
class _Dial:
    """An outbound call between INVITE and answer."""

    call_id: str
    sip_call: SipCall
    offer: SessionDescription
    endpoint: RtpEndpoint
    port: int
    profile: AgentProfile
    profile_name: str
    target: str
    trunk: str | None
    caller: str | None
    future: asyncio.Future[OutboundResult]


@dataclass(frozen=True, slots=True)
class OutboundResult:
    call_id: str
    outcome: str  # answered | busy | no-answer | rejected | failed | upstream-unavailable
    sip_status: int | None


def outbound_outcome(status: int | None, reason: str) -> str:
    """How an unanswered outbound call is recorded."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487) or reason == "timeout":
        return "no-answer"
    if status is not None and status in (403, 404, 603, 604, 606):
        return "rejected"
    return "failed"


def _session_format(profile: AgentProfile, codec_name: str) -> AudioFormat:
    if profile.session_format is SessionFormat.AUTO:
        return pass_through_format(codec_name) or AudioFormat.PCM16
    return AudioFormat(profile.session_format.value)


class CallManager:
    def __init__(
        self,
        settings: Settings,
        store: CallStore,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.environ = environ
        c = settings.calls
        self.ports = PortAllocator(c.rtp_port_min, c.rtp_port_max)
        self.ticker = FrameTicker()
        self.calls: dict[str, Call] = {}
        self.sip: SipEndpoint | None = None
        self.draining = False
        self._setting_up = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.outcomes: dict[str, asyncio.Future[OutboundResult]] = {}
        #: call lifecycle for dashboards and ``GET /v1/events``: ``call.offered``,
        #: ``call.answered``, ``call.ended`` with the call's id and parties.
        self.lifecycle = EventFanout()
        #: the control plane's say on inbound calls (``realtime.call.incoming`` webhooks): called
        #: after 180 Ringing with the call id, the SIP call and the routed profile; returns the
        #: profile to answer with, or a :class:`~sip.driver.Reject`
        self.incoming: IncomingHook | None = None

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> CallManager:
        self.ticker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, reason: str = "shutdown") -> None:
        self.draining = True
        for call in list(self.calls.values()):
            call.end(reason)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ticker.stop()

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lifecycle(self, kind: str, call_id: str, **data: object) -> None:
        self.lifecycle.publish({"type": kind, "call_id": call_id, "at": time.time(), **data})

    def _released(self, call: Call) -> None:
        self._lifecycle(
            "call.ended", call.id, reason=call.info.end_reason, sip_status=call.info.sip_status
        )
        self.calls.pop(call.id, None)
        self.ports.release(call.endpoint.port)
        if not self.calls and not self._setting_up:
            self._idle.set()

    def adopt(self, call: Call) -> None:
        """Own a call another leg set up (a browser call, :mod:`bridge.webrtc`): it is listed in
        ``calls``, ended by :meth:`hangup` and :meth:`close`, and run as the manager's task. The
        call releases its own resources in ``run()``; when that returns it leaves ``calls``."""
        self.calls[call.id] = call
        self._idle.clear()
        info = call.info
        parties = {"from_uri": info.from_uri, "to_uri": info.to_uri, "profile": info.profile_name}
        self._lifecycle("call.offered", call.id, direction=info.direction, leg="webrtc", **parties)
        self._lifecycle(
            "call.answered", call.id, codec=info.codec, session_format=info.session_format
        )
        self._spawn(self._run_adopted(call), f"call {call.id}")

    async def _run_adopted(self, call: Call) -> None:
        try:
            await call.run()
        finally:
            self._lifecycle(
                "call.ended", call.id, reason=call.info.end_reason, sip_status=call.info.sip_status
            )
            self.calls.pop(call.id, None)
            if not self.calls and not self._setting_up:
                self._idle.set()

    def hangup(self, call_id: str, reason: str = "local-hangup") -> bool:
        """End a live call (BYE); False if there is no such live call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        call.end(reason)
        return True

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _agent_for(self, profile: AgentProfile, codec_name: str) -> AgentSession:
        c = self.settings.calls
        return AgentSession(
            profile,
            preferred=_session_format(profile, codec_name),
            ready_timeout_s=c.session_ready_timeout_s,
            reconnect_window_s=c.upstream_reconnect_window_s,
            environ=self.environ,
        )

    async def _open_endpoint(self, attempts: int = 8) -> RtpEndpoint:
        """Bind an RTP/RTCP port pair. A pair held by another process is skipped (it returns
        to the pool) and the next one is tried. Raises :class:`PortsExhausted`."""
        last: OSError | None = None
        for _ in range(max(1, min(attempts, self.ports.capacity))):
            port = self.ports.acquire()
            endpoint = RtpEndpoint(self.settings.calls.rtp_host, port, on_rtp=lambda _p: None)
            try:
                await endpoint.open()
            except OSError as exc:
                last = exc
                self.ports.release(port)
                log.warning("RTP port %d cannot be bound (%s); trying the next pair", port, exc)
                continue
            return endpoint
        raise PortsExhausted(f"no RTP port pair could be bound: {last}")

    @property
    def advertise(self) -> str:
        c = self.settings.calls
        return c.rtp_advertise or c.rtp_host

    def _new_id(self) -> str:
        return "call_" + secrets.token_hex(10)

    def _admission(self) -> str | None:
        """Why a new call cannot be taken now (None: it can)."""
        if self.draining:
            return "draining"
        if len(self.calls) + self._setting_up >= self.settings.calls.max_calls:
            return "max-calls"
        return None

    # -- inbound -------------------------------------------------------------------------

    def on_refused(self, event: CallRefused) -> None:
        """An INVITE the SIP core refused before offering it (trunk policy, draining): no
        agent session was opened, but the attempt is recorded (who knocked, and the answer)."""
        call_id = self._new_id()
        self.store.call_offered(
            call_id,
            direction="inbound",
            leg="sip",
            from_uri=str(event.caller.uri),
            to_uri=event.request_uri,
        )
        self.store.update_call(
            call_id,
            extra={
                "sip_call_id": event.call_id,
                "source": f"{event.source.host}:{event.source.port}",
            },
        )
        reason = "refused-by-policy" if event.status == 403 else event.reason
        self.store.call_ended(call_id, reason=reason, sip_status=event.status)
        self._lifecycle("call.ended", call_id, reason=reason, sip_status=event.status)

    async def on_offer(self, sip_call: SipCall) -> Decision:
        offer = sip_call.offer
        assert offer is not None
        why = self._admission()
        if why is not None:
            log.warning("rejecting call %s: %s", sip_call.id, why)
            call_id = self._new_id()
            self.store.call_offered(
                call_id,
                direction="inbound",
                leg="sip",
                from_uri=str(offer.caller.uri),
                to_uri=offer.request_uri,
                trunk=offer.trunk,
            )
            self.store.call_ended(call_id, reason=why, sip_status=503)
            self._lifecycle("call.ended", call_id, reason=why, sip_status=503)
            return Reject(
                503,
                "Draining" if why == "draining" else "Too Many Calls",
                retry_after=self.settings.calls.retry_after_s,
            )
        self._setting_up += 1
        self._idle.clear()
        try:
            return await self._setup_inbound(sip_call)
        finally:
            self._setting_up -= 1
            if not self.calls and not self._setting_up:
                self._idle.set()

    async def _setup_inbound(self, sip_call: SipCall) -> Decision:
        offer = sip_call.offer
        assert offer is not None
        call_id = self._new_id()
        from_uri, to_uri = str(offer.caller.uri), offer.request_uri
        profile_name, profile = self.settings.route(
            trunk=offer.trunk, to_uri=to_uri, from_uri=from_uri
        )
        self.store.call_offered(
            call_id,
            direction="inbound",
            leg="sip",
            from_uri=from_uri,
            to_uri=to_uri,
            trunk=offer.trunk,
            profile=profile_name,
        )
        self._lifecycle(
            "call.offered",
            call_id,
            direction="inbound",
            leg="sip",
            from_uri=from_uri,
            to_uri=to_uri,
            profile=profile_name,
        )
        self.store.update_call(
            call_id,
            extra={
                "sip_call_id": sip_call.id,
                "source": f"{offer.source.host}:{offer.source.port}",
            },
        )

        def fail(status: int, reason: str, log_reason: str) -> Reject:
            self.store.log_event(call_id, "error", {"source": "setup", "message": log_reason})
            self.store.call_ended(call_id, reason=reason, sip_status=status)
            self._lifecycle("call.ended", call_id, reason=reason, sip_status=status)
            retry = self.settings.calls.retry_after_s if status == 503 else None
            return Reject(status, log_reason, retry_after=retry)

        try:
            desc = SessionDescription.parse(offer.sdp.decode("utf-8", "replace"))
        except SdpError as exc:
            return fail(400, "bad-sdp", f"Bad SDP: {exc}")
        try:
            endpoint = await self._open_endpoint()
        except PortsExhausted:
            return fail(503, "no-rtp-ports", "No RTP ports available")
        port = endpoint.port
        started = False
        try:
            try:
                answer = negotiate(desc, self.settings.sip.codecs, self.advertise, port)
                codec = codec_for(
                    answer.media.codec.name,
                    answer.media.codec.clock_rate,
                    answer.media.codec.channels,
                )
            except (NegotiationError, UnsupportedCodecError) as exc:
                return fail(488, "no-common-codec", f"Not Acceptable Here: {exc}")

            sip_call.ring(180)
            if self.incoming is not None:
                verdict = await self.incoming(call_id, sip_call, profile_name, profile)
                if isinstance(verdict, Reject):
                    return fail(verdict.status, "rejected", verdict.reason or "Rejected")
                profile_name, profile = verdict
                self.store.update_call(call_id, profile=profile_name)
            agent = self._agent_for(profile, answer.media.codec.name)
            try:
                await agent.open()
            except UpstreamError as exc:
                log.warning("call %s: agent unavailable: %s", call_id, exc)
                return fail(503, "upstream-unavailable", f"Agent Unavailable ({exc})"[:120])
            if sip_call.ended is not None:  # the caller gave up while we were connecting
                await agent.close()
                self.store.call_ended(
                    call_id, reason=sip_call.ended.reason.value, sip_status=sip_call.ended.status
                )
                return None
            await self._start_call(
                call_id,
                sip_call,
                agent,
                profile,
                profile_name,
                answer.media,
                codec,
                port,
                direction="inbound",
                from_uri=from_uri,
                to_uri=to_uri,
                trunk=offer.trunk,
                endpoint=endpoint,
            )
            started = True
            return Answer(str(answer.sdp).encode())
        finally:
            if not started:  # every refusal after the bind gives the port pair back
                endpoint.close()
                self.ports.release(port)

    async def _start_call(
        self,
        call_id: str,
        sip_call: SipCall,
        agent: AgentSession,
        profile: AgentProfile,
        profile_name: str,
        neg: Negotiated,
        codec: AudioCodec,
        port: int,
        *,
        direction: str,
        from_uri: str,
        to_uri: str,
        trunk: str | None,
        endpoint: RtpEndpoint,
    ) -> Call:
        loop = asyncio.get_running_loop()
        info = CallInfo(
            call_id=call_id,
            direction=direction,
            from_uri=from_uri,
            to_uri=to_uri,
            profile_name=profile_name,
            trunk=trunk,
            codec=neg.codec.name,
            session_format=agent.format.value,
            offered_at=time.time(),
            answered_at=time.time(),
        )
        holder: list[Call] = []
        media = SipMedia(
            codec,
            payload_type=neg.codec.payload_type,
            session_format=agent.format,
            send_rtp=endpoint.send,
            to_agent=agent.send_audio,
            send_rtcp=endpoint.send_rtcp,
            cname=f"rtbridge@{self.advertise}",
            on_dtmf=lambda d: holder[0].on_dtmf(d) if holder else None,
            on_playback=lambda e: holder[0].on_playback(e) if holder else None,
            dtmf_payload_type=neg.telephone_event.payload_type if neg.telephone_event else None,
        )

        def on_rtp(packet: RtpPacket) -> None:
            media.on_rtp(packet, loop.time())

        endpoint.on_rtp = on_rtp
        endpoint.on_rtcp = lambda data: media.on_rtcp(data, loop.time())
        if neg.remote is not None:
            endpoint.set_remote((neg.remote.address, neg.remote.port))
        call = Call(
            info,
            sip=sip_call,
            agent=agent,
            endpoint=endpoint,
            media=media,
            profile=profile,
            store=self.store,
            ticker=self.ticker,
            rtp_timeout_s=self.settings.calls.rtp_timeout_s,
            on_released=self._released,
            time_fn=loop.time,
        )
        holder.append(call)
        self.calls[call_id] = call
        self._idle.clear()
        self.store.update_call(
            call_id,
            state="answered",
            answered_at=info.answered_at,
            codec=neg.codec.name,
            session_format=agent.format.value,
        )
        self._lifecycle(
            "call.answered", call_id, codec=neg.codec.name, session_format=agent.format.value
        )
        self.store.log_event(
            call_id,
            "answered",
            {
                "codec": neg.codec.name,
                "session_format": agent.format.value,
                "pass_through": media.pass_through,
            },
        )
        if profile.greeting:
            with contextlib.suppress(UpstreamError):
                await agent.send(
                    {
                        "type": "response.create",
                        "response": {"instructions": f"Say: {profile.greeting}"},
                    }
                )
        self._spawn(call.run(), f"call {call_id}")
        return call

    # -- outbound ------------------------------------------------------------------------

    async def originate(
        self,
        target: str,
        *,
        profile_name: str = "default",
        trunk: str | None = None,
        caller: str | None = None,
    ) -> str:
        """Place a call; returns its id at once. ``outcomes[id]`` resolves when it connects
        or fails. Raises :class:`CallNotAllowed` (allowlist, draining, limits)."""
        profile = self.settings.profiles.get(profile_name)
        if profile is None:
            raise CallNotAllowed(f"unknown profile {profile_name!r}")
        if not profile.may_dial(target):
            raise CallNotAllowed(
                f"target {target!r} is not in profile {profile_name!r}'s dial_targets allowlist"
            )
        if self.sip is None:
            raise CallNotAllowed("SIP is not enabled (no --sip-port)")
        why = self._admission()
        if why is not None:
            raise CallNotAllowed(f"cannot place calls now: {why}")
        try:
            endpoint = await self._open_endpoint()
        except PortsExhausted as exc:
            raise CallNotAllowed(str(exc)) from exc
        port = endpoint.port
        call_id = self._new_id()
        offer = make_offer(self.advertise, port, self.settings.sip.codecs)
        self.store.call_offered(
            call_id,
            direction="outbound",
            leg="sip",
            from_uri=caller,
            to_uri=target,
            trunk=trunk,
            profile=profile_name,
        )
        try:
            sip_call = await self.sip.invite(
                target, str(offer).encode(), trunk=trunk, caller=caller
            )
        except Exception as exc:
            endpoint.close()
            self.ports.release(port)
            self.store.call_ended(call_id, reason="failed")
            raise CallNotAllowed(f"cannot place the call: {exc}") from exc
        self._lifecycle(
            "call.offered",
            call_id,
            direction="outbound",
            leg="sip",
            from_uri=caller,
            to_uri=target,
            profile=profile_name,
        )
        self.store.update_call(call_id, extra={"sip_call_id": sip_call.id})
        future: asyncio.Future[OutboundResult] = asyncio.get_running_loop().create_future()
        self.outcomes[call_id] = future
        self._setting_up += 1
        self._idle.clear()
        dial = _Dial(
            call_id,
            sip_call,
            offer,
            endpoint,
            port,
            profile,
            profile_name,
            target,
            trunk,
            caller,
            future,
        )
        self._spawn(self._outbound(dial), f"outbound {call_id}")
        return call_id

    async def _outbound(self, d: _Dial) -> None:
        call_id, sip_call, endpoint, port, future = (
            d.call_id,
            d.sip_call,
            d.endpoint,
            d.port,
            d.future,
        )
        started = False
        try:
            async for event in sip_call.events():
                if isinstance(event, CallRinging):
                    self.store.log_event(call_id, "ringing", {"status": event.status})
                elif isinstance(event, CallAnswered):
                    started = await self._outbound_answered(d, event)
                    return
                elif isinstance(event, CallEnded):
                    outcome = outbound_outcome(event.status, event.reason.value)
                    self.store.call_ended(call_id, reason=outcome, sip_status=event.status)
                    self._lifecycle("call.ended", call_id, reason=outcome, sip_status=event.status)
                    future.set_result(OutboundResult(call_id, outcome, event.status))
                    return
        finally:
            self._setting_up -= 1
            if not started:
                endpoint.close()
                self.ports.release(port)
            if not self.calls and not self._setting_up:
                self._idle.set()
            if not future.done():
                future.set_result(OutboundResult(call_id, "failed", None))

    async def _outbound_answered(self, d: _Dial, event: CallAnswered) -> bool:
        call_id, sip_call, future = d.call_id, d.sip_call, d.future

        def failed(reason: str, message: str) -> bool:
            sip_call.hangup()
            self.store.log_event(call_id, "error", {"source": "setup", "message": message})
            self.store.call_ended(call_id, reason=reason, sip_status=200)
            future.set_result(OutboundResult(call_id, reason, 200))
            return False

        try:
            neg = parse_answer(
                d.offer, SessionDescription.parse(event.sdp.decode("utf-8", "replace"))
            )
            codec = codec_for(neg.codec.name, neg.codec.clock_rate, neg.codec.channels)
        except (SdpError, UnsupportedCodecError) as exc:
            return failed("bad-answer", f"unusable SDP answer: {exc}")
        agent = self._agent_for(d.profile, neg.codec.name)
        try:
            await agent.open()
        except UpstreamError as exc:
            return failed("upstream-unavailable", str(exc))
        await self._start_call(
            call_id,
            sip_call,
            agent,
            d.profile,
            d.profile_name,
            neg,
            codec,
            d.port,
            direction="outbound",
            from_uri=d.caller or "",
            to_uri=d.target,
            trunk=d.trunk,
            endpoint=d.endpoint,
        )
        future.set_result(OutboundResult(call_id, "answered", 200))
        return True
