"""One WebRTC call's audio: browser Opus -> agent PCM16, agent PCM16 -> paced Opus packets.

Caller -> agent: the browser's Opus is decoded as **48 kHz interleaved stereo** (RFC 7587:
``opus/48000/2`` whatever was sent; a mono stream decodes with L == R), then downmixed and
resampled explicitly to the session format (PCM16 24 kHz mono, :class:`~media.resample.Resampler`
with ``channels_in=2``), re-cut into 20 ms frames and forwarded on arrival, like the SIP leg:
packets go through the same one-frame :class:`~media.reorder.ReorderWindow`, a lost
frame is concealed by a fading repeat. This replaces aiortc's audio jitter buffer (80 ms of
prefetch, stalls behind a loss) and its decoder thread (:func:`forward_on_arrival`,
:meth:`WebRtcMedia.on_rtp`); :meth:`WebRtcMedia.on_frame` takes aiortc's decoded frames when
that hook is unavailable.

Agent -> caller: agent audio goes into a :class:`~media.playout.PlayoutBuffer` at 24 kHz driven
by the process's shared :class:`~bridge.calls.ticker.FrameTicker` (:meth:`WebRtcMedia.on_tick`).
Each tick encodes one 20 ms frame with libopus (24 kHz mono input; the RTP clock stays 48 kHz,
RFC 7587 §4.1) and hands the packet to :class:`TickedAudioTrack`, whose ``recv()`` aiortc's
sender awaits. aiortc gets ready-made packets, so its own per-frame work (encoding in a thread
pool, the per-sample ``compute_audio_level_dbov`` loop) never runs. Silence between responses
is the constant Opus silence frame: no encoder work while the agent is quiet.

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

from media.codecs._pyav import PyAVDecoder, PyAVEncoder
from media.codecs.base import CodecError
from media.framing import Reframer
from media.playout import ClearResult, PlaybackEvent, PlayoutBuffer, PlayoutEncoding, PlayoutFormat
from media.reorder import ReorderWindow
from media.resample import Resampler
from media.rtp import RtpError, RtpPacket

__all__ = ["MediaStats", "TickedAudioTrack", "WebRtcMedia", "forward_on_arrival"]

AGENT_RATE = 24000
FRAME_MS = 20
OPUS_CLOCK = 48000
OPUS_TICKS_PER_FRAME = OPUS_CLOCK * FRAME_MS // 1000
OPUS_BIT_RATE = 32000
#: A complete 20 ms Opus frame of silence (CELT-only, TOC 0xF8): what we send between turns.
OPUS_SILENCE = b"\xf8\xff\xfe"
_TIME_BASE = fractions.Fraction(1, OPUS_CLOCK)
#: Packets waiting for aiortc's sender. More than this means the sender is not reading (not
#: connected yet, or stalled): the oldest go, so the audio that does go out is current.
TRACK_QUEUE = 10
_CONCEAL_GAINS = (0.7, 0.45, 0.25)


@dataclass(slots=True)
class MediaStats:
    frames_in: int = 0  # decoded browser frames
    frames_to_agent: int = 0
    frames_dropped_upstream: int = 0  # the agent's send queue was full
    packets_out: int = 0
    audio_packets_out: int = 0
    packets_dropped_out: int = 0  # the sender did not read in time
    decode_errors: int = 0
    frames_concealed: int = 0
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
        self._to_agent = to_agent
        self.track = track
        self.on_playback = on_playback
        self.stats = MediaStats()
        # browser -> agent
        self._resamplers: dict[tuple[int, int], Resampler] = {}
        self._reframer = Reframer(AGENT_RATE * FRAME_MS // 1000)
        self._decoder = PyAVDecoder("libopus", OPUS_CLOCK, 2)  # RFC 7587: decode as stereo
        self.reorder = ReorderWindow(FRAME_MS / 1000)
        self._last_frame: NDArray[np.int16] | None = None
        self._lost_run = 0
        # agent -> browser
        self.playout = PlayoutBuffer(PlayoutFormat(PlayoutEncoding.PCM16, AGENT_RATE, FRAME_MS))
        self._encoder = PyAVEncoder(
            "libopus",
            AGENT_RATE,
            1,
            AGENT_RATE * FRAME_MS // 1000,
            OPUS_BIT_RATE,
            # CELT ("audio") keeps the waveform of synthetic speech; complexity 6 costs a third
            # less than the default 10 with no measurable loss at 32 kbit/s mono
            {"application": "audio", "compression_level": "6"},
        )
        self._anchor: float | None = None
        self._started = False
        self.muted = False  # the agent is muted towards the caller (call control)
        self.inline = False  # True: on_rtp() gets the packets; the track carries nothing

    # -- browser -> agent ----------------------------------------------------------------

    def on_frame(self, frame: Any, now: float) -> None:
        """One decoded audio frame from aiortc (packed s16, any rate, mono or stereo)."""
        self.stats.frames_in += 1
        self.stats.last_frame_at = now
        channels = len(frame.layout.channels)
        pcm: NDArray[np.int16] = frame.to_ndarray().reshape(-1)
        if pcm.dtype != np.int16:  # planar or float layouts are not what aiortc emits
            return
        self.push_pcm(pcm, int(frame.sample_rate), channels)

    def on_rtp(self, packet: Any, now: float) -> None:
        """One caller RTP packet from aiortc (after SRTP; see :func:`forward_on_arrival`):
        in order it goes on at once; a one-frame reorder window absorbs a swap; a lost frame
        is concealed."""
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
        for item in self.reorder.push(rtp, now):
            self._forward(item)

    def _forward(self, packet: RtpPacket | None) -> None:
        if packet is None:
            self._conceal()
        else:
            self.on_opus(packet.payload)

    def on_opus(self, payload: bytes) -> None:
        """One Opus frame, decoded as 48 kHz interleaved stereo (RFC 7587) and downmixed and
        resampled explicitly."""
        self._lost_run = 0
        if not payload:
            return
        try:
            pcm = self._decoder.decode(payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        self.push_pcm(pcm, OPUS_CLOCK, 2)

    def _conceal(self) -> None:
        """A lost 20 ms frame: the last frame again with a fading gain (no zero bursts)."""
        if self._last_frame is None or self._lost_run >= len(_CONCEAL_GAINS):
            return
        gain = _CONCEAL_GAINS[self._lost_run]
        self._lost_run += 1
        self.stats.frames_concealed += 1
        frame = (self._last_frame.astype(np.float32) * gain).astype(np.int16)
        self._deliver(frame, remember=False)

    def push_pcm(self, pcm: NDArray[np.int16], rate: int, channels: int) -> None:
        """Interleaved caller PCM at ``rate``; downmixed and resampled to 24 kHz mono."""
        key = (rate, channels)
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = self._resamplers[key] = Resampler(rate, AGENT_RATE, channels_in=channels)
        out = resampler.process(pcm)
        for chunk in self._reframer.push(out):
            self._deliver(chunk)

    def _deliver(self, frame: NDArray[np.int16], *, remember: bool = True) -> None:
        if remember:
            self._last_frame = frame
        if self._to_agent(frame.tobytes()):
            self.stats.frames_to_agent += 1
        else:
            self.stats.frames_dropped_upstream += 1

    # -- agent -> browser ----------------------------------------------------------------

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool:
        if self.muted:
            return False
        pcm: NDArray[np.int16] = np.frombuffer(audio[: len(audio) & ~1], dtype=np.int16)
        return self.playout.push(response_id, item_id, pcm)

    def mark_done(self, response_id: str) -> None:
        self.playout.mark_done(response_id)

    # -- what call control needs (bridge.calls.control.MediaControl) ----------------------

    def clear(self) -> ClearResult:
        """Barge-in: stop before the next frame; what was sent of each item."""
        return self.playout.clear()

    def playing(self) -> bool:
        """Agent audio buffered or being played."""
        return bool(self.playout.active_responses) or self.playout.buffered_ms > 0

    def set_muted(self, muted: bool) -> None:
        """Mute the agent towards the caller (what is buffered is dropped)."""
        self.muted = muted
        if muted:
            self.playout.clear()

    def send_dtmf(self, digits: str) -> bool:
        """Browser calls carry no telephone-events."""
        del digits
        return False

    def on_tick(self, deadline: float, now: float) -> None:
        """The shared 20 ms tick: one Opus packet per due frame, stamped from its deadline."""
        if not self._started:
            self._started = True
            self._anchor = deadline
            self.playout.start(deadline)
        assert self._anchor is not None
        for item in self.reorder.expire(now):
            self._forward(item)
        for frame in self.playout.tick(now):
            if frame.is_silence:
                payload = OPUS_SILENCE
            else:
                payload = self._encoder.encode(frame.pcm16())
                self.stats.audio_packets_out += 1
            pts = round((frame.deadline - self._anchor) * OPUS_CLOCK)
            if self.track.put(payload, pts):
                self.stats.packets_out += 1
            else:
                self.stats.packets_dropped_out += 1
        if self.on_playback is not None:
            for event in self.playout.take_events():
                self.on_playback(event)


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
