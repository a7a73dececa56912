"""RFC 4733 telephone events (DTMF digits) over RTP: payload format, receiver and sender.

Why this module exists: keys pressed on a phone must reach the agent exactly once each, and
digits the agent sends must be understood by any gateway. Real senders differ: SIPp sends DTMF
on its own SSRC, first packets (the ones with the marker bit) get lost, final packets are
repeated. This module handles all of that as plain objects driven by packets and ``now``.

- §2.3 payload format: :class:`TelephoneEvent` (``parse()`` / ``__bytes__``), event codes
  0-9, ``*`` (10), ``#`` (11), ``A``-``D`` (12-15) (§3.2).
- §2.5.2 receiver: :class:`DtmfReceiver`. One digit per event timestamp (§2.5.2.2: packets of
  one event share the timestamp; the final packet, sent three times, and any reordered update
  are deduplicated by it); never relies on the marker bit (the first packet may be lost, so any
  packet with a new timestamp starts an event); accepts any SSRC (keyed by SSRC and timestamp);
  reports each digit once with its duration in ms when its final packet arrives, or, if all
  final packets were lost, when the next event begins or after ``timeout`` of silence
  (:meth:`DtmfReceiver.poll`). Long events split into segments (§2.5.1.3) are merged.
- §2.5.1 sender: :class:`DtmfSender`. A start packet with the marker bit (§2.5.1.1), duration
  updates every ``update_ms`` (§2.5.1.2), the final packet with the E bit sent three times at the
  update interval (§2.5.1.4), each with its own sequence number on the shared RTP stream
  (:class:`media.rtp.RtpSendState`). The event timestamp is the event's start on the stream's
  media clock (:class:`media.rtp.RtpClock`), so events sent while audio is paused or silent still
  carry the timestamp audio would have had at that instant. Events longer than 0xFFFF timestamp
  units are not generated (digits are short; ``duration_ms`` is capped).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final

from media.rtp import RtpClock, RtpPacket, RtpSendState, ts_diff

__all__ = [
    "DIGITS",
    "DtmfDigit",
    "DtmfError",
    "DtmfReceiver",
    "DtmfReceiverStats",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
]

DIGITS: Final = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")
MAX_DURATION: Final = 0xFFFF
#: Digits a :class:`DtmfSender` holds not yet started (about 20 s of them at the default
#: 160 ms per digit); more is refused (each digit is eight scheduled packets).
MAX_QUEUED_DIGITS: Final = 128


class DtmfError(ValueError):
    """A telephone-event payload is malformed, or a digit/field to send is invalid."""


def event_to_digit(event: int) -> str | None:
    """The DTMF digit of an event code (§3.2), or ``None`` for other events (flash, tones)."""
    return DIGITS[event] if 0 <= event < 16 else None


def digit_to_event(digit: str) -> int:
    """The event code of ``digit`` (``0-9 * # A-D``, letters in either case)."""
    i = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if i < 0:
        raise DtmfError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return i


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 event block: event code, end bit, volume (dBm0, negated), duration."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code {self.event} is not 8-bit")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume {self.volume} is not 6-bit")
        if not 0 <= self.duration <= MAX_DURATION:
            raise DtmfError(f"duration {self.duration} is not 16-bit")

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> TelephoneEvent:
        """Parse the first event block; extra blocks (RFC 2198 redundancy) are ignored."""
        if len(payload) < 4:
            raise DtmfError(f"telephone-event payload of {len(payload)} bytes, need 4")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


# --------------------------------------------------------------------------- receiver


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit the far end pressed.

    ``received_at``: when its first packet arrived (monotonic seconds). ``ended``: False when
    every final packet was lost and the digit was closed by a timeout or the next event.
    """

    digit: str
    duration_ms: float
    timestamp: int
    ssrc: int
    received_at: float
    ended: bool = True


@dataclass(slots=True)
class DtmfReceiverStats:
    packets: int = 0
    digits: int = 0
    duplicates: int = 0  # packets of events already reported (final-packet repeats, strays)
    malformed: int = 0
    other_events: int = 0  # valid event codes that are not DTMF digits
    stale: int = 0  # packets of an event older than the current one
    timeouts: int = 0  # digits closed without any final packet


@dataclass(slots=True)
class _Pending:
    ssrc: int
    timestamp: int
    event: int
    first_seen: float
    last_seen: float
    duration: int = 0
    base: int = 0  # duration of earlier segments of a long event (§2.5.1.3)


class DtmfReceiver:
    """Turns telephone-event packets into digits; see the module docstring."""

    def __init__(
        self,
        payload_type: int | None = None,
        *,
        clock_rate: int = 8000,
        timeout: float = 0.5,
        memory: int = 32,
    ) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.timeout = timeout
        self.stats = DtmfReceiverStats()
        self._stale_window = 2 * clock_rate  # older than this: the sender restarted its clock
        self._pending: _Pending | None = None
        self._done: deque[tuple[int, int]] = deque(maxlen=memory)

    @property
    def pending(self) -> str | None:
        """The digit currently held down, if any (for callers that act on key-down)."""
        p = self._pending
        return None if p is None else DIGITS[p.event]

    def receive(self, packet: RtpPacket, now: float) -> list[DtmfDigit]:
        """Feed one packet; returns the digits it completes (usually none or one)."""
        if self.payload_type is not None and packet.payload_type != self.payload_type:
            return []
        self.stats.packets += 1
        try:
            ev = TelephoneEvent.parse(packet.payload)
        except DtmfError:
            self.stats.malformed += 1
            return []
        if ev.event >= 16:
            self.stats.other_events += 1
            return []
        key = (packet.ssrc, packet.timestamp)
        if key in self._done:
            self.stats.duplicates += 1
            return []
        out: list[DtmfDigit] = []
        p = self._pending
        if p is not None and (p.ssrc, p.timestamp) != key:
            back = ts_diff(p.timestamp, packet.timestamp)
            if p.ssrc == packet.ssrc and 0 < back <= self._stale_window:
                self.stats.stale += 1  # a straggler of an older event
                return []
            if (
                p.ssrc == packet.ssrc
                and p.event == ev.event
                and p.duration == MAX_DURATION
                and ts_diff(packet.timestamp, p.timestamp) == MAX_DURATION
            ):
                # §2.5.1.3: the next segment of a long event continues it.
                self._done.append((p.ssrc, p.timestamp))
                p.base += p.duration
                p.timestamp = packet.timestamp
                p.duration = 0
            else:
                out.append(self._close(p, ended=False))
                p = None
        if p is None:
            p = self._pending = _Pending(packet.ssrc, packet.timestamp, ev.event, now, now)
        p.last_seen = now
        if ev.duration > p.duration:
            p.duration = ev.duration
        if ev.end:
            out.append(self._close(p, ended=True))
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Close a digit whose packets stopped without a final packet (after ``timeout``)."""
        p = self._pending
        if p is not None and now - p.last_seen >= self.timeout:
            self.stats.timeouts += 1
            return [self._close(p, ended=False)]
        return []

    def next_deadline(self) -> float | None:
        """When :meth:`poll` may next have something to report."""
        p = self._pending
        return None if p is None else p.last_seen + self.timeout

    def _close(self, p: _Pending, *, ended: bool) -> DtmfDigit:
        self._pending = None
        self._done.append((p.ssrc, p.timestamp))
        self.stats.digits += 1
        return DtmfDigit(
            DIGITS[p.event],
            (p.base + p.duration) * 1000.0 / self.clock_rate,
            (p.timestamp - p.base) & 0xFFFFFFFF,
            p.ssrc,
            p.first_seen,
            ended,
        )


# --------------------------------------------------------------------------- sender


@dataclass(frozen=True, slots=True)
class _Scheduled:
    at: float
    event: TelephoneEvent
    timestamp: int
    marker: bool


class DtmfSender:
    """Sends digits as RFC 4733 events on an RTP stream shared with audio.

    ``send(digits, now)`` queues digits; the driver sleeps until :meth:`next_deadline` and calls
    :meth:`tick`, which returns the packets due (built on ``stream``: its SSRC, next sequence
    numbers, counts). While :attr:`sending` is true the audio writer should hold back audio
    packets (§2.5.1.2 suggests not mixing tones and events). Per digit, with ``U`` the update
    interval and ``D`` the tone duration (a multiple of ``U``): packets at ``t0 + k*U`` for
    ``k*U < D`` (the first with the marker, durations ``min((k+1)*U, D)``), then the final packet
    (E bit, duration ``D``) at ``t0 + D``, ``+U``, ``+2U``. The next digit starts ``gap_ms``
    after the last final packet.
    """

    def __init__(
        self,
        stream: RtpSendState,
        clock: RtpClock,
        payload_type: int,
        *,
        volume: int = 10,
        update_ms: int = 20,
        end_repeats: int = 3,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise DtmfError(f"payload type {payload_type} is not 7-bit")
        if update_ms <= 0 or end_repeats < 1:
            raise DtmfError("update_ms must be > 0 and end_repeats >= 1")
        self.stream = stream
        self.clock = clock
        self.payload_type = payload_type
        self.volume = volume
        self.update_ms = update_ms
        self.end_repeats = end_repeats
        self._queue: deque[_Scheduled] = deque()
        self._free_at: float | None = None  # when the next digit may start
        self._gap = 0.0

    def send(self, digits: str, now: float, *, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Queue ``digits`` (``0-9 * # A-D``); empty is a no-op. Raises :class:`DtmfError` for
        any other character, or for more digits than :attr:`room` (nothing is queued then)."""
        if len(digits) > self.room:
            raise DtmfError(
                f"{len(digits)} digits do not fit: at most {MAX_QUEUED_DIGITS} may wait to be sent"
            )
        events = [digit_to_event(d) for d in digits]
        rate = self.clock.clock_rate
        step = self.update_ms / 1000.0
        n_updates = max(1, -(-duration_ms // self.update_ms))
        total_ms = n_updates * self.update_ms
        total = min(MAX_DURATION, total_ms * rate // 1000)
        unit = self.update_ms * rate // 1000
        for code in events:
            t0 = now if self._free_at is None or self._free_at < now else self._free_at
            ts = self.clock.timestamp(t0)
            for k in range(n_updates):
                ev = TelephoneEvent(code, False, self.volume, min((k + 1) * unit, total))
                self._queue.append(_Scheduled(t0 + k * step, ev, ts, k == 0))
            end = TelephoneEvent(code, True, self.volume, total)
            t_end = t0 + n_updates * step
            for r in range(self.end_repeats):
                self._queue.append(_Scheduled(t_end + r * step, end, ts, False))
            self._free_at = t_end + (self.end_repeats - 1) * step + gap_ms / 1000.0
            self._gap = gap_ms / 1000.0

    @property
    def room(self) -> int:
        """Digits :meth:`send` still takes (:data:`MAX_QUEUED_DIGITS` less those waiting)."""
        return MAX_QUEUED_DIGITS - sum(1 for s in self._queue if s.marker)

    @property
    def sending(self) -> bool:
        return bool(self._queue)

    def next_deadline(self) -> float | None:
        return self._queue[0].at if self._queue else None

    def tick(self, now: float) -> list[RtpPacket]:
        """The packets due at ``now``, in order."""
        out: list[RtpPacket] = []
        q = self._queue
        while q and q[0].at <= now:
            s = q.popleft()
            out.append(
                self.stream.packet(
                    self.payload_type, s.timestamp, bytes(s.event), marker=s.marker, now=now
                )
            )
        return out

    def cancel(self) -> None:
        """Drop queued digits not yet started (an event in progress is finished properly)."""
        q = self._queue
        keep: list[_Scheduled] = []
        if q and not q[0].marker:
            ts = q[0].timestamp
            keep = [s for s in q if s.timestamp == ts]
        q.clear()
        q.extend(keep)
        self._free_at = None if not keep else keep[-1].at + self._gap
