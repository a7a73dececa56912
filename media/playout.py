"""Paced playout of agent audio: the buffer barge-in truncation is computed from.

Why this module exists: rtbridge, not the agent, decides when each 20 ms of agent speech goes
out to the caller, so it alone knows how much of each conversation item was actually sent.
``output_audio_buffer.started`` / ``.stopped`` / ``.cleared`` and the ``audio_end_ms`` of
``conversation.item.truncate`` are computed from this object's bookkeeping.

Model. Agent audio arrives as chunks tagged ``(response_id, item_id)`` in one fixed format
(:class:`PlayoutFormat`: PCM16 samples or G.711 bytes at a known sample rate and frame size).
A synchronous, clock-injected scheduler emits exactly one :class:`Frame` per frame period:

- **Drift-free schedule.** Frame ``n`` is due at ``anchor + (n - anchor_index) * period``; the
  deadline is computed by multiplication from a monotonic anchor, never by adding up sleeps. The
  driver (in ``bridge/``) sleeps until :meth:`PlayoutBuffer.next_deadline`, then calls
  :meth:`PlayoutBuffer.tick` with the current monotonic time.
- **Stall policy.** If the driver wakes late and ``k`` deadlines have passed, ``tick`` emits the
  overdue frames on their original deadlines, at most ``max_catch_up`` (default 3) of them. If
  more than ``max_catch_up`` were due (an event-loop stall of more than about 60 ms), it emits
  ``max_catch_up`` frames and re-anchors: the next deadline becomes ``now + period`` and the
  schedule continues from there. Agent audio is never dropped by a stall; it is delayed. The
  time lost is counted (``stats.reanchors``, ``stats.catch_up_frames``). RTP timestamps derived
  from frame deadlines (``media.rtp.RtpClock``) therefore jump forward by the stall, as RFC 3550
  §5.1 asks for a sampling clock that kept running.
- **Continuous output.** While running (not paused) every period yields a frame: agent audio
  when there is a whole frame of it, silence otherwise (idle, or an underrun while a response is
  still streaming; underruns are counted). Frames never mix two items: the tail of an item is
  padded with silence once the next item's audio arrives or the response is marked done.
- **Playback events** (:meth:`PlayoutBuffer.take_events`): :class:`PlaybackStarted` when the
  first frame of a response is emitted (``output_audio_buffer.started``);
  :class:`PlaybackFinished` at the first deadline after the response's last frame, once the
  response is marked done (``.stopped``). A response with no audio produces neither.
- **clear()** (barge-in, ``output_audio_buffer.clear``) drops all buffered audio before the next
  frame and returns, per item of every response not yet finished, the audio actually sent
  (:class:`ItemPlayout`): items with audio sent go in ``played`` (truncate to ``audio_end_ms``),
  items never started go in ``unplayed`` (delete them; never "truncate to 0"). Audio that
  arrives later for a cleared response is discarded and counted.
- **pause()/resume()** for hold: no frames while paused; resume re-anchors at ``now``.
- **A bound.** At most :data:`MAX_BUFFERED_S` of audio waits to be sent (``max_buffered_s``);
  audio pushed past it is dropped (what fits of a chunk is kept) and counted
  (``stats.samples_overflow``), so an agent that streams faster than real time, for ever, costs
  a bounded amount of memory. :attr:`PlayoutBuffer.room` says how much more fits.

Responses are a small state machine (:class:`ResponseState`, one transition table
``_TRANSITIONS``); an illegal move raises :class:`PlayoutError` naming state and event.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from media import g711

__all__ = [
    "MAX_BUFFERED_S",
    "ClearResult",
    "Frame",
    "ItemPlayout",
    "PlaybackEvent",
    "PlaybackFinished",
    "PlaybackStarted",
    "PlayoutBuffer",
    "PlayoutEncoding",
    "PlayoutError",
    "PlayoutFormat",
    "PlayoutStats",
    "ResponseState",
]

DEFAULT_MAX_CATCH_UP: Final = 3
# A deadline within this of ``now`` is due: a driver on its own grid (anchor + n * period
# computed elsewhere) may land a rounding error early, and must not lose a whole period.
_EPSILON: Final = 1e-6
#: finished/cleared response ids remembered per buffer to reject their late audio (late deltas
#: come within a second or two; a call makes a response every few seconds)
_CLOSED_MEMORY: Final = 16
#: Seconds of agent audio a buffer holds at most (queued, not yet sent); past it audio is
#: dropped and counted. Two minutes is longer than any spoken answer, and at most 11.5 MB
#: (PCM16 at 48 kHz) per call.
MAX_BUFFERED_S: Final = 120


class PlayoutError(RuntimeError):
    """The playout buffer was driven in a way its state machine does not allow (a bug)."""


class PlayoutEncoding(enum.Enum):
    """How samples are stored: signed 16-bit native PCM, or one G.711 byte per sample."""

    PCM16 = (2, 0x00)
    PCMU = (1, 0xFF)  # u-law silence
    PCMA = (1, 0xD5)  # A-law silence

    @property
    def sample_width(self) -> int:
        return self.value[0]

    @property
    def silence_byte(self) -> int:
        return self.value[1]

    def to_pcm16(self, data: bytes) -> npt.NDArray[np.int16]:
        """Samples stored in this encoding as int16 PCM (a dangling PCM16 byte is ignored)."""
        if self is PlayoutEncoding.PCMU:
            return g711.ulaw_decode(data)
        if self is PlayoutEncoding.PCMA:
            return g711.alaw_decode(data)
        return np.frombuffer(data[: len(data) & ~1], dtype=np.int16)

    def from_pcm16(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """int16 PCM stored in this encoding (little-endian for PCM16)."""
        if self is PlayoutEncoding.PCMU:
            return g711.ulaw_encode(pcm)
        if self is PlayoutEncoding.PCMA:
            return g711.alaw_encode(pcm)
        return pcm.astype("<i2", copy=False).tobytes()


@dataclass(frozen=True, slots=True)
class PlayoutFormat:
    """Encoding, sample rate and frame duration of the audio going out."""

    encoding: PlayoutEncoding
    sample_rate: int
    frame_ms: int = 20

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.frame_ms <= 0:
            raise ValueError(f"bad playout format {self}")
        if (self.sample_rate * self.frame_ms) % 1000:
            raise ValueError(
                f"{self.frame_ms} ms at {self.sample_rate} Hz is not a whole number of samples"
            )

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * self.encoding.sample_width

    @property
    def period(self) -> float:
        """Frame duration in seconds."""
        return self.frame_ms / 1000.0

    def samples_to_ms(self, samples: int) -> float:
        return samples * 1000.0 / self.sample_rate


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame period of output.

    ``payload`` holds exactly one frame of audio in the buffer's format. ``response_id`` and
    ``item_id`` are ``None`` for a silence frame. ``item_offset_ms`` is the item's audio sent
    before this frame; ``audio_samples`` how many of the frame's samples are item audio (the
    rest is padding). ``index`` counts frames since start; ``deadline`` is the frame's scheduled
    time on the monotonic clock (stamp RTP timestamps from it); ``catch_up`` marks frames
    emitted after their period had already passed (stall policy).
    """

    payload: bytes
    index: int
    deadline: float
    response_id: str | None = None
    item_id: str | None = None
    item_offset_ms: float = 0.0
    audio_samples: int = 0
    catch_up: bool = False

    @property
    def is_silence(self) -> bool:
        return self.response_id is None

    def pcm16(self) -> npt.NDArray[np.int16]:
        """The payload as int16 samples (PCM16 buffers only)."""
        return np.frombuffer(self.payload, dtype=np.int16)


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    """The first frame of a response was emitted at ``at`` (its deadline)."""

    response_id: str
    item_id: str
    at: float


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """A response marked done has drained: its last frame's period ended at ``at``."""

    response_id: str
    at: float
    sent_ms: float
    #: (item id, ms of it played) for each item of the response that had audio
    items: tuple[tuple[str, float], ...] = ()


PlaybackEvent = PlaybackStarted | PlaybackFinished


@dataclass(frozen=True, slots=True)
class ItemPlayout:
    """How much of one item was sent when the buffer was cleared."""

    response_id: str
    item_id: str
    sent_samples: int
    buffered_samples: int  # all audio received for the item, sent or not
    sample_rate: int

    @property
    def sent_ms(self) -> float:
        return self.sent_samples * 1000.0 / self.sample_rate

    @property
    def audio_end_ms(self) -> int:
        """``sent_ms`` rounded down: never more than the audio actually sent."""
        return self.sent_samples * 1000 // self.sample_rate

    @property
    def started(self) -> bool:
        return self.sent_samples > 0


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What :meth:`PlayoutBuffer.clear` flushed.

    ``played``: items with audio sent (truncate each at ``audio_end_ms``). ``unplayed``: items
    of which nothing was sent (delete them). ``responses``: the responses cut short, in order.
    """

    played: tuple[ItemPlayout, ...] = ()
    unplayed: tuple[ItemPlayout, ...] = ()
    responses: tuple[str, ...] = ()

    @property
    def was_playing(self) -> bool:
        return bool(self.played)


@dataclass(slots=True)
class PlayoutStats:
    frames: int = 0
    audio_frames: int = 0
    silence_frames: int = 0
    underruns: int = 0  # silence frames emitted while a started response was still streaming
    catch_up_frames: int = 0
    reanchors: int = 0
    chunks_dropped: int = 0  # audio for cleared/finished responses
    samples_dropped: int = 0
    samples_cleared: int = 0
    samples_overflow: int = 0  # audio past the buffer's bound (max_buffered_s), dropped


class ResponseState(enum.Enum):
    QUEUED = "queued"  # audio buffered, nothing sent
    QUEUED_DONE = "queued_done"  # ... and the response is complete upstream
    PLAYING = "playing"  # first frame sent
    PLAYING_DONE = "playing_done"
    FINISHED = "finished"  # done and drained
    CLEARED = "cleared"  # flushed by clear()


class _Ev(enum.Enum):
    FIRST_FRAME = "first_frame"
    DONE = "done"
    DRAINED = "drained"
    CLEAR = "clear"


_S = ResponseState
# The one transition table of a response's playout. Missing pairs are illegal.
_TRANSITIONS: Final[dict[tuple[ResponseState, _Ev], ResponseState]] = {
    (_S.QUEUED, _Ev.FIRST_FRAME): _S.PLAYING,
    (_S.QUEUED, _Ev.DONE): _S.QUEUED_DONE,
    (_S.QUEUED, _Ev.CLEAR): _S.CLEARED,
    (_S.QUEUED_DONE, _Ev.FIRST_FRAME): _S.PLAYING_DONE,
    (_S.QUEUED_DONE, _Ev.DONE): _S.QUEUED_DONE,
    (_S.QUEUED_DONE, _Ev.CLEAR): _S.CLEARED,
    (_S.PLAYING, _Ev.DONE): _S.PLAYING_DONE,
    (_S.PLAYING, _Ev.CLEAR): _S.CLEARED,
    (_S.PLAYING_DONE, _Ev.DONE): _S.PLAYING_DONE,
    (_S.PLAYING_DONE, _Ev.DRAINED): _S.FINISHED,
    (_S.PLAYING_DONE, _Ev.CLEAR): _S.CLEARED,
    (_S.FINISHED, _Ev.DONE): _S.FINISHED,
    (_S.CLEARED, _Ev.DONE): _S.CLEARED,
}
_DONE_STATES: Final = frozenset({_S.QUEUED_DONE, _S.PLAYING_DONE})
_OPEN_STATES: Final = frozenset({_S.QUEUED, _S.QUEUED_DONE, _S.PLAYING, _S.PLAYING_DONE})


@dataclass(slots=True)
class _Item:
    response_id: str
    item_id: str
    buffered_samples: int = 0
    sent_samples: int = 0


@dataclass(slots=True)
class _Response:
    response_id: str
    state: ResponseState = ResponseState.QUEUED
    items: dict[str, _Item] = field(default_factory=dict)
    pending_bytes: int = 0
    sent_samples: int = 0
    last_frame_deadline: float | None = None

    def apply(self, event: _Ev) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise PlayoutError(
                f"response {self.response_id!r}: event {event.value!r} is illegal in state "
                f"{self.state.value!r}"
            ) from None


@dataclass(slots=True)
class _Segment:
    item: _Item
    response: _Response
    buf: bytearray
    pos: int = 0

    @property
    def available(self) -> int:
        return len(self.buf) - self.pos


class PlayoutBuffer:
    """Paced playout of tagged agent audio; see the module docstring for the model."""

    def __init__(
        self,
        fmt: PlayoutFormat,
        *,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        max_buffered_s: float = MAX_BUFFERED_S,
    ) -> None:
        if max_catch_up < 1:
            raise ValueError(f"max_catch_up must be >= 1, got {max_catch_up}")
        if max_buffered_s <= 0:
            raise ValueError(f"max_buffered_s must be > 0, got {max_buffered_s}")
        self.format = fmt
        self.max_catch_up = max_catch_up
        self.stats = PlayoutStats()
        self._period = fmt.period
        self._frame_bytes = fmt.frame_bytes
        self._width = fmt.encoding.sample_width
        self._rate = fmt.sample_rate
        self._silence = bytes([fmt.encoding.silence_byte]) * fmt.frame_bytes
        self._max_samples = int(max_buffered_s * fmt.sample_rate)
        self._queued = 0  # bytes in the segments, not yet sent
        self._segments: deque[_Segment] = deque()
        self._responses: dict[str, _Response] = {}
        self._closed: OrderedDict[str, ResponseState] = OrderedDict()
        #: Playback events not yet taken, in order: test it to see whether :meth:`take_events`
        #: has anything (a tick's driver then pays no call when there is nothing).
        self.events: list[PlaybackEvent] = []
        self._anchor: float | None = None
        self._anchor_index = 0
        self._index = 0  # next frame index
        self._paused = False

    # ------------------------------------------------------------------ input

    def push(
        self,
        response_id: str,
        item_id: str,
        audio: bytes | bytearray | memoryview | npt.NDArray[np.int16] | npt.NDArray[np.uint8],
    ) -> bool:
        """Queue agent audio for ``(response_id, item_id)``. Empty input is a no-op.

        PCM16 buffers take int16 arrays or little-endian bytes; G.711 buffers take encoded bytes
        (or a uint8 array). Returns False, counting the drop, if the response was already cleared
        or finished (late deltas after a barge-in must never play), or if none of it fits under
        the bound (:attr:`room`); of a chunk that fits in part, the rest is dropped and counted.
        """
        per_sample = 1 if isinstance(audio, np.ndarray) else self._width  # items per sample
        room = self.room
        if len(audio) > room * per_sample:  # cut before any copy
            self.stats.samples_overflow += len(audio) // per_sample - room
            if not room:
                return False
            audio = audio[: room * per_sample]
        if isinstance(audio, np.ndarray):
            want = np.int16 if self._width == 2 else np.uint8
            if audio.dtype != want:
                raise ValueError(
                    f"{self.format.encoding.name} playout takes {np.dtype(want).name} arrays, "
                    f"got {audio.dtype.name}"
                )
            data = np.ascontiguousarray(audio, dtype=audio.dtype.newbyteorder("<")).tobytes()
        else:
            data = bytes(audio)
        if not data:
            return True
        resp = self._responses.get(response_id)
        if resp is None:
            if response_id in self._closed:
                self.stats.chunks_dropped += 1
                self.stats.samples_dropped += len(data) // self._width
                return False
            resp = self._responses[response_id] = _Response(response_id)
        # Audio after mark_done (an upstream out of order) is still played, before the finish.
        item = resp.items.get(item_id)
        if item is None:
            item = resp.items[item_id] = _Item(response_id, item_id)
        item.buffered_samples += len(data) // self._width
        resp.pending_bytes += len(data)
        self._queued += len(data)
        tail = self._segments[-1] if self._segments else None
        if tail is not None and tail.item is item:
            if tail.pos > 65536 and tail.pos * 2 > len(tail.buf):
                del tail.buf[: tail.pos]
                tail.pos = 0
            tail.buf += data
        else:
            self._segments.append(_Segment(item, resp, bytearray(data)))
        return True

    def mark_done(self, response_id: str) -> None:
        """The response is complete upstream (``response.done``); once its audio drains, a
        :class:`PlaybackFinished` follows. Unknown or audio-less responses are ignored."""
        resp = self._responses.get(response_id)
        if resp is not None:
            resp.apply(_Ev.DONE)

    # ------------------------------------------------------------------ control

    def clear(self) -> ClearResult:
        """Flush every response not yet finished, before the next frame (barge-in)."""
        played: list[ItemPlayout] = []
        unplayed: list[ItemPlayout] = []
        cut: list[str] = []
        for resp in list(self._responses.values()):
            if resp.state not in _OPEN_STATES:
                continue
            resp.apply(_Ev.CLEAR)
            cut.append(resp.response_id)
            for item in resp.items.values():
                rec = ItemPlayout(
                    resp.response_id,
                    item.item_id,
                    item.sent_samples,
                    item.buffered_samples,
                    self.format.sample_rate,
                )
                (played if item.sent_samples else unplayed).append(rec)
            self._close(resp)
        cleared = sum(s.available for s in self._segments)
        self.stats.samples_cleared += cleared // self._width
        self._segments.clear()
        self._queued = 0
        return ClearResult(tuple(played), tuple(unplayed), tuple(cut))

    def pause(self) -> None:
        """Stop emitting frames (hold). Buffered audio and accounting are kept."""
        self._paused = True

    def resume(self, now: float) -> None:
        """Continue after :meth:`pause`; the schedule re-anchors so the next frame is due now,
        or one period after the last frame emitted if that is later (deadlines, and the RTP
        timestamps stamped from them, never repeat)."""
        if self._paused:
            self._paused = False
            if self._anchor is not None:
                last = self._anchor + (self._index - self._anchor_index - 1) * self._period
                self._anchor = now if now > last + _EPSILON else last + self._period
                self._anchor_index = self._index

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self, now: float) -> None:
        """Anchor the schedule: frame 0 is due at ``now``. ``tick`` does this if needed."""
        if self._anchor is None:
            self._anchor = now
            self._anchor_index = self._index

    # ------------------------------------------------------------------ output

    def next_deadline(self) -> float | None:
        """When the next frame is due; ``None`` before :meth:`start` or while paused."""
        if self._anchor is None or self._paused:
            return None
        return self._anchor + (self._index - self._anchor_index) * self._period

    def tick(self, now: float) -> list[Frame]:
        """Emit the frames due at ``now`` (normally one; see the stall policy)."""
        if self._paused:
            return []
        if self._anchor is None:
            self.start(now)
        anchor = self._anchor
        assert anchor is not None
        period = self._period
        frames: list[Frame] = []
        while len(frames) < self.max_catch_up:
            deadline = anchor + (self._index - self._anchor_index) * period
            if deadline > now + _EPSILON:
                return frames
            frames.append(self._next_frame(deadline, catch_up=now - deadline >= period))
        # max_catch_up frames emitted; re-anchor if more were overdue.
        deadline = anchor + (self._index - self._anchor_index) * period
        if deadline <= now + _EPSILON:
            self._anchor = now + period
            self._anchor_index = self._index
            self.stats.reanchors += 1
        return frames

    def take_events(self) -> list[PlaybackEvent]:
        """Playback events since the last call, in order."""
        events, self.events = self.events, []
        return events

    # ------------------------------------------------------------------ queries

    @property
    def buffered_ms(self) -> float:
        """Audio queued and not yet sent."""
        total = sum(s.available for s in self._segments) // self._width
        return self.format.samples_to_ms(total)

    @property
    def room(self) -> int:
        """Samples that may still be pushed before the bound (``max_buffered_s``)."""
        return max(0, self._max_samples - self._queued // self._width)

    @property
    def overflow_ms(self) -> float:
        """Audio dropped past the bound so far (``stats.samples_overflow``), in ms."""
        return self.format.samples_to_ms(self.stats.samples_overflow)

    def overflowed(self, samples: int) -> None:
        """Count ``samples`` (at this buffer's rate) a caller dropped for want of :attr:`room`
        before pushing them (cut before resampling, so the work is never done)."""
        self.stats.samples_overflow += samples

    @property
    def active_responses(self) -> tuple[str, ...]:
        """Responses with audio queued or playing, not yet finished or cleared."""
        return tuple(r.response_id for r in self._responses.values() if r.state in _OPEN_STATES)

    def response_state(self, response_id: str) -> ResponseState | None:
        resp = self._responses.get(response_id)
        if resp is not None:
            return resp.state
        return self._closed.get(response_id)

    # ------------------------------------------------------------------ internals

    def _close(self, resp: _Response) -> None:
        del self._responses[resp.response_id]
        self._closed[resp.response_id] = resp.state
        while len(self._closed) > _CLOSED_MEMORY:
            self._closed.popitem(last=False)

    def _finish_drained(self, deadline: float) -> None:
        for resp in list(self._responses.values()):
            if (
                resp.state is _S.PLAYING_DONE
                and resp.pending_bytes == 0
                and resp.last_frame_deadline is not None
                and resp.last_frame_deadline < deadline
            ):
                resp.apply(_Ev.DRAINED)
                ms = self.format.samples_to_ms
                self.events.append(
                    PlaybackFinished(
                        resp.response_id,
                        deadline,
                        ms(resp.sent_samples),
                        tuple((i.item_id, ms(i.sent_samples)) for i in resp.items.values()),
                    )
                )
                self._close(resp)

    def _next_frame(self, deadline: float, *, catch_up: bool) -> Frame:
        index = self._index
        self._index += 1
        stats = self.stats
        stats.frames += 1
        if catch_up:
            stats.catch_up_frames += 1
        if self._responses:
            self._finish_drained(deadline)
        segs = self._segments
        fb = self._frame_bytes
        if segs:
            seg = segs[0]
            resp = seg.response
            avail = len(seg.buf) - seg.pos
            if avail >= fb:
                take = fb
            elif len(segs) > 1 or resp.state in _DONE_STATES:
                take = avail
            else:
                take = 0
            if take:
                payload = bytes(seg.buf[seg.pos : seg.pos + take])
                seg.pos += take
                if take < fb:
                    payload += self._silence[: fb - take]
                if seg.pos >= len(seg.buf):
                    segs.popleft()
                item = seg.item
                samples = take // self._width
                offset = item.sent_samples * 1000.0 / self._rate  # samples_to_ms, inline
                item.sent_samples += samples
                resp.sent_samples += samples
                resp.pending_bytes -= take
                self._queued -= take
                resp.last_frame_deadline = deadline
                if resp.state is _S.QUEUED or resp.state is _S.QUEUED_DONE:
                    resp.apply(_Ev.FIRST_FRAME)
                    self.events.append(PlaybackStarted(resp.response_id, item.item_id, deadline))
                stats.audio_frames += 1
                return Frame(
                    payload,
                    index,
                    deadline,
                    resp.response_id,
                    item.item_id,
                    offset,
                    samples,
                    catch_up,
                )
            if resp.state is _S.PLAYING:
                stats.underruns += 1
        stats.silence_frames += 1
        return Frame(self._silence, index, deadline, catch_up=catch_up)
