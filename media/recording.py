"""A call's two directions on one timeline: the sample-aligned blocks a call recording is made of.

Why this module exists: a recording is only worth keeping if it says what each party heard,
when they heard it. rtbridge owns both media paths and the call's 20 ms frame clock (the shared
ticker), so it can lay both directions on that clock:

* **Left: the caller**, as the agent received it: every 20 ms frame the caller path delivered
  (:class:`~media.caller_path.CallerPath`), placed so that it ends when its audio arrived (the
  packet's arrival, less what the re-cut and the resampler still hold after the frame). A
  frame the caller path concealed is recorded as silence (nothing was received), so is hold
  (nothing is forwarded).
* **Right: the agent, as the caller heard it**: the frames the agent path actually emitted
  (:class:`~media.playout.Frame`, each with its deadline on the frame clock), after barge-in
  flushes. A silence frame, a hold (no frames) and a flush leave silence.

Placement. Both channels are the call as it passed through rtbridge: an agent frame from
the moment it was due to be sent (its deadline, its RTP time), a caller frame from the moment
rtbridge had it whole (its packet's arrival, less what the caller path's re-cut and resampler
still hold after it). Each channel keeps a write cursor in samples since the recording's origin
(the frame clock's deadline of its first tick). A frame is written at the cursor, which then
moves on by the frame's length while it is near where the frame belongs (the agent's within
a frame of its deadline; the caller's up to :data:`CALLER_MAX_BEHIND_FRAMES` behind its time,
so late packets after a stall never tear the caller's stream apart). When the cursor is
further behind (a gap: hold, silence suppression, a stall the caller heard), it jumps forward
and leaves silence; when a caller runs more than :data:`MAX_AHEAD_FRAMES` ahead (a burst, or
a fast clock), the frame is dropped and counted, so the channels never drift apart. Blocks are
released :data:`LAG_FRAMES` behind the clock (late caller frames still land in place) and in
pieces of at least :data:`BLOCK_FRAMES` (the writer wakes a few times a second per call, not
50).

Formats: ``stereo`` (caller left, agent right, interleaved) or ``mixed`` (their saturated sum,
mono), PCM16 at the recording's rate. The rate is that of the wire when it is 8, 16 or 24 kHz
(G.711: 8 kHz), else 24 kHz; a direction at another rate goes through a
:class:`~media.resample.Resampler` (its streaming delay, at most 2 ms, is the only offset).

:meth:`RecordingMixer.pause` (a card number being read out) records silence on both channels
from the next frame on, without moving anything on the timeline. Synchronous and clock-free:
the call passes the tick's deadline and the caller audio's time; nothing here awaits or reads
a clock.
"""

from __future__ import annotations

import enum
from typing import Final

import numpy as np
from numpy.typing import NDArray

from media.playout import Frame, PlayoutEncoding, PlayoutFormat
from media.resample import SUPPORTED_RATES, Resampler

__all__ = [
    "BLOCK_FRAMES",
    "CALLER_MAX_BEHIND_FRAMES",
    "LAG_FRAMES",
    "MAX_AHEAD_FRAMES",
    "MixerStats",
    "RecordingMixer",
    "RecordingMode",
    "recording_rate",
]

#: Blocks are released this many frame periods behind the clock (late caller frames land:
#: more than :data:`CALLER_MAX_BEHIND_FRAMES`).
LAG_FRAMES: Final = 7
#: A channel's cursor may run this many frames ahead of the clock; beyond, frames are dropped.
MAX_AHEAD_FRAMES: Final = 5
#: The caller's cursor may be this many frames behind where a frame belongs (packets late
#: after a stall of the loop or the network) before it jumps there and leaves silence; a lost
#: packet leaves no gap (the caller path conceals it), so only silence suppression and hold do.
CALLER_MAX_BEHIND_FRAMES: Final = 5
#: Released blocks hold at least this many frames (250 ms).
BLOCK_FRAMES: Final = 12
#: What the mixer holds at most, in frames (well above lag + ahead + block).
_CAPACITY_FRAMES: Final = 64
_RATES: Final = frozenset({8000, 16000, 24000})
_VIA: Final = 24000


class RecordingMode(enum.StrEnum):
    """``record`` of a profile, a route or a call."""

    OFF = "off"
    STEREO = "stereo"
    MIXED = "mixed"

    @property
    def channels(self) -> int:
        return 2 if self is RecordingMode.STEREO else 1


def recording_rate(wire_rate: int) -> int:
    """The recording's rate for a call whose audio travels at ``wire_rate``."""
    return wire_rate if wire_rate in _RATES else 24000


class MixerStats:
    __slots__ = ("frames_dropped", "frames_late", "samples_out")

    def __init__(self) -> None:
        self.frames_dropped = 0  # a channel ran too far ahead of the clock
        self.frames_late = 0  # a frame for audio already released
        self.samples_out = 0


class _ViaAgentRate:
    """Two resamplers in a row, through 24 kHz: a pair :mod:`media.resample` has no filter
    for (16 kHz frames into an 8 kHz recording after a codec change)."""

    __slots__ = ("_first", "_second")

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self._first = Resampler(rate_in, _VIA)
        self._second = Resampler(_VIA, rate_out)

    def process(self, pcm: NDArray[np.int16]) -> NDArray[np.int16]:
        return self._second.process(self._first.process(pcm))


def _resampler(rate_in: int, rate_out: int) -> Resampler | _ViaAgentRate | None:
    if rate_in == rate_out:
        return None
    if (rate_in, rate_out) in SUPPORTED_RATES:
        return Resampler(rate_in, rate_out)
    return _ViaAgentRate(rate_in, rate_out)


class _Channel:
    """One direction's samples on the timeline, from ``base`` (absolute sample index) on."""

    __slots__ = ("cursor", "resampler")

    def __init__(self, resampler: Resampler | _ViaAgentRate | None) -> None:
        self.cursor: int | None = None
        self.resampler = resampler


class RecordingMixer:
    """Caller and agent frames -> aligned PCM16 blocks; see the module docstring."""

    def __init__(
        self,
        mode: RecordingMode,
        *,
        caller: PlayoutEncoding,
        caller_rate: int,
        agent: PlayoutFormat,
        frame_ms: int = 20,
    ) -> None:
        if mode is RecordingMode.OFF:
            raise ValueError("a mixer records something: stereo or mixed")
        self.mode = mode
        self.rate = recording_rate(agent.sample_rate)
        self.frame_samples = self.rate * frame_ms // 1000
        self.period = frame_ms / 1000.0
        self.stats = MixerStats()
        self.paused = False
        self._caller_encoding = caller
        self._agent_encoding = agent.encoding
        self._caller = _Channel(_resampler(caller_rate, self.rate))
        self._agent = _Channel(_resampler(agent.sample_rate, self.rate))
        self._buf = np.zeros((2, _CAPACITY_FRAMES * self.frame_samples), dtype=np.int16)
        self._base = 0  # absolute sample index of self._buf[:, 0]
        self._origin: float | None = None

    @property
    def origin(self) -> float | None:
        """The frame clock's deadline of sample 0 (None before the first tick)."""
        return self._origin

    def agent_format(self, agent: PlayoutFormat) -> None:
        """The agent's frames come in ``agent`` from now on (a codec change mid-call rebuilt
        the agent path); the recording goes on at its own rate."""
        self._agent_encoding = agent.encoding
        self._agent.resampler = _resampler(agent.sample_rate, self.rate)

    # -- input ---------------------------------------------------------------------------

    def caller_frame(self, frame: bytes | None, end_at: float) -> None:
        """A caller frame (in the caller path's encoding; None: concealed, recorded as
        silence) that rtbridge had whole at ``end_at`` on the frame clock (its arrival, less
        what the caller path still holds after it)."""
        origin = self._origin
        if origin is None:
            return
        pcm = None if frame is None else self._caller_encoding.to_pcm16(frame)
        # from the moment rtbridge had it whole, as an agent frame from the moment it is sent
        start = round((end_at - origin) * self.rate)
        self._place(self._caller, 0, pcm, start, self.frame_samples, CALLER_MAX_BEHIND_FRAMES)

    def agent_frames(self, frames: list[Frame]) -> None:
        """Frames the agent path emitted this tick (silence frames leave silence)."""
        for frame in frames:
            slot = self.slot(frame.deadline)
            if slot is None:
                continue
            pcm = None if frame.is_silence else self._agent_encoding.to_pcm16(frame.payload)
            self._place(self._agent, 1, pcm, slot * self.frame_samples, self.frame_samples, 1)

    def slot(self, at: float) -> int | None:
        """The frame period ``at`` (a time on the frame clock) falls in."""
        if self._origin is None:
            return None
        return int((at - self._origin) / self.period + 1e-6)

    def pause(self, paused: bool) -> None:
        """Record silence (True) or audio again (False) from the next frame on."""
        self.paused = paused

    # -- output --------------------------------------------------------------------------

    def tick(self, deadline: float) -> bytes | None:
        """The call's frame tick: the block now final (PCM16 little-endian, interleaved for
        stereo), or None while it is shorter than :data:`BLOCK_FRAMES`."""
        if self._origin is None:
            self._origin = deadline
            return None
        slot = self.slot(deadline)
        assert slot is not None
        upto = (slot - LAG_FRAMES) * self.frame_samples
        if upto - self._base < BLOCK_FRAMES * self.frame_samples:
            return None
        return self._release(upto)

    def flush(self) -> bytes | None:
        """Everything written so far (the call ended)."""
        ends = [c.cursor for c in (self._caller, self._agent) if c.cursor is not None]
        upto = max(ends, default=self._base)
        return self._release(upto) if upto > self._base else None

    # -- internals -----------------------------------------------------------------------

    def _place(
        self,
        channel: _Channel,
        row: int,
        pcm: NDArray[np.int16] | None,
        expected: int,
        n: int,
        behind: int,
    ) -> None:
        """Write ``pcm`` (None: ``n`` samples of silence) at the channel's cursor, or at
        ``expected`` (a sample index) when the cursor is more than ``behind`` frames behind
        it."""
        if channel.resampler is not None and pcm is not None:
            pcm = channel.resampler.process(pcm)
            n = len(pcm)
        elif pcm is not None:
            n = len(pcm)
        cursor = channel.cursor
        if cursor is None or cursor < expected - behind * self.frame_samples:
            cursor = expected  # a gap (or the first frame): silence up to here
        elif cursor > expected + MAX_AHEAD_FRAMES * self.frame_samples:
            self.stats.frames_dropped += 1
            return
        start = cursor - self._base
        channel.cursor = cursor + n
        if start < 0:
            self.stats.frames_late += 1
            return
        if start + n > self._buf.shape[1]:
            self.stats.frames_dropped += 1
            return
        if pcm is not None and not self.paused:
            self._buf[row, start : start + n] = pcm

    def _release(self, upto: int) -> bytes:
        n = min(upto - self._base, self._buf.shape[1])
        buf = self._buf
        if self.mode is RecordingMode.STEREO:
            block = np.empty((n, 2), dtype="<i2")
            block[:, 0] = buf[0, :n]
            block[:, 1] = buf[1, :n]
        else:
            mixed = buf[0, :n].astype(np.int32) + buf[1, :n]
            block = np.clip(mixed, -32768, 32767).astype("<i2")
        buf[:, : buf.shape[1] - n] = buf[:, n:]
        buf[:, buf.shape[1] - n :] = 0
        self._base += n
        self.stats.samples_out += n
        return block.tobytes()
