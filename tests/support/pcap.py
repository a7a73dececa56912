"""A small reader for classic libpcap captures: UDP datagrams over IPv4.

Enough to replay SIPp's own RTP captures in tests: the classic file format (microsecond or
nanosecond timestamps, either byte order) with Ethernet (optionally 802.1Q-tagged), Linux cooked
(SLL) or raw IPv4 link layers. Anything else (IPv6, TCP, fragments) is skipped, not guessed at.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PcapError", "UdpDatagram", "read_udp"]

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
_ETH_IPV4 = 0x0800
_ETH_VLAN = 0x8100


class PcapError(ValueError):
    """The file is not a classic pcap capture this reader understands."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    time: float  # capture time, seconds since the epoch
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def _ipv4_udp(frame: bytes, off: int, t: float) -> UdpDatagram | None:
    if len(frame) < off + 20 or frame[off] >> 4 != 4:
        return None
    ihl = (frame[off] & 0x0F) * 4
    total_len, flags_frag, proto = (
        struct.unpack_from("!H", frame, off + 2)[0],
        struct.unpack_from("!H", frame, off + 6)[0],
        frame[off + 9],
    )
    if proto != 17 or flags_frag & 0x3FFF:  # not UDP, or a fragment
        return None
    udp = off + ihl
    if len(frame) < udp + 8:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", frame, udp)
    end = min(udp + ulen, off + total_len, len(frame))
    return UdpDatagram(
        t,
        _ip(frame[off + 12 : off + 16]),
        sport,
        _ip(frame[off + 16 : off + 20]),
        dport,
        frame[udp + 8 : end],
    )


def read_udp(path: str | Path) -> list[UdpDatagram]:
    """Every IPv4/UDP datagram in the capture, in file order."""
    data = Path(path).read_bytes()
    if len(data) < 24 or data[:4] not in _MAGICS:
        raise PcapError(f"{path}: not a classic pcap file")
    order, unit = _MAGICS[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype not in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL):
        raise PcapError(f"{path}: link type {linktype} is not supported")
    rec = struct.Struct(order + "IIII")
    out: list[UdpDatagram] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, pos)
        pos += 16
        frame = data[pos : pos + incl]
        pos += incl
        if len(frame) < incl:
            raise PcapError(f"{path}: truncated record")
        t = sec + frac * unit
        if linktype == LINKTYPE_ETHERNET:
            if len(frame) < 14:
                continue
            off, ethertype = 14, struct.unpack_from("!H", frame, 12)[0]
            while ethertype == _ETH_VLAN and len(frame) >= off + 4:
                ethertype = struct.unpack_from("!H", frame, off + 2)[0]
                off += 4
            if ethertype != _ETH_IPV4:
                continue
        elif linktype == LINKTYPE_LINUX_SLL:
            if len(frame) < 16 or struct.unpack_from("!H", frame, 14)[0] != _ETH_IPV4:
                continue
            off = 16
        else:
            off = 0
        dgram = _ipv4_udp(frame, off, t)
        if dgram is not None:
            out.append(dgram)
    return out
