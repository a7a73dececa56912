"""Tier 2: two sans-IO cores (UAC and UAS) over a fake link on virtual time."""

from __future__ import annotations

from sip.events import CallAnswered, CallEnded, CallOffered, CallRinging, EndReason
from sip.uri import SipUri
from tests.sip.pair import SDP_A, SDP_B, Pair

BOB = SipUri(host="127.0.0.1", port=5062, user="bot")


def _offered(p: Pair) -> str:
    offers = p.of("b", CallOffered)
    assert len(offers) == 1
    return offers[0].call_id


def test_basic_call_and_bye() -> None:
    p = Pair()
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    assert p.sent("b", "100 INVITE")  # 100 Trying at once
    bcid = _offered(p)
    p.b.ring(bcid, p.now)
    p.pump()
    assert [e.status for e in p.of("a", CallRinging)] == [180]
    p.b.answer(bcid, SDP_B, p.now)
    p.pump()
    assert p.of("a", CallAnswered)[0].sdp == SDP_B
    assert p.of("b", CallAnswered), "the ACK reached the callee"
    p.a.hangup(cid, p.now)
    p.pump()
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.REMOTE_BYE)]
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.LOCAL_BYE)]
    p.advance(40)
    assert not p.a.calls and not p.b.calls
    assert p.a.next_deadline() is None and p.b.next_deadline() is None


def test_callee_rejects_486_and_caller_acks() -> None:
    p = Pair()
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    p.b.reject(_offered(p), p.now, 486)
    p.pump()
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.FAILED, 486)]
    acks = p.sent("a", "ACK")
    assert len(acks) == 1 and acks[0].top_via.branch == p.sent("a", "INVITE")[0].top_via.branch
    p.advance(40)
    assert len(p.sent("b", "486 INVITE")) == 1  # the ACK stopped timer G
