"""Which host addresses a peer connection offers as ICE candidates.

aioice gathers host candidates on every interface address except loopback (``127.0.0.1`` is
skipped outright) and, unless told otherwise, aiortc also asks a public STUN server. rtbridge
offers exactly the addresses it is configured with (``rtbridge serve --ice-host ADDR``,
repeatable; ``[webrtc] ice_hosts``) and no STUN server unless configured: a bridge should not
leak its traffic pattern to a third party or advertise addresses nobody can reach.

:func:`gather_on_hosts` gathers the candidates of every ICE transport of a peer connection on
the given addresses *before* aiortc's own gathering runs (``setLocalDescription``), which then
finds gathering done and uses them. It reaches into aioice's ``Connection`` (no public hook
exists for the address list); the attributes it touches are checked, so an aioice that changes
them fails loudly rather than silently offering other addresses.

:func:`guard_sources` closes a hole aioice leaves: it hands every datagram that is not STUN, from
any address, to DTLS. A stranger spraying the call's port with an unauthenticated DTLS alert
killed the handshake of every call it hit (the call ended before its media started). Once
guarded, DTLS and SRTP are taken only from a remote address of the connection's check list:
a candidate the browser's own SDP named, or one whose STUN request carried the call's ICE
password (RFC 8445 §7.3.1.3: a peer-reflexive candidate). Everything else is dropped and
counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

__all__ = ["ForeignDatagrams", "gather_on_hosts", "guard_sources"]


def _ice_connections(pc: RTCPeerConnection) -> list[Any]:
    transports: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is not None:
            transports.append(dtls.transport)
    if pc.sctp is not None:
        transports.append(pc.sctp.transport.transport)
    seen: dict[int, Any] = {}
    for ice in transports:
        conn = ice.iceGatherer._connection
        seen.setdefault(id(conn), conn)
    return list(seen.values())


async def gather_on_hosts(pc: RTCPeerConnection, hosts: Sequence[str]) -> None:
    """Gather host candidates on ``hosts`` for every ICE transport of ``pc`` (call it after
    the transceivers/data channel exist and before ``setLocalDescription``). An empty
    ``hosts`` leaves aioice's default (all non-loopback interface addresses)."""
    if not hosts:
        return
    for conn in _ice_connections(pc):
        for attr in ("_local_candidates_start", "_local_candidates_end", "_components"):
            if not hasattr(conn, attr):
                raise RuntimeError(f"unsupported aioice version: Connection has no {attr}")
        if conn._local_candidates_start:
            continue
        conn._local_candidates_start = True
        for component in sorted(conn._components):
            conn._local_candidates += await conn.get_component_candidates(
                component=component, addresses=list(hosts)
            )
        conn._local_candidates_end = True


@dataclass(slots=True)
class ForeignDatagrams:
    """What :func:`guard_sources` dropped: datagrams from addresses ICE never vouched for."""

    dropped: int = 0


def guard_sources(pc: RTCPeerConnection) -> ForeignDatagrams:
    """Take DTLS and SRTP (anything not STUN, RFC 7983) on ``pc``'s sockets only from the
    remote addresses of each ICE connection's check list (call it after
    ``setLocalDescription``, when the sockets exist)."""
    guard = ForeignDatagrams()
    for conn in _ice_connections(pc):
        for attr in ("_protocols", "_check_list"):
            if not hasattr(conn, attr):
                raise RuntimeError(f"unsupported aioice version: Connection has no {attr}")
        for protocol in conn._protocols:
            protocol.datagram_received = _guarded(conn, protocol.datagram_received, guard)
    return guard


def _guarded(
    conn: Any, received: Callable[[bytes, tuple[Any, ...]], None], guard: ForeignDatagrams
) -> Callable[[bytes, tuple[Any, ...]], None]:
    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and data[0] > 3:  # not STUN: DTLS (20-63) or SRTP/SRTCP (128-191)
            source = (addr[0], addr[1])
            if not any(pair.remote_addr == source for pair in conn._check_list):
                guard.dropped += 1
                return
        received(data, addr)

    return datagram_received
