"""Ringback while the agent connects: the tone an inbound SIP caller hears as early media.

A profile with ``early_media = "ringback"`` answers an inbound call whose offer was negotiated
with ``183 Session Progress`` and our SDP answer at once (RFC 3960 §2: early media in the
answer of a provisional response), and plays the national ringback tone
(:mod:`media.tones`) in the negotiated codec until the agent session is open; then the call
starts as any other and the 200 follows. A delayed-offer INVITE has no answer to send before
the 200, so it gets ``180 Ringing`` and the caller's phone makes its own ringback.

:class:`Ringback` is one sink of the shared frame ticker (:mod:`bridge.calls.ticker`): one RTP
packet per 20 ms tick, stamped from the tick's deadline on the stream's media clock
(:class:`media.rtp.RtpClock`, anchored at the first tick), so it keeps the ticker's absolute
grid and never drifts. Packets leave through the call's own :class:`RtpEndpoint`, so a call that
negotiated SRTP sends the tone protected like any of its media, to the address the SDP names
(or the source learned from the caller's RTP, RFC 4961).

The tone is its own RTP stream: its own SSRC and sequence numbers (RFC 3550 §5.1). The call's
media after the 200 comes on another SSRC, which a receiver takes as a new source (RFC 3550
§8.2); RFC 3960 §3's gateway model has the early and the answered media differ the same way.

Security (issue 12: no media to a peer that has not proven it is there): ringback, like the
183 + greeting form, is sent before any ACK or RTP proves the caller, by the profile's own
opt-in; it lasts no longer than the agent's connect time (``calls.session_ready_timeout_s`` and
the upstream's connect timeout bound it), and it stops at the next tick once the caller is
gone (``gone()``: CANCEL) and at once when the set-up ends (:meth:`Ringback.stop`: the call
starts, or a refusal such as 503 is sent).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import numpy as np

from bridge.calls.ticker import FrameTicker
from media.codecs.base import AudioCodec
from media.rtp import RtpClock, RtpSendState
from media.tones import CADENCES, RingbackTone, ToneGenerator

__all__ = ["Ringback"]

log = logging.getLogger(__name__)


class Ringback:
    """One caller's ringback (see the module docstring): :meth:`play` on a ticker, then
    :meth:`stop`. Synchronous; times are the ticker's monotonic seconds."""

    def __init__(
        self,
        tone: RingbackTone,
        codec: AudioCodec,
        payload_type: int,
        send: Callable[[bytes], bool],
        *,
        gone: Callable[[], bool],
        rng: random.Random | None = None,
    ) -> None:
        self.tone = tone
        self.codec = codec
        self.payload_type = payload_type
        self._send = send
        self._gone = gone
        self._rng = rng or random.Random()
        self._samples = ToneGenerator(CADENCES[tone], codec.sample_rate)
        self.send_state = RtpSendState(rng=self._rng)
        self._rtp_clock: RtpClock | None = None
        self._ticker: FrameTicker | None = None
        self.started_at: float | None = None
        self.packets = 0  # sent (handed to the endpoint, which had somewhere to send them)
        self.stopped = False

    def on_tick(self, deadline: float, now: float) -> None:
        """One frame of tone, due at ``deadline``; nothing once the caller is gone."""
        if self.stopped or self._gone():
            return
        clock = self._rtp_clock
        if clock is None:
            clock = self._rtp_clock = RtpClock(
                self.codec.clock_rate, deadline, self._rng.getrandbits(32)
            )
        frame = self._samples.read(self.codec.frame_samples)
        if self.codec.encode_channels > 1:  # the same tone on every channel, interleaved
            frame = np.repeat(frame, self.codec.encode_channels)
        data = self.send_state.encode(
            self.payload_type,
            clock.timestamp(deadline),
            self.codec.encode(frame),
            marker=self.send_state.packets_sent == 0,  # RFC 3551 §4.1: the talkspurt begins
            now=now,
        )
        if self._send(data):
            self.packets += 1

    def play(self, ticker: FrameTicker, now: float) -> None:
        """Send a frame on every tick of ``ticker`` from now until :meth:`stop`."""
        self._ticker, self.started_at = ticker, now
        ticker.add(self, self._failed)

    def stop(self, now: float) -> dict[str, object] | None:
        """Stop at once; what played (the ``early-media`` event's data), the first time only."""
        if self.stopped:
            return None
        self.stopped = True
        if self._ticker is not None:
            self._ticker.remove(self)
        started = self.started_at if self.started_at is not None else now
        return {
            "mode": "ringback",
            "tone": self.tone.value,
            "codec": self.codec.name,
            "seconds": round(now - started, 3),
            "packets": self.packets,
        }

    def _failed(self, exc: BaseException) -> None:
        # the ticker removed us: the caller hears silence until the 200, the call goes on
        log.error("ringback failed; the call goes on without it", exc_info=exc)
