"""The agent -> caller media path shared by every leg: agent audio in, paced wire payloads out.

Agent audio arrives in the session's format (PCM16 24 kHz, or G.711 when the agent takes the
trunk's codec) in deltas of any length. One :class:`AgentPath` per call buffers it in a
:class:`~media.playout.PlayoutBuffer` (the bookkeeping that ``output_audio_buffer.*`` events and
barge-in truncation come from) and, on each tick of the shared 20 ms frame clock, hands the leg
the frames now due with the function that makes each one a wire payload. Three shapes, chosen
once per call:

* **pass-through** (:meth:`AgentPath.pass_through`): G.711 in, the same bytes out. The frames'
  payloads are the wire payloads.
* **to G.711** (:meth:`AgentPath.to_g711`): PCM16 24 kHz in, resampled to 8 kHz and G.711
  encoded as each delta arrives (a stateless codec: one vectorised call per delta instead of
  one per frame); the buffer holds G.711, so again the frames' payloads are the wire payloads
  and silence is the codec's own silence byte.
* **frame codec** (:meth:`AgentPath.encoding`): PCM16 24 kHz in, resampled to the codec's rate
  when it differs, encoded frame by frame on the tick (Opus, G.722: stateful codecs that take
  whole frames). A leg may give a constant ``silence`` payload (Opus's 3-byte silence frame)
  that goes out between responses instead of encoding zeros.

:meth:`AgentPath.clear` (barge-in) flushes before the next frame and says what of each item
was sent; :meth:`AgentPath.hold` pauses the schedule and resumes it on the next tick, so it
stays on the shared ticker's grid. Synchronous and clock-free: the leg passes each tick's
deadline and time. What goes around the payload (RTP headers and RFC 4733 events, an aiortc
track) stays with the legs.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray

from media.caller_path import AGENT_RATE, FRAME_MS
from media.level import SILENCE_DBFS, dbfs
from media.playout import (
    ClearResult,
    Frame,
    PlaybackEvent,
    PlayoutBuffer,
    PlayoutEncoding,
    PlayoutFormat,
)
from media.resample import Resampler

__all__ = ["AgentPath", "Encode"]

_G711_RATE: Final = 8000

#: One frame of int16 PCM -> its wire payload (an :meth:`~media.codecs.base.AudioCodec.encode`).
Encode = Callable[[NDArray[np.int16]], bytes]

#: The wire payload of a frame whose buffer already holds it (G.711): a C call, no Python frame.
_PAYLOAD: Final[Callable[[Frame], bytes]] = operator.attrgetter("payload")


def _encoded(encode: Encode, silence: bytes | None, frame: Frame) -> bytes:
    if silence is not None and frame.response_id is None:
        return silence
    return encode(frame.pcm16())


class AgentPath:
    """Agent audio -> due frames and their wire payloads; see the module docstring."""

    def __init__(
        self,
        session: PlayoutEncoding,
        wire: PlayoutFormat,
        *,
        encode: Encode | None = None,
        silence: bytes | None = None,
    ) -> None:
        if session is not PlayoutEncoding.PCM16 and session is not wire.encoding:
            raise ValueError(f"{session.name} agent audio cannot become {wire.encoding.name}")
        if (encode is None) == (wire.encoding is PlayoutEncoding.PCM16):
            raise ValueError("PCM16 frames need an encode function; G.711 frames need none")
        #: The agent's audio: G.711 bytes at 8 kHz (pass-through) or PCM16 at 24 kHz.
        self.session = session
        self.playout = PlayoutBuffer(wire)
        self._pcm_in = session is PlayoutEncoding.PCM16
        self._resampler = (
            Resampler(AGENT_RATE, wire.sample_rate)
            if self._pcm_in and wire.sample_rate != AGENT_RATE
            else None
        )
        self._to_g711 = self._pcm_in and wire.encoding is not PlayoutEncoding.PCM16
        #: ``encode(frame)``: the wire payload of a frame :meth:`tick` returned.
        self.encode: Callable[[Frame], bytes] = (
            _PAYLOAD if encode is None else functools.partial(_encoded, encode, silence)
        )
        #: Where playback events go (call control), as :meth:`tick` emits the frames.
        self.on_playback: Callable[[PlaybackEvent], None] | None = None
        #: Told of the frames each tick emits, before the leg sends them (the call's
        #: recording: the agent as the caller heard it); None: nobody listens.
        self.tap: Callable[[list[Frame]], None] | None = None
        #: The latest frame :meth:`tick` returned (meters measure it).
        self.last_frame: Frame | None = None
        #: The first tick's deadline: frame 0 of the schedule (legs stamp timestamps from it).
        self.started_at: float | None = None
        #: Told the response and item ids when a response's audio first overflows the
        #: playout buffer's bound (once per response; the call stops the response there).
        self.on_overflow: Callable[[str, str], None] | None = None
        self._overflowed: str | None = None
        self.muted = False
        self._resume_pending = False

    @classmethod
    def pass_through(cls, encoding: PlayoutEncoding) -> AgentPath:
        """G.711 in (``PCMU`` or ``PCMA``), the same G.711 out."""
        return cls(encoding, PlayoutFormat(encoding, _G711_RATE, FRAME_MS))

    @classmethod
    def to_g711(cls, encoding: PlayoutEncoding) -> AgentPath:
        """PCM16 24 kHz in, G.711 (``PCMU`` or ``PCMA``) 8 kHz out."""
        return cls(PlayoutEncoding.PCM16, PlayoutFormat(encoding, _G711_RATE, FRAME_MS))

    @classmethod
    def encoding(cls, encode: Encode, rate: int, *, silence: bytes | None = None) -> AgentPath:
        """PCM16 24 kHz in, ``encode`` applied to each 20 ms frame at ``rate``; ``silence``, if
        given, is the payload of every frame between responses."""
        return cls(
            PlayoutEncoding.PCM16,
            PlayoutFormat(PlayoutEncoding.PCM16, rate, FRAME_MS),
            encode=encode,
            silence=silence,
        )

    # -- agent audio in --------------------------------------------------------------------

    def push(self, response_id: str, item_id: str, audio: bytes) -> bool:
        """A delta of the item's audio in the session format. False: dropped (muted, the
        response was already cleared or finished, or the buffer is full). Audio past the
        playout buffer's bound (:data:`~media.playout.MAX_BUFFERED_S`) is cut off before it is
        converted, and counted (``playout.stats.samples_overflow``); :attr:`on_overflow` hears
        of the first such cut of each response."""
        if self.muted:
            return False
        stats = self.playout.stats
        overflow = stats.samples_overflow
        queued = self._push(response_id, item_id, audio)
        if stats.samples_overflow != overflow and self._overflowed != response_id:
            self._overflowed = response_id
            if self.on_overflow is not None:
                self.on_overflow(response_id, item_id)
        return queued

    def _push(self, response_id: str, item_id: str, audio: bytes) -> bool:
        playout = self.playout
        if not self._pcm_in:  # the buffer cuts what does not fit before copying it
            return playout.push(response_id, item_id, audio)
        samples = len(audio) // 2
        rate = playout.format.sample_rate
        fits = -(-playout.room * AGENT_RATE // rate)  # input samples for the room, rounded up
        if samples > fits:  # cut before resampling: the work is never done
            playout.overflowed((samples - fits) * rate // AGENT_RATE)
            if not fits:
                return False
            samples = fits
        audio = audio[: samples * 2]
        resampler = self._resampler
        if resampler is None:  # PCM16 at the agent's rate all the way: bytes as they came
            return playout.push(response_id, item_id, audio)
        pcm = resampler.process(np.frombuffer(audio, dtype=np.int16))
        if self._to_g711:
            return playout.push(response_id, item_id, playout.format.encoding.from_pcm16(pcm))
        return playout.push(response_id, item_id, pcm)

    def mark_done(self, response_id: str) -> None:
        """The response is complete upstream; its playback finishes once it drains."""
        self.playout.mark_done(response_id)

    # -- control ---------------------------------------------------------------------------

    def clear(self) -> ClearResult:
        """Barge-in: stop before the next frame; what was sent of each item."""
        result = self.playout.clear()
        if self._resampler is not None:
            self._resampler.reset()
        return result

    def set_muted(self, muted: bool) -> None:
        """Mute the agent towards the caller: what is buffered is dropped, new audio refused."""
        self.muted = muted
        if muted:
            self.clear()

    def hold(self, on_hold: bool) -> None:
        """Hold pauses the schedule (audio stays buffered); unhold resumes it at the next
        tick's deadline, on the frame clock's grid."""
        if on_hold:
            self._resume_pending = False
            self.playout.pause()
        elif self.playout.paused:
            self._resume_pending = True

    def playing(self) -> bool:
        """Agent audio buffered or being played (call control waits for this to end)."""
        return bool(self.playout.active_responses) or self.playout.buffered_ms > 0

    # -- frames out ------------------------------------------------------------------------

    def tick(self, deadline: float, now: float) -> list[Frame]:
        """The frame clock's tick (``deadline`` on its grid, ``now`` the time): the frames
        due, normally one (silence while the agent is quiet; none while on hold). Make each
        a payload with :attr:`encode`. Their playback events (started, finished) have gone to
        :attr:`on_playback` by the time this returns; the leg sends the frames right after,
        in the same synchronous step."""
        playout = self.playout
        if self._resume_pending:
            self._resume_pending = False
            playout.resume(deadline)
        if self.started_at is None:
            self.started_at = deadline
            playout.start(deadline)
        frames = playout.tick(now)
        if frames:
            self.last_frame = frames[-1]
            if self.tap is not None:
                self.tap(frames)
        if playout.events:  # taken even with no listener, so they never pile up
            events = playout.take_events()
            if self.on_playback is not None:
                for event in events:
                    self.on_playback(event)
        return frames

    def level(self) -> float | None:
        """dBFS of the latest frame (None before the first tick)."""
        frame = self.last_frame
        if frame is None:
            return None
        if frame.is_silence:
            return SILENCE_DBFS
        return dbfs(self.playout.format.encoding.to_pcm16(frame.payload))
