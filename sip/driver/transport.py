"""Sockets for the SIP core: UDP, TCP and TLS over asyncio (RFC 3261 §18).

:class:`Transports` owns the listening sockets and the stream connections and knows nothing of
SIP beyond framing: datagrams and framed stream messages go to one ``on_message(data, peer)``
callback; ``send(data, peer)`` writes to the UDP socket or to the connection for ``peer``
(opening one for an outbound request when none exists, §18.1.1). A stream that breaks framing
(no Content-Length, oversized) is closed (§18.3). Connections are keyed by the remote address,
so responses and in-dialog requests reuse the connection a peer opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from sip.errors import SipParseError, SipTransportError
from sip.message import StreamFramer
from sip.transaction import Peer

__all__ = ["Transports"]

log = logging.getLogger("rtbridge.sip.transport")

OnMessage = Callable[[bytes, Peer], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: Transports) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.owner.on_message(data, Peer("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.owner.stats["udp_errors"] += 1


class _Stream:
    """One TCP/TLS connection: a reader task framing messages, a writer."""

    def __init__(
        self,
        owner: Transports,
        peer: Peer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.owner = owner
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        framer = StreamFramer()
        try:
            while data := await self.reader.read(65536):
                for message in framer.feed(data):
                    self.owner.on_message(message, self.peer)
        except SipParseError as exc:
            self.owner.stats["framing_errors"] += 1
            log.info("closing %s: %s", self.peer, exc)
        except (ConnectionError, OSError):
            pass
        finally:
            self.owner.forget(self)
            self.writer.close()

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class Transports:
    """The sockets of one SIP endpoint (see the module docstring)."""

    def __init__(
        self,
        on_message: OnMessage,
        *,
        ssl_context: ssl.SSLContext | None = None,
        client_context: ssl.SSLContext | None = None,
    ) -> None:
        self.on_message = on_message
        self.ssl_context = ssl_context  # for our TLS listener
        self.client_context = client_context or ssl.create_default_context()
        self.udp: asyncio.DatagramTransport | None = None
        self.servers: list[asyncio.Server] = []
        self.streams: dict[Peer, _Stream] = {}
        self.ports: dict[str, int] = {}
        self.stats: dict[str, int] = {"udp_errors": 0, "framing_errors": 0, "send_errors": 0}
        self._connecting: dict[Peer, asyncio.Task[_Stream]] = {}

    async def listen(self, transport: str, host: str, port: int) -> int:
        """Bind ``transport`` on ``host:port`` (0 picks a free port); returns the port."""
        loop = asyncio.get_running_loop()
        if transport == "udp":
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            self.udp = udp
            bound = int(udp.get_extra_info("sockname")[1])
        else:
            tls = self.ssl_context if transport == "tls" else None
            if transport == "tls" and tls is None:
                raise SipTransportError("TLS needs a certificate and key")

            async def accepted(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                addr = w.get_extra_info("peername")
                peer = Peer(transport, str(addr[0]), int(addr[1]))
                self.streams[peer] = _Stream(self, peer, r, w)

            server = await asyncio.start_server(accepted, host, port, ssl=tls)
            self.servers.append(server)
            bound = int(server.sockets[0].getsockname()[1])
        self.ports[transport] = bound
        return bound

    def send(self, data: bytes, peer: Peer, on_error: Callable[[], None]) -> None:
        """Send now (UDP, open stream) or once a connection to ``peer`` is made."""
        if peer.transport == "udp":
            if self.udp is None:
                on_error()
                return
            try:
                self.udp.sendto(data, (peer.host, peer.port))
            except OSError:
                self.stats["send_errors"] += 1
                on_error()
            return
        stream = self.streams.get(peer)
        if stream is not None and not stream.writer.is_closing():
            stream.writer.write(data)
            return
        asyncio.get_running_loop().create_task(self._connect_and_send(data, peer, on_error))

    async def _connect_and_send(
        self, data: bytes, peer: Peer, on_error: Callable[[], None]
    ) -> None:
        try:
            task = self._connecting.get(peer)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._connect(peer))
                self._connecting[peer] = task
            stream = await task
            stream.writer.write(data)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self.stats["send_errors"] += 1
            log.info("cannot connect to %s: %s", peer, exc)
            on_error()
        finally:
            self._connecting.pop(peer, None)

    async def _connect(self, peer: Peer) -> _Stream:
        tls = self.client_context if peer.transport == "tls" else None
        r, w = await asyncio.wait_for(
            asyncio.open_connection(peer.host, peer.port, ssl=tls), timeout=10
        )
        stream = _Stream(self, peer, r, w)
        self.streams[peer] = stream
        return stream

    def forget(self, stream: _Stream) -> None:
        if self.streams.get(stream.peer) is stream:
            del self.streams[stream.peer]

    async def close(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        for stream in list(self.streams.values()):
            stream.close()
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self.udp is not None:
            self.udp.close()
        self.streams.clear()
