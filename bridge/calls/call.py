"""One live call: a scope that owns its SIP leg, agent session, RTP socket and media path.

A :class:`Call` is created by the :class:`~bridge.calls.manager.CallManager` once the call is
set up (inbound: answered; outbound: the callee answered). :meth:`Call.run` is the call's
scope: three tasks it owns (SIP events, agent events, a watchdog) run until the call ends for
any reason, then everything is released in one place (:meth:`_release`): BYE if the far end
is still there, the upstream session closed (nobody keeps paying for it), the RTP ports
returned, the record written with the end reason and SIP status.

End reasons recorded: ``remote-bye``, ``local-hangup``, ``upstream-lost``, ``upstream-expired``,
``rtp-timeout``, ``max-duration``, ``shutdown``, plus the SIP core's own (``ack-timeout``,
``transport-error``, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.calls.agent_session import AgentSession
from bridge.calls.info import CallInfo
from bridge.calls.rtp_endpoint import RtpEndpoint
from bridge.calls.scope import CallScope
from bridge.calls.sip_media import SipMedia
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.config import AgentProfile
from bridge.records import CallStore
from media.dtmf import DtmfDigit
from media.playout import PlaybackEvent
from sip.driver import SipCall
from sip.events import CallEnded, DtmfReceived, HoldChanged, ReferProgress, RemoteSdpChanged
from sip.offer_answer import is_hold, remote_endpoint
from sip.sdp import SessionDescription

__all__ = ["Call", "CallInfo"]

log = logging.getLogger(__name__)


class Call(CallScope):
    """One SIP call (see the module docstring); the lifetime is :class:`CallScope`'s."""

    leg_name = "sip call"

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
        rtp_timeout_s: float,
        on_released: Callable[[Call], None],
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            info,
            agent=agent,
            media=media,
            profile=profile,
            store=store,
            ticker=ticker,
            on_released=on_released,
            time_fn=time_fn,
        )
        self.sip = sip
        self.endpoint = endpoint
        self.media = media
        self.rtp_timeout_s = rtp_timeout_s
        self._remote_gone = False
        self._resumed_at = self._started_at  # RTP idleness counts from here at the earliest

    # -- wiring for the media path (called from SipMedia, synchronously) -------------------

    def on_dtmf(self, digit: DtmfDigit) -> None:
        self.control.on_dtmf(digit.digit, "rfc4733")

    def on_playback(self, event: PlaybackEvent) -> None:
        self.control.on_playback(event)

    def transfer(self, target: str) -> bool:
        """Blind transfer (REFER); the call ends when the transfer target answers."""
        self.store.log_event(self.id, "refer", {"target": target})
        self.sip.refer(target)
        return True

    # -- the leg's part of the call's scope ------------------------------------------------

    def _tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._sip_events(), self._agent_events(), self._watchdog()]

    def _tick_sinks(self) -> list[TickSink]:
        return [self.media, self.control]

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
            "frames_to_agent": m.frames_to_agent,
            "frames_dropped_upstream": m.frames_dropped_upstream,
            "frames_concealed": m.frames_concealed,
            "lost": r.lost,
            "late": r.late,
            "reordered": r.reordered,
            "playout_underruns": getattr(p, "underruns", 0),
            "jitter_ms": round(self.media.rx_stats.jitter_ms, 2),
            "rtcp_lost": self.media.rx_stats.lost,
            "rtt_ms": round(self.media.rtcp.rtt * 1000, 1) if self.media.rtcp.rtt else None,
            "rtcp_sent": e.rtcp_out,
            "rtcp_received": e.rtcp_in,
            "session_format": self.agent.format.value,
            "upstream_reconnects": self.agent.reconnects,
        }

    # -- the call's tasks ----------------------------------------------------------------

    async def _sip_events(self) -> None:
        async for event in self.sip.events():
            if isinstance(event, CallEnded):
                self._remote_gone = True
                reason = "remote-bye" if event.reason.value == "remote-bye" else event.reason.value
                self.end(reason, event.status)
                return
            if isinstance(event, DtmfReceived):
                self.control.on_dtmf(event.digit, "info")
            elif isinstance(event, ReferProgress):
                self.store.log_event(
                    self.id,
                    "refer.progress",
                    {"status": event.status, "reason": event.reason, "final": event.final},
                )
                if event.final and 200 <= event.status < 300:
                    self.end("transferred")
            elif isinstance(event, HoldChanged):
                self._set_hold(event.on_hold)
            elif isinstance(event, RemoteSdpChanged):
                self._remote_sdp(event.sdp)

    def _set_hold(self, on_hold: bool) -> None:
        now = self._now()
        if self.info.on_hold and not on_hold:
            self._resumed_at = now  # time on hold never counts against the RTP timeout
        self.info.on_hold = on_hold
        self.media.hold(on_hold, now)
        self.store.log_event(self.id, "hold" if on_hold else "unhold", {})

    def _remote_sdp(self, sdp: bytes) -> None:
        try:
            desc = SessionDescription.parse(sdp.decode("utf-8", "replace"))
        except Exception:
            return
        target = remote_endpoint(desc, 0)
        if target is not None:
            self.endpoint.set_remote((target.address, target.port))
            self.endpoint.relatch()
        self._set_hold(is_hold(desc))

    async def _watchdog(self) -> None:
        max_s = self.profile.max_duration_s
        while True:
            await asyncio.sleep(0.5)
            now = self._now()
            if now - self._started_at >= max_s:
                self.end("max-duration")
                return
            if self.info.on_hold:
                continue
            last_rtp = self.media.stats.last_rtp_at or self._started_at
            if now - max(last_rtp, self._resumed_at) >= self.rtp_timeout_s:
                self.end("rtp-timeout")
                return
