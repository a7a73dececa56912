"""One WebRTC call's audio: the shared media paths behind Opus and an aiortc track.

The audio work is the two pipelines every leg shares (``media/``); this module is what is
WebRTC about it:

* Caller -> agent: aiortc's RTP packets (after SRTP) go straight into a
  :class:`~media.caller_path.CallerPath` (:func:`forward_on_arrival`, :meth:`WebRtcMedia.on_rtp`)
  with the same one-frame reorder window and concealment as phone calls. The browser's Opus is
  decoded as **48 kHz interleaved stereo** (RFC 7587: ``opus/48000/2`` whatever was sent; a mono
  stream decodes with L == R), then downmixed and resampled explicitly to PCM16 24 kHz mono and
  forwarded on arrival. This replaces aiortc's audio jitter buffer (80 ms of prefetch, stalls
  behind a loss) and its decoder thread; :meth:`WebRtcMedia.on_frame` takes aiortc's decoded
  frames when that hook is unavailable.
* Agent -> caller: an :class:`~media.agent_path.AgentPath` at 24 kHz driven by the process's
  shared :class:`~bridge.calls.ticker.FrameTicker` (:meth:`WebRtcMedia.on_tick`). Each tick
  encodes one 20 ms frame with libopus (24 kHz mono input; the RTP clock stays 48 kHz, RFC 7587
  §4.1) and hands the packet to :class:`TickedAudioTrack`, whose ``recv()`` aiortc's sender
  awaits. aiortc gets ready-made packets, so its own per-frame work (encoding in a thread pool,
  the per-sample ``compute_audio_level_dbov`` loop) never runs. Silence between responses is
  the constant Opus silence frame: no encoder work while the agent is quiet.

Synchronous and clock-free except :class:`TickedAudioTrack`, the seam to aiortc.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from numpy.typing import NDArray

from bridge.webrtc.ice import ForeignDatagrams
from media.agent_path import AgentPath
from media.caller_path import AGENT_RATE, FRAME_MS, CallerPath, CallerStats
from media.codecs._pyav import PyAVDecoder, PyAVEncoder
from media.level import leg_levels
from media.playout import ClearResult, PlaybackEvent
from media.rtp import RtpError, RtpPacket

__all__ = ["MediaStats", "TickedAudioTrack", "WebRtcMedia", "forward_on_arrival"]

OPUS_CLOCK = 48000
OPUS_TICKS_PER_FRAME = OPUS_CLOCK * FRAME_MS // 1000
OPUS_BIT_RATE = 32000
#: A complete 20 ms Opus frame of silence (CELT-only, TOC 0xF8): what we send between turns.
OPUS_SILENCE = b"\xf8\xff\xfe"
_TIME_BASE = fractions.Fraction(1, OPUS_CLOCK)
#: Packets waiting for aiortc's sender. More than this means the sender is not reading (not
#: connected yet, or stalled): the oldest go, so the audio that does go out is current.
TRACK_QUEUE = 10


@dataclass(slots=True)
class MediaStats(CallerStats):
    """The caller path's counters and the browser leg's own."""

    frames_in: int = 0  # caller packets (or aiortc-decoded frames) received
    packets_out: int = 0
    audio_packets_out: int = 0
    packets_dropped_out: int = 0  # the sender did not read in time
    last_frame_at: float | None = None


class TickedAudioTrack(MediaStreamTrack):
    """An outgoing audio track fed by the ticker with encoded Opus packets (``av.Packet``)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._packets: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0

    def put(self, payload: bytes, pts: int) -> bool:
        """Queue one encoded frame; False when an older one had to be dropped for it."""
        packet = av.Packet(payload)
        packet.pts = pts
        packet.time_base = _TIME_BASE
        self._packets.append(packet)
        dropped = False
        if len(self._packets) > TRACK_QUEUE:
            self._packets.popleft()
            self.dropped += 1
            dropped = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return not dropped

    async def recv(self) -> Any:
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class WebRtcMedia:
    def __init__(
        self,
        *,
        to_agent: Callable[[bytes], bool],
        track: TickedAudioTrack,
        on_playback: Callable[[PlaybackEvent], None] | None = None,
    ) -> None:
        self.track = track
        self.stats = MediaStats()
        #: datagrams from addresses ICE never vouched for (set once the sockets exist)
        self.foreign = ForeignDatagrams()
        # browser -> agent: Opus decoded as 48 kHz stereo (RFC 7587), then to PCM16 24 kHz
        decoder = PyAVDecoder("libopus", OPUS_CLOCK, 2)
        self.caller = CallerPath.transcoding(
            decoder.decode, OPUS_CLOCK, 2, to_agent, stats=self.stats
        )
        # agent -> browser: PCM16 24 kHz straight into libopus (it takes 24 kHz natively)
        encoder = PyAVEncoder(
            "libopus",
            AGENT_RATE,
            1,
            AGENT_RATE * FRAME_MS // 1000,
            OPUS_BIT_RATE,
            # CELT ("audio") keeps the waveform of synthetic speech; complexity 6 costs a third
            # less than the default 10 with no measurable loss at 32 kbit/s mono
            {"application": "audio", "compression_level": "6"},
        )
        self.agent = AgentPath.encoding(encoder.encode, AGENT_RATE, silence=OPUS_SILENCE)
        self.agent.on_playback = on_playback
        self.playout = self.agent.playout  # the call's stats() reads it
        self.inline = False  # True: on_rtp() gets the packets; the track carries nothing
        self._tick_at = 0.0  # the latest tick's time: the clock the meters read freshness on

    @property
    def on_playback(self) -> Callable[[PlaybackEvent], None] | None:
        """Where the agent path's playback events go (the call sets it once it exists)."""
        return self.agent.on_playback

    @on_playback.setter
    def on_playback(self, callback: Callable[[PlaybackEvent], None] | None) -> None:
        self.agent.on_playback = callback

    # -- browser -> agent ----------------------------------------------------------------

    def on_frame(self, frame: Any, now: float) -> None:
        """One frame aiortc decoded itself (packed s16, 48 kHz stereo from its Opus decoder);
        only when :func:`forward_on_arrival` could not take the packets."""
        self.stats.frames_in += 1
        self.stats.last_frame_at = now
        pcm: NDArray[np.int16] = frame.to_ndarray().reshape(-1)
        if (
            pcm.dtype != np.int16  # planar or float layouts are not what aiortc emits
            or int(frame.sample_rate) != OPUS_CLOCK
            or len(frame.layout.channels) != 2
        ):
            self.stats.decode_errors += 1
            return
        self.caller.push_pcm(pcm)

    def on_rtp(self, packet: Any, now: float) -> None:
        """One caller RTP packet from aiortc (after SRTP; see :func:`forward_on_arrival`),
        into the caller path: in order it goes on at once; a one-frame reorder window absorbs a
        swap; a lost frame is concealed."""
        self.stats.frames_in += 1
        self.stats.last_frame_at = now
        try:
            rtp = RtpPacket(
                payload_type=packet.payload_type,
                sequence_number=packet.sequence_number,
                timestamp=packet.timestamp,
                ssrc=packet.ssrc,
                payload=bytes(packet.payload),
            )
        except RtpError:
            self.stats.decode_errors += 1
            return
        self.caller.push(rtp, now)

    # -- agent -> browser ----------------------------------------------------------------

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        return self.agent.push(response_id, item_id, audio)

    def mark_done(self, response_id: str) -> None:
        self.agent.mark_done(response_id)

    # -- what call control needs (bridge.calls.control.MediaControl) ----------------------

    def clear(self) -> ClearResult:
        """Barge-in: stop before the next frame; what was sent of each item."""
        return self.agent.clear()

    def playing(self) -> bool:
        """Agent audio buffered or being played."""
        return self.agent.playing()

    def set_muted(self, muted: bool) -> None:
        """Mute the agent towards the caller (what is buffered is dropped)."""
        self.agent.set_muted(muted)

    def send_dtmf(self, digits: str) -> bool:
        """Browser calls carry no telephone-events."""
        del digits
        return False

    def levels(self) -> tuple[float | None, float | None]:
        """dBFS of the latest 20 ms each way: browser -> agent (the decoded PCM16 sent to the
        agent), agent -> browser (the PCM16 frame before Opus); None where nothing flowed in
        the last 100 ms. Measured on demand from frames already at hand, as the SIP leg's
        meters are: the media path pays nothing per frame."""
        return leg_levels(self.caller, self.agent, self.stats.last_frame_at, self._tick_at)

    def on_tick(self, deadline: float, now: float) -> None:
        """The shared 20 ms tick: one Opus packet per due frame, stamped from its deadline."""
        self._tick_at = now
        self.caller.expire(now)
        agent = self.agent
        frames = agent.tick(deadline, now)
        anchor = agent.started_at
        assert anchor is not None
        encode = agent.encode
        stats = self.stats
        for frame in frames:
            payload = encode(frame)
            if frame.response_id is not None:  # agent audio (silence is the constant frame)
                stats.audio_packets_out += 1
            if self.track.put(payload, round((frame.deadline - anchor) * OPUS_CLOCK)):
                stats.packets_out += 1
            else:
                stats.packets_dropped_out += 1


class _OnArrival:
    """Stands in for an aiortc receiver's audio jitter buffer: every packet goes to ``sink``
    the moment it arrives, and nothing ever reaches aiortc's decoder thread."""

    def __init__(self, sink: Callable[[Any, float], None], now: Callable[[], float]) -> None:
        self._sink = sink
        self._now = now

    def add(self, packet: Any) -> tuple[bool, None]:
        self._sink(packet, self._now())
        return False, None


_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


def forward_on_arrival(
    receiver: Any, sink: Callable[[Any, float], None], now: Callable[[], float]
) -> bool:
    """Hand ``receiver``'s RTP packets to ``sink`` (e.g. :meth:`WebRtcMedia.on_rtp`) on arrival.

    aiortc's audio jitter buffer holds four frames before releasing one (80 ms on the
    caller -> agent path, which must forward on arrival: the agent buffers for itself), stalls
    behind a lost packet until it gives up, then decodes in a thread that hands each frame back
    through ``run_coroutine_threadsafe``. Replacing it sends packets straight to our own
    one-frame reorder window and decoder. False (nothing changed) if this aiortc lacks the
    attribute: the caller then reads decoded frames from the track (:meth:`WebRtcMedia.on_frame`).
    """
    original = getattr(receiver, _JITTER_BUFFER, None)
    if original is None or not hasattr(original, "add"):
        return False
    setattr(receiver, _JITTER_BUFFER, _OnArrival(sink, now))
    return True
