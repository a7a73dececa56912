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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiortc import RTCPeerConnection

__all__ = ["gather_on_hosts"]


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
