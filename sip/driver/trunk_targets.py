"""Where a trunk's requests go when it has several servers: RFC 3263 §4.3 failover for REGISTER
and OPTIONS, and the order an INVITE tries them in.

Why this module exists: a trunk published in DNS (NAPTR/SRV, ``srv = true``) names several
servers, in an order. An INVITE already fails over along them (``sip.call``, one target after
another); this is the same for the trunk's out-of-dialog requests, which before went to the
first target only, so a registration stayed down while the primary was, with the backup up.

:class:`TrunkTargets` keeps one trunk's targets and which of them failed lately:

* the targets are resolved again for each request (the resolver keeps answers for their DNS
  TTL); when resolution fails, the targets resolved before are used, and the name is asked
  again only after ``DNS_RETRY_S`` (each try would otherwise wait out the DNS timeout);
* a target that did not answer (transaction timeout, transport error) or answered 503 is
  *failed* for ``FAILBACK_S``: it is tried after the others meanwhile, then in its RFC 3263
  place again (a recovered primary gets its traffic back; a registration moves back at its
  next refresh); an INVITE through the trunk tries the targets in this order, so it does not
  wait out a dead primary's timer B while the keepalive, the registration or an earlier
  INVITE (:meth:`TrunkTargets.reached`) found it dead;
* :meth:`TrunkTargets.send` (OPTIONS) tries the targets in turn, each as a new client
  transaction of the same request (a new Via branch), until one answers;
* :meth:`TrunkTargets.send_once` (REGISTER) sends to one target: a REGISTER that fails is not
  sent again as it is (RFC 3261 §10.2 wants a new CSeq for each REGISTER of a Call-ID, and its
  digest answer was computed for the server that challenged), the registration machine sends
  a new one at once when :meth:`TrunkTargets.another` says a target of this round is left
  (``sip.driver.registration_runner``), else after its back-off.
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

__all__ = ["DNS_RETRY_S", "FAILBACK_S", "TrunkTargets", "answered", "rebranched"]

log = logging.getLogger("rtbridge.sip")

#: how long a target that failed is tried after the others, in seconds
FAILBACK_S = 300.0
#: how long after a failed resolution the targets known before are used without asking again
DNS_RETRY_S = 30.0
#: the answer that sends a request to the next target, like no answer (RFC 3263 §4.3)
FAILOVER_STATUS = 503


def rebranched(request: Request) -> Request:
    """``request`` again as a new client transaction: the top Via's branch is new."""
    headers = request.headers.copy()
    vias = headers.get_all("Via")
    top = Via.parse(vias[0])
    params = (("branch", new_branch()), *((k, v) for k, v in top.params if k.lower() != "branch"))
    headers.replace_all("Via", [str(replace(top, params=params)), *vias[1:]])
    return Request(method=request.method, uri=request.uri, headers=headers, body=request.body)


def answered(response: Response | None) -> bool:
    """Whether a target took the request (anything but no answer or a 503)."""
    return response is not None and response.status != FAILOVER_STATUS


class TrunkTargets:
    """One trunk's servers and which failed lately (see the module docstring).

    ``resolve()`` returns the trunk's targets in RFC 3263 order (raises SipError or OSError when
    the name does not resolve); ``send(request, peer)`` runs one client transaction and returns
    its final response, None on timeout or transport error.
    """

    def __init__(
        self,
        name: str,
        resolve: Callable[[], Awaitable[list[Peer]]],
        send: Callable[[Request, Peer], Awaitable[Response | None]],
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self._resolve = resolve
        self._send = send
        self._clock = clock
        self._known: list[Peer] = []
        self._resolve_failed_at: float | None = None
        #: targets that failed, and when (tried after the others for FAILBACK_S)
        self.failed: dict[Peer, float] = {}
        #: the targets a REGISTER went to in vain since one last answered
        self._round: set[Peer] = set()

    def order(self, peers: list[Peer]) -> list[Peer]:
        """``peers`` (RFC 3263 order) as they should be tried: those that failed within
        ``FAILBACK_S`` after the others."""
        now = self._clock()
        lately = {p for p, at in self.failed.items() if now - at < FAILBACK_S}
        return [p for p in peers if p not in lately] + [p for p in peers if p in lately]

    async def targets(self) -> list[Peer]:
        """The trunk's targets now, in the order to try them (those resolved before while its
        name does not resolve); SipError if it never did."""
        now = self._clock()
        failed_at = self._resolve_failed_at
        if not self._known or failed_at is None or now - failed_at >= DNS_RETRY_S:
            try:
                self._known = await self._resolve()
                self._resolve_failed_at = None
            except (OSError, SipError) as exc:
                if not self._known:
                    raise SipError(f"trunk {self.name!r}: {exc}") from None
                self._resolve_failed_at = now
                log.warning("trunk %s: %s; using the targets resolved before", self.name, exc)
            named = set(self._known)
            self.failed = {p: at for p, at in self.failed.items() if p in named}
            self._round &= named
        return self.order(self._known)

    async def send(self, request: Request) -> Response | None:
        """``request`` to the trunk's targets in turn until one answers (OPTIONS); that answer,
        else the last 503 or None. SipError: the name never resolved."""
        last: Response | None = None
        for i, peer in enumerate(await self.targets()):
            last = await self._try(request if i == 0 else rebranched(request), peer)
            if answered(last):
                break
        return last

    async def send_once(self, request: Request) -> Response | None:
        """``request`` (a REGISTER) to the first target not yet tried in vain this round; its
        answer or None. SipError: the name never resolved."""
        peers = await self.targets()
        fresh = [p for p in peers if p not in self._round]
        peer = (fresh or peers)[0]
        response = await self._try(request, peer)
        if answered(response):
            self._round.clear()
        else:
            self._round.add(peer)
        return response

    def reached(self, peer: Peer, tried: list[Peer]) -> None:
        """An INVITE through the trunk, sent to ``tried`` in turn, was answered by ``peer``:
        the targets before it failed (an INVITE moves on only after a timeout, a transport
        error or a 503), and ``peer`` is up."""
        now = self._clock()
        for p in tried:
            if p == peer:
                break
            self.failed[p] = now
        self.failed.pop(peer, None)

    def another(self) -> bool:
        """After :meth:`send_once` failed: whether a target of this round is left (False when
        every one failed: the round starts again from the best, after the caller's back-off)."""
        if any(p not in self._round for p in self._known):
            return True
        self._round.clear()
        return False

    async def _try(self, request: Request, peer: Peer) -> Response | None:
        try:
            response = await self._send(request, peer)
        except OSError:
            response = None
        if answered(response):
            self.failed.pop(peer, None)
            return response
        self.failed[peer] = self._clock()
        log.info(
            "trunk %s: %s to %s:%d %s",
            self.name,
            request.method,
            peer.host,
            peer.port,
            "refused (503)" if response is not None else "not answered",
        )
        return response
