"""Jitter buffer with loss concealment for caller audio (RFC 3550 §5.1, §6.4.1 terms).

Why this module exists: packets from a phone arrive late, out of order, twice or never; what
leaves rtbridge must still be one continuous, ordered stream of 20 ms PCM frames without clicks.

Design (a plain object, no I/O, no clock of its own):

- ``put(packet, now)`` on arrival. The buffer holds **decoded** PCM: it takes a ``decode``
  callable (RTP payload -> ``np.int16`` samples) and calls it once per accepted packet, so
  concealment and re-cutting work on samples and the codec stays outside. Packets are placed on
  a sample timeline from their RTP timestamps (extended across wraparound), so any packet
  duration (SIPp's 30 ms A-law) is re-cut into ``frame_ms`` frames.
- Two ways to take frames out:

  * **clocked** (``get(now)`` once per frame period, for playout to a listener): playout starts
    ``target_ms`` after the first packet arrived; that is the configured depth, and reordering
    within it is absorbed.
  * **arrival-driven** (``drain(now)`` on each arrival and at ``drain_deadline()``, for caller
    audio forwarded to the agent): whole frames leave as soon as their audio is contiguous,
    adding no delay to in-order packets; a gap waits at most ``reorder_ms`` (default one
    frame) after the packet beyond it arrived, then is concealed; when nothing arrives, frames
    are concealed at the sender's pace once ``reorder_ms`` overdue, so the stream keeps real
    time and fades to silence (at most 3 frames per call after a driver stall, then re-anchor).

- Use one mode per buffer. Reordering is absorbed by the depth (clocked) or the reorder
  window (arrival-driven); duplicates (same extended sequence number, or a slot
  already filled) are dropped and counted; packets whose start is already played are **late**,
  dropped and counted.
- Missing audio is **concealed** on the PCM: pitch-period repetition of the recent history
  (period from normalised autocorrelation, 2.5-15 ms), joined without a step (a decaying offset
  correction at the joint and a smoothed cycle wrap), at full gain for 10 ms, then faded linearly
  to silence over 50 ms (the attenuation schedule of ITU-T G.711 Appendix I). When real audio
  returns, it is cross-faded from the continuing concealment over a quarter pitch period
  (>= 2.5 ms). So output never steps to a burst of zeros at full amplitude.
- Depth control (clocked): if buffered audio exceeds ``max_ms`` the oldest frame is skipped
  (cross-faded, counted as ``discarded``).
- Timeline changes (counted as ``resyncs``): if the next packet is more than ``max_ms`` ahead of
  the playout point (the sender paused with a timestamp jump) playout re-synchronises before it
  (``target_ms`` before it when clocked); a new SSRC, three late packets in a row spread over at
  least two frame periods (the sender's clock moved back; a network burst arrives at once and
  does not count), or, arrival-driven, a packet beyond all audio received whose slot was
  already concealed (the sender resumed its old clock) restarts the timeline at that packet.
  Output stays continuous across a restart: concealment from the history (for ``target_ms``
  when clocked, re-establishing the depth) cross-fades into the new timeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from media.rtp import RtpPacket, SequenceUnwrapper, TimestampUnwrapper

__all__ = ["Decoder", "JitterBuffer", "JitterFrame", "JitterStats"]

Decoder = Callable[[bytes], npt.NDArray[np.int16]]

_SEQ_MEMORY: Final = 256
_MAX_PACKETS: Final = 512
_MAX_DRAIN: Final = 600  # frames per drain() call: a bound, never reached by a sane stream
_LATE_RUN_RESYNC: Final = 3  # late packets in a row, over at least 2 frame periods
_EMPTY: Final = np.zeros(0, dtype=np.float32)
FULL_GAIN_MS: Final = 10.0
FADE_MS: Final = 50.0


@dataclass(frozen=True, slots=True)
class JitterFrame:
    """One output frame: ``pcm`` (``frame_samples`` int16), how many of its samples were
    concealed, and the RTP timestamp of its first sample."""

    pcm: npt.NDArray[np.int16]
    concealed: int
    timestamp: int

    @property
    def is_concealed(self) -> bool:
        return self.concealed > 0


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0  # packets never received, inferred from sequence numbers
    concealed_frames: int = 0
    concealed_samples: int = 0
    discarded: int = 0  # frames skipped to bring the depth back under max_ms
    resyncs: int = 0
    decode_errors: int = 0
    overflow: int = 0
    depth_ms: float = 0.0


class JitterBuffer:
    """See the module docstring."""

    def __init__(
        self,
        decode: Decoder,
        *,
        clock_rate: int = 8000,
        sample_rate: int = 8000,
        frame_ms: int = 20,
        target_ms: int = 40,
        max_ms: int | None = None,
        reorder_ms: int | None = None,
        payload_type: int | None = None,
    ) -> None:
        if clock_rate <= 0 or sample_rate <= 0 or frame_ms <= 0 or target_ms < 0:
            raise ValueError("clock_rate, sample_rate and frame_ms must be > 0, target_ms >= 0")
        if (sample_rate * frame_ms) % 1000:
            raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not whole samples")
        self.decode = decode
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.target_ms = target_ms
        self.reorder_ms = frame_ms if reorder_ms is None else reorder_ms
        self._late_span = 2 * frame_ms / 1000.0 - 1e-9
        self._arrival_driven = False
        self.max_ms = max(target_ms + 3 * frame_ms, 2 * target_ms) if max_ms is None else max_ms
        self._target = sample_rate * target_ms // 1000
        self._max = sample_rate * self.max_ms // 1000
        self.stats = JitterStats()
        # Concealment constants in samples.
        self._full = int(sample_rate * FULL_GAIN_MS / 1000)
        self._fade = int(sample_rate * FADE_MS / 1000)
        self._min_lag = max(2, sample_rate // 400)
        self._max_lag = max(self._min_lag + 1, sample_rate * 15 // 1000)
        self._hist_len = self._max_lag + sample_rate * 10 // 1000 + 2
        self._hist_frames = -(-self._hist_len // self.frame_samples) + 1
        self.reset()

    def reset(self) -> None:
        """Forget the stream (keeps statistics)."""
        self._ssrc: int | None = None
        self._ts = TimestampUnwrapper()
        self._seq = SequenceUnwrapper()
        self._ts0 = 0
        self._store: dict[int, npt.NDArray[np.int16]] = {}
        self._seen: deque[int] = deque()
        self._seen_set: set[int] = set()
        self._first_seq: int | None = None
        self._highest_seq: int | None = None
        self._unique = 0
        self._start_at: float | None = None
        self._pos: int | None = None  # playout point on the sample timeline
        self._cur: npt.NDArray[np.int16] | None = None
        self._cur_off = 0
        self._late_run = 0
        self._late_since = 0.0
        self._recent: deque[npt.NDArray[np.int16]] = deque(maxlen=self._hist_frames)
        self._end = 0  # end of the furthest buffered audio on the timeline
        self._end_arrival: float | None = None  # when the packet ending at _end arrived
        self._end_len = self.frame_samples  # and its length (the sender's packet time)
        self._tail_shift = 0.0  # re-anchoring of tail concealment after a driver stall
        self._arrival: dict[int, float] = {}
        self._partial: npt.NDArray[np.float32] = _EMPTY
        # Concealment state.
        self._cycle: npt.NDArray[np.float32] | None = None
        self._phase = 0
        self._gap_n = 0  # samples concealed in the current gap
        self._joint = 0.0  # offset correction at the joint
        self._joint_len = 1
        self._xfade_left = 0
        self._xfade_len = 1

    # ------------------------------------------------------------------ input

    def put(self, packet: RtpPacket, now: float) -> bool:
        """Accept one packet of the stream; returns False if it was dropped (see stats).

        With ``payload_type`` set, packets of other types (RFC 4733 events) are not audio:
        on the stream's SSRC their sequence numbers are noted so they do not count as lost;
        on another SSRC they are ignored (they never restart the timeline).
        """
        if self.payload_type is not None and packet.payload_type != self.payload_type:
            if packet.ssrc == self._ssrc:
                self._note_seq(self._seq.unwrap(packet.sequence_number))
            return False
        if not packet.payload:
            return False
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                return self._restart_timeline(packet, now)  # a new source (RFC 3550 §8.2)
            self._ssrc = packet.ssrc
            self._ts0 = packet.timestamp
            self._start_at = now + self.target_ms / 1000.0
        stats = self.stats
        stats.received += 1
        seq = self._seq.unwrap(packet.sequence_number)
        if seq in self._seen_set:
            stats.duplicates += 1
            return False
        self._note_seq(seq)
        ext = self._ts.unwrap(packet.timestamp)
        pos = (ext - self._ts0) * self.sample_rate // self.clock_rate
        if self._pos is not None and pos < self._pos + self._cur_left():
            if self._arrival_driven and pos >= self._end and not self._store:
                # Arrival-driven: its slot was only ever concealed past the newest audio (the
                # sender paused on its old clock, or the network held a burst): play it now.
                stats.received -= 1  # counted again by put() on the new timeline
                return self._restart_timeline(packet, now)
            # Late again and again over real time (not one burst): the sender's clock moved
            # back (restart, pause without a timestamp jump). Follow it.
            if self._late_run == 0:
                self._late_since = now
            self._late_run += 1
            if self._late_run >= _LATE_RUN_RESYNC and now - self._late_since >= self._late_span:
                stats.received -= 1
                return self._restart_timeline(packet, now)
            stats.late += 1
            return False
        self._late_run = 0
        if pos in self._store:
            stats.duplicates += 1
            return False
        if len(self._store) >= _MAX_PACKETS:
            stats.overflow += 1
            return False
        try:
            pcm = np.asarray(self.decode(packet.payload), dtype=np.int16)
        except Exception:  # a foreign codec error must not stop the call
            stats.decode_errors += 1
            return False
        if not len(pcm):
            return False
        self._store[pos] = pcm
        self._arrival[pos] = now
        if pos + len(pcm) > self._end or self._end_arrival is None:
            self._end = pos + len(pcm)
            self._end_arrival = now
            self._end_len = len(pcm)
            self._tail_shift = 0.0
        return True

    def _pop(self, pos: int) -> npt.NDArray[np.int16] | None:
        self._arrival.pop(pos, None)
        return self._store.pop(pos, None)

    def _cur_left(self) -> int:
        return 0 if self._cur is None else len(self._cur) - self._cur_off

    def _note_seq(self, seq: int) -> None:
        if seq in self._seen_set:
            return
        self._remember(seq)
        self._unique += 1
        if self._first_seq is None or seq < self._first_seq:
            self._first_seq = seq
        if self._highest_seq is None or seq > self._highest_seq:
            self._highest_seq = seq

    def _remember(self, seq: int) -> None:
        self._seen.append(seq)
        self._seen_set.add(seq)
        if len(self._seen) > _SEQ_MEMORY:
            self._seen_set.discard(self._seen.popleft())

    def _restart_timeline(self, packet: RtpPacket, now: float) -> bool:
        """Start a new timeline at ``packet``. Output stays continuous: a playing buffer
        conceals on from its history (``target_ms`` of it when clocked, keeping the depth) and
        cross-fades into the new audio."""
        self.stats.resyncs += 1
        self._lost_so_far()
        playing = self._pos is not None
        recent, ssrc = self._recent, packet.ssrc
        self.reset()
        self._recent = recent
        self._ssrc = ssrc
        self._ts0 = packet.timestamp
        if playing:
            self._start_at = now
            self._begin_discontinuity()
            self._pos = 0 if self._arrival_driven else -self._target
        else:
            self._start_at = now if self._arrival_driven else now + self.target_ms / 1000.0
        return self.put(packet, now)

    def _lost_so_far(self) -> None:
        if self._first_seq is not None and self._highest_seq is not None:
            self.stats.lost += max(0, self._highest_seq - self._first_seq + 1 - self._unique)
            self._first_seq = self._highest_seq = None
            self._unique = 0

    # ------------------------------------------------------------------ output

    @property
    def lost(self) -> int:
        """Packets never received so far (sequence gaps), including the current stream.

        Packets of other payload types on the same SSRC count as gaps unless the buffer was
        given ``payload_type`` and fed them too; ``ReceiverStats`` has the RTCP figures."""
        extra = 0
        if self._first_seq is not None and self._highest_seq is not None:
            extra = max(0, self._highest_seq - self._first_seq + 1 - self._unique)
        return self.stats.lost + extra

    @property
    def depth_ms(self) -> float:
        """Audio buffered ahead of the playout point."""
        return self._depth() * 1000.0 / self.sample_rate

    def _depth(self) -> int:
        if self._pos is None:
            if not self._store:
                return 0
            return self._end - min(self._store)
        return max(self._end - self._pos, self._cur_left())

    def get(self, now: float) -> JitterFrame | None:
        """Clocked mode: the next frame, once per frame period (``None`` while buffering the
        first ``target_ms``)."""
        if self._start_at is None or now < self._start_at:
            return None
        if self._pos is None:
            if not self._store:
                return None
            self._pos = min(self._store)
        n = self.frame_samples
        if not (self._fast_ready() and self._end - self._pos <= self._max + n):
            self._drop_stale()
            first = min(self._store) if self._store and not self._cur_left() else None
            if first is not None and first - self._pos > self._max:
                # The sender jumped ahead (pause, DTX): re-synchronise target_ms before it.
                self.stats.resyncs += 1
                self._pos = first - self._target
            elif self._depth() > self._max + n:
                self._skip_frame()
        return self._emit()

    def drain(self, now: float) -> list[JitterFrame]:
        """Arrival-driven mode (caller -> agent, no playout delay): every frame that can be
        produced now. Call it on each packet arrival and at :meth:`drain_deadline`.

        Whole frames of contiguous audio go out at once. A gap waits ``reorder_ms`` after the
        first packet beyond it arrived, then is concealed. When nothing is buffered, a frame
        is concealed once its audio is ``reorder_ms`` overdue on the sender's timeline (at
        most 3 per call, then the timeline re-anchors), so the stream keeps real-time pace
        and fades to silence instead of stopping.
        """
        frames: list[JitterFrame] = []
        self._arrival_driven = True
        if self._pos is None:
            if not self._store:
                return frames
            self._pos = min(self._store)
            self._start_at = now
        n = self.frame_samples
        window = self.reorder_ms / 1000.0
        tail = 0
        while len(frames) < _MAX_DRAIN:
            if self._fast_ready():
                frames.append(self._emit())
                continue
            self._drop_stale()
            run, nxt = self._contiguous()
            if run >= n:
                frames.append(self._emit())
                continue
            if nxt is not None:
                if nxt - self._pos > self._max:
                    self.stats.resyncs += 1
                    self._cur = None
                    self._pos = nxt
                    self._begin_discontinuity()
                    continue
                if now >= self._arrival[nxt] + window:  # the drain_deadline() expression
                    frames.append(self._emit())
                    continue
                return frames
            due = self._tail_due()
            if due is None or now < due + window:
                return frames
            if tail == 3:
                # Behind by more than 3 frames (a stall): re-anchor instead of bursting.
                self._tail_shift += now + self.frame_ms / 1000.0 - (due + window)
                return frames
            tail += 1
            frames.append(self._emit())
        return frames

    def drain_deadline(self) -> float | None:
        """When :meth:`drain` will next produce a frame without a new packet arriving."""
        if self._pos is None:
            return None
        run, nxt = self._contiguous()
        window = self.reorder_ms / 1000.0
        if run >= self.frame_samples:
            return float("-inf")
        if nxt is not None:
            return self._arrival[nxt] + window
        due = self._tail_due()
        return None if due is None else due + window

    def _tail_due(self) -> float | None:
        """When the packet carrying the end of the next frame is due, reckoned from the newest
        packet's arrival and the sender's packet time."""
        if self._end_arrival is None or self._pos is None:
            return None
        missing = self._pos + self.frame_samples - self._end
        packets = -(-missing // self._end_len)
        return self._end_arrival + packets * self._end_len / self.sample_rate + self._tail_shift

    def _contiguous(self) -> tuple[int, int | None]:
        """Samples available without a gap from the playout point, and the start of the first
        packet after the gap (``None`` if nothing is buffered beyond)."""
        assert self._pos is not None
        run = self._cur_left()
        store = self._store
        if not store:
            return run, None
        x = self._pos + run
        while x in store:
            size = len(store[x])
            run += size
            x += size
        later = [k for k in store if k > x]
        return run, (min(later) if later else None)

    def _fast_ready(self) -> bool:
        if self._cur is not None or self._gap_n or self._xfade_left:
            return False
        pcm = self._store.get(self._pos) if self._pos is not None else None
        return pcm is not None and len(pcm) == self.frame_samples

    def _emit(self) -> JitterFrame:
        """Produce the frame at the playout point: stored audio, concealment, cross-fades."""
        assert self._pos is not None
        n = self.frame_samples
        start_pos = self._pos
        ts = (self._ts0 + start_pos * self.clock_rate // self.sample_rate) & 0xFFFFFFFF
        if self._fast_ready():
            pcm = self._pop(start_pos)
            assert pcm is not None
            self._pos = start_pos + n
            self._recent.append(pcm)
            self.stats.depth_ms = max(0, self._end - self._pos) * 1000.0 / self.sample_rate
            return JitterFrame(pcm, 0, ts)
        out = np.empty(n, dtype=np.float32)
        concealed = 0
        filled = 0
        while filled < n:
            want = n - filled
            if self._cur is None:
                nxt = self._pop(self._pos)
                if nxt is not None:
                    self._cur, self._cur_off = nxt, 0
            if self._cur is not None:
                take = min(want, len(self._cur) - self._cur_off)
                chunk = self._cur[self._cur_off : self._cur_off + take].astype(np.float32)
                self._cur_off += take
                if self._cur_off >= len(self._cur):
                    self._cur = None
                if self._gap_n or self._xfade_left:
                    chunk = self._cross_fade(chunk)
                out[filled : filled + take] = chunk
            else:
                later = [k for k in self._store if k > self._pos]
                take = want if not later else min(want, min(later) - self._pos)
                self._partial = out[:filled]  # this frame's audio so far joins the history
                out[filled : filled + take] = self._conceal(take)
                self._partial = _EMPTY
                concealed += take
            filled += take
            self._pos += take
        if concealed:
            self.stats.concealed_frames += 1
            self.stats.concealed_samples += concealed
        self.stats.depth_ms = self.depth_ms
        pcm = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        self._recent.append(pcm)
        return JitterFrame(pcm, concealed, ts)

    def _drop_stale(self) -> None:
        pos = self._pos
        assert pos is not None
        if not self._store:
            return
        limit = pos + self._cur_left()
        for k in [k for k in self._store if k < limit]:
            self._pop(k)
            self.stats.late += 1

    def _skip_frame(self) -> None:
        """Drop one frame of buffered audio to cut the depth, with a click-free joint."""
        assert self._pos is not None
        n = self.frame_samples
        self.stats.discarded += 1
        self._begin_discontinuity()
        while n > 0:
            if self._cur is None:
                nxt = self._pop(self._pos)
                if nxt is None:
                    later = [k for k in self._store if k > self._pos]
                    step = n if not later else min(n, min(later) - self._pos)
                    self._pos += step
                    n -= step
                    continue
                self._cur, self._cur_off = nxt, 0
            take = min(n, len(self._cur) - self._cur_off)
            self._cur_off += take
            if self._cur_off >= len(self._cur):
                self._cur = None
            self._pos += take
            n -= take

    # ------------------------------------------------------------------ concealment

    def _history(self) -> npt.NDArray[np.float32]:
        """The last ``_hist_len`` output samples (zeros before the stream began)."""
        h = np.zeros(self._hist_len, dtype=np.float32)
        parts: list[npt.NDArray[Any]] = [*self._recent, self._partial]
        tail: npt.NDArray[Any] = np.concatenate(parts)[-self._hist_len :]
        if len(tail):
            h[len(h) - len(tail) :] = tail
        return h

    def _pitch(self, h: npt.NDArray[np.float32]) -> int:
        """Pitch period by normalised autocorrelation of the last 10 ms against the history."""
        win = self.sample_rate * 10 // 1000
        ref = h[-win:].astype(np.float64)
        e_ref = float(np.dot(ref, ref))
        if e_ref <= 0.0:
            return self._max_lag
        windows = np.lib.stride_tricks.sliding_window_view(h.astype(np.float64), win)
        lo = len(h) - win - self._max_lag
        hi = len(h) - win - self._min_lag
        cand = windows[lo : hi + 1]
        energy = np.einsum("ij,ij->i", cand, cand)
        score = (cand @ ref) / np.sqrt(np.maximum(energy, 1e-9) * e_ref)
        score[energy <= 0.0] = -np.inf
        j = int(np.argmax(score))
        return len(h) - win - (lo + j)

    def _begin_gap(self) -> None:
        h = self._history()
        p = self._pitch(h)
        cycle = h[-p:].copy()
        joint_len = max(1, p // 4)
        # Smooth the wrap from cycle end back to cycle start: end the cycle on h[-p-1].
        ramp = np.arange(1, joint_len + 1, dtype=np.float32) / joint_len
        cycle[-joint_len:] += (h[-p - 1] - h[-1]) * ramp
        self._cycle = cycle
        self._phase = 0
        self._gap_n = 0
        # Start from h[-1] with the step h[-p] - h[-p-1]: offset fades out over joint_len.
        self._joint = float(h[-1] - h[-p - 1])
        self._joint_len = joint_len

    def _synth(self, n: int) -> npt.NDArray[np.float32]:
        if self._cycle is None:
            self._begin_gap()
        cycle = self._cycle
        assert cycle is not None
        p = len(cycle)
        idx = (self._phase + np.arange(n)) % p
        y = cycle[idx].astype(np.float32)
        k = self._gap_n + np.arange(n, dtype=np.float32)
        if self._joint:
            corr = np.clip(1.0 - k / self._joint_len, 0.0, 1.0)
            y += self._joint * corr
        gain = np.clip(1.0 - (k - self._full) / self._fade, 0.0, 1.0)
        self._phase = (self._phase + n) % p
        self._gap_n += n
        return (y * gain).astype(np.float32)

    def _conceal(self, n: int) -> npt.NDArray[np.float32]:
        if self._gap_n == 0 and not self._xfade_left:
            self._cycle = None
        y = self._synth(n)
        self._xfade_left = 0
        return y

    def _begin_discontinuity(self) -> None:
        """Next real samples are cross-faded from a continuation of the history."""
        self._cycle = None
        self._gap_n = 0
        self._synth(0)
        self._start_xfade()

    def _start_xfade(self) -> None:
        cycle = self._cycle
        p = len(cycle) if cycle is not None else self._max_lag
        self._xfade_len = max(p // 4, self.sample_rate * 25 // 10000, 1)
        self._xfade_left = self._xfade_len

    def _cross_fade(self, chunk: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._gap_n and not self._xfade_left:
            self._start_xfade()
        m = min(len(chunk), self._xfade_left)
        done = self._xfade_len - self._xfade_left
        w = (done + np.arange(1, m + 1, dtype=np.float32)) / (self._xfade_len + 1)
        synth = self._synth(m)
        chunk = chunk.copy()
        chunk[:m] = chunk[:m] * w + synth * (1.0 - w)
        self._xfade_left -= m
        if not self._xfade_left:
            self._gap_n = 0
            self._cycle = None
        return chunk
