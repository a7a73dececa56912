"""RTCP sender/receiver reports, source descriptions and BYE (RFC 3550 §6).

Why this module exists: trunks and softphones judge a call's health from RTCP (loss, jitter,
round-trip time), and some hang up on a stream that never reports. rtbridge sends a compound
report every few seconds per call and reads the peer's.

- §6.4.1 SR and §6.4.2 RR with report blocks (fraction lost, cumulative lost, extended highest
  sequence number, interarrival jitter, LSR, DLSR): :class:`SenderReport`,
  :class:`ReceiverReport`, :class:`ReportBlock`.
- §6.5 SDES (CNAME, §6.5.1, and any other item kept as bytes): :class:`SourceDescription`.
- §6.6 BYE with an optional reason: :class:`Bye`. Other packet types (APP, feedback, XR) are
  kept opaque as :class:`RtcpUnknown`.
- §6.1 compound packets: :func:`parse_compound` / :func:`build_compound`; §A.2 header checks
  (version, length, padding) raise one precise :class:`RtcpError`.
- §6.4.1 NTP timestamps: :func:`ntp_from_unix`, :func:`ntp_middle32`, read from an injected wall
  clock (:class:`media.clock.Clock`); RFC 5761 §4 demultiplexing test :func:`is_rtcp`.
- :class:`RtcpReporter`: builds the compound report (SR while we send, else RR; then SDES CNAME)
  from :class:`media.rtp.ReceiverStats` and :class:`media.rtp.RtpSendState`, remembers the
  peer's last SR for LSR/DLSR and computes round-trip time from the blocks about us (§6.4.1).
  Report times follow §6.3.1's randomisation (0.5-1.5 x the interval) around a fixed interval;
  the full §6.3 bandwidth-share algorithm is unnecessary for two-party calls.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from media.clock import Clock
from media.rtp import ReceiverStats, RtpClock, RtpSendState

__all__ = [
    "NTP_EPOCH_OFFSET",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "RtcpReporter",
    "RtcpUnknown",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "build_compound",
    "is_rtcp",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_compound",
]

PT_SR: Final = 200
PT_RR: Final = 201
PT_SDES: Final = 202
PT_BYE: Final = 203
SDES_CNAME: Final = 1
NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HDR = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER = struct.Struct("!IQIII")


class RtcpError(ValueError):
    """An RTCP packet is malformed, or a field given to build one is out of range.

    ``kind``: ``"truncated"``, ``"version"``, ``"length"``, ``"padding"``, ``"count"``,
    ``"sdes"``, ``"bye"`` or ``"field"``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp (§4) of a Unix time."""
    whole = int(seconds // 1)
    frac = int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF
    return (((whole + NTP_EPOCH_OFFSET) & 0xFFFFFFFF) << 32) | frac


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field's format (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """RFC 5761 §4: on a shared port, RTCP packet types 192-223 tell RTCP from RTP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def _check32(value: int, name: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise RtcpError("field", f"{name} {value} is not 32-bit")


def _header(count: int, pt: int, body_len: int) -> bytes:
    if body_len % 4:
        raise RtcpError("length", f"RTCP body of {body_len} bytes is not 32-bit aligned")
    return _HDR.pack(0x80 | count, pt, body_len // 4)


# --------------------------------------------------------------------------- packet types


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (§6.4.1)."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0  # signed 24-bit
    highest_seq: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0  # units of 1/65536 s

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError("field", f"fraction lost {self.fraction_lost} is not 8-bit")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtcpError("field", f"cumulative lost {self.cumulative_lost} is not 24-bit")
        for name in ("ssrc", "highest_seq", "jitter", "lsr", "dlsr"):
            _check32(getattr(self, name), name)

    @classmethod
    def parse(cls, data: bytes | memoryview, pos: int = 0) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        cum = lost_word & 0xFFFFFF
        if cum & 0x800000:
            cum -= 1 << 24
        return cls(ssrc, lost_word >> 24, cum, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _blocks(body: memoryview, count: int, pos: int) -> tuple[tuple[ReportBlock, ...], int]:
    end = pos + 24 * count
    if end > len(body):
        raise RtcpError("count", f"{count} report blocks do not fit in {len(body)} bytes")
    return tuple(ReportBlock.parse(body, pos + 24 * i) for i in range(count)), end


def _check_blocks(reports: tuple[ReportBlock, ...]) -> None:
    if len(reports) > 31:
        raise RtcpError("count", f"{len(reports)} report blocks; at most 31 fit one packet")


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1): sender info plus reception report blocks."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check32(getattr(self, name), name)
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise RtcpError("field", f"NTP timestamp {self.ntp_timestamp} is not 64-bit")
        _check_blocks(self.reports)

    @classmethod
    def _from_body(cls, count: int, body: memoryview) -> SenderReport:
        if len(body) < 24:
            raise RtcpError("truncated", f"SR body of {len(body)} bytes, need 24")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER.unpack_from(body)
        reports, end = _blocks(body, count, 24)
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, bytes(body[end:]))

    def __bytes__(self) -> bytes:
        body = b"".join(
            [
                _SENDER.pack(
                    self.ssrc,
                    self.ntp_timestamp,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(bytes(r) for r in self.reports),
                self.extension,
            ]
        )
        return _header(len(self.reports), PT_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2): reception report blocks from a source that is not sending."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check32(self.ssrc, "ssrc")
        _check_blocks(self.reports)

    @classmethod
    def _from_body(cls, count: int, body: memoryview) -> ReceiverReport:
        if len(body) < 4:
            raise RtcpError("truncated", f"RR body of {len(body)} bytes, need 4")
        (ssrc,) = struct.unpack_from("!I", body)
        reports, end = _blocks(body, count, 4)
        return cls(ssrc, reports, bytes(body[end:]))

    def __bytes__(self) -> bytes:
        body = b"".join(
            [struct.pack("!I", self.ssrc), *(bytes(r) for r in self.reports), self.extension]
        )
        return _header(len(self.reports), PT_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items as ``(type, value)`` pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        _check32(self.ssrc, "ssrc")
        for kind, value in self.items:
            if not 1 <= kind <= 255:
                raise RtcpError("sdes", f"SDES item type {kind} is invalid")
            if len(value) > 255:
                raise RtcpError("sdes", f"SDES item of {len(value)} bytes; at most 255")

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        out = bytearray(struct.pack("!I", self.ssrc))
        for kind, value in self.items:
            out += bytes((kind, len(value))) + value
        out += b"\x00" * (4 - len(out) % 4)  # at least one null octet, then 32-bit alignment
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (§6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode()),)),))

    @classmethod
    def _from_body(cls, count: int, body: memoryview) -> SourceDescription:
        chunks: list[SdesChunk] = []
        pos = 0
        n = len(body)
        for _ in range(count):
            if pos + 4 > n:
                raise RtcpError("sdes", f"SDES chunk {len(chunks) + 1} of {count} is missing")
            (ssrc,) = struct.unpack_from("!I", body, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= n:
                    raise RtcpError("sdes", "SDES chunk is not terminated by a null item")
                kind = body[pos]
                if kind == 0:
                    pos += 1
                    pos += -pos % 4  # skip to the next 32-bit boundary
                    break
                if pos + 2 > n or pos + 2 + body[pos + 1] > n:
                    raise RtcpError("sdes", f"SDES item {kind} overruns the packet")
                length = body[pos + 1]
                items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        if len(self.chunks) > 31:
            raise RtcpError("count", f"{len(self.chunks)} SDES chunks; at most 31")
        body = b"".join(bytes(c) for c in self.chunks)
        return _header(len(self.chunks), PT_SDES, len(body)) + body


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (§6.6): sources leaving, with an optional reason."""

    sources: tuple[int, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.sources) > 31:
            raise RtcpError("count", f"{len(self.sources)} sources; at most 31")
        for s in self.sources:
            _check32(s, "ssrc")
        if self.reason is not None and len(self.reason.encode()) > 255:
            raise RtcpError("bye", "BYE reason longer than 255 bytes")

    @classmethod
    def _from_body(cls, count: int, body: memoryview) -> Bye:
        end = 4 * count
        if end > len(body):
            raise RtcpError("bye", f"BYE lists {count} sources but has {len(body)} bytes")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = None
        if end < len(body):
            length = body[end]
            if end + 1 + length > len(body):
                raise RtcpError("bye", f"BYE reason of {length} bytes overruns the packet")
            reason = bytes(body[end + 1 : end + 1 + length]).decode("utf-8", "replace")
        return cls(tuple(sources), reason)

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason is not None:
            r = self.reason.encode()
            body += bytes((len(r),)) + r
            body += b"\x00" * (-len(body) % 4)
        return _header(len(self.sources), PT_BYE, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other RTCP packet type (APP, RTPFB, PSFB, XR ...), kept as its body."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.packet_type <= 255 or not 0 <= self.count <= 31:
            raise RtcpError("field", f"packet type {self.packet_type} / count {self.count}")

    def __bytes__(self) -> bytes:
        return _header(self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram (§6.1) into its packets."""
    view = memoryview(bytes(data)) if not isinstance(data, bytes) else memoryview(data)
    n = len(view)
    if n < 4:
        raise RtcpError("truncated", f"RTCP datagram of {n} bytes is shorter than a header")
    out: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if pos + 4 > n:
            raise RtcpError("truncated", f"{n - pos} stray bytes after RTCP packet {len(out)}")
        b0, pt, words = _HDR.unpack_from(view, pos)
        if b0 >> 6 != 2:
            raise RtcpError("version", f"RTCP version {b0 >> 6}, expected 2")
        end = pos + 4 + 4 * words
        if end > n:
            raise RtcpError(
                "length", f"RTCP packet type {pt} claims {4 + 4 * words} bytes, {n - pos} left"
            )
        body = view[pos + 4 : end]
        if b0 & 0x20:
            if end != n:
                raise RtcpError("padding", "padding bit set on a packet that is not the last")
            pad = view[end - 1] if len(body) else 0
            if pad == 0 or pad > len(body):
                raise RtcpError("padding", f"padding count {pad} is invalid")
            body = body[: len(body) - pad]
        count = b0 & 0x1F
        packet: RtcpPacket
        if pt == PT_SR:
            packet = SenderReport._from_body(count, body)
        elif pt == PT_RR:
            packet = ReceiverReport._from_body(count, body)
        elif pt == PT_SDES:
            packet = SourceDescription._from_body(count, body)
        elif pt == PT_BYE:
            packet = Bye._from_body(count, body)
        else:
            packet = RtcpUnknown(pt, count, bytes(body))
        out.append(packet)
        pos = end
    return out


def build_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialise packets into one compound datagram (§6.1: put SR or RR first)."""
    return b"".join(bytes(p) for p in packets)


# --------------------------------------------------------------------------- reporting


#: Senders whose latest SR a reporter keeps (LSR/DLSR of the next report): a call has one
#: at a time, a new one after a re-INVITE or a transfer.
MAX_SENDERS = 4


class RtcpReporter:
    """The RTCP side of one RTP session: builds our compound reports, reads the peer's.

    ``wall`` gives Unix time for NTP fields; ``now`` arguments are monotonic seconds.
    """

    def __init__(
        self,
        sender: RtpSendState,
        cname: str,
        *,
        wall: Clock,
        rtp_clock: RtpClock | None = None,
        interval: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.sender = sender
        self.cname = cname
        self.wall = wall
        self.rtp_clock = rtp_clock
        self.interval = interval
        self._rng = rng or random.Random()
        self._last_sr: dict[int, tuple[int, float]] = {}  # ssrc -> (LSR, arrival)
        self._sent_at_last_report = 0
        self._next: float | None = None
        self.rtt: float | None = None  # seconds, from the latest block about us
        self.peer_bye: Bye | None = None

    def next_deadline(self, now: float) -> float:
        """When the next report is due (first call schedules one)."""
        if self._next is None:
            self._next = now + self.interval * self._rng.uniform(0.5, 1.5)
        return self._next

    def receive(self, data: bytes, now: float) -> list[RtcpPacket]:
        """Parse a datagram from the peer and record what reports need (LSR, RTT, BYE).
        Raises :class:`RtcpError` for a malformed datagram (nothing is recorded then)."""
        packets = parse_compound(data)
        arrival_ntp = ntp_middle32(ntp_from_unix(self.wall.now()))
        for p in packets:
            if isinstance(p, SenderReport):
                last = self._last_sr
                last.pop(p.ssrc, None)  # the newest last: the oldest goes first
                last[p.ssrc] = (ntp_middle32(p.ntp_timestamp), now)
                if len(last) > MAX_SENDERS:  # SSRCs made up by the thousand: memory bounded
                    del last[next(iter(last))]
            if isinstance(p, SenderReport | ReceiverReport):
                for block in p.reports:
                    if block.ssrc == self.sender.ssrc and block.lsr:
                        rtt = (arrival_ntp - block.lsr - block.dlsr) & 0xFFFFFFFF
                        if rtt < 0x80000000:
                            self.rtt = rtt / 65536.0
            elif isinstance(p, Bye):
                self.peer_bye = p
        return packets

    def report(self, now: float, sources: Sequence[ReceiverStats] = ()) -> bytes:
        """Our compound report: SR if we sent since the last one, else RR; then SDES CNAME.
        Takes a §A.3 snapshot of each source (starting their next interval)."""
        blocks = []
        for stats in sources:
            if stats.ssrc is None:
                continue
            snap = stats.snapshot()
            lsr, dlsr = 0, 0
            last = self._last_sr.get(snap.ssrc)
            if last is not None:
                lsr = last[0]
                dlsr = min(0xFFFFFFFF, int((now - last[1]) * 65536))
            blocks.append(
                ReportBlock(
                    snap.ssrc,
                    snap.fraction_lost,
                    snap.cumulative_lost,
                    snap.extended_highest_seq,
                    min(snap.jitter, 0xFFFFFFFF),
                    lsr,
                    dlsr,
                )
            )
        s = self.sender
        first: RtcpPacket
        if s.packets_sent > self._sent_at_last_report:
            if self.rtp_clock is not None:
                rtp_ts = self.rtp_clock.timestamp(now)
            else:
                rtp_ts = s.last_timestamp or 0
            first = SenderReport(
                s.ssrc,
                ntp_from_unix(self.wall.now()),
                rtp_ts,
                s.packets_sent & 0xFFFFFFFF,
                s.octets_sent & 0xFFFFFFFF,
                tuple(blocks[:31]),
            )
        else:
            first = ReceiverReport(s.ssrc, tuple(blocks[:31]))
        self._sent_at_last_report = s.packets_sent
        self._next = now + self.interval * self._rng.uniform(0.5, 1.5)
        return build_compound([first, SourceDescription.cname(s.ssrc, self.cname)])

    def bye(self, reason: str | None = None) -> bytes:
        """The final compound packet (§6.6: a report, then BYE)."""
        first = ReceiverReport(self.sender.ssrc)
        return build_compound([first, Bye((self.sender.ssrc,), reason)])
