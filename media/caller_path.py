"""The caller -> agent media path shared by every leg: RTP packets in, 20 ms agent frames out.

Both legs (SIP trunks, WebRTC browsers) hand the caller's audio packets to one
:class:`CallerPath`, which turns them into what the agent session takes, 20 ms at a time:

1. **Order.** A one-frame :class:`~media.reorder.ReorderWindow`: in-order packets go on the
   moment they arrive (the agent buffers for itself; a playout depth here would only add
   latency), a swap of two packets is repaired, a lost packet is reported after one frame period.
2. **Convert**, in one of two ways chosen when the call is set up:

   * *pass-through* (:meth:`CallerPath.pass_through`): the trunk speaks G.711 and the agent takes
     the same G.711. Payload bytes are only re-cut into 20 ms frames (a 30 ms packet becomes a
     frame and a half); a 20 ms payload is forwarded as the very object that arrived. No decode,
     no resampling.
   * *transcoding* (:meth:`CallerPath.transcoding`): any codec. The payload is decoded (to the
     codec's rate and channel layout, e.g. Opus as 48 kHz interleaved stereo, RFC 7587),
     downmixed and resampled explicitly to PCM16 24 kHz mono (:class:`~media.resample.Resampler`)
     and re-cut into 20 ms frames (:class:`~media.framing.Reframer`).

3. **Conceal.** Each lost frame the window reports is filled with the last frame at a falling
   gain (:mod:`media.conceal`), so the agent never hears a burst of zeros.
4. **Deliver** each frame to ``to_agent`` (the agent session's bounded send queue); a refusal
   (an upstream stall) drops that frame and is counted.

Synchronous and clock-free: :meth:`CallerPath.push` takes a packet and the time it arrived,
:meth:`CallerPath.expire` the time of the call's frame tick. Leg specifics (payload types,
RFC 4733 events, hold, aiortc's packet objects) stay with the legs.

The per-packet path is written for cost: an in-order packet costs four Python calls here (push,
the window's, dispatch, conversion) besides the codec and resampler, and a 20 ms G.711 payload
is forwarded without a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from media.codecs.base import CodecError
from media.conceal import CONCEAL_GAINS, faded
from media.framing import Reframer
from media.level import dbfs
from media.playout import PlayoutEncoding
from media.reorder import ReorderWindow
from media.resample import Resampler
from media.rtp import RtpPacket

__all__ = ["AGENT_RATE", "FRAME_MS", "CallerPath", "CallerStats", "Decode", "FrameTap", "ToAgent"]

#: The rate of PCM16 agent audio (the only one OpenAI's Realtime API takes).
AGENT_RATE: Final = 24000
#: Every frame that leaves this path holds 20 ms.
FRAME_MS: Final = 20
_G711_RATE: Final = 8000
#: The caller's audio may reach the agent at most this much faster than real time, after a
#: burst of :data:`BURST_S` (a network stall's backlog): a caller that sends 120 ms packets
#: every 4 ms (27 s of audio a second, billed by the upstream, nonsense to its turn detection)
#: has the excess dropped and counted (``packets_over_rate``).
OVER_RATE: Final = 1.25
BURST_S: Final = 2.0

#: One payload -> interleaved int16 PCM (an :meth:`~media.codecs.base.AudioCodec.decode`).
Decode = Callable[[bytes], NDArray[np.int16]]
#: Hands one frame to the agent session; False: its queue is full, the frame is dropped.
ToAgent = Callable[[bytes], bool]
#: Told of every frame the path produced, before it goes to the agent: ``(frame, concealed,
#: lag_s)``, ``lag_s`` being how long before this moment the frame's audio ended (what the
#: re-cut and the resampler still hold after it); the call's recording and turn timing.
#: None: nobody listens and nothing is paid.
FrameTap = Callable[[bytes, bool, float], None]


@dataclass(slots=True)
class CallerStats:
    """Counters of the caller -> agent path (a leg may extend it with its own)."""

    frames_to_agent: int = 0
    frames_dropped_upstream: int = 0  # the agent's send queue was full (stalled upstream)
    frames_concealed: int = 0
    decode_errors: int = 0
    packets_over_rate: int = 0  # dropped: the caller sent audio faster than real time


class CallerPath:
    """The caller's packets -> 20 ms frames for the agent; see the module docstring."""

    def __init__(
        self,
        to_agent: ToAgent,
        output: PlayoutEncoding,
        *,
        decode: Decode | None = None,
        rate: int = _G711_RATE,
        channels: int = 1,
        stats: CallerStats | None = None,
    ) -> None:
        if decode is None and output is PlayoutEncoding.PCM16:
            raise ValueError("a PCM16 caller path decodes: pass decode, rate and channels")
        if decode is not None and output is not PlayoutEncoding.PCM16:
            raise ValueError(f"a decoding caller path sends PCM16, not {output.name}")
        self._to_agent = to_agent
        #: What the agent receives: G.711 bytes at 8 kHz (pass-through) or PCM16 at 24 kHz.
        self.output = output
        self.stats = stats if stats is not None else CallerStats()
        self.reorder = ReorderWindow(FRAME_MS / 1000)
        #: The latest frame sent to the agent (concealment repeats it; meters measure it).
        self.last_frame = b""
        #: every frame produced, concealed ones included (see :data:`FrameTap`)
        self.tap: FrameTap | None = None
        self._lost_run = 0
        # pass-through: G.711 bytes carried over to the next 20 ms frame
        self._frame_bytes = _G711_RATE * FRAME_MS // 1000
        self._pending = bytearray()
        # transcoding
        self._decode = decode
        self._resampler = (
            None if decode is None else Resampler(rate, AGENT_RATE, channels_in=channels)
        )
        self._reframer = Reframer(AGENT_RATE * FRAME_MS // 1000)
        self._budget = BURST_S  # seconds of audio the caller may still send ahead
        self._budget_at: float | None = None

    @classmethod
    def pass_through(
        cls, encoding: PlayoutEncoding, to_agent: ToAgent, *, stats: CallerStats | None = None
    ) -> CallerPath:
        """G.711 in (``PCMU`` or ``PCMA``), the same G.711 out in 20 ms frames."""
        return cls(to_agent, encoding, stats=stats)

    @classmethod
    def transcoding(
        cls,
        decode: Decode,
        rate: int,
        channels: int,
        to_agent: ToAgent,
        *,
        stats: CallerStats | None = None,
    ) -> CallerPath:
        """Payloads ``decode`` turns into ``channels``-interleaved PCM at ``rate``; PCM16 24 kHz
        mono out."""
        return cls(
            to_agent,
            PlayoutEncoding.PCM16,
            decode=decode,
            rate=rate,
            channels=channels,
            stats=stats,
        )

    # -- input ---------------------------------------------------------------------------

    def push(self, packet: RtpPacket, now: float) -> None:
        """One caller packet of the call's audio codec, on arrival (``now``); dropped while
        the caller is over its rate (:data:`OVER_RATE`)."""
        stats = self.stats
        at = self._budget_at
        budget = self._budget if at is None else self._budget + (now - at) * OVER_RATE
        self._budget_at = now
        if budget > BURST_S:
            budget = BURST_S
        if budget <= 0.0:
            self._budget = budget
            stats.packets_over_rate += 1
            return
        before = stats.frames_to_agent + stats.frames_dropped_upstream
        self._take(self.reorder.push(packet, now))
        sent = stats.frames_to_agent + stats.frames_dropped_upstream - before
        self._budget = budget - sent * (FRAME_MS / 1000)

    def expire(self, now: float) -> None:
        """The call's frame tick: a packet held for a whole frame period goes on (its
        predecessor is lost and concealed)."""
        if self.reorder.release_at is not None:  # else nothing is held: the usual tick
            self._take(self.reorder.expire(now))

    def push_pcm(self, pcm: NDArray[np.int16]) -> None:
        """Caller audio decoded elsewhere, at the rate and layout this path decodes to
        (transcoding only): resampled, re-cut and delivered like decoded payloads."""
        resampler = self._resampler
        if resampler is None:
            raise ValueError("a pass-through caller path takes G.711 payloads, not PCM")
        stats = self.stats
        to_agent = self._to_agent
        tap = self.tap
        chunks = self._reframer.push(resampler.process(pcm))
        held = self._reframer.pending + resampler.delay_samples  # audio after the last frame
        for i, chunk in enumerate(chunks):
            frame = chunk.tobytes()
            self.last_frame = frame
            if tap is not None:
                after = held + (len(chunks) - 1 - i) * len(chunk)
                tap(frame, False, after / AGENT_RATE)
            if to_agent(frame):
                stats.frames_to_agent += 1
            else:
                stats.frames_dropped_upstream += 1

    # -- internals -----------------------------------------------------------------------

    def _take(self, items: list[RtpPacket | None]) -> None:
        """What the reorder window released, in order (None: a lost frame)."""
        for item in items:
            if item is None:
                self._conceal()
            elif self._decode is None:
                self._forward_g711(item.payload)
            else:
                self._forward_decoded(item.payload)

    def _forward_g711(self, payload: bytes) -> None:
        self._lost_run = 0
        n = self._frame_bytes
        pending = self._pending
        if pending or len(payload) != n:  # another ptime: re-cut through the carry-over
            pending += payload
            whole = len(pending) // n * n
            frames = [bytes(pending[i : i + n]) for i in range(0, whole, n)]
            del pending[:whole]
            for i, frame in enumerate(frames):
                self._send(frame, lag=(len(pending) + (len(frames) - 1 - i) * n) / _G711_RATE)
            return
        self.last_frame = payload  # 20 ms exactly: the bytes that arrived, untouched
        if self.tap is not None:
            self.tap(payload, False, 0.0)
        if self._to_agent(payload):
            self.stats.frames_to_agent += 1
        else:
            self.stats.frames_dropped_upstream += 1

    def _forward_decoded(self, payload: bytes) -> None:
        self._lost_run = 0
        if not payload:
            return
        assert self._decode is not None
        try:
            pcm = self._decode(payload)
        except CodecError:
            self.stats.decode_errors += 1
            return
        self.push_pcm(pcm)

    def _conceal(self) -> None:
        """One lost frame: the last frame again, fading (no zero bursts). Nothing before the
        first frame, nor past the last gain."""
        run = self._lost_run
        if not self.last_frame or run >= len(CONCEAL_GAINS):
            return
        self._lost_run = run + 1
        self.stats.frames_concealed += 1
        self._send(faded(self.last_frame, self.output, CONCEAL_GAINS[run]), concealed=True)

    def _send(self, frame: bytes, *, concealed: bool = False, lag: float = 0.0) -> None:
        if not concealed:
            self.last_frame = frame
        if self.tap is not None:
            self.tap(frame, concealed, lag)
        if self._to_agent(frame):
            self.stats.frames_to_agent += 1
        else:
            self.stats.frames_dropped_upstream += 1

    # -- queries -------------------------------------------------------------------------

    def level(self) -> float | None:
        """dBFS of the latest frame sent to the agent (None before the first one)."""
        if not self.last_frame:
            return None
        return dbfs(self.output.to_pcm16(self.last_frame))
