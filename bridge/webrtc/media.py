"""One WebRTC call's audio: browser Opus -> agent PCM16, agent PCM16 -> paced Opus packets.

Caller -> agent: the browser's Opus is decoded as **48 kHz interleaved stereo** (RFC 7587:
``opus/48000/2`` whatever was sent; a mono stream decodes with L == R), then downmixed and
resampled explicitly to the session format (PCM16 24 kHz mono, :class:`~media.resample.Resampler`
with ``channels_in=2``), re-cut into 20 ms frames and forwarded on arrival. The decoding happens
here, on the event loop (:func:`decode_inline`, :meth:`WebRtcMedia.on_opus`), not in aiortc's
per-call decoder thread, whose per-frame hand-back through ``run_coroutine_threadsafe`` costs
more than the decoding itself; :meth:`WebRtcMedia.on_frame` takes aiortc's decoded frames when
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
from media.resample import Resampler

__all__ = ["MediaStats", "TickedAudioTrack", "WebRtcMedia", "decode_inline"]

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


@dataclass(slots=True)
class MediaStats:
    frames_in: int = 0  # decoded browser frames
    frames_to_agent: int = 0
    frames_dropped_upstream: int = 0  # the agent's send queue was full
    packets_out: int = 0
    audio_packets_out: int = 0
    packets_dropped_out: int = 0  # the sender did not read in time
    decode_errors: int = 0
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
        # agent -> browser
        self.playout = PlayoutBuffer(PlayoutFormat(PlayoutEncoding.PCM16, AGENT_RATE, FRAME_MS))
        self._encoder = PyAVEncoder(
            "libopus",
            AGENT_RATE,
            1,
            AGENT_RATE * FRAME_MS // 1000,
            OPUS_BIT_RATE,
            {"application": "audio"},
        )
        self._anchor: float | None = None
        self._started = False
        self.muted = False  # the agent is muted towards the caller (call control)
        self.inline = False  # True: on_opus() gets encoded frames; the track carries none

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

    def on_opus(self, payload: bytes, now: float) -> None:
        """One encoded Opus frame from aiortc's jitter buffer (see :func:`decode_inline`),
        decoded here as 48 kHz interleaved stereo and downmixed/resampled explicitly."""
        self.stats.frames_in += 1
        self.stats.last_frame_at = now
        if not payload:
            return
        try:
            pcm = self._decoder.decode(payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        self.push_pcm(pcm, OPUS_CLOCK, 2)

    def push_pcm(self, pcm: NDArray[np.int16], rate: int, channels: int) -> None:
        """Interleaved caller PCM at ``rate``; downmixed and resampled to 24 kHz mono."""
        key = (rate, channels)
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = self._resamplers[key] = Resampler(rate, AGENT_RATE, channels_in=channels)
        out = resampler.process(pcm)
        for chunk in self._reframer.push(out):
            if self._to_agent(chunk.tobytes()):
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


class _InlineDecoding:
    """Stands in for an aiortc receiver's decoder queue: each encoded frame the jitter buffer
    completes is handed to ``sink`` on the event loop instead of to the decoder thread."""

    def __init__(self, original: Any, sink: Callable[[bytes, float], None]) -> None:
        self._original = original
        self._sink = sink
        self._loop = asyncio.get_running_loop()

    def get(self) -> Any:
        """What aiortc's decoder thread blocks on: only the end-of-stream ``None`` arrives."""
        return self._original.get()

    def put(self, item: Any) -> None:
        if item is None:  # the receiver is stopping: let its (idle) decoder thread end
            self._original.put(None)
            return
        _codec, encoded_frame = item
        self._sink(bytes(encoded_frame.data), self._loop.time())


_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


def decode_inline(receiver: Any, sink: Callable[[bytes, float], None]) -> bool:
    """Route ``receiver``'s encoded audio frames to ``sink`` (our decoder) instead of aiortc's
    decoder thread. aiortc decodes every frame in a thread as 48 kHz stereo and hands it back
    through ``run_coroutine_threadsafe`` (a self-pipe wake-up per frame); decoding inline to
    24 kHz mono costs a fraction of that. False (nothing changed) if this aiortc lacks the
    attribute: the caller then reads decoded frames from the track (:meth:`WebRtcMedia.on_frame`).
    """
    original = getattr(receiver, _DECODER_QUEUE, None)
    if original is None or not hasattr(original, "put"):
        return False
    setattr(receiver, _DECODER_QUEUE, _InlineDecoding(original, sink))
    return True
