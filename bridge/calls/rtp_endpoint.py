"""Per-call RTP/RTCP sockets: even/odd port pairs from a configured range, symmetric RTP.

Each call owns one :class:`RtpEndpoint`: an asyncio datagram socket on an even port for RTP and
one on the next odd port for RTCP (RFC 3550 §11). Media is sent to the address the SDP names
until packets arrive; then the endpoint *latches* to the source of the first valid RTP packet
(symmetric RTP, RFC 4961 in spirit, which is what gets audio through NAT) and from then on
ignores every other source: it never re-latches mid-call to a new address, which is what the
"RTP Bleed" attack relies on. A re-INVITE may legitimately move media: the call calls
:meth:`RtpEndpoint.relatch` and the next packets latch again.

Malformed datagrams are counted and dropped; they never reach the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from bridge.errors import PortsExhausted
from media.rtp import RtpError, RtpPacket

__all__ = ["EndpointStats", "PortAllocator", "RtpEndpoint"]

log = logging.getLogger(__name__)

Address = tuple[str, int]


class PortAllocator:
    """Even RTP ports (RTCP = port + 1) from ``[start, end]``, handed out round-robin so a
    port just released is not reused at once (late packets of the old call go nowhere)."""

    def __init__(self, start: int, end: int) -> None:
        if start % 2:
            start += 1
        if end <= start:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd pair")
        self._ports = list(range(start, end, 2))
        self._free = list(self._ports)
        self._used: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def acquire(self) -> int:
        if not self._free:
            raise PortsExhausted(f"all {self.capacity} RTP port pairs are in use")
        port = self._free.pop(0)
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)


@dataclass(slots=True)
class EndpointStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed: int = 0
    foreign_source: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.: not fatal
        log.debug("rtp socket error: %s", exc)


class RtpEndpoint:
    """One call's RTP and RTCP sockets.

    ``on_rtp(packet)`` is called for each valid RTP packet from the latched source,
    ``on_rtcp(data)`` for each RTCP datagram from the latched host.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_rtp: Callable[[RtpPacket], None],
        on_rtcp: Callable[[bytes], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_rtp = on_rtp  # replaceable: outbound calls attach media on answer
        self.on_rtcp = on_rtcp
        self._rtp: _Proto | None = None
        self._rtcp: _Proto | None = None
        self.remote: Address | None = None  # where we send (SDP, then the latched source)
        self.remote_rtcp: Address | None = None
        self.latched: Address | None = None
        self.stats = EndpointStats()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._rtp = await loop.create_datagram_endpoint(
            lambda: _Proto(self._rtp_datagram), local_addr=(self.host, self.port)
        )
        try:
            _, self._rtcp = await loop.create_datagram_endpoint(
                lambda: _Proto(self._rtcp_datagram), local_addr=(self.host, self.port + 1)
            )
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for proto in (self._rtp, self._rtcp):
            if proto is not None and proto.transport is not None:
                proto.transport.close()
        self._rtp = self._rtcp = None

    async def __aenter__(self) -> RtpEndpoint:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- addressing ---------------------------------------------------------------------

    def set_remote(self, addr: Address, rtcp: Address | None = None) -> None:
        """The address from SDP (used until media arrives and latches)."""
        self.remote = addr
        self.remote_rtcp = rtcp or (addr[0], addr[1] + 1)

    def relatch(self) -> None:
        """Allow the next packets to latch again (after a re-INVITE moved the media)."""
        self.latched = None

    # -- receiving ----------------------------------------------------------------------

    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        if self.latched is not None and addr != self.latched:
            self.stats.foreign_source += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.malformed += 1
            return
        if self.latched is None:
            self.latched = addr
            self.remote = addr
            if self.remote_rtcp is None or self.remote_rtcp[0] != addr[0]:
                self.remote_rtcp = (addr[0], addr[1] + 1)
        self.stats.packets_in += 1
        self.stats.bytes_in += len(data)
        self.on_rtp(packet)

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        if self.latched is not None and addr[0] != self.latched[0]:
            self.stats.foreign_source += 1
            return
        self.stats.rtcp_in += 1
        if self.on_rtcp is not None:
            with contextlib.suppress(Exception):
                self.on_rtcp(data)

    # -- sending ------------------------------------------------------------------------

    def send(self, packet: bytes) -> bool:
        """Send one RTP datagram to the remote; False if there is nowhere to send yet."""
        if self._rtp is None or self._rtp.transport is None or self.remote is None:
            return False
        self._rtp.transport.sendto(packet, self.remote)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def send_rtcp(self, data: bytes) -> bool:
        if self._rtcp is None or self._rtcp.transport is None or self.remote_rtcp is None:
            return False
        self._rtcp.transport.sendto(data, self.remote_rtcp)
        self.stats.rtcp_out += 1
        return True
