"""RFC 3263 §4.3 for a trunk's REGISTER and OPTIONS (sip.driver.trunk_targets), paired with
scripted servers on virtual time: a 503 or no answer moves an OPTIONS to the next target as a
new transaction; a failed REGISTER is followed at once by a new one (new CSeq, the digest
answered afresh) to the next target; a target that failed goes last for a while, then back
in its place; a name that stops resolving keeps the targets resolved before.
(tests/sip/test_dns.py does it against a real DNS server and SIPp.)"""

from __future__ import annotations

import pytest

from sip.dialog import make_response
from sip.driver.registration_runner import register_once
from sip.driver.trunk_targets import DNS_RETRY_S, FAILBACK_S, TrunkTargets, rebranched
from sip.errors import SipError
from sip.headers import Headers
from sip.keepalive import options_request
from sip.message import Request, Response
from sip.registration import Registration, RegistrationConfig, RegistrationError
from sip.transaction import Peer
from sip.uri import SipUri

A, B, C = (Peer("udp", "127.0.0.1", port) for port in (5070, 5072, 5074))

#: a scripted answer: a status, "401" with a challenge naming the server, or None (no answer);
#: an OSError is raised (a transport error)
Answer = int | None | OSError


def _options() -> Request:
    via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfirst;rport"
    return options_request(SipUri(host="trunk.test"), via, "<sip:rt@127.0.0.1>", "t", "127.0.0.1")


class Servers:
    """Each peer's scripted answers, what each received, the DNS answer, a virtual clock."""

    def __init__(self, answers: dict[Peer, list[Answer]]) -> None:
        self.answers = answers
        self.received: list[tuple[Peer, Request]] = []
        self.dns: list[Peer] | Exception = [A, B, C]
        self.queries = 0
        self.now = 0.0

    def targets(self) -> TrunkTargets:
        return TrunkTargets("carrier", self.resolve, self.send, lambda: self.now)

    async def resolve(self) -> list[Peer]:
        self.queries += 1
        if isinstance(self.dns, Exception):
            raise self.dns
        return list(self.dns)

    async def send(self, request: Request, peer: Peer) -> Response | None:
        self.received.append((peer, request))
        answer = self.answers[peer].pop(0)
        if isinstance(answer, OSError):
            raise answer
        if answer is None:
            return None
        extra = Headers()
        if answer == 401:
            realm = f'Digest realm="trunk.test", nonce="n{peer.port}", algorithm=MD5, qop="auth"'
            extra.add("WWW-Authenticate", realm)
        if answer == 200 and request.method == "REGISTER":
            extra.add("Contact", f"{request.headers.get('Contact')};expires=600")
        return make_response(request, answer, extra=extra)

    def peers(self) -> list[Peer]:
        return [p for p, _ in self.received]


async def test_a_503_a_silence_and_a_transport_error_move_an_options_on() -> None:
    servers = Servers({A: [503], B: [None], C: [OSError("unreachable"), 200]})
    servers.dns = [A, B, C, Peer("udp", "127.0.0.1", 5076)]
    servers.answers[servers.dns[3]] = [200]
    request = _options()
    response = await servers.targets().send(request)
    assert response is not None and response.status == 200
    assert servers.peers() == [A, B, C, servers.dns[3]]
    sent = [r for _, r in servers.received]
    assert sent[0] is request  # the first try is the request as it was built
    assert len({r.top_via.branch for r in sent}) == 4  # each try its own transaction
    for r in sent[1:]:  # ... of the same request: everything but the branch is unchanged
        assert [h for h in r.headers if h[0] != "Via"] == [
            h for h in request.headers if h[0] != "Via"
        ]


async def test_a_failed_target_goes_last_for_a_while_then_back_in_its_place() -> None:
    servers = Servers({A: [None, 200], B: [200, 200], C: []})
    targets = servers.targets()
    await targets.send(_options())  # A silent, B answers
    assert await targets.targets() == [B, C, A]  # what an INVITE tries, in order
    servers.now = FAILBACK_S - 1
    await targets.send(_options())
    assert servers.peers() == [A, B, B]
    servers.now = FAILBACK_S + 1  # the primary is given its place back
    assert await targets.targets() == [A, B, C]
    await targets.send(_options())
    assert servers.peers()[-1] == A


async def test_when_every_target_fails_the_last_answer_is_returned() -> None:
    servers = Servers({A: [503], B: [None], C: [503]})
    targets = servers.targets()
    response = await targets.send(_options())
    assert response is not None and response.status == 503  # the caller's retry rules apply


async def test_a_name_that_stops_resolving_keeps_its_targets_and_is_asked_again_later() -> None:
    servers = Servers({A: [200, 200, 200], B: [], C: []})
    targets = servers.targets()
    await targets.send(_options())
    servers.dns = OSError("no such name")
    await targets.send(_options())
    await targets.send(_options())  # within DNS_RETRY_S: the name is not asked again
    assert servers.queries == 2 and servers.peers() == [A, A, A]
    servers.now = DNS_RETRY_S
    servers.dns = [B]  # A left the DNS: its marks go with it
    servers.answers[B] = [200]
    await targets.send(_options())
    assert servers.queries == 3 and servers.peers()[-1] == B
    never = TrunkTargets("other", servers.resolve, servers.send, lambda: 0.0)
    servers.dns = OSError("no such name")
    with pytest.raises(SipError, match=r"other.*no such name"):
        await never.send(_options())


def _registration() -> Registration:
    return Registration(
        RegistrationConfig(
            registrar=SipUri(host="trunk.test"),
            aor=SipUri(host="trunk.test", user="alice"),
            contact=SipUri(host="127.0.0.1", user="alice", port=5062),
            username="alice",
            password="reg-secret-1",
            via_host="127.0.0.1",
            via_port=5062,
            transport="UDP",
            expires=600,
            user_agent="t",
        )
    )


async def test_a_register_that_fails_goes_to_the_next_server_as_a_new_request() -> None:
    """The first server challenges, then falls silent on the answer: the next server gets a
    new REGISTER (CSeq up, a new branch), its own challenge is answered, and it registers.
    (Sending the same REGISTER there would carry a digest answer for the first server's nonce
    and a CSeq already used, and a second challenge would read as wrong credentials.)"""
    servers = Servers({A: [401, None], B: [401, 200], C: []})
    targets = servers.targets()
    reg = _registration()
    registered = await register_once(
        reg, targets.send_once, clock=lambda: servers.now, failover=targets.another
    )
    assert registered.expires == 600
    assert servers.peers() == [A, A, B, B]
    sent = [r for _, r in servers.received]
    assert [r.cseq.seq for r in sent] == [sent[0].cseq.seq + i for i in range(4)]
    assert len({r.top_via.branch for r in sent}) == 4
    assert len({r.call_id for r in sent}) == 1
    to_b = [r.headers.get("Authorization") or "" for r in sent[2:]]
    assert 'nonce="n5070"' in to_b[0]  # sent with what it had (pre-emptive), challenged again
    assert 'nonce="n5072"' in to_b[1]  # then answered with the second server's own nonce
    # the binding's refresh goes where it is
    assert await targets.targets() == [B, C, A]


async def test_a_register_every_server_refuses_fails_once_then_starts_from_the_best() -> None:
    servers = Servers({A: [None, 200], B: [503], C: [None]})
    targets = servers.targets()
    reg = _registration()
    with pytest.raises(RegistrationError) as info:
        await register_once(
            reg, targets.send_once, clock=lambda: servers.now, failover=targets.another
        )
    assert info.value.retryable and servers.peers() == [A, B, C]
    servers.now = FAILBACK_S + 1  # the machine's retry, after its back-off: from the top
    response = await targets.send_once(_options())
    assert response is not None and response.status == 200 and servers.peers()[-1] == A


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


async def test_a_trunk_name_that_never_resolved_backs_the_registration_off() -> None:
    servers = Servers({A: [], B: [], C: []})
    servers.dns = OSError("no such name")
    targets = servers.targets()
    reg = _registration()
    with pytest.raises(RegistrationError, match="no such name") as info:
        await register_once(
            reg, targets.send_once, clock=lambda: servers.now, failover=targets.another
        )
    assert info.value.retryable  # the machine retries after its back-off; nothing was sent
    assert not servers.received and reg.next_deadline() is not None
