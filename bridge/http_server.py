"""The HTTP port's connection guard: what a stranger on the Internet may hold open.

uvicorn serves the control plane, the browser endpoints and the dashboard with h11, whose
parser holds at most one request head (16 KiB) and stops reading while a request is answered,
so neither pipelined requests nor an endless header section grow memory. (uvicorn's default,
httptools, queued every pipelined request: one connection that sent requests without reading
the answers took a server to 6 GB.) :func:`guarded_protocol` adds what uvicorn does not have:

* **a request-head deadline** (``head_timeout_s``): a connection must deliver each request's
  head within it, from when it opens or its previous response ended, or it is closed. A
  silent connection, a head trickled a byte at a time, a WebSocket upgrade trickled likewise
  (slowloris) no longer hold a file descriptor for ever; past the head, body limits and the
  routes' own deadlines apply, and an upgraded WebSocket is the application's;
* **connection caps**: at most ``max_connections`` open at once, and at most
  ``max_per_source`` from one address (``exempt`` addresses, 127.0.0.1 and ::1 where a local
  reverse proxy and the supervisor's own requests come from, and the ``trusted_proxies``
  setting's, are under the total cap only). A connection over a cap
  is answered at once, ``503`` (total) or ``429`` (its address), in OpenAI's error shape, with
  ``Retry-After``, and closed. File descriptors stay for calls: before, idle connections used
  them up and phone calls failed to bind their RTP ports.

Counted per server: every socket one uvicorn server listens on shares the counts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from bridge.http_errors import error_body

__all__ = ["LOCAL", "ConnectionLimits", "guarded_protocol"]

#: the largest request head h11 takes (its default); a longer one is answered 400
MAX_HEAD_BYTES = 16 * 1024
RETRY_AFTER_S = 5
#: under the total cap only: where a local reverse proxy and the supervisor connect from
LOCAL = frozenset({"127.0.0.1", "::1"})


@dataclass(slots=True)
class ConnectionLimits:
    head_timeout_s: float = 10.0
    max_connections: int = 1000
    max_per_source: int = 64
    #: addresses under the total cap only (reverse proxies, cluster nodes)
    exempt: frozenset[str] = LOCAL
    #: counters, shared by every connection of one server
    open_total: int = 0
    per_source: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    timed_out: int = 0


def _refusal(status: int, reason: bytes, message: str, code: str) -> bytes:
    body = orjson.dumps(error_body(message, type_="server_error", code=code))
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"retry-after: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body), RETRY_AFTER_S)
    ) + body


_TOO_MANY = _refusal(
    503, b"Service Unavailable", "too many open connections", "too_many_connections"
)
_PER_SOURCE = _refusal(
    429, b"Too Many Requests", "too many open connections from your address", "too_many_connections"
)


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the head deadline and the caps of ``limits`` (pass it as
    ``uvicorn.Config(http=...)``)."""

    class GuardedH11Protocol(H11Protocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self._source: str | None = None  # counted under per_source
            self._counted = False
            self._head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if limits.open_total >= limits.max_connections:
                self._refuse(transport, _TOO_MANY)
                return
            if host not in limits.exempt:
                if limits.per_source[host] >= limits.max_per_source:
                    self._refuse(transport, _PER_SOURCE)
                    return
                limits.per_source[host] += 1
                self._source = host
            limits.open_total += 1
            self._counted = True
            super().connection_made(transport)
            self._await_head()

        def _refuse(self, transport: asyncio.Transport, answer: bytes) -> None:
            limits.refused += 1
            transport.write(answer)
            transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            if not self._counted:
                return  # refused: uvicorn never knew it
            self._release()
            super().connection_lost(exc)

        def _release(self) -> None:
            if not self._counted:
                return
            self._counted = False
            limits.open_total -= 1
            if self._source is not None:
                limits.per_source[self._source] -= 1
                if limits.per_source[self._source] <= 0:
                    del limits.per_source[self._source]

        def data_received(self, data: bytes) -> None:
            if not self._counted:
                return
            super().data_received(data)
            if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
                self._stop_head_timer()  # the head is in

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._stop_head_timer()
            super().handle_websocket_upgrade(event)
            ws = self.transport.get_protocol()
            if ws is not self:  # the socket is the WebSocket protocol's now: so is its end
                ended = ws.connection_lost

                def connection_lost(exc: Exception | None) -> None:
                    self._release()
                    ended(exc)

                ws.connection_lost = connection_lost  # type: ignore[method-assign]

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._await_head()  # the next request's head

        def _await_head(self) -> None:
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_late)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            limits.timed_out += 1
            self.transport.close()  # nothing of a request to answer: just close

    return GuardedH11Protocol
