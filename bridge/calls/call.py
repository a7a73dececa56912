"""One live SIP call: a scope that owns its SIP dialog, agent session, RTP socket and media path.

A :class:`Call` is created by :mod:`bridge.calls.sip_leg` once the call is set up (inbound:
answered; outbound: the callee answered) and owned by the
:class:`~bridge.calls.manager.CallManager`. Its lifetime is :class:`CallScope`'s; the SIP leg
adds the dialog's events (handed over synchronously by the driver, so none is ever dropped),
the media path as a tick sink, and its goodbye: BYE if the far end is still there, the RTP
socket closed. The caller's ACK proves it is there (media may flow to it); a re-INVITE that
moves the media to a hostname has it resolved once, in a task of the call, never per packet.

Hold (RFC 3264 §8.4) both ways: the peer holds us with a ``sendonly``/``inactive`` offer; we
hold the peer (:meth:`Call.hold`, the control plane's) with a ``sendonly`` re-INVITE, the media
held at once and back as it was if the peer refuses the offer. The call is on hold while
either side holds it: the agent's audio waits, the caller's does not go upstream, and the
silence is no dead call. Events ``hold``/``unhold`` say who (``{"by": "us"|"peer"}``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from bridge.calls.agent_session import AgentSession
from bridge.calls.control import TransferCheck
from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.rtp_endpoint import RtpEndpoint
from bridge.calls.scope import CallScope
from bridge.calls.sip_media import SipMedia
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.calls.watchdog import Watchdog
from bridge.config import AgentProfile
from bridge.errors import NotHoldable, NotTransferable
from bridge.recording.writer import RecordingWriter
from bridge.records import CallStore
from bridge.security import SecurityKind, SecurityLog
from media.clock import Clock
from media.codecs import codec_for
from media.codecs.base import UnsupportedCodecError
from media.dtmf import DtmfDigit
from media.srtp import SrtpSession
from sip.driver import SipCall
from sip.errors import SipStateError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    DtmfReceived,
    HoldChanged,
    ReferProgress,
    ReferReceived,
    ReinviteRefused,
    RemoteSdpChanged,
)
from sip.offer_answer import Negotiated, is_hold, parse_answer, read_answer, remote_endpoint
from sip.sdp import SdpError, SessionDescription

__all__ = ["Call", "CallInfo"]

log = logging.getLogger(__name__)

#: How long a transfer request waits for the dialog to be confirmed (an application may refer
#: right after ``accept``, before the caller's ACK).
CONFIRM_WAIT_S = 5.0


class Call(CallScope):
    """One SIP call (see the module docstring)."""

    leg: ClassVar[str] = "sip"

    def __init__(
        self,
        info: CallInfo,
        *,
        sip: SipCall,
        agent: AgentSession,
        endpoint: RtpEndpoint,
        media: SipMedia,
        profile: AgentProfile,
        store: CallStore,
        ticker: FrameTicker,
        watchdog: Watchdog,
        clock: Clock,
        transfers: TransferCheck | None = None,
        media_address: Callable[[str], Awaitable[str | None]] | None = None,
        security: SecurityLog | None = None,
        recordings: RecordingWriter | None = None,
    ) -> None:
        super().__init__(
            info,
            agent=agent,
            media=media,
            profile=profile,
            store=store,
            ticker=ticker,
            watchdog=watchdog,
            clock=clock,
            transfers=transfers,
            security=security,
            recordings=recordings,
        )
        self.attach_media(media.caller, media.agent)
        self.sip = sip
        self.endpoint = endpoint
        self.media = media
        self._remote_gone = False
        #: who holds the call (RFC 3264 §8.4: either side may)
        self._held = {"us": False, "peer": False}
        #: our hold before the re-INVITE in flight that changed it (its refusal puts it back)
        self._hold_undo: bool | None = None
        #: a hostname from a re-INVITE's SDP -> the IP to send to (None: refused/unresolvable)
        self._media_address = media_address
        sip.listen(self._on_sip_event)

    # -- wiring for the media path (called from SipMedia, synchronously) -------------------

    def on_dtmf(self, digit: DtmfDigit) -> None:
        self.control.on_dtmf(digit.digit, "rfc4733")

    def peer(self) -> str | None:
        source = self.sip.source
        return None if source is None else f"sip:{source.transport}:{source.host}:{source.port}"

    # -- transfers ---------------------------------------------------------------------------

    def refer(self, target: str) -> bool:
        """Blind transfer (REFER); the call ends when the transfer target answers."""
        self.store.log_event(self.id, "refer", {"target": target})
        self.sip.refer(target)
        return True

    async def transfer(self, target: str) -> None:
        if not await self.sip.confirmed(CONFIRM_WAIT_S) or self.ended:
            raise NotTransferable(
                f"Call {self.id!r} is not established.", code="call_not_established"
            )
        self.refer(target)

    # -- hold ------------------------------------------------------------------------------

    def hold(self, on: bool) -> None:
        """Hold the peer (re-INVITE ``sendonly``) or resume it (``sendrecv``); the media
        follows at once. Asking for what was last asked changes nothing."""
        if on == self._held["us"]:
            return
        self._hold_undo = self._held["us"]  # before: a refusal may come within the send
        try:
            self.sip.hold(on)
        except SipStateError as exc:
            self._hold_undo = None
            busy = exc.state == "re-INVITE pending"
            why = "another re-INVITE is in progress" if busy else "it is not established"
            raise NotHoldable(f"Call {self.id!r} cannot change its hold now: {why}.") from exc
        if self._hold_undo is None:  # refused already (the send failed): nothing changed
            return
        self._holds("us", on)

    def _holds(self, who: str, on: bool) -> None:
        """``who`` holds the call (or no longer does); the media, the watchdog and the info
        follow whether anyone does."""
        held = self._held
        if held[who] == on:
            return
        held[who] = on
        self.store.log_event(self.id, "hold" if on else "unhold", {"by": who})
        holders = [w for w, h in held.items() if h]
        info, any_held = self.info, bool(holders)
        info.held_by = "both" if len(holders) == 2 else holders[0] if holders else None
        if any_held != info.on_hold:
            now = self.clock.now()
            self.watchdog.hold(any_held, now)
            info.on_hold = any_held
            self.media.hold(any_held, now)

    # -- the leg's part of the call's scope ------------------------------------------------

    def levels(self) -> tuple[float | None, float | None]:
        return self.media.levels()

    def _tick_sinks(self) -> list[TickSink]:
        return [self.media]

    async def _close_leg(self) -> None:
        if not self._remote_gone:
            self.sip.hangup()
        self.endpoint.close()

    def stats(self) -> dict[str, Any]:
        m, e, r = self.media.stats, self.endpoint.stats, self.media.reorder.stats
        p = self.media.playout.stats
        return {
            "rtp_in": e.packets_in,
            "rtp_out": e.packets_out,
            "rtp_malformed": e.malformed,
            "rtp_foreign_source": e.foreign_source,
            "rtp_probation": e.probation,
            "rtp_foreign_payload": m.foreign_payload,
            "rtp_over_rate": m.packets_over_rate,
            "srtp_failed": e.srtp_failed,
            "frames_to_agent": m.frames_to_agent,
            "frames_dropped_upstream": m.frames_dropped_upstream,
            "frames_concealed": m.frames_concealed,
            "lost": r.lost,
            "late": r.late,
            "reordered": r.reordered,
            "playout_underruns": getattr(p, "underruns", 0),
            "agent_audio_dropped_ms": round(self.media.playout.overflow_ms),
            "jitter_ms": round(self.media.rx_stats.jitter_ms, 2),
            "rtcp_lost": self.media.rx_stats.lost,
            "rtt_ms": round(self.media.rtcp.rtt * 1000, 1) if self.media.rtcp.rtt else None,
            "rtcp_sent": e.rtcp_out,
            "rtcp_received": e.rtcp_in,
            "rtcp_over_rate": e.rtcp_over_rate,
            "rtcp_malformed": m.rtcp_malformed,
            "session_format": self.agent.format.value,
            "pass_through": self.media.pass_through,
            "agent_bytes_in": m.agent_bytes_in,
            "upstream_reconnects": self.agent.renewals,
            "upstream_renewal_gaps_ms": list(self.agent.renewal_gaps_ms),
        }

    # -- the dialog's events (synchronous, from the SIP driver) -----------------------------

    def _on_sip_event(self, event: CallEvent) -> None:
        try:
            self._sip_event(event)
        except Exception as exc:
            self.crashed("sip event", exc)

    def _sip_event(self, event: CallEvent) -> None:
        match event:
            case CallEnded(reason=reason, status=status):
                self._remote_gone = True
                self.end(EndReason.from_sip(reason), status)
            case CallAnswered():
                self.media.prove()  # inbound: the caller's ACK
            case DtmfReceived(digit=digit):
                self.control.on_dtmf(digit, "info")
            case ReferProgress(status=status, reason=reason, final=final):
                self.store.log_event(
                    self.id,
                    "refer.progress",
                    {"status": status, "reason": reason, "final": final},
                )
                if final and 200 <= status < 300:
                    self.end(EndReason.TRANSFERRED)
            case ReferReceived(refer_to=refer_to):
                # a peer asking the agent's leg to call someone else: not something a voice
                # agent's caller should be able to make rtbridge do (toll fraud)
                self.sip.answer_refer(403, "Forbidden (transfers by REFER are not accepted)")
                self.store.log_event(self.id, "refer.refused", {"refer_to": refer_to})
                self.security.record(
                    SecurityKind.REFUSED_REQUEST,
                    source=self.peer(),
                    detail=f"inbound REFER to {refer_to!r} refused",
                    call_id=self.id,
                )
            case HoldChanged(on_hold=on_hold):  # the peer's offer
                self._holds("peer", on_hold)
            case ReinviteRefused(status=status, reason=reason):
                self._hold_refused(status, reason)
            case RemoteSdpChanged(sdp=sdp, local_sdp=local, remote_offered=offered):
                self._remote_sdp(sdp, offered)
                if local:
                    self._renegotiated(sdp, local, offered)

    def _hold_refused(self, status: int, reason: str) -> None:
        """The peer refused our re-INVITE: a hold or resume of ours goes back as it was."""
        undo, self._hold_undo = self._hold_undo, None
        if undo is None:
            return  # not ours (a session refresh): nothing changed
        self.store.log_event(
            self.id, "hold.failed", {"on": not undo, "status": status, "reason": reason}
        )
        self._holds("us", undo)

    def _remote_sdp(self, sdp: bytes, offered: bool) -> None:
        if not offered:
            self._hold_undo = None  # our offer settled
        try:
            desc = SessionDescription.parse(sdp.decode("utf-8", "replace"))
        except SdpError:
            return  # the core answered it already; an unusable body changes nothing here
        target = remote_endpoint(desc, 0)
        if target is not None:
            if _is_ip(target.address):
                self.endpoint.set_remote((target.address, target.port))
            else:
                self.spawn("media address", self._move_media(target.address, target.port))
        if offered or not self._held["us"]:
            # the peer's offer, or its answer to our sendrecv offer (a refresh, a resume),
            # says whether it holds; its answer to our hold (recvonly or inactive) does not
            self._holds("peer", is_hold(desc))

    def _renegotiated(self, remote: bytes, local: bytes, remote_offered: bool) -> None:
        """A settled re-offer may change the codec or its payload types (RFC 3264 §8.3.2) and
        the SRTP keys (RFC 4568 §7.1.4) or drop SRTP: the media path and the endpoint follow;
        the same keys keep the running session."""
        try:
            theirs = SessionDescription.parse(remote.decode("utf-8", "replace"))
            ours = SessionDescription.parse(local.decode("utf-8", "replace"))
            neg = read_answer(theirs, ours) if remote_offered else parse_answer(ours, theirs)
        except SdpError:
            return
        self._recodec(neg)
        keys, current = neg.srtp, self.endpoint.srtp
        if keys is None:
            self.endpoint.srtp = None
        elif current is None or not current.uses(keys.suite, keys.local, keys.remote):
            self.endpoint.srtp = SrtpSession(keys.suite, keys.local, keys.remote)
            self.store.log_event(self.id, "srtp.rekeyed", {"suite": keys.suite})

    def _recodec(self, neg: Negotiated) -> None:
        media, codec = self.media, neg.codec
        te = neg.telephone_event.payload_type if neg.telephone_event is not None else None
        same = codec.name.upper() == media.codec.name.upper()
        if same and (codec.payload_type, te) == (media.payload_type, media.dtmf_payload_type):
            return
        try:
            new = codec_for(codec.name, codec.clock_rate, codec.channels)
        except UnsupportedCodecError as exc:  # configured, but its library is missing here
            self.store.log_event(self.id, "media.codec_unsupported", {"error": str(exc)})
            return
        keeps = media.keeps_playout(new)
        interrupted = not keeps and media.playing()
        if not keeps:  # what is buffered cannot be played in the new codec
            self.control.barge_in(cancel=True)
        before = media.codec.name
        media.change_codec(new, payload_type=codec.payload_type, dtmf_payload_type=te)
        if self.recording is not None:
            self.recording.mixer.agent_format(media.playout.format)
        self.info.codec = codec.name
        self.store.update_call(self.id, codec=codec.name)
        self.store.log_event(
            self.id,
            "media.codec_changed",
            {
                "from": before,
                "to": codec.name,
                "payload_type": codec.payload_type,
                "pass_through": media.pass_through,
                "agent_interrupted": interrupted,
            },
        )

    async def _move_media(self, host: str, port: int) -> None:
        """A re-INVITE named a hostname: resolved once, off the media path; if it cannot be
        (refused by setting, no answer in time), the media stays where it was."""
        address = await self._media_address(host) if self._media_address is not None else None
        if address is None:
            self.store.log_event(self.id, "media.unresolved", {"host": host})
            return
        self.endpoint.set_remote((address, port))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
