"""Per-call RTP/RTCP sockets: random even/odd port pairs, strict RTP source learning.

Each call owns one :class:`RtpEndpoint`: a UDP socket on an even port for RTP and one on the
next odd port for RTCP (RFC 3550 §11). Ports are picked at random among the free pairs
(:class:`PortAllocator`): a scanner cannot guess the next call's port.

The sockets are plain non-blocking sockets the event loop watches (``loop.add_reader``), not
asyncio datagram transports: each readiness reads one datagram into a 4 KiB buffer (asyncio's
transport allocates 256 KiB per read; uvloop's reads up to 32 datagrams per socket before
the loop runs anything else, which under overload starved the frame ticker of its turns while
caller packets were all read), and a send is one ``sendto``. A send the kernel cannot take at
once (its buffer full) is dropped and counted (``send_dropped``), never queued: a frame sent
late is worse than a frame lost. Errors the kernel reports on a socket (an ICMP port
unreachable of an earlier send) are counted (``socket_errors``) and the call goes on.

Where media comes from is learned strictly (Asterisk's ``strictrtp`` is the model; issue 12):

* the address the SDP names is *expected*: its first valid packet latches the call to it;
* another address (a caller behind NAT) is accepted only after a probation of
  ``probation`` consecutive in-sequence packets of one SSRC from it, and only while nothing
  is latched: a stranger is never accepted mid-stream;
* once latched, every other source is dropped and counted (``foreign_source``); the first
  packet of each foreign address is reported (``on_foreign``: a security event). One
  exception: for :data:`TAKE_BACK_S` after a source is learned on probation, the address the
  SDP names takes the call back from it. A stranger spraying the port range can pass
  probation on a new call's port before the caller's first packet; without this, the caller
  was then dropped as foreign (and reported as the attacker) while the stranger kept the
  call's audio both ways. Only for a while: later, the SDP's address of a caller behind NAT
  (a private one it never sends from) is anybody's on that network;
* a re-INVITE that keeps the address keeps the latch; one that names a new address makes it
  the expected one and learning starts again (:meth:`RtpEndpoint.set_remote`).

Media is sent to the expected address until a source is learned, then to that source
(symmetric RTP, RFC 4961, which is what gets audio through NAT). Addresses are IP literals
only: a hostname here would be resolved by the kernel call on every packet sent, so
:meth:`RtpEndpoint.set_remote` refuses one (SDP hostnames are resolved once, at negotiation).

Malformed datagrams are counted and dropped; they never reach the call.

With SRTP (SDES keys, :attr:`RtpEndpoint.srtp`, a :class:`media.srtp.SrtpSession`) every RTP
and RTCP packet is unprotected before anything else reads it and protected as it leaves; a
packet that fails authentication or the replay check is counted (``srtp_failed``) and dropped
before it can teach the endpoint a source. The session can be replaced mid-call (new keys
in a re-INVITE).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.errors import PortsExhausted
from media.rtp import RtpError, RtpPacket
from media.srtp import SrtpError, SrtpSession
from sip.ratelimit import TokenBucket

__all__ = ["EndpointStats", "PortAllocator", "RtpEndpoint"]

log = logging.getLogger(__name__)

Address = tuple[str, int]


#: Packets the probation of a source the SDP did not name lasts, by default (Asterisk's).
PROBATION = 4
#: How long after a source is learned on probation the SDP's own address can take the call
#: back from it (a caller whose first packet came after a stranger's probation).
TAKE_BACK_S = 5.0
#: Foreign addresses reported per call (each one once); the rest are only counted.
REPORTED_FOREIGN = 16
#: RTCP datagrams a second a call reads (as many at once: a token bucket); the rest are
#: counted (``rtcp_over_rate``) and dropped unread. A peer sends one every few seconds
#: (RFC 3550 §6.2); anything on the peer's host could send thousands, each parsed on the
#: event loop every call's audio shares.
RTCP_PER_S = 10
#: The largest RTP/RTCP datagram read whole (audio packets are a few hundred bytes); a longer
#: one is cut short (and then fails to parse or to authenticate).
MAX_RTP_DATAGRAM = 4096


class PortAllocator:
    """Even RTP ports (RTCP = port + 1) from ``[start, end]``, picked at random among the free
    ones. A port just released rests behind the others (up to half the range) before it can be
    picked again: late packets of the old call go nowhere."""

    def __init__(self, start: int, end: int, *, rng: random.Random | None = None) -> None:
        if start % 2:
            start += 1
        if end <= start:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd pair")
        self._ports = list(range(start, end, 2))
        self._free = list(self._ports)
        self._resting: deque[int] = deque()
        self._rest = len(self._ports) // 2
        self._used: set[int] = set()
        self._rng = rng or random.SystemRandom()

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def acquire(self) -> int:
        free = self._free
        if not free and self._resting:
            free.append(self._resting.popleft())
        if not free:
            raise PortsExhausted(f"all {self.capacity} RTP port pairs are in use")
        i = self._rng.randrange(len(free))
        port = free[i]
        free[i] = free[-1]
        free.pop()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._resting.append(port)
            while len(self._resting) > self._rest:
                self._free.append(self._resting.popleft())


@dataclass(slots=True)
class EndpointStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed: int = 0
    foreign_source: int = 0  # from another address once latched: dropped
    probation: int = 0  # from an unexpected address while learning: dropped
    rtcp_in: int = 0
    rtcp_out: int = 0
    unsent: int = 0  # media with nowhere to go yet
    srtp_failed: int = 0  # SRTP/SRTCP packets that failed authentication or replay: dropped
    rtcp_over_rate: int = 0  # RTCP past RTCP_PER_S in a second: dropped unread
    send_dropped: int = 0  # the kernel's send buffer was full: dropped, not queued
    socket_errors: int = 0  # errors the kernel reported on a socket (ICMP unreachable, ...)


@dataclass(slots=True)
class _Candidate:
    """A source on probation: its address, SSRC, last sequence number, packets in a row."""

    addr: Address
    ssrc: int
    seq: int
    count: int = 1


def _ip_literal(addr: Address) -> Address:
    try:
        ipaddress.ip_address(addr[0])
    except ValueError:
        raise ValueError(f"{addr[0]!r} is not an IP address (resolve it first)") from None
    return addr


def _bound_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host``:``port``, an IP literal (IPv4 or IPv6; the
    call manager resolves a ``calls.rtp_host`` name once, at start). Raises ValueError for a
    name."""
    _ip_literal((host, port))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # only IPv6 literals have ':'
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class RtpEndpoint:
    """One call's RTP and RTCP sockets (see the module docstring).

    ``on_rtp(packet)`` is called for each valid RTP packet from the learned source,
    ``on_rtcp(data)`` for each RTCP datagram from its host, ``on_foreign(address)`` once for
    each other address that sends RTP once a source is learned.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_rtp: Callable[[RtpPacket], None],
        on_rtcp: Callable[[bytes], None] | None = None,
        probation: int = PROBATION,
        on_foreign: Callable[[Address], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_rtp = on_rtp  # replaceable: outbound calls attach media on answer
        self.on_rtcp = on_rtcp
        self.on_foreign = on_foreign
        self.probation = max(1, probation)
        self._rtp: socket.socket | None = None
        self._rtcp: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.expected: Address | None = None  # what the SDP names
        self.remote: Address | None = None  # where we send (expected, then the learned source)
        self.remote_rtcp: Address | None = None
        self._expected_rtcp: Address | None = None  # where the SDP says RTCP goes
        #: loop time until which the SDP's address may take back a source learned on probation
        self._take_back_until: float | None = None
        self.latched: Address | None = None
        self._candidate: _Candidate | None = None
        self._reported: set[Address] = set()
        self._rtcp_rate = TokenBucket(RTCP_PER_S, RTCP_PER_S, 0.0)  # RTCP datagrams read
        self.stats = EndpointStats()
        #: SRTP protection of the call's media (None: plain RTP)
        self.srtp: SrtpSession | None = None

    async def open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        try:
            self._rtp = _bound_socket(self.host, self.port)
            self._rtcp = _bound_socket(self.host, self.port + 1)
            loop.add_reader(self._rtp.fileno(), self._read, self._rtp, self._rtp_datagram)
            loop.add_reader(self._rtcp.fileno(), self._read, self._rtcp, self._rtcp_datagram)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        loop = self._loop
        for sock in (self._rtp, self._rtcp):
            if sock is None:
                continue
            if loop is not None and not loop.is_closed():
                loop.remove_reader(sock.fileno())
            sock.close()
        self._rtp = self._rtcp = None

    def _read(self, sock: socket.socket, handle: Callable[[bytes, Any], None]) -> None:
        """One datagram of ``sock`` (the loop found it readable) to ``handle``."""
        try:
            data, addr = sock.recvfrom(MAX_RTP_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # an ICMP error of an earlier send (port unreachable): not fatal
            self.stats.socket_errors += 1
            log.debug("rtp %d: socket error: %s", self.port, exc)
            return
        # (host, port): an IPv6 socket says (host, port, flowinfo, scope), and the addresses
        # this endpoint compares with (the SDP's, the latched source) are (host, port)
        handle(data, addr[:2])

    async def __aenter__(self) -> RtpEndpoint:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- addressing ---------------------------------------------------------------------

    def set_remote(self, addr: Address, rtcp: Address | None = None) -> None:
        """The address the SDP names (an IP literal: raises ValueError otherwise). The same
        address again (a re-INVITE that does not move the media) changes nothing; a new one
        is expected from now on and the source is learned again."""
        addr = _ip_literal(addr)
        if rtcp is not None:
            rtcp = _ip_literal(rtcp)
        if addr == self.expected:
            return
        self.expected = self.remote = addr
        self.remote_rtcp = self._expected_rtcp = rtcp or (addr[0], addr[1] + 1)
        self.latched = None
        self._candidate = None
        self._take_back_until = None

    # -- receiving ----------------------------------------------------------------------

    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        latched = self.latched
        if latched is not None and addr != latched and not self._takes_back(addr):
            self._foreign(addr)
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect(data)
            except SrtpError:
                self.stats.srtp_failed += 1
                return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.malformed += 1
            return
        if addr != latched and not self._learn(addr, packet):
            self.stats.probation += 1
            return
        self.stats.packets_in += 1
        self.stats.bytes_in += len(data)
        self.on_rtp(packet)

    def _takes_back(self, addr: Address) -> bool:
        """Whether ``addr``, not the latched source, may take the call: the SDP's address,
        within :data:`TAKE_BACK_S` of a latch learned on probation."""
        until = self._take_back_until
        return (
            addr == self.expected
            and until is not None
            and self._loop is not None
            and self._loop.time() < until
        )

    def _learn(self, addr: Address, packet: RtpPacket) -> bool:
        """Whether ``addr`` becomes the call's source with ``packet``: at once when the SDP
        named it; after ``probation`` in-sequence packets of one SSRC otherwise."""
        if addr != self.expected:
            c = self._candidate
            if (
                c is not None
                and c.addr == addr
                and c.ssrc == packet.ssrc
                and packet.sequence_number == (c.seq + 1) & 0xFFFF
            ):
                c.count += 1
                c.seq = packet.sequence_number
            else:
                c = self._candidate = _Candidate(addr, packet.ssrc, packet.sequence_number)
            if c.count < self.probation:
                return False
            log.info(
                "rtp %d: learned source %s:%d (the SDP named %s)", self.port, *addr, self.expected
            )
            now = self._loop.time() if self._loop is not None else 0.0
            self._take_back_until = now + TAKE_BACK_S
        else:
            self._take_back_until = None
        if self.latched is not None:
            log.warning(
                "rtp %d: the SDP's address %s:%d takes the media back from %s:%d",
                self.port,
                *addr,
                *self.latched,
            )
        self._candidate = None
        self.latched = self.remote = addr
        if addr == self.expected:
            self.remote_rtcp = self._expected_rtcp
        elif self.remote_rtcp is None or self.remote_rtcp[0] != addr[0]:
            self.remote_rtcp = (addr[0], addr[1] + 1)
        return True

    def _foreign(self, addr: Address) -> None:
        self.stats.foreign_source += 1
        reported = self._reported
        if (
            self.on_foreign is not None
            and addr not in reported
            and len(reported) < REPORTED_FOREIGN
        ):
            reported.add(addr)
            self.on_foreign(addr)

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        source = self.latched or self.expected
        if source is None or addr[0] != source[0]:
            self.stats.foreign_source += 1
            return
        if not self._rtcp_rate.take(self._loop.time() if self._loop is not None else 0.0):
            self.stats.rtcp_over_rate += 1
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.stats.srtp_failed += 1
                return
        self.stats.rtcp_in += 1
        if self.on_rtcp is not None:
            with contextlib.suppress(Exception):
                self.on_rtcp(data)

    # -- sending ------------------------------------------------------------------------

    def send(self, packet: bytes) -> bool:
        """Send one RTP datagram to the remote; False if there is nowhere to send yet."""
        sock, remote = self._rtp, self.remote
        if sock is None or remote is None:
            self.stats.unsent += 1
            return False
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
        if not self._sendto(sock, packet, remote):
            return False
        self.stats.packets_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def send_rtcp(self, data: bytes) -> bool:
        sock, remote = self._rtcp, self.remote_rtcp
        if sock is None or remote is None:
            return False
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        if not self._sendto(sock, data, remote):
            return False
        self.stats.rtcp_out += 1
        return True

    def _sendto(self, sock: socket.socket, data: bytes, remote: Address) -> bool:
        try:
            sock.sendto(data, remote)
        except (BlockingIOError, InterruptedError):
            self.stats.send_dropped += 1
            return False
        except OSError as exc:  # unreachable, refused by a firewall: this packet only
            self.stats.socket_errors += 1
            log.debug("rtp %d: send failed: %s", self.port, exc)
            return False
        return True
