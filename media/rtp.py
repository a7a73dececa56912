"""RTP packets, sequence/timestamp arithmetic and receiver statistics (RFC 3550).

Why this module exists: every audio frame a caller hears or says crosses it, so parse and build
are a handful of ``struct`` calls (a 172-byte G.711 packet costs a few microseconds either way)
and bad input fails with one :class:`RtpError` naming what was wrong, never an ``IndexError``.

What it implements:

- §5.1 fixed header, §5.3 padding, §5.3.1 header extension (kept opaque: profile + words; the
  RFC 8285 element layout is the caller's business), CSRC list: :class:`RtpPacket`
  (``parse()`` / ``__bytes__``, frozen, validated on construction).
- Modular arithmetic on 16-bit sequence numbers and 32-bit timestamps (``seq_diff``,
  ``ts_diff``, ...) and extended sequence numbers (:class:`SequenceUnwrapper`, §A.1).
- Receiver statistics per source, §A.1 (sequence validation with probation, dropout and
  misorder limits), §A.3 (expected, lost, fraction lost per interval), §A.8 (interarrival
  jitter): :class:`ReceiverStats`. A new SSRC restarts the statistics (§8.2: a new source).
  Feed it one payload stream only: RFC 4733 telephone events repeat their timestamp and arrive
  on their own SSRC in the wild, so route them to the DTMF receiver, not here.
- Sender state shared by audio and DTMF on one SSRC (§5.1 sequence numbering, §6.4.1 packet and
  octet counts for sender reports): :class:`RtpSendState`, and the mapping from monotonic time
  to RTP timestamps (:class:`RtpClock`) so that audio and telephone events agree on the media
  clock even while audio is paused.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "ReceiverStats",
    "ReceptionSnapshot",
    "RtpClock",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpSendState",
    "SequenceUnwrapper",
    "TimestampUnwrapper",
    "random_ssrc",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

RTP_VERSION: Final = 2
RTP_HEADER_SIZE: Final = 12
SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32

# RFC 3550 §A.1 sequence validation constants.
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100
MIN_SEQUENTIAL: Final = 2

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_header_unpack = _HEADER.unpack_from
_header_pack = _HEADER.pack


class RtpError(ValueError):
    """An RTP packet is malformed, or a field given to build one is out of range.

    ``kind`` names the failure: ``"truncated"``, ``"version"``, ``"padding"``, ``"extension"``,
    ``"csrc"`` (CSRC count or list) or ``"field"`` (a header field out of range).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- arithmetic


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - SEQ_MOD if d >= 0x8000 else d


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**16."""
    return (seq + n) & 0xFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 32-bit RTP timestamps, in [-2**31, 2**31 - 1]."""
    d = (a - b) & 0xFFFFFFFF
    return d - TS_MOD if d >= 0x80000000 else d


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2**32."""
    return (ts + n) & 0xFFFFFFFF


class SequenceUnwrapper:
    """Extends 16-bit sequence numbers to a monotonic integer line (RFC 3550 §A.1 cycles).

    Each value is placed at the extended number nearest to the highest seen so far, so reordered
    packets across a wrap get the right cycle. The first value is mapped to itself.
    """

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest extended sequence number seen, or ``None`` before the first."""
        return self._highest

    def unwrap(self, seq: int) -> int:
        highest = self._highest
        if highest is None:
            self._highest = seq
            return seq
        ext = highest + seq_diff(seq, highest & 0xFFFF)
        if ext > highest:
            self._highest = ext
        return ext


class TimestampUnwrapper:
    """Extends 32-bit RTP timestamps the same way (nearest to the highest seen)."""

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: int | None = None

    def unwrap(self, ts: int) -> int:
        highest = self._highest
        if highest is None:
            self._highest = ts
            return ts
        ext = highest + ts_diff(ts, highest & 0xFFFFFFFF)
        if ext > highest:
            self._highest = ext
        return ext


def random_ssrc(rng: random.Random | None = None) -> int:
    """A random 32-bit SSRC (§8.1); pass ``rng`` for reproducible tests."""
    return (rng or random).getrandbits(32)


# --------------------------------------------------------------------------- wire format


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The §5.3.1 header extension: 16 profile-defined bits and a body of 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError("extension", f"extension profile {self.profile} is not 16-bit")
        if len(self.data) % 4:
            raise RtpError(
                "extension", f"extension body is {len(self.data)} bytes, not a multiple of 4"
            )
        if len(self.data) > 0xFFFF * 4:
            raise RtpError("extension", f"extension body of {len(self.data)} bytes is too long")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1). Immutable; validated on construction.

    ``padding`` is the number of padding octets (§5.3) carried after the payload, 0 for none;
    ``parse`` strips them from ``payload`` and records their count so ``bytes(parse(x)) == x``
    (padding bytes other than the count are written as zeros).
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError("field", f"payload type {self.payload_type} is not 7-bit")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError("field", f"sequence number {self.sequence_number} is not 16-bit")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError("field", f"timestamp {self.timestamp} is not 32-bit")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("field", f"SSRC {self.ssrc} is not 32-bit")
        if self.csrc:
            if len(self.csrc) > 15:
                raise RtpError("csrc", f"{len(self.csrc)} CSRCs; at most 15 fit the header")
            for c in self.csrc:
                if not 0 <= c <= 0xFFFFFFFF:
                    raise RtpError("csrc", f"CSRC {c} is not 32-bit")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding", f"padding of {self.padding} octets does not fit one octet")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one datagram; raise :class:`RtpError` if it is not a valid RTP packet."""
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise RtpError("truncated", f"RTP packet of {n} bytes is shorter than its header")
        b0, b1, seq, ts, ssrc = _header_unpack(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError("version", f"RTP version {b0 >> 6}, expected 2")
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            end = pos + 4 * cc
            if end > n:
                raise RtpError("csrc", f"CSRC count {cc} needs {end} bytes but the packet has {n}")
            csrc = struct.unpack_from(f"!{cc}I", data, pos)
            pos = end
        extension = None
        if b0 & 0x10:
            if pos + 4 > n:
                raise RtpError("extension", "extension bit set but the extension header is missing")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * words
            if end > n:
                raise RtpError(
                    "extension", f"extension of {words} words overruns the {n}-byte packet"
                )
            extension = RtpExtension(profile, bytes(data[pos:end]))
            pos = end
        padding = 0
        end = n
        if b0 & 0x20:
            padding = data[n - 1]
            if padding == 0 or padding > n - pos:
                raise RtpError(
                    "padding", f"padding count {padding} is invalid for {n - pos} bytes of payload"
                )
            end = n - padding
        return cls(
            b1 & 0x7F,
            seq,
            ts,
            ssrc,
            bytes(data[pos:end]),
            bool(b1 & 0x80),
            csrc,
            extension,
            padding,
        )

    def __bytes__(self) -> bytes:
        b0 = 0x80 | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        header = _header_pack(
            b0,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
        )
        if b0 == 0x80:
            return header + self.payload
        parts = [header]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


# --------------------------------------------------------------------------- receiver side


@dataclass(frozen=True, slots=True)
class ReceptionSnapshot:
    """The figures of one RTCP report block (RFC 3550 §6.4.1), taken at one report."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost / expected over the interval (§A.3)
    cumulative_lost: int  # clamped to the 24-bit signed range
    extended_highest_seq: int  # 32 bits: cycles << 16 | highest sequence number
    jitter: int  # interarrival jitter in timestamp units (§A.8)


class ReceiverStats:
    """Per-source reception statistics (RFC 3550 §A.1, §A.3, §A.8).

    ``update(packet, now)`` for each packet of the stream (``now`` in seconds, monotonic);
    returns False for packets the §A.1 validation did not count (probation, a big jump awaiting
    confirmation). ``snapshot()`` returns a report block's figures and starts a new interval.
    """

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_last_arrival",
        "_last_ts",
        "_max_seq",
        "_min_sequential",
        "_probation",
        "_received",
        "_received_prior",
        "clock_rate",
        "ssrc",
        "ssrc_changes",
    )

    def __init__(self, clock_rate: int, *, min_sequential: int = MIN_SEQUENTIAL) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        self._min_sequential = max(1, min_sequential)
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        self._restart()

    def _restart(self) -> None:
        self._base_seq = 0
        self._max_seq = 0
        self._bad_seq = SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._probation = 0
        self._jitter = 0.0
        self._last_arrival: float | None = None
        self._last_ts = 0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        # RFC 3550 §A.1, transcribed.
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return True
            else:
                self._probation = self._min_sequential - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += SEQ_MOD
            self._max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq == self._bad_seq:
                self._init_seq(seq)  # the source restarted: two sequential packets agree
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet; counted as received.
        self._received += 1
        return True

    def update(self, packet: RtpPacket, now: float) -> bool:
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
            self.ssrc = packet.ssrc
            self._restart()
            seq = packet.sequence_number
            if self._min_sequential <= 1:
                self._init_seq(seq)
                self._received = 1
                self._last_arrival = now
                self._last_ts = packet.timestamp
                return True
            self._max_seq = (seq - 1) & 0xFFFF
            self._probation = self._min_sequential
        if not self._update_seq(packet.sequence_number):
            return False
        # §A.8 interarrival jitter, in timestamp units.
        last = self._last_arrival
        if last is not None:
            d = (now - last) * self.clock_rate - ts_diff(packet.timestamp, self._last_ts)
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._last_arrival = now
        self._last_ts = packet.timestamp
        return True

    @property
    def received(self) -> int:
        return self._received

    @property
    def extended_highest_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self.ssrc is None or self._probation:
            return 0
        return self.extended_highest_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (§A.3): negative when duplicates outnumber losses."""
        return self.expected - self._received

    @property
    def jitter(self) -> float:
        """Interarrival jitter in timestamp units (§A.8)."""
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0 / self.clock_rate

    def snapshot(self) -> ReceptionSnapshot:
        """The report block's figures (§A.3); starts a new interval for ``fraction_lost``."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lost = max(-0x800000, min(0x7FFFFF, self.lost))
        return ReceptionSnapshot(
            ssrc=self.ssrc or 0,
            fraction_lost=fraction,
            cumulative_lost=lost,
            extended_highest_seq=self.extended_highest_seq & 0xFFFFFFFF,
            jitter=int(self._jitter),
        )


# --------------------------------------------------------------------------- sender side


class RtpClock:
    """Maps monotonic seconds to 32-bit RTP timestamps for one stream (§5.1: the timestamp is
    the sampling instant on a clock running at ``clock_rate``, advancing even while nothing is
    sent). Audio frames stamped at their playout deadline and telephone events stamped at their
    start agree, so events sent while audio is paused carry the right timestamp."""

    __slots__ = ("base_timestamp", "clock_rate", "origin")

    def __init__(self, clock_rate: int, origin: float, base_timestamp: int = 0) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        self.origin = origin
        self.base_timestamp = base_timestamp & 0xFFFFFFFF

    def timestamp(self, when: float) -> int:
        return (self.base_timestamp + round((when - self.origin) * self.clock_rate)) & 0xFFFFFFFF


class RtpSendState:
    """What one outgoing RTP stream shares between its writers (audio, telephone events):
    the SSRC, the next sequence number (§5.1: random start, +1 per packet) and the packet and
    octet counts a sender report carries (§6.4.1)."""

    __slots__ = (
        "last_sent_at",
        "last_timestamp",
        "next_sequence",
        "octets_sent",
        "packets_sent",
        "ssrc",
    )

    def __init__(
        self,
        ssrc: int | None = None,
        *,
        first_sequence: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        r = rng or random
        self.ssrc = random_ssrc(rng) if ssrc is None else ssrc
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("field", f"SSRC {self.ssrc} is not 32-bit")
        self.next_sequence = (
            r.getrandbits(16) if first_sequence is None else first_sequence & 0xFFFF
        )
        self.packets_sent = 0
        self.octets_sent = 0
        self.last_timestamp: int | None = None
        self.last_sent_at: float | None = None

    def packet(
        self,
        payload_type: int,
        timestamp: int,
        payload: bytes,
        *,
        marker: bool = False,
        now: float | None = None,
    ) -> RtpPacket:
        """Build the next packet of the stream (allocates its sequence number, counts it)."""
        pkt = RtpPacket(
            payload_type, self.next_sequence, timestamp & 0xFFFFFFFF, self.ssrc, payload, marker
        )
        self._count(pkt.timestamp, len(payload), now)
        return pkt

    def encode(
        self,
        payload_type: int,
        timestamp: int,
        payload: bytes,
        *,
        marker: bool = False,
        now: float | None = None,
    ) -> bytes:
        """The next packet of the stream as the bytes :meth:`packet` would give, without the
        packet object: the per-frame send path (one header pack and one join per frame)."""
        if not 0 <= payload_type <= 127:
            raise RtpError("field", f"payload type {payload_type} is not 7-bit")
        timestamp &= 0xFFFFFFFF
        header = _header_pack(
            0x80, (0x80 if marker else 0) | payload_type, self.next_sequence, timestamp, self.ssrc
        )
        self._count(timestamp, len(payload), now)
        return header + payload

    def _count(self, timestamp: int, octets: int, now: float | None) -> None:
        self.next_sequence = (self.next_sequence + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += octets
        self.last_timestamp = timestamp
        if now is not None:
            self.last_sent_at = now
