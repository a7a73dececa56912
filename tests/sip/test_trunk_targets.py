"""RFC 3263 §4.3 for a trunk's REGISTER and OPTIONS (sip.driver.trunk_targets), paired with
scripted servers: a 503 or no answer moves the request to the next target as a new
transaction; the target that answered is tried first from then on; a name that stops
resolving keeps the targets resolved before. (tests/sip/test_dns.py does it against a real
DNS server and SIPp.)"""

from __future__ import annotations

import pytest

from sip.dialog import make_response
from sip.driver.trunk_targets import TrunkTargets, rebranched
from sip.errors import SipError
from sip.keepalive import options_request
from sip.message import Request, Response
from sip.transaction import Peer
from sip.uri import SipUri

A, B, C = (Peer("udp", "127.0.0.1", port) for port in (5070, 5072, 5074))


def _options() -> Request:
    via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfirst;rport"
    return options_request(SipUri(host="trunk.test"), via, "<sip:rt@127.0.0.1>", "t", "127.0.0.1")


class Servers:
    """Each peer's scripted answers (a status, or None: no answer), and what each received."""

    def __init__(self, answers: dict[Peer, list[int | None]]) -> None:
        self.answers = answers
        self.received: list[tuple[Peer, Request]] = []
        self.dns: list[Peer] | Exception = [A, B, C]

    async def resolve(self) -> list[Peer]:
        if isinstance(self.dns, Exception):
            raise self.dns
        return list(self.dns)

    async def send(self, request: Request, peer: Peer) -> Response | None:
        self.received.append((peer, request))
        status = self.answers[peer].pop(0)
        return None if status is None else make_response(request, status)


async def test_a_503_and_a_silence_move_the_request_on_as_new_transactions() -> None:
    servers = Servers({A: [503], B: [None], C: [200]})
    targets = TrunkTargets("carrier", servers.resolve, servers.send)
    request = _options()
    response = await targets.send(request)
    assert response is not None and response.status == 200
    assert [p for p, _ in servers.received] == [A, B, C]
    sent = [r for _, r in servers.received]
    assert sent[0] is request  # the first try is the request as it was built
    branches = {r.top_via.branch for r in sent}
    assert len(branches) == 3  # each try its own transaction
    # ... of the same request: Call-ID, CSeq, From tag, everything else unchanged
    for r in sent[1:]:
        assert r.call_id == request.call_id and str(r.cseq) == str(request.cseq)
        assert [h for h in r.headers if h[0] != "Via"] == [
            h for h in request.headers if h[0] != "Via"
        ]


async def test_the_target_that_answered_is_tried_first_and_the_failed_ones_last() -> None:
    servers = Servers({A: [None, 200], B: [200, 503], C: [200]})
    targets = TrunkTargets("carrier", servers.resolve, servers.send)
    await targets.send(_options())  # A silent, B answers
    assert await targets.targets() == [B, C, A]  # what an INVITE tries, in order
    await targets.send(_options())  # B first now: it refuses; C next (A failed last time)
    assert [p for p, _ in servers.received] == [A, B, B, C]
    assert await targets.targets() == [C, A, B]


async def test_when_every_target_fails_the_last_answer_is_returned() -> None:
    servers = Servers({A: [503], B: [None], C: [503]})
    targets = TrunkTargets("carrier", servers.resolve, servers.send)
    response = await targets.send(_options())
    assert response is not None and response.status == 503  # the caller's retry rules apply
    servers.answers = {A: [None], B: [None], C: [None]}
    assert await targets.send(_options()) is None


async def test_a_name_that_stops_resolving_keeps_the_targets_resolved_before() -> None:
    servers = Servers({A: [200, 200], B: [], C: []})
    targets = TrunkTargets("carrier", servers.resolve, servers.send)
    await targets.send(_options())
    servers.dns = OSError("no such name")
    response = await targets.send(_options())
    assert response is not None and response.status == 200
    never = TrunkTargets("other", servers.resolve, servers.send)
    with pytest.raises(SipError, match=r"other.*no such name"):
        await never.send(_options())


def test_rebranched_changes_only_the_top_via_branch() -> None:
    request = _options()
    request.headers.add("Via", "SIP/2.0/UDP proxy.test;branch=z9hG4bKproxy")
    again = rebranched(request)
    top, old = again.top_via, request.top_via
    assert top.branch != old.branch and top.branch is not None and top.branch.startswith("z9hG4bK")
    assert (top.transport, top.host, top.port) == (old.transport, old.host, old.port)
    assert top.param("rport") == ""
    assert again.headers.get_all("Via")[1:] == request.headers.get_all("Via")[1:]
    assert bytes(request).count(b"z9hG4bKfirst") == 1  # the original is untouched
