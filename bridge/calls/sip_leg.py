"""Setting up SIP calls: inbound INVITEs and outbound calls, up to a live :class:`Call`.

Inbound (:class:`SipLeg` is the SIP driver's :class:`~sip.driver.CallHandler`): admission by the
call manager (draining, ``max_calls``, free RTP ports: 503 otherwise), routing to an agent
profile, SDP negotiation (one codec plus telephone-event: 488 when none fits; a hostname in
``c=`` is resolved once, here, or refused with 488 by setting), 180 Ringing while
the application decides (``realtime.call.incoming`` webhooks, through :attr:`SipLeg.incoming`)
and the agent session opens and is configured (``session.updated``), then 200 with our SDP. An
unreachable or refusing upstream answers 503 with a generic reason: a caller never rings
forever.

Outbound (:meth:`SipLeg.originate`, used by ``rtbridge call`` and the control plane): the
target must pass the profile's destination policy and caps (``manager.destinations``; toll
fraud is the classic loss of an exposed SIP service), INVITE through a trunk (digest auth by
the driver), 18x early media not sent to the agent, the agent session opened on 200; busy,
no-answer, rejected and failed are recorded with their SIP status. A ringing outbound call can
be hung up (CANCEL).

Every attempt that reaches the leg, whatever happens to it, has a record and an event log
(:mod:`bridge.records`) and ends with ``call.ended`` on the lifecycle stream. What the SIP stack
refuses before that (strangers, rates, wrong digests, oversized messages, connection caps) is
no call: it arrives as :class:`~sip.events.SecurityNotice` and goes to the security event log
(:meth:`SipLeg.on_security`), counted, never stored as a call. So does RTP from an address that
is not the call's peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from bridge.calls.agent_session import AgentSession
from bridge.calls.call import Call
from bridge.calls.end import EndReason
from bridge.calls.identity import identity, render
from bridge.calls.info import CallInfo
from bridge.calls.manager import CallManager, SetupSlot
from bridge.calls.ringback import Ringback
from bridge.calls.rtp_endpoint import RtpEndpoint
from bridge.calls.sip_media import SipMedia, carried_codecs, carries, pass_through_format
from bridge.calls.watchdog import Watchdog
from bridge.config import AgentProfile, EarlyMedia, SessionFormat
from bridge.destinations import Purpose
from bridge.errors import CallNotAllowed, DestinationRefused, PortsExhausted, UpstreamError
from bridge.logs import log_incident
from bridge.realtime.formats import AudioFormat
from bridge.security import SecurityKind
from bridge.tasks import cancel_and_wait
from media.codecs import codec_for
from media.codecs.base import AudioCodec, UnsupportedCodecError
from media.recording import RecordingMode
from media.rtp import RtpPacket
from media.srtp import SrtpSession
from sip.driver import Answer, Decision, Reject, SipCall, SipEndpoint
from sip.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRefused,
    CallRinging,
    SecurityNotice,
)
from sip.offer_answer import Answer as SdpAnswer
from sip.offer_answer import (
    MediaPrefs,
    Negotiated,
    NegotiationError,
    make_offer,
    negotiate,
    parse_answer,
    read_answer,
)
from sip.sdes import Encryption
from sip.sdp import SdpError, SessionDescription

__all__ = ["IncomingHook", "OutboundResult", "SipLeg", "outbound_outcome"]

log = logging.getLogger(__name__)

IncomingHook = Callable[
    [str, SipCall, str, AgentProfile], Awaitable[tuple[str, AgentProfile] | Reject]
]


@dataclass(frozen=True, slots=True)
class OutboundResult:
    call_id: str
    outcome: str  # answered | busy | no-answer | rejected | failed | upstream-unavailable | ...
    sip_status: int | None


def outbound_outcome(status: int | None, reason: str) -> EndReason:
    """How an unanswered outbound call is recorded."""
    if status in (486, 600):
        return EndReason.BUSY
    if status in (408, 480, 487) or reason == "timeout":
        return EndReason.NO_ANSWER
    if status is not None and status in (403, 404, 603, 604, 606):
        return EndReason.REJECTED
    return EndReason.FAILED


def _session_format(profile: AgentProfile, codec_name: str) -> AudioFormat:
    """``auto``: the trunk's G.711 when it speaks one, else PCM16. A G.711 format the profile
    names is kept for either law (translated code by code), PCM16 for any other codec."""
    if profile.session_format is SessionFormat.AUTO:
        return pass_through_format(codec_name) or AudioFormat.PCM16
    named = AudioFormat(profile.session_format.value)
    return named if carries(named, codec_name) else AudioFormat.PCM16


def _midcall(prefs: MediaPrefs, agent: AgentSession) -> MediaPrefs:
    """What the SIP core answers re-offers with once the call runs: the codec in use first
    (the core keeps it while an offer has it), then any configured codec the agent session
    can carry, so a carrier's codec change is followed rather than refused (RFC 3264 §8.3.2)."""
    return replace(prefs, codecs=carried_codecs(agent.format, prefs.codecs))


async def _open_unless_gone(agent: AgentSession, sip_call: SipCall) -> bool:
    """Open the agent session unless the caller hangs up (CANCEL) first; False then, with the
    session closed or never opened. Raises the :class:`UpstreamError` of a failed open."""
    opening = asyncio.ensure_future(agent.open())
    gone = asyncio.ensure_future(sip_call.wait_ended())
    try:
        await asyncio.wait({opening, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not opening.done():
        try:
            await cancel_and_wait(opening, expected=(UpstreamError,))
        finally:
            await agent.close()
        return False
    opening.result()
    if sip_call.ended is not None:
        await agent.close()
        return False
    return True


def _settle(future: asyncio.Future[OutboundResult], result: OutboundResult) -> None:
    """Resolve an outbound call's outcome once; one its waiter cancelled (a timeout) stays so:
    setting it raised, and the call's set-up failed there (a live call lost its RTP ports)."""
    if not future.done():
        future.set_result(result)


@dataclass(frozen=True, slots=True)
class _Setup:
    """Who an inbound call is, between its INVITE and its start."""

    call_id: str
    profile: AgentProfile
    profile_name: str
    from_uri: str
    to_uri: str
    trunk: str | None


@dataclass(slots=True)
class _Dial:
    """An outbound call between INVITE and answer: its SIP events arrive here until the
    :class:`Call` takes over."""

    call_id: str
    sip_call: SipCall
    offer: SessionDescription
    endpoint: RtpEndpoint
    profile: AgentProfile
    profile_name: str
    target: str
    trunk: str | None
    caller: str | None
    prefs: MediaPrefs
    future: asyncio.Future[OutboundResult]
    settled: asyncio.Future[CallAnswered | CallEnded]
    log_event: Callable[[str, dict[str, object]], None]
    later: list[CallEvent] = field(default_factory=list)  # after the answer, for the Call
    hung_up: EndReason | None = None

    def on_event(self, event: CallEvent) -> None:
        if self.settled.done():
            self.later.append(event)
        elif isinstance(event, CallRinging):
            self.log_event("ringing", {"status": event.status})
        elif isinstance(event, CallAnswered | CallEnded):
            self.settled.set_result(event)

    def hang_up(self, reason: EndReason) -> None:
        if self.hung_up is None:
            self.hung_up = reason
            self.sip_call.hangup()  # CANCEL while ringing; BYE once answered


class SipLeg:
    """SIP set-up for one :class:`CallManager` (see the module docstring)."""

    def __init__(self, manager: CallManager) -> None:
        self.manager = manager
        self.settings = manager.settings
        self.store = manager.store
        self.endpoint: SipEndpoint | None = None
        #: the control plane's say on inbound calls (``realtime.call.incoming`` webhooks): called
        #: after 180 Ringing with the call id, the SIP call and the routed profile; returns the
        #: profile to answer with, or a :class:`~sip.driver.Reject`
        self.incoming: IncomingHook | None = None
        #: outbound calls' outcomes, resolved when they connect or fail
        self.outcomes: dict[str, asyncio.Future[OutboundResult]] = {}
        #: inbound set-ups stopped from here (the API's hang-up, a drain's limit, shutdown):
        #: the reason their record ends with, whatever the SIP side then says
        self._stopped: dict[str, EndReason] = {}

    def _agent_for(self, profile: AgentProfile, codec_name: str) -> AgentSession:
        c = self.settings.calls
        return AgentSession(
            profile,
            preferred=_session_format(profile, codec_name),
            ready_timeout_s=c.session_ready_timeout_s,
            reconnect_window_s=c.upstream_reconnect_window_s,
            environ=self.manager.environ,
            clock=self.manager.clock,
        )

    def _ended(
        self, call_id: str, reason: EndReason, status: int | None, message: str | None = None
    ) -> None:
        """An attempt that did not become a call: recorded and published, once."""
        reason = self._stopped.pop(call_id, reason)
        if message is not None:
            self.store.log_event(call_id, "error", {"source": "setup", "message": message})
        self.store.call_ended(call_id, reason=reason.value, sip_status=status)
        self.manager.publish("call.ended", call_id, reason=reason.value, sip_status=status)

    # -- inbound -------------------------------------------------------------------------

    def on_refused(self, event: CallRefused) -> None:
        """An INVITE the SIP core refused before offering it because rtbridge is draining: no
        agent session was opened, but the attempt is recorded (who called, and the answer)."""
        call_id = self.manager.new_id()
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
        self._ended(call_id, EndReason.DRAINING, event.status)

    def on_security(self, notice: SecurityNotice) -> None:
        """What the SIP stack refused or caught: a security event (logged, counted by kind,
        listed by the API and the dashboard), never a call record."""
        peer = notice.source
        self.manager.security.record(
            notice.kind.value,
            source=f"sip:{peer.transport}:{peer.host}:{peer.port}",
            detail=notice.detail,
            call_id=notice.call_id,
        )

    async def on_offer(self, sip_call: SipCall) -> Decision:
        offer = sip_call.offer
        assert offer is not None
        why = self.manager.admission()
        if why is not None:
            log.warning("rejecting call %s: %s", sip_call.id, why)
            call_id = self.manager.new_id()
            self.store.call_offered(
                call_id,
                direction="inbound",
                leg="sip",
                from_uri=str(offer.caller.uri),
                to_uri=offer.request_uri,
                trunk=offer.trunk,
            )
            self._ended(call_id, why, 503)
            return Reject(
                503,
                "Draining" if why is EndReason.DRAINING else "Too Many Calls",
                retry_after=self.settings.calls.retry_after_s,
            )
        with self.manager.setup_slot():
            return await self._setup_inbound(sip_call)

    async def _setup_inbound(self, sip_call: SipCall) -> Decision:
        offer = sip_call.offer
        assert offer is not None
        manager = self.manager
        call_id = manager.new_id()
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
        manager.publish(
            "call.offered",
            call_id,
            direction="inbound",
            leg="sip",
            from_uri=from_uri,
            to_uri=to_uri,
            profile=profile_name,
        )
        who = identity(offer, profile.sip_headers)
        self.store.update_call(
            call_id,
            extra={
                "sip_call_id": sip_call.id,
                "source": f"{offer.source.host}:{offer.source.port}",
                "identity": who,
            },
        )

        ringback: Ringback | None = None

        def ringback_done() -> None:  # stopped at once, before any answer or record
            played = ringback.stop(manager.clock.now()) if ringback is not None else None
            if played is not None:
                self.store.log_event(call_id, "early-media", played)

        def fail(status: int, reason: EndReason, message: str, phrase: str | None = None) -> Reject:
            ringback_done()
            self._ended(call_id, reason, status, message)
            retry = self.settings.calls.retry_after_s if status == 503 else None
            return Reject(status, phrase or message, retry_after=retry)

        delayed = not offer.sdp.strip()  # RFC 3261 §13.2.1: we offer in the 2xx
        desc = None
        if not delayed:
            try:
                desc = SessionDescription.parse(offer.sdp.decode("utf-8", "replace"))
            except SdpError as exc:
                return fail(400, EndReason.BAD_SDP, f"Bad SDP: {exc}")
        try:
            endpoint = await manager.open_endpoint()
        except PortsExhausted:
            return fail(503, EndReason.NO_RTP_PORTS, "No RTP ports available")
        started = False
        codecs = self.settings.sip.codecs
        encryption = self._encryption(offer.trunk)
        prefs = MediaPrefs(tuple(codecs), encryption, address=manager.advertise, port=endpoint.port)
        agent: AgentSession | None = None

        def stop(reason: EndReason) -> None:  # the API's hang-up, a drain's limit, shutdown
            if call_id not in self._stopped:
                self._stopped[call_id] = reason
                sip_call.hangup()  # declined (480), or BYE once answered: the set-up ends

        manager.cancellable(call_id, stop)
        try:
            if desc is None:
                our_offer = make_offer(
                    manager.advertise, endpoint.port, codecs, encryption=encryption
                )
                first = our_offer.media[0].codec(our_offer.media[0].payload_types[0])
                codec_name = first.encoding if first is not None else codecs[0]
            else:
                try:
                    answer = negotiate(
                        desc, codecs, manager.advertise, endpoint.port, encryption=encryption
                    )
                    codec = codec_for(
                        answer.media.codec.name,
                        answer.media.codec.clock_rate,
                        answer.media.codec.channels,
                    )
                except (NegotiationError, UnsupportedCodecError) as exc:
                    why = (
                        EndReason.BAD_OFFER  # its media address (RFC 3261 §20.43 warn-code 301)
                        if getattr(exc, "warning", None) == 301
                        else EndReason.NO_COMMON_CODEC
                    )
                    return fail(488, why, f"Not Acceptable Here: {exc}")
                codec_name = answer.media.codec.name
                remote = await self._remote(answer.media)
                if remote is False:
                    return fail(
                        488,
                        EndReason.BAD_OFFER,
                        "the SDP's media address is refused or does not resolve",
                        "Not Acceptable Here (media address)",
                    )

            if desc is not None and remote and profile.early_media is EarlyMedia.RINGBACK:
                ringback = self._ring_back(sip_call, profile, answer, endpoint, remote)
            else:
                sip_call.ring(180)
            if self.incoming is not None:
                verdict = await self.incoming(call_id, sip_call, profile_name, profile)
                if isinstance(verdict, Reject):
                    reason = (
                        EndReason.CANCELLED if sip_call.ended is not None else EndReason.REJECTED
                    )
                    return fail(verdict.status, reason, verdict.reason or "Rejected")
                profile_name, profile = verdict
                self.store.update_call(call_id, profile=profile_name)
            if profile.instructions:  # who is calling, for the agent ({caller}, ...)
                profile = profile.model_copy(
                    update={"instructions": render(profile.instructions, who)}
                )
            agent = self._agent_for(profile, codec_name)
            try:
                opened = await _open_unless_gone(agent, sip_call)
            except UpstreamError as exc:  # the peer gets a reference, never the upstream's words
                ref = log_incident(log, f"call {call_id}: agent unavailable", exc)
                return fail(
                    503,
                    EndReason.UPSTREAM_UNAVAILABLE,
                    f"agent unavailable ({ref})",
                    f"Agent Unavailable ({ref})",
                )
            ringback_done()
            if not opened:  # the caller gave up (or was hung up on) while we were connecting
                status = sip_call.ended.status if sip_call.ended is not None else None
                self._ended(call_id, EndReason.CANCELLED, status)
                return None
            setup = _Setup(call_id, profile, profile_name, from_uri, to_uri, offer.trunk)
            if desc is None:
                started = await self._delayed_offer(
                    sip_call, agent, setup, our_offer, prefs, endpoint
                )
                return None
            assert remote is not False  # refused above
            call = self._start_call(
                call_id,
                sip_call,
                agent,
                profile,
                profile_name,
                answer.media,
                codec,
                direction="inbound",
                from_uri=from_uri,
                to_uri=to_uri,
                trunk=offer.trunk,
                endpoint=endpoint,
                remote=remote,
            )
            started = True
            if profile.early_media is EarlyMedia.GREETING:  # RFC 3960: 183 + SDP, then 200
                call.media.prove()
                sip_call.ring(183, sdp=str(answer.sdp).encode())
                self.store.log_event(
                    call_id, "early-media", {"mode": "greeting", "seconds": profile.early_media_s}
                )
                await asyncio.sleep(profile.early_media_s)
                if sip_call.ended is not None:
                    return None
            return Answer(str(answer.sdp).encode(), _midcall(prefs, agent))
        except Exception:
            log.exception("call %s: set-up failed", call_id)
            return fail(500, EndReason.INTERNAL_ERROR, "set-up failed", "Server Internal Error")
        except asyncio.CancelledError:  # the SIP endpoint closing under a set-up (shutdown)
            if not started:
                self._ended(call_id, self._stopped.get(call_id, EndReason.SHUTDOWN), None)
                if agent is not None:
                    with contextlib.suppress(Exception):
                        await agent.close()
            raise
        finally:
            ringback_done()
            manager.set_up_done(call_id)
            self._stopped.pop(call_id, None)
            if not started:  # every refusal after the bind gives the port pair back
                manager.close_endpoint(endpoint)

    def _ring_back(
        self,
        sip_call: SipCall,
        profile: AgentProfile,
        answer: SdpAnswer,
        endpoint: RtpEndpoint,
        remote: tuple[str, int],
    ) -> Ringback:
        """183 with our answer, and the profile's ringback tone until the agent is ready
        (:mod:`bridge.calls.ringback`): to the SDP's address, protected when SRTP was
        negotiated, as the call's own media will be."""
        media = answer.media
        endpoint.set_remote(remote)
        if media.srtp is not None:
            endpoint.srtp = SrtpSession(media.srtp.suite, media.srtp.local, media.srtp.remote)
        codec = codec_for(media.codec.name, media.codec.clock_rate, media.codec.channels)
        ringback = Ringback(
            profile.ringback_tone,
            codec,
            media.codec.payload_type,
            endpoint.send,
            gone=lambda: sip_call.ended is not None,
        )
        sip_call.ring(183, sdp=str(answer.sdp).encode())
        ringback.play(self.manager.ticker, self.manager.clock.now())
        return ringback

    async def _delayed_offer(
        self,
        sip_call: SipCall,
        agent: AgentSession,
        setup: _Setup,
        our_offer: SessionDescription,
        prefs: MediaPrefs,
        endpoint: RtpEndpoint,
    ) -> bool:
        """An INVITE without SDP (RFC 3261 §13.2.1): our offer goes in the 200, the caller's
        answer comes in its ACK. The call starts then; a missing or unusable answer ends it
        with BYE and a Reason (488). True when the call started."""
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[CallEvent] = loop.create_future()
        later: list[CallEvent] = []

        def on_event(event: CallEvent) -> None:
            if settled.done():
                later.append(event)
            elif isinstance(event, CallAnswered | CallEnded):
                settled.set_result(event)

        sip_call.listen(on_event)
        sip_call.answer(str(our_offer).encode(), prefs)
        event = await settled
        call_id = setup.call_id
        if isinstance(event, CallEnded):
            await agent.close()
            self._ended(call_id, EndReason.from_sip(event.reason), event.status)
            return False
        assert isinstance(event, CallAnswered)
        try:
            if not event.ack_sdp:
                raise SdpError("the ACK carried no SDP answer")
            neg = parse_answer(
                our_offer, SessionDescription.parse(event.ack_sdp.decode("utf-8", "replace"))
            )
            codec = codec_for(neg.codec.name, neg.codec.clock_rate, neg.codec.channels)
            remote = await self._remote(neg)
            if remote is False:
                raise SdpError("the answer's media address is refused or does not resolve")
        except (SdpError, NegotiationError, UnsupportedCodecError) as exc:
            sip_call.hangup(cause=(488, f"bad answer in ACK: {exc}"))
            await agent.close()
            self._ended(call_id, EndReason.BAD_ANSWER, 488, f"delayed offer: {exc}")
            return False
        self._start_call(
            call_id,
            sip_call,
            agent,
            setup.profile,
            setup.profile_name,
            neg,
            codec,
            direction="inbound",
            from_uri=setup.from_uri,
            to_uri=setup.to_uri,
            trunk=setup.trunk,
            endpoint=endpoint,
            remote=remote,
            early=[event, *later],
        )
        sip_call.set_media(_midcall(prefs, agent))
        return True

    def _encryption(self, trunk: str | None) -> Encryption:
        """The SRTP policy of a call on ``trunk`` (the SIP endpoint's settings)."""
        if self.endpoint is None:
            return Encryption.OFF
        return Encryption(self.endpoint.settings.encryption_for(trunk))

    async def _remote(self, neg: Negotiated) -> tuple[str, int] | Literal[False] | None:
        """Where the call's media goes: the SDP's address, a hostname resolved once here (never
        per packet); None with no address yet (a held offer); False when refused."""
        if neg.remote is None:
            return None
        address = await self.manager.media_address(neg.remote.address)
        if address is None:
            return False
        return (address, neg.remote.port)

    def _start_call(
        self,
        call_id: str,
        sip_call: SipCall,
        agent: AgentSession,
        profile: AgentProfile,
        profile_name: str,
        neg: Negotiated,
        codec: AudioCodec,
        *,
        direction: str,
        from_uri: str,
        to_uri: str,
        trunk: str | None,
        endpoint: RtpEndpoint,
        remote: tuple[str, int] | None,
        early: list[CallEvent] | None = None,
    ) -> Call:
        manager = self.manager
        clock = manager.clock
        now = clock.now
        info = CallInfo(
            call_id=call_id,
            direction=direction,
            from_uri=from_uri,
            to_uri=to_uri,
            profile_name=profile_name,
            trunk=trunk,
            codec=neg.codec.name,
            session_format=agent.format.value,
            offered_at=clock.wall(),
            answered_at=clock.wall(),
        )
        holder: list[Call] = []
        media = SipMedia(
            codec,
            payload_type=neg.codec.payload_type,
            session_format=agent.format,
            send_rtp=endpoint.send,
            to_agent=agent.send_audio,
            send_rtcp=endpoint.send_rtcp,
            cname=f"rtbridge@{manager.advertise}",
            on_dtmf=lambda d: holder[0].on_dtmf(d) if holder else None,
            on_playback=lambda e: holder[0].on_playback(e) if holder else None,
            dtmf_payload_type=neg.telephone_event.payload_type if neg.telephone_event else None,
            proven=direction == "outbound",  # an inbound caller proves itself by its ACK or RTP
        )
        watchdog = Watchdog(
            started_at=now(),
            max_duration_s=profile.max_duration_s,
            media_timeout_s=self.settings.calls.rtp_timeout_s,
            last_media=lambda: media.stats.last_rtp_at,
            max_hold_s=self.settings.calls.max_hold_s,
        )
        if remote is not None:
            endpoint.set_remote(remote)
        if neg.srtp is not None and endpoint.srtp is None:  # SDES keys (RFC 4568); ringback
            # may have set them already: its session goes on (replay windows, rollover counts)
            endpoint.srtp = SrtpSession(neg.srtp.suite, neg.srtp.local, neg.srtp.remote)
        security = manager.security

        def on_foreign(addr: tuple[str, int]) -> None:
            security.record(
                SecurityKind.FOREIGN_RTP,
                source=f"rtp:{addr[0]}:{addr[1]}",
                detail=f"RTP to port {endpoint.port} from an address that is not the call's "
                "peer: dropped",
                call_id=call_id,
            )

        endpoint.on_foreign = on_foreign
        call = Call(
            info,
            sip=sip_call,
            agent=agent,
            endpoint=endpoint,
            media=media,
            profile=profile,
            store=self.store,
            ticker=manager.ticker,
            watchdog=watchdog,
            clock=clock,
            transfers=manager.destinations.for_call(call_id, profile_name, profile),
            media_address=manager.media_address,
            security=manager.security,
            recordings=manager.recordings,
        )
        holder.append(call)

        def on_rtp(packet: RtpPacket) -> None:
            try:
                media.on_rtp(packet, now())
            except Exception as exc:
                call.crashed("caller audio", exc)

        def on_rtcp(data: bytes) -> None:
            try:
                media.on_rtcp(data, now())
            except Exception as exc:
                call.crashed("caller RTCP", exc)

        endpoint.on_rtp = on_rtp
        endpoint.on_rtcp = on_rtcp
        for event in early or ():
            call._on_sip_event(event)
        self.store.update_call(
            call_id,
            state="answered",
            answered_at=info.answered_at,
            codec=neg.codec.name,
            session_format=agent.format.value,
        )
        manager.publish(
            "call.answered", call_id, codec=neg.codec.name, session_format=agent.format.value
        )
        self.store.log_event(
            call_id,
            "answered",
            {
                "codec": neg.codec.name,
                "session_format": agent.format.value,
                "pass_through": media.pass_through,
                "srtp": neg.srtp.suite if neg.srtp is not None else None,
            },
        )
        call.speak_first()
        manager.own(call, endpoint=endpoint)
        return call

    # -- outbound ------------------------------------------------------------------------

    async def originate(
        self,
        target: str,
        *,
        profile_name: str = "default",
        trunk: str | None = None,
        caller: str | None = None,
        source: str | None = None,
        record: RecordingMode | None = None,
    ) -> str:
        """Place a call; returns its id at once (``record``: this call's recording, else the
        profile's). ``outcomes[id]`` resolves when it connects or fails. Raises
        :class:`~bridge.errors.DestinationRefused` (the profile's destination policy or caps;
        recorded as a security event from ``source``) or
        :class:`~bridge.errors.CallNotAllowed` (draining, limits)."""
        manager = self.manager
        profile = self.settings.profiles.get(profile_name)
        if profile is None:
            raise CallNotAllowed(f"unknown profile {profile_name!r}")
        if record is not None and record is not profile.record:
            profile = profile.model_copy(update={"record": record})
        verdict = manager.destinations.check(
            Purpose.DIAL, profile_name, profile, target, source=source
        )
        if not verdict or verdict.target is None:
            raise DestinationRefused(verdict)
        target = verdict.target  # as parsed and re-serialised: nothing else is sent
        if self.endpoint is None:
            raise CallNotAllowed("SIP is not enabled (no --sip-port)")
        why = manager.admission()
        if why is not None:
            raise CallNotAllowed(f"cannot place calls now: {why}")
        health = self.endpoint.trunk_health.get(trunk) if trunk is not None else None
        if health is not None and not health.up:  # fail fast: OPTIONS says it is unreachable
            raise CallNotAllowed(f"trunk {trunk!r} is down ({health.detail})")
        try:
            endpoint = await manager.open_endpoint()
        except PortsExhausted as exc:
            raise CallNotAllowed(str(exc)) from exc
        call_id = manager.new_id()
        codecs = self.settings.sip.codecs
        encryption = self._encryption(trunk)
        offer = make_offer(manager.advertise, endpoint.port, codecs, encryption=encryption)
        prefs = MediaPrefs(tuple(codecs), encryption, address=manager.advertise, port=endpoint.port)
        delayed = trunk is not None and self.endpoint.settings.trunk(trunk).delayed_offer
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
            sip_call = await self.endpoint.invite(
                target,
                b"" if delayed else str(offer).encode(),
                trunk=trunk,
                caller=caller,
                media=prefs,
            )
        except Exception as exc:
            manager.close_endpoint(endpoint)
            self.store.call_ended(call_id, reason=EndReason.FAILED.value)
            ref = log_incident(log, f"call {call_id}: cannot place the call", exc)
            raise CallNotAllowed(f"cannot place the call ({ref})") from exc
        loop = asyncio.get_running_loop()
        dial = _Dial(
            call_id=call_id,
            sip_call=sip_call,
            offer=offer,
            endpoint=endpoint,
            profile=profile,
            profile_name=profile_name,
            target=target,
            trunk=trunk,
            caller=caller,
            prefs=prefs,
            future=loop.create_future(),
            settled=loop.create_future(),
            log_event=lambda kind, data: self.store.log_event(call_id, kind, data),
        )
        sip_call.listen(dial.on_event)
        manager.publish(
            "call.offered",
            call_id,
            direction="outbound",
            leg="sip",
            from_uri=caller,
            to_uri=target,
            profile=profile_name,
        )
        self.store.update_call(call_id, extra={"sip_call_id": sip_call.id})
        self.outcomes[call_id] = dial.future
        manager.cancellable(call_id, dial.hang_up)
        manager.spawn(self._outbound(dial, manager.setup_slot()), f"outbound {call_id}")
        return call_id

    async def _outbound(self, d: _Dial, slot: SetupSlot) -> None:
        started = False
        with slot:
            try:
                event = await d.settled
                if isinstance(event, CallAnswered):
                    started = await self._outbound_answered(d, event)
                    return
                reason = d.hung_up or outbound_outcome(event.status, event.reason.value)
                self._ended(d.call_id, reason, event.status)
                _settle(d.future, OutboundResult(d.call_id, reason.value, event.status))
            finally:
                self.manager.set_up_done(d.call_id)
                if not started:
                    self.manager.close_endpoint(d.endpoint)
                _settle(d.future, OutboundResult(d.call_id, EndReason.FAILED.value, None))

    async def _outbound_answered(self, d: _Dial, event: CallAnswered) -> bool:
        call_id, sip_call, future = d.call_id, d.sip_call, d.future

        def failed(reason: EndReason, message: str) -> bool:
            sip_call.hangup()
            self._ended(call_id, reason, 200, message)
            _settle(future, OutboundResult(call_id, reason.value, 200))
            return False

        try:
            theirs = SessionDescription.parse(event.sdp.decode("utf-8", "replace"))
            if event.delayed_offer:  # the callee offered in its 2xx, the core answered in ACK
                ours = SessionDescription.parse(event.ack_sdp.decode("utf-8", "replace"))
                neg = read_answer(theirs, ours)
            else:
                neg = parse_answer(d.offer, theirs)
            codec = codec_for(neg.codec.name, neg.codec.clock_rate, neg.codec.channels)
        except (SdpError, UnsupportedCodecError) as exc:
            return failed(EndReason.BAD_ANSWER, f"unusable SDP answer: {exc}")
        remote = await self._remote(neg)
        if remote is False:
            return failed(EndReason.BAD_ANSWER, "the answer's media address does not resolve")
        agent = self._agent_for(d.profile, neg.codec.name)
        try:
            await agent.open()
        except UpstreamError as exc:
            ref = log_incident(log, f"call {call_id}: agent unavailable", exc)
            return failed(EndReason.UPSTREAM_UNAVAILABLE, f"agent unavailable ({ref})")
        if d.hung_up is not None or sip_call.ended is not None:
            await agent.close()
            return failed(d.hung_up or EndReason.REMOTE_BYE, "the call ended during set-up")
        self._start_call(
            call_id,
            sip_call,
            agent,
            d.profile,
            d.profile_name,
            neg,
            codec,
            direction="outbound",
            from_uri=d.caller or "",
            to_uri=d.target,
            trunk=d.trunk,
            endpoint=d.endpoint,
            remote=remote,
            early=d.later,
        )
        sip_call.set_media(_midcall(d.prefs, agent))
        _settle(future, OutboundResult(call_id, "answered", 200))
        return True
