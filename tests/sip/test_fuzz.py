"""Property tests: malformed and truncated input never escapes as anything but SipParseError
(parser) and never escapes at all from the core / transaction layer (it answers or counts)."""

from __future__ import annotations

import contextlib
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.call import CallState
from sip.errors import SipParseError
from sip.events import CallOffered
from sip.headers import NameAddr, Via
from sip.message import StreamFramer, parse_message
from sip.transaction import Peer
from sip.ua import CoreConfig, SipCore
from sip.uri import SipUri
from tests.sip.pair import SDP_A

SEED = (
    b"INVITE sip:bot@127.0.0.1:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKfuzz;rport\r\n"
    b'From: "A, B" <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n'
    b"Call-ID: fuzz@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    b"Contact: <sip:a@127.0.0.1:5090>\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP_A)).encode() + b"\r\n\r\n" + SDP_A
)
RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\n"
    b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:b@127.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n"
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from([SEED, RESPONSE])))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not base:
            break
        i = draw(st.integers(0, len(base) - 1))
        if op == "flip":
            base[i] = draw(st.integers(0, 255))
        elif op == "insert":
            base[i:i] = draw(
                st.sampled_from(
                    [
                        b":",
                        b";",
                        b"<",
                        b">",
                        b'"',
                        b",",
                        b"\r\n",
                        b" ",
                        b"\x00",
                        b"=",
                        b"@",
                        b"[",
                        b"99999999999",
                    ]
                )
            )
        elif op == "delete":
            del base[i : i + draw(st.integers(1, 20))]
        elif op == "truncate":
            del base[i:]
        else:
            base[i:i] = base[i : i + draw(st.integers(1, 40))]
    return bytes(base)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(mutated(), st.binary(max_size=300)))
def test_parser_raises_only_sip_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert 400 <= exc.status < 600 and exc.reason
        return
    # whatever parsed must serialise and parse again to the same bytes
    assert bytes(parse_message(bytes(msg))) == bytes(msg)


@FUZZ
@given(st.text(max_size=80))
def test_value_parsers_raise_only_sip_parse_error(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, Via.parse):
        with contextlib.suppress(SipParseError):
            parse(text)


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=6), st.booleans())
def test_core_never_raises(datagrams: list[bytes], reliable: bool) -> None:
    core = SipCore(CoreConfig())
    peer = Peer("tcp" if reliable else "udp", "127.0.0.1", 5090)
    now = 0.0
    for data in datagrams:
        core.receive(data, peer, now)
        now += 0.3
        core.tick(now)
        core.drain()
    for cid, call in list(core.calls.items()):
        if call.state is CallState.INCOMING:
            core.answer(cid, SDP_A, now)  # a local command on whatever the fuzz created
    core.tick(now + 100)
    core.drain()


@FUZZ
@given(st.lists(st.binary(max_size=200) | mutated(), max_size=5))
def test_stream_framer_raises_only_sip_parse_error(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for chunk in chunks:
            for message in framer.feed(chunk):
                assert isinstance(message, bytes)
    except SipParseError:
        pass


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["invite", "ring", "answer", "reject", "hangup_a", "hangup_b", "wait"]),
        st.floats(min_value=0.0, max_value=3.0),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS, st.integers(0, 4), st.randoms(use_true_random=False))
def test_paired_cores_under_random_commands_and_loss_always_settle(
    actions: list[tuple[str, float]], loss_in_10: int, rnd: Random
) -> None:
    """Any interleaving of local commands, loss and delays: no exception but the documented
    SipStateError for an illegal local command, and once everyone hangs up and time passes,
    both cores hold no call, no transaction and no timer."""
    from sip.errors import SipStateError
    from tests.sip.pair import SDP_B, Pair

    p = Pair()
    p.drop = lambda side, msg: rnd.random() < loss_in_10 / 10
    bob = SipUri(host="127.0.0.1", port=5062, user="bot")
    for action, wait in actions:
        offered = [e.call_id for e in p.events["b"] if isinstance(e, CallOffered)]
        try:
            if action == "invite":
                p.a.invite(bob, SDP_A, p.now)
            elif action == "wait":
                p.advance(wait, step=0.25)
            elif offered and action in ("ring", "answer", "reject", "hangup_b"):
                cid = rnd.choice(offered)
                if cid in p.b.calls:
                    if action == "ring":
                        p.b.ring(cid, p.now)
                    elif action == "answer":
                        p.b.answer(cid, SDP_B, p.now)
                    elif action == "reject":
                        p.b.reject(cid, p.now, 486)
                    else:
                        p.b.hangup(cid, p.now)
            elif action == "hangup_a" and p.a.calls:
                p.a.hangup(rnd.choice(list(p.a.calls)), p.now)
        except SipStateError:
            pass
        p.pump()
    p.drop = lambda side, msg: False
    for core in (p.a, p.b):
        for cid in list(core.calls):
            core.hangup(cid, p.now)
    p.pump()
    p.advance(100, step=0.5)
    assert not p.a.calls and not p.b.calls
    assert not p.a.layer.clients and not p.a.layer.servers
    assert not p.b.layer.clients and not p.b.layer.servers
    assert p.a.next_deadline() is None and p.b.next_deadline() is None
