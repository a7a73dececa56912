"""Where a trunk's requests go when it has several servers: RFC 3263 §4.3 failover for REGISTER
and OPTIONS, and the order an INVITE tries them in.

Why this module exists: a trunk published in DNS (NAPTR/SRV, ``srv = true``) names several
servers, in an order. An INVITE already fails over along them (``sip.call``, one target after
another); this is the same for the trunk's out-of-dialog requests, which before went to the
first target only, so a registration stayed down while the primary was, with the backup up.

:class:`TrunkTargets` sends one request (REGISTER, OPTIONS) to the trunk's targets in turn:

* the targets are resolved again for every request (the resolver keeps answers for their DNS
  TTL); if resolution fails, the last targets resolved are used (a stale list beats none);
* the first target tried is the one that last answered (a refresh goes where the binding is),
  then the others in RFC 3263 order, those that failed last time at the end;
* a transaction timeout or transport error (no response), or a 503, moves on to the next
  target as a new client transaction: the same request with a new Via branch (RFC 3263 §4.3);
  every other response (2xx, a 401 challenge, a 403) is the answer;
* when every target fails, the last response (a 503) or None is returned: the caller's own
  retry rules apply (the REGISTER machine's back-off, the keepalive's down state).

:meth:`TrunkTargets.order` is what an INVITE through the trunk uses: the targets that answered
the last REGISTER or OPTIONS first, so a call does not wait out a dead primary's timer B
before it tries the server that is up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from sip.dialog import new_branch
from sip.errors import SipError
from sip.headers import Via
from sip.message import Request, Response
from sip.transaction import Peer

__all__ = ["TrunkTargets", "rebranched"]

log = logging.getLogger("rtbridge.sip")

#: what a failed target gets back from the next one (RFC 3263 §4.3): no response or a 503
FAILOVER_STATUS = 503


def rebranched(request: Request) -> Request:
    """``request`` again as a new client transaction: the top Via's branch is new."""
    headers = request.headers.copy()
    vias = headers.get_all("Via")
    top = Via.parse(vias[0])
    params = (("branch", new_branch()), *((k, v) for k, v in top.params if k.lower() != "branch"))
    headers.replace_all("Via", [str(replace(top, params=params)), *vias[1:]])
    return Request(method=request.method, uri=request.uri, headers=headers, body=request.body)


class TrunkTargets:
    """One trunk's servers: which answered last, which failed (see the module docstring).

    ``resolve()`` returns the trunk's targets in RFC 3263 order (raises SipError or OSError when
    the name does not resolve); ``send(request, peer)`` runs one client transaction and returns
    its final response, None on timeout or transport error.
    """

    def __init__(
        self,
        name: str,
        resolve: Callable[[], Awaitable[list[Peer]]],
        send: Callable[[Request, Peer], Awaitable[Response | None]],
    ) -> None:
        self.name = name
        self._resolve = resolve
        self._send = send
        self._known: list[Peer] = []
        #: the target that answered last (None: none has yet)
        self.answering: Peer | None = None
        #: targets whose last request went unanswered or got 503
        self.failed: set[Peer] = set()

    def order(self, peers: list[Peer]) -> list[Peer]:
        """``peers`` (RFC 3263 order) as they should be tried: the one that answered last
        first, the ones that failed last time at the end."""
        first = [p for p in peers if p == self.answering]
        rest = [p for p in peers if p != self.answering]
        return (
            first
            + [p for p in rest if p not in self.failed]
            + [p for p in rest if p in self.failed]
        )

    async def targets(self) -> list[Peer]:
        """The trunk's targets now, in the order to try them (the last ones known if the name
        does not resolve at the moment; SipError if it never did)."""
        try:
            self._known = await self._resolve()
        except (OSError, SipError) as exc:
            if not self._known:
                raise SipError(f"trunk {self.name!r}: {exc}") from None
            log.warning("trunk %s: %s; using the targets resolved before", self.name, exc)
        return self.order(self._known)

    async def send(self, request: Request) -> Response | None:
        """``request`` to the trunk, failing over along its targets; the first answer, else the
        last 503 or None (every target failed). SipError: the name never resolved."""
        last: Response | None = None
        for i, peer in enumerate(await self.targets()):
            try:
                response = await self._send(request if i == 0 else rebranched(request), peer)
            except OSError:
                response = None
            if response is not None and response.status != FAILOVER_STATUS:
                self.answering = peer
                self.failed.discard(peer)
                return response
            self.failed.add(peer)
            if peer == self.answering:
                self.answering = None
            last = response
            log.info(
                "trunk %s: %s to %s:%d %s",
                self.name,
                request.method,
                peer.host,
                peer.port,
                "refused (503)" if response is not None else "not answered",
            )
        return last
