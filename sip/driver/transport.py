"""Sockets for the SIP core: UDP, TCP and TLS over asyncio (RFC 3261 §18), with the limits an
Internet-facing listener needs (issue 12).

:class:`Transports` owns the listening sockets and the stream connections and knows nothing of
SIP beyond framing: datagrams and framed stream messages go to one ``on_message(data, peer)``
callback; ``send(data, peer)`` writes to the UDP socket or to the connection for ``peer``
(opening one for an outbound request when none exists, §18.1.1). A stream that breaks framing
(no Content-Length, oversized) is closed (§18.3). Connections are keyed by the remote address,
so responses and in-dialog requests reuse the connection a peer opened.

Stream limits (``SipLimits``; Kamailio's TCP settings are the model), each reported through
``on_notice`` when it bites:

* accepted connections are capped in total and per source address; one over a cap is reset
  at once, before a byte is read from it: a TLS handshake starts only after the check, and
  must finish within the deadline. At the total cap a new connection takes the place of the
  connection idle longest that no call uses, when there is one. A trunk's own addresses
  (``trusted``) are under neither cap: strangers holding every connection locked a carrier out;
* only a whole message keeps a stranger's connection from being idle: keep-alive line
  breaks (RFC 5626 §4.4.1) are a trunk's to send, and they kept a stranger's open for ever;
* a message must be complete ``message_deadline_s`` after its first byte, and a new inbound
  connection must bring its first message within that time too (slow senders hold memory);
* a connection without traffic for ``idle_timeout_s`` is closed unless a call uses it
  (``in_use``): the peers of live calls keep theirs;
* a peer that does not read what we write is disconnected once more than ``write_high_water``
  bytes wait for it;
* framing is linear in the input (:class:`~sip.message.StreamFramer` never rescans).

Deadlines are checked by one sweep a second over the connections, not a timer per read.

Datagrams are read into buffers of their largest possible size (:func:`bound_datagrams`), not
asyncio's 256 KiB: allocating that per datagram was most of the cost of receiving one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Collection
from typing import cast

from sip.errors import SipParseError, SipTransportError
from sip.events import NoticeKind
from sip.message import StreamFramer
from sip.settings import SipLimits
from sip.transaction import Peer

__all__ = ["Transports", "bound_datagrams"]

log = logging.getLogger("rtbridge.sip.transport")

OnMessage = Callable[[bytes, Peer], None]
OnNotice = Callable[[NoticeKind, Peer, str], None]

#: How often deadlines and idle connections are looked at, and how many are closed per turn of
#: the event loop.
SWEEP_S = 1.0
SWEEP_BATCH = 32


#: The largest UDP payload (65535 minus the IP and UDP headers, rounded up): a SIP datagram.
MAX_DATAGRAM = 65_536


def bound_datagrams(transport: asyncio.BaseTransport, size: int) -> None:
    """Read each datagram of ``transport`` into a buffer of ``size`` bytes (longer ones are cut
    short). CPython's selector transport allocates ``max_size`` (256 KiB) for every datagram it
    reads, 20 us of a 22 us read; other transports are left alone."""
    if hasattr(transport, "max_size"):
        transport.max_size = size


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: Transports) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.owner.on_message(data, Peer("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.owner.stats["udp_errors"] += 1


class _Accept(asyncio.Protocol):
    """A connection just accepted: reading paused until :meth:`Transports.accept` lets it in
    (and TLS wraps it), so a connection over a cap costs no read and no handshake."""

    def __init__(self, owner: Transports, transport: str, tls: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.transport_name = transport
        self.tls = tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        raw.pause_reading()
        addr = raw.get_extra_info("peername")
        peer = Peer(self.transport_name, str(addr[0]), int(addr[1]))
        self.owner.accept(peer, raw, self.tls)


class _Stream:
    """One TCP/TLS connection: a reader task framing messages, a writer, its timestamps."""

    def __init__(
        self,
        owner: Transports,
        peer: Peer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        inbound: bool,
        counted: bool = False,
    ) -> None:
        self.owner = owner
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.inbound = inbound
        #: an accepted connection under the caps (not a trunk's, not one we opened)
        self.counted = counted
        self.opened_at = self.last_active = time.monotonic()
        self.partial_since: float | None = None  # when the unfinished message began
        self.messages = 0
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        owner = self.owner
        framer = StreamFramer(max_size=owner.limits.max_message_bytes)
        try:
            while data := await self.reader.read(65536):
                now = time.monotonic()
                messages = framer.feed(data)
                if messages or not self.counted:  # a stranger's keep-alives are not traffic
                    self.last_active = now
                for message in messages:
                    self.messages += 1
                    owner.on_message(message, self.peer)
                if not framer.buffered:
                    self.partial_since = None
                elif messages or self.partial_since is None:  # a new message began here
                    self.partial_since = now
        except SipParseError as exc:
            owner.stats["framing_errors"] += 1
            log.info("closing %s: %s", self.peer, exc)
            if exc.status == 513:
                owner.notice(NoticeKind.OVERSIZED_MESSAGE, self.peer, f"stream closed: {exc}")
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            owner.forget(self)
            self.writer.close()

    def write(self, data: bytes) -> None:
        """Write, or cut off a peer that lets more than ``write_high_water`` bytes pile up."""
        self.writer.write(data)
        self.last_active = time.monotonic()
        waiting = self.writer.transport.get_write_buffer_size()
        if waiting > self.owner.limits.write_high_water:
            self.owner.notice(
                NoticeKind.CONNECTION_CAP,
                self.peer,
                f"{waiting} bytes unread by the peer (limit {self.owner.limits.write_high_water})"
                ": closed",
            )
            self.abort()

    def abort(self) -> None:
        self.owner.forget(self)
        self.task.cancel()
        self.writer.transport.abort()

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
        limits: SipLimits | None = None,
        on_notice: OnNotice | None = None,
        in_use: Callable[[], Collection[Peer]] = frozenset,
        trusted: Callable[[str], bool] = lambda host: False,
    ) -> None:
        self.on_message = on_message
        self.ssl_context = ssl_context  # for our TLS listener
        self.client_context = client_context or ssl.create_default_context()
        self.limits = limits or SipLimits()
        self._on_notice = on_notice
        self._in_use = in_use
        self._trusted = trusted
        self.udp: asyncio.DatagramTransport | None = None
        self.servers: list[asyncio.Server] = []
        self.streams: dict[Peer, _Stream] = {}  # ready to send on, by remote address
        self.connections: set[_Stream] = set()  # every open one, handshaking included
        self._per_source: dict[str, int] = {}  # accepted connections by remote host
        self._accepted = 0  # accepted connections open
        self.ports: dict[str, int] = {}
        self.stats: dict[str, int] = {
            "udp_errors": 0,
            "framing_errors": 0,
            "send_errors": 0,
            "refused_connections": 0,
            "evicted_connections": 0,
            "timed_out": 0,
            "flow_fallbacks": 0,
        }
        self._connecting: dict[Peer, asyncio.Task[_Stream]] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Handle | None = None

    def notice(self, kind: NoticeKind, peer: Peer, detail: str) -> None:
        if self._on_notice is not None:
            self._on_notice(kind, peer, detail)

    async def listen(self, transport: str, host: str, port: int) -> int:
        """Bind ``transport`` on ``host:port`` (0 picks a free port); returns the port."""
        loop = asyncio.get_running_loop()
        if transport == "udp":
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            bound_datagrams(udp, MAX_DATAGRAM)
            self.udp = udp
            bound = int(udp.get_extra_info("sockname")[1])
        else:
            tls = self.ssl_context if transport == "tls" else None
            if transport == "tls" and tls is None:
                raise SipTransportError("TLS needs a certificate and key")

            server = await loop.create_server(lambda: _Accept(self, transport, tls), host, port)
            self.servers.append(server)
            bound = int(server.sockets[0].getsockname()[1])
            self._sweep_soon()
        self.ports[transport] = bound
        return bound

    def accept(self, peer: Peer, raw: asyncio.Transport, tls: ssl.SSLContext | None) -> None:
        """A new connection, nothing read from it yet: reset over a cap; else a stream, after
        a TLS handshake that must finish within the deadline."""
        counted = not self._trusted(peer.host)
        if counted:
            why = self._over_cap(peer)
            if why is not None:
                self.stats["refused_connections"] += 1
                self.notice(NoticeKind.CONNECTION_CAP, peer, f"connection refused: {why}")
                raw.abort()
                return
            self._per_source[peer.host] = self._per_source.get(peer.host, 0) + 1
            self._accepted += 1
        if tls is None:
            self._open(peer, raw, counted=counted)
        else:
            handshake = self._handshake(peer, raw, tls, counted)
            task = asyncio.get_running_loop().create_task(handshake)
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _over_cap(self, peer: Peer) -> str | None:
        """Why a stranger's new connection is refused; None: it is taken (at the total cap,
        in the place of the connection idle longest that no call uses)."""
        limits = self.limits
        from_host = self._per_source.get(peer.host, 0)
        if from_host >= limits.max_connections_per_source:
            return f"{from_host} connections from this source (max_connections_per_source)"
        if self._accepted < limits.max_connections:
            return None
        in_use = self._in_use()
        idle = [
            s
            for s in self.connections
            if s.counted and s.partial_since is None and s.peer not in in_use
        ]
        if not idle:
            return f"{self._accepted} connections open (max_connections)"
        oldest = min(idle, key=lambda s: s.last_active)
        self.stats["evicted_connections"] += 1
        self.notice(
            NoticeKind.CONNECTION_CAP,
            oldest.peer,
            "closed: idle longest when max_connections were open, for a new connection",
        )
        oldest.abort()
        return None

    async def _handshake(
        self, peer: Peer, raw: asyncio.Transport, tls: ssl.SSLContext, counted: bool
    ) -> None:
        reader = asyncio.StreamReader(limit=2**16)
        protocol = asyncio.StreamReaderProtocol(reader)
        deadline = self.limits.message_deadline_s
        try:
            wrapped = await asyncio.get_running_loop().start_tls(
                raw, protocol, tls, server_side=True, ssl_handshake_timeout=deadline
            )
        except (ConnectionError, OSError, ssl.SSLError, TimeoutError) as exc:
            if counted:
                self._release(peer.host)
            raw.abort()
            if isinstance(exc, ConnectionAbortedError | TimeoutError):
                self.stats["timed_out"] += 1
                self.notice(
                    NoticeKind.REFUSED_REQUEST, peer, f"no TLS handshake within {deadline:g} s"
                )
            return
        if wrapped is None:
            if counted:
                self._release(peer.host)
            return
        self._open(peer, wrapped, reader, protocol, counted=counted)

    def _open(
        self,
        peer: Peer,
        transport: asyncio.Transport,
        reader: asyncio.StreamReader | None = None,
        protocol: asyncio.StreamReaderProtocol | None = None,
        *,
        counted: bool,
    ) -> None:
        if reader is None or protocol is None:
            reader = asyncio.StreamReader(limit=2**16)
            protocol = asyncio.StreamReaderProtocol(reader)
            transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport.resume_reading()
        writer = asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())
        stream = _Stream(self, peer, reader, writer, inbound=True, counted=counted)
        self.connections.add(stream)
        self.streams[peer] = stream

    def send(
        self,
        data: bytes,
        peer: Peer,
        on_error: Callable[[], None],
        fallback: Peer | None = None,
    ) -> None:
        """Send now (UDP, open stream) or once a connection to ``peer`` is made. Over TCP/TLS
        ``peer`` may name a flow (a connection the other side opened): when it is gone and
        ``fallback`` is given, the message goes on a connection to ``fallback`` instead."""
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
            stream.write(data)
            return
        if fallback is not None and fallback != peer:
            self.stats["flow_fallbacks"] += 1
            self.send(data, fallback, on_error)
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
            stream.write(data)
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
        stream = _Stream(self, peer, r, w, inbound=False)
        self.connections.add(stream)
        self.streams[peer] = stream
        self._sweep_soon()
        return stream

    def forget(self, stream: _Stream) -> None:
        if stream in self.connections:
            self.connections.discard(stream)
            if stream.counted:
                self._release(stream.peer.host)
        if self.streams.get(stream.peer) is stream:
            del self.streams[stream.peer]

    def _release(self, host: str) -> None:
        """An accepted connection from ``host`` is gone."""
        self._accepted -= 1
        left = self._per_source.get(host, 1) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    # -- deadlines --------------------------------------------------------------------------

    def _sweep_soon(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        """Close the connections past a deadline (see the module docstring), at most
        :data:`SWEEP_BATCH` per pass: a mass expiry (a connection flood meeting its deadline)
        is spread over several turns of the loop, so no call's audio waits for all of it.
        Re-armed while any stream listener or connection exists."""
        self._sweeper = None
        now = time.monotonic()
        limits = self.limits
        in_use: Collection[Peer] | None = None
        done = 0
        for stream in list(self.connections):
            if done >= SWEEP_BATCH:
                self._sweeper = asyncio.get_running_loop().call_soon(self._sweep)
                return
            why = None
            if stream.partial_since is not None:
                if now - stream.partial_since > limits.message_deadline_s:
                    why = f"message unfinished after {limits.message_deadline_s:g} s"
            elif stream.inbound and stream.messages == 0:
                if now - stream.opened_at > limits.message_deadline_s:
                    why = f"no message within {limits.message_deadline_s:g} s"
            elif stream.inbound and now - stream.last_active > limits.idle_timeout_s:
                if in_use is None:
                    in_use = self._in_use()
                if stream.peer not in in_use:
                    log.info("closing %s: idle for %g s", stream.peer, limits.idle_timeout_s)
                    stream.close()
                    self.forget(stream)
                    done += 1
                    continue
            if why is not None:
                self.stats["timed_out"] += 1
                self.notice(NoticeKind.REFUSED_REQUEST, stream.peer, f"{why}: closed")
                stream.abort()
                done += 1
        if self.servers or self.connections:
            self._sweep_soon()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in [*self._connecting.values(), *self._handshakes]:
            task.cancel()
        for stream in list(self.connections):
            stream.close()
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self.udp is not None:
            self.udp.close()
        self.streams.clear()
        self.connections.clear()
        self._per_source.clear()
        self._accepted = 0
