"""Tier 1: the SIP core's defences for a port on the open Internet (issue 12), on virtual time.

Bounds checked before parsing, strangers answered statelessly and unparsed, per-source rates
with a temporary block, the digest lockout, call caps, every digest trunk tried, a replay
window as long as a nonce lives, Timer H ending an unacknowledged call, a linear framer.
"""

from __future__ import annotations

import pytest

import sip.ua
from sip import sanity
from sip.auth import DigestClient, DigestVerifier, VerifyOutcome, choose_challenge
from sip.events import CallEnded, CallOffered, CallRefused, EndReason, NoticeKind, SecurityNotice
from sip.message import Request, Response, StreamFramer
from sip.policy import TrunkPolicy
from sip.settings import SipLimits, TrunkSettings
from sip.transaction import Peer, Send
from sip.ua import CoreConfig, SipCore
from tests.sip.pair import SDP_A, SDP_B, Pair

LOOP = Peer("udp", "127.0.0.1", 5090)
STRANGER = Peer("udp", "192.0.2.7", 5090)
CARRIER = TrunkSettings(name="carrier", host="198.51.100.1", inbound_allow=["198.51.100.0/24"])
ENV = {"PBX_PW": "s3cret", "OFFICE_PW": "0ff1ce"}
PBX = TrunkSettings(
    name="pbx",
    host="pbx.example",
    username="alice",
    password_env="PBX_PW",
    inbound_digest=True,
    realm="pbx",
)
OFFICE = TrunkSettings(
    name="office",
    host="office.example",
    username="bob",
    password_env="OFFICE_PW",
    inbound_digest=True,
    realm="office",
)


def _request(
    method: str = "INVITE",
    n: int = 1,
    *,
    via: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    via = via or f"SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK{method.lower()}{n};rport"
    head = (
        f"{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: {via}\r\n"
        f"From: <sip:x@127.0.0.1>;tag=abc{n}\r\nTo: <sip:bot@127.0.0.1>\r\n"
        f"Call-ID: {method.lower()}-{n}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _sends(out: list[object]) -> list[Send]:
    return [o for o in out if isinstance(o, Send)]


def _notices(out: list[object]) -> list[SecurityNotice]:
    return [o for o in out if isinstance(o, SecurityNotice)]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many messages the core parsed fully."""
    count: list[int] = []
    real = sip.ua.parse_message

    def counting(data: bytes, *, stream: bool = False) -> Request | Response:
        count.append(len(data))
        return real(data, stream=stream)

    monkeypatch.setattr(sip.ua, "parse_message", counting)
    return count


# -- bounds before parsing ---------------------------------------------------------------


def test_sanity_bounds_count_without_parsing() -> None:
    bounds = sanity.Bounds(max_message=4096, max_header=1024, max_headers=20, max_vias=3)
    assert sanity.check(_request(), bounds) is None
    assert "bytes" in (sanity.check(b"x" * 5000, bounds) or "")
    assert "header section" in (sanity.check(b"INVITE " + b"x" * 2000, bounds) or "")
    many = _request(extra="X-A: 1\r\n" * 20)
    assert "header lines" in (sanity.check(many, bounds) or "")
    v = "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1"
    assert sanity.check(_request(via=f"{v}, {v}, {v}"), bounds) is None
    assert "4 Via values" in (sanity.check(_request(via=f"{v}, {v}, {v}, {v}"), bounds) or "")
    compact = _request(extra=f"v: {v}\r\nVia : {v},\r\n {v}\r\n")  # compact, spaced, folded
    assert "4 Via values" in (sanity.check(compact, bounds) or "")
    assert sanity.check(_request(extra="Vary: a, b, c, d\r\n"), bounds) is None


def test_a_58_kb_via_datagram_is_dropped_before_it_is_parsed(parses: list[int]) -> None:
    """The issue's probe: one INVITE carrying 58 KB of Via values, from an address the
    policy trusts (loopback with no trunk: nothing but the bounds protects here)."""
    core = SipCore(CoreConfig())
    via = ", ".join(
        f"SIP/2.0/UDP 10.0.{i // 250}.{i % 250}:5060;branch=z9hG4bK{i}" for i in range(1300)
    )
    data = _request(via=via)
    assert 55_000 < len(data) < 65_535
    core.receive(data, LOOP, 0.0)
    out = core.drain()
    assert _sends(out) == [] and parses == []
    [notice] = _notices(out)
    assert notice.kind is NoticeKind.OVERSIZED_MESSAGE and "header section" in notice.detail
    lines = _request(
        extra="".join(f"Via: SIP/2.0/UDP 10.0.0.{i};branch=z9hG4bKx{i}\r\n" for i in range(17))
    )
    core.receive(lines, LOOP, 0.0)
    assert _sends(core.drain()) == [] and parses == [] and core.stats["oversized"] == 2
    core.receive(_request("OPTIONS"), LOOP, 0.0)  # an ordinary message still goes through
    assert [s.message.status for s in _sends(core.drain())] == [200]  # type: ignore[union-attr]


# -- strangers -----------------------------------------------------------------------------


def test_a_strangers_request_gets_one_stateless_403_to_its_source(parses: list[int]) -> None:
    core = SipCore(CoreConfig(), TrunkPolicy([CARRIER]))
    victim_via = "SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKreflect"  # not where it came from
    core.receive(_request(via=victim_via), STRANGER, 0.0)
    out = core.drain()
    [send] = _sends(out)
    assert isinstance(send.message, Response) and send.message.status == 403
    assert send.peer == STRANGER  # never reflected onto the address its Via names
    assert send.message.to.tag and send.message.call_id == "invite-1"
    assert parses == []  # answered from its raw lines
    assert core.layer.servers == {} and core.calls == {} and core.next_deadline() is None
    assert not [o for o in out if isinstance(o, CallRefused | CallOffered)]
    [notice] = _notices(out)
    assert (notice.kind, notice.source) == (NoticeKind.REFUSED_REQUEST, STRANGER)
    core.receive(_request("ACK"), STRANGER, 0.1)  # its ACK for our 403: nothing at all
    assert core.drain() == []
    quiet = SipCore(CoreConfig(limits=SipLimits(stranger_reply="drop")), TrunkPolicy([CARRIER]))
    quiet.receive(_request(), STRANGER, 0.0)
    out = quiet.drain()
    assert _sends(out) == [] and len(_notices(out)) == 1


def test_a_strangers_garbage_is_not_answered_and_trunk_traffic_still_is(
    parses: list[int],
) -> None:
    core = SipCore(CoreConfig(), TrunkPolicy([CARRIER]))
    core.receive(b"\x00\x01garbage\r\n\r\n", STRANGER, 0.0)
    assert _sends(core.drain()) == []
    trunk = Peer("udp", "198.51.100.9", 5060)
    core.receive(_request(), trunk, 0.0)
    assert [type(o) for o in core.drain() if isinstance(o, CallOffered)] == [CallOffered]


# -- per-source rates -----------------------------------------------------------------------


def test_an_invite_flood_blocks_its_source_for_a_while() -> None:
    limits = SipLimits(invite_per_s=10, invite_burst=30, block_s=60)
    core = SipCore(CoreConfig(limits=limits), TrunkPolicy([CARRIER]))
    for n in range(200):  # 200 INVITEs, distinct Call-IDs, in one instant
        core.receive(_request(n=n), STRANGER, 0.0)
    out = core.drain()
    assert len(_sends(out)) == 30  # one answer per refused INVITE, and only up to the burst
    kinds = [n.kind for n in _notices(out)]
    assert kinds.count(NoticeKind.RATE_LIMITED) == 1  # the block is reported once
    assert core.stats["blocked"] == 200 - 31
    core.receive(_request(n=999), STRANGER, 59.0)
    assert core.drain() == []  # still blocked: dropped unanswered
    core.receive(_request(n=1000), STRANGER, 61.0)
    assert len(_sends(core.drain())) == 1  # the block lifted


def test_register_and_options_floods_are_limited_per_source_and_trunks_are_exempt() -> None:
    limits = SipLimits(register_burst=10, options_burst=10)
    core = SipCore(CoreConfig(limits=limits), TrunkPolicy([CARRIER]))
    a, b = Peer("udp", "192.0.2.8", 5060), Peer("udp", "192.0.2.9", 5060)
    for n in range(50):
        core.receive(_request("REGISTER", n), a, 0.0)
        core.receive(_request("OPTIONS", n), b, 0.0)
    out = core.drain()
    assert sum(1 for s in _sends(out) if s.peer == a) == 10
    assert sum(1 for s in _sends(out) if s.peer == b) == 10
    trunk = Peer("udp", "198.51.100.9", 5060)
    for n in range(300):
        core.receive(_request("OPTIONS", 1000 + n), trunk, 0.0)
    assert len(_sends(core.drain())) == 300  # the carrier's own address is never limited


# -- digest -----------------------------------------------------------------------------------


def _challenge(core: SipCore, peer: Peer, n: int, now: float) -> str:
    """The challenge the core sends for a first, credential-less INVITE (its nonce is made
    from ``now``)."""
    core.receive(_request(n=n), peer, now)
    [send] = _sends(core.drain())
    assert isinstance(send.message, Response) and send.message.status == 401
    return str(choose_challenge(send.message.headers.get_all("WWW-Authenticate")))


def _answering(challenge: str, n: int, user: str, password: str) -> bytes:
    client = DigestClient(user, password)
    value = client.authorize(choose_challenge([challenge]), "INVITE", "sip:bot@127.0.0.1:5060")
    return _request(n=n, extra=f"Authorization: {value}\r\n")


def test_wrong_digests_lock_their_source_out() -> None:
    limits = SipLimits(auth_failures=10, auth_window_s=60, block_s=300)
    core = SipCore(CoreConfig(limits=limits), TrunkPolicy([PBX], ENV))
    guesser = Peer("udp", "203.0.113.9", 5060)
    challenge = _challenge(core, guesser, 0, 0.0)
    statuses: list[int] = []
    notices: list[SecurityNotice] = []
    for n in range(1, 13):
        core.receive(_answering(challenge, n, "alice", f"guess{n}"), guesser, 1.0)
        out = core.drain()
        statuses += [s.message.status for s in _sends(out)]  # type: ignore[union-attr]
        notices += _notices(out)
    assert statuses == [401] * 11  # the 12th try is dropped: the source is blocked
    failures = [n for n in notices if n.kind is NoticeKind.AUTH_FAILURE]
    assert len(failures) == 11 and "wrong password for user 'alice'" in failures[0].detail
    assert "guess" not in " ".join(n.detail for n in notices)  # no secret in a notice
    assert [n.kind for n in notices].count(NoticeKind.BLOCKED_SOURCE) == 1
    core.receive(_answering(challenge, 50, "alice", "s3cret"), guesser, 299.0)
    assert core.drain() == []  # even the right password does not get in, for now
    phone = Peer("udp", "203.0.113.10", 5060)  # another source is not affected
    core.receive(_answering(_challenge(core, phone, 60, 2.0), 61, "alice", "s3cret"), phone, 2.0)
    assert [type(o) for o in core.drain() if isinstance(o, CallOffered)] == [CallOffered]


def test_every_digest_trunk_is_tried() -> None:
    """Two digest-only trunks (realms ``pbx`` and ``office``): the challenge names both, and
    the second trunk's user gets in."""
    core = SipCore(CoreConfig(), TrunkPolicy([PBX, OFFICE], ENV))
    phone = Peer("udp", "203.0.113.20", 5060)
    core.receive(_request(n=1), phone, 0.0)
    [send] = _sends(core.drain())
    assert isinstance(send.message, Response)
    realms = [
        v.split('realm="')[1].split('"')[0]
        for v in send.message.headers.get_all("WWW-Authenticate")
    ]
    assert sorted(set(realms)) == ["office", "pbx"]
    office = [v for v in send.message.headers.get_all("WWW-Authenticate") if 'realm="office"' in v]
    value = DigestClient("bob", "0ff1ce").authorize(
        choose_challenge(office), "INVITE", "sip:bot@127.0.0.1:5060"
    )
    core.receive(_request(n=2, extra=f"Authorization: {value}\r\n"), phone, 0.0)
    [offer] = [o for o in core.drain() if isinstance(o, CallOffered)]
    assert offer.trunk == "office"


def test_the_replay_window_covers_the_whole_nonce_lifetime() -> None:
    verifier = DigestVerifier("r", passwords=lambda u: "pw" if u == "u" else None)

    def login(now: float) -> str:
        challenge = verifier.challenges(now)[0]
        return DigestClient("u", "pw").authorize(challenge, "INVITE", "sip:x@y")

    first = login(0.0)
    assert verifier.verify(first, "INVITE", 0.0).ok
    for i in range(5000):  # more logins within one nonce lifetime than the old table held
        assert verifier.verify(login(1.0 + i * 0.01), "INVITE", 1.0 + i * 0.01).ok
    replay = verifier.verify(first, "INVITE", 60.0)
    assert (replay.outcome, replay.reason) == (VerifyOutcome.STALE, "nonce count replayed")
    late = verifier.verify(login(400.0), "INVITE", 400.0)
    assert late.ok and verifier.tracked_nonces == 1  # the expired ones are forgotten


# -- call caps ------------------------------------------------------------------------------


def test_per_trunk_and_per_source_call_caps() -> None:
    carrier = CARRIER.model_copy(update={"max_calls": 2})
    core = SipCore(
        CoreConfig(limits=SipLimits(max_calls_per_source=2)), TrunkPolicy([carrier, PBX], ENV)
    )
    sbc = Peer("udp", "198.51.100.9", 5060)
    for n in range(3):
        core.receive(_request(n=n), sbc, 0.0)
    out = core.drain()
    assert len([o for o in out if isinstance(o, CallOffered)]) == 2
    refused = [
        s.message
        for s in _sends(out)
        if isinstance(s.message, Response) and s.message.status == 503
    ]
    assert len(refused) == 1
    assert [n.kind for n in _notices(out)] == [NoticeKind.RATE_LIMITED]
    phone = Peer("udp", "203.0.113.30", 5060)  # a digest caller: not a trunk address
    offered = 0
    for n in range(3):
        challenge = _challenge(core, phone, 100 + n, float(n))
        core.receive(_answering(challenge, 200 + n, "alice", "s3cret"), phone, float(n))
        offered += len([o for o in core.drain() if isinstance(o, CallOffered)])
    assert offered == 2  # the third call from one source is refused


# -- Timer H and the framer -------------------------------------------------------------------


def test_an_unacknowledged_answer_ends_the_call_at_timer_h() -> None:
    """§13.3.1.4: no ACK within 64*T1: BYE, and the call is over then, even if the BYE is
    never answered (a caller that never ACKed holds nothing for another 32 s)."""
    p = Pair()
    p.drop = lambda side, msg: (isinstance(msg, Request) and msg.method == "ACK") or side == "a"
    p.a.invite(sip.ua.SipUri(host="127.0.0.1", port=5062, user="bot"), SDP_A, p.now)
    p.drop = lambda side, msg: isinstance(msg, Request) and msg.method == "ACK"
    p.pump()
    [offer] = p.of("b", CallOffered)
    p.b.answer(offer.call_id, SDP_B, p.now)
    p.drop = lambda side, msg: side == "a"  # the caller goes silent: no ACK, no BYE answer
    p.advance(31.0)
    assert p.of("b", CallEnded) == []
    p.advance(1.5)
    assert p.of("b", CallEnded) == [CallEnded(offer.call_id, EndReason.ACK_TIMEOUT)]
    assert len(p.sent("b", "BYE")) == 1


def test_the_stream_framer_is_linear_in_its_input() -> None:
    """A 60 KB message sent one byte at a time: the search for the blank line resumes where it
    stopped (it never rescans the buffer), and the message comes out whole."""
    body = b"v=0\r\n" + b"a=x\r\n" * 9000
    msg = _request(body=body)
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(msg)):
        out += framer.feed(msg[i : i + 1])
        if not out and i > 4:
            assert framer._scanned >= min(i + 1, msg.index(b"\r\n\r\n")) - 3  # resumed
    assert out == [msg] and framer.buffered == 0
    ping_then = StreamFramer()
    assert ping_then.feed(b"\r\n\r\n") == []  # RFC 5626 keep-alive
    assert ping_then.feed(msg) == [msg]
