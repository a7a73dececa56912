"""Tier 2: two sans-IO cores (UAC and UAS) over a fake link on virtual time."""

from __future__ import annotations

import pytest

from sip.errors import SipStateError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallOffered,
    CallRinging,
    DtmfReceived,
    EndReason,
    HoldChanged,
    ReferProgress,
    ReferReceived,
    ReinviteRefused,
    RemoteSdpChanged,
)
from sip.message import Request, Response, parse_message
from sip.transaction import Send
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


def _established(p: Pair) -> tuple[str, str]:
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.answer(bcid, SDP_B, p.now)
    p.pump()
    assert p.of("a", CallAnswered) and p.of("b", CallAnswered)
    return cid, bcid


def test_cancel_crossing_the_200_gets_ack_then_bye() -> None:
    """§15: the 200 crossed our CANCEL: the caller ACKs it, then ends the call with BYE."""
    p = Pair()
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.ring(bcid, p.now)
    p.pump()
    p.a.hangup(cid, p.now)  # CANCEL in flight ...
    p.b.answer(bcid, SDP_B, p.now)  # ... while the 200 is in flight the other way
    p.pump()
    assert p.sent("b", "200 CANCEL") and not p.sent("b", "487 INVITE")
    assert len(p.sent("a", "ACK")) == 1 and len(p.sent("a", "BYE")) == 1
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.LOCAL_CANCEL)]
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.REMOTE_BYE)]
    assert not p.of("a", CallAnswered), "the owner never sees an answered call it cancelled"


def test_cancel_before_answer_gets_487() -> None:
    p = Pair()
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.ring(bcid, p.now)
    p.pump()
    p.a.hangup(cid, p.now)
    p.pump()
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.CANCELLED, 487)]
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.LOCAL_CANCEL, 487)]
    assert len(p.sent("a", "ACK")) == 1  # for the 487, inside the client transaction
    p.advance(40)
    assert len(p.sent("b", "487 INVITE")) == 1


def test_cancel_waits_for_a_provisional() -> None:
    """§9.1: no CANCEL before a provisional response; sent as soon as one arrives."""
    p = Pair()
    p.drop = lambda side, msg: side == "b"  # the callee is silent at first
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    p.a.hangup(cid, p.now)
    p.pump()
    assert not p.sent("a", "CANCEL")
    p.drop = lambda side, msg: False
    p.advance(0.6)  # INVITE retransmission -> the 100 now gets through
    assert len(p.sent("a", "CANCEL")) == 1


def test_invite_retransmitted_after_2xx_is_not_a_second_call() -> None:
    """RFC 6026: the 100, the first 200 and the first ACK are lost; the caller retransmits
    its INVITE into the callee's Accepted state; retransmissions repair everything."""
    p = Pair()
    lost: set[str] = set()

    def drop(side: str, msg: Request | Response) -> bool:
        label = msg.method if isinstance(msg, Request) else f"{msg.status}"
        if label in ("100", "200", "ACK") and label not in lost:
            lost.add(label)
            return True
        return False

    p.drop = drop
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.answer(bcid, SDP_B, p.now)
    p.pump()
    p.advance(5)
    assert len(p.sent("a", "INVITE")) >= 2, "the caller retransmitted its INVITE"
    assert len(p.of("b", CallOffered)) == 1
    assert len(p.sent("b", "200 INVITE")) >= 2
    assert p.of("a", CallAnswered) and p.of("b", CallAnswered)
    p.b.receive(bytes(p.sent("a", "INVITE")[0]), p.peer_of("a"), p.now)  # a late duplicate
    p.pump()
    assert len(p.of("b", CallOffered)) == 1
    p.a.hangup(cid, p.now)
    p.pump()
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.REMOTE_BYE)]


def test_lossy_link_calls_complete() -> None:
    """Every third datagram lost, both ways: calls still set up and tear down."""
    p = Pair()
    counter = iter(range(10**6))
    p.drop = lambda side, msg: next(counter) % 3 == 2
    for _ in range(5):
        cid = p.a.invite(BOB, SDP_A, p.now)
        p.pump()
        p.advance(4)
        bcid = p.of("b", CallOffered)[-1].call_id
        p.b.answer(bcid, SDP_B, p.now)
        p.advance(8)
        p.a.hangup(cid, p.now)
        p.advance(10)
    assert len(p.of("b", CallOffered)) == 5
    assert len(p.of("a", CallAnswered)) == 5
    assert all(e.reason is EndReason.REMOTE_BYE for e in p.of("b", CallEnded))
    assert len(p.of("b", CallEnded)) == 5


def test_unacked_200_ends_with_bye() -> None:
    """§13.3.1.4: no ACK within 64*T1 -> the callee sends BYE and records the reason."""
    p = Pair()
    p.drop = lambda side, msg: isinstance(msg, Request) and msg.method == "ACK"
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.answer(bcid, SDP_B, p.now)
    p.pump()
    p.advance(35)
    retransmits = len(p.sent("b", "200 INVITE"))
    assert 7 <= retransmits <= 12  # T1 doubling to T2 over 32 s
    assert len(p.sent("b", "BYE")) == 1
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.ACK_TIMEOUT)]
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.REMOTE_BYE)]


def test_hold_and_unhold_by_reinvite() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.reinvite(cid, SDP_A.replace(b"a=sendrecv", b"a=sendonly"), p.now)
    p.pump()
    assert p.of("b", HoldChanged) == [HoldChanged(bcid, True)]
    answer = p.sent("b", "200 INVITE")[-1]
    assert b"a=recvonly" in answer.body and b"m=audio 5000 " in answer.body
    assert b"o=b 2 2 IN IP4" in answer.body, "the answer's o= version went up"
    p.a.reinvite(cid, SDP_A, p.now)
    p.pump()
    assert p.of("b", HoldChanged) == [HoldChanged(bcid, True), HoldChanged(bcid, False)]
    assert len(p.sent("a", "ACK")) == 3
    p.advance(40)
    assert not p.of("b", CallEnded), "re-INVITE 2xx were ACKed: no ACK-timeout BYE"


def test_a_refused_reinvite_is_reported_and_leaves_the_call_as_it_was() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.hold(cid, True, p.now)
    p.pump()
    (answer,) = [e for e in p.of("a", RemoteSdpChanged) if not e.remote_offered]
    assert b"a=recvonly" in answer.sdp and b"a=sendonly" in answer.local_sdp
    p.a.reinvite(cid, b"v=0\r\n", p.now)  # an offer b cannot read: 488
    p.pump()
    (refused,) = p.of("a", ReinviteRefused)
    assert (refused.call_id, refused.status) == (cid, 488)
    assert refused.reason.startswith("Not Acceptable Here")
    p.a.hold(cid, False, p.now)  # nothing left pending: the next offer goes out
    p.pump()
    assert b"a=sendrecv" in p.sent("a", "INVITE")[-1].body
    assert p.of("b", HoldChanged) == [HoldChanged(bcid, True), HoldChanged(bcid, False)]
    p.advance(40)
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)


def test_reinvite_glare_491_then_both_succeed() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.reinvite(cid, SDP_A.replace(b"a=sendrecv", b"a=sendonly"), p.now)
    p.b.reinvite(bcid, SDP_B.replace(b"a=sendrecv", b"a=inactive"), p.now)
    p.pump()
    assert p.sent("a", "491 INVITE") and p.sent("b", "491 INVITE")
    p.advance(6)
    assert len(p.sent("a", "INVITE")) == 3 and len(p.sent("b", "INVITE")) == 2
    assert p.of("b", HoldChanged) == [HoldChanged(bcid, True)]
    assert p.of("a", HoldChanged) == [HoldChanged(cid, True)]
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)


def test_refer_out_and_in_with_notify_progress() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.refer(cid, "sip:carol@127.0.0.1:5070", p.now)
    p.pump()
    refer = p.of("b", ReferReceived)
    # Referred-By as a name-addr: a tel: URI keeps its parameters
    assert refer == [ReferReceived(bcid, "<sip:carol@127.0.0.1:5070>", "<sip:alice@127.0.0.1>")]
    assert not p.sent("b", "202 REFER")  # the owner decides
    p.b.answer_refer(bcid, 202, p.now)
    p.pump()
    assert p.sent("b", "202 REFER")
    assert p.of("a", ReferProgress) == [ReferProgress(cid, 100, "Trying", False)]
    p.b.notify_refer(bcid, 200, p.now)
    p.pump()
    assert p.of("a", ReferProgress)[-1] == ReferProgress(cid, 200, "OK", True)
    assert len(p.sent("a", "200 NOTIFY")) == 2


def test_info_dtmf_is_a_digit_event() -> None:
    p = Pair()
    cid, bcid = _established(p)
    for digit in "5#":
        p.a.send_dtmf(cid, digit, p.now, duration_ms=120)
    p.pump()
    assert p.of("b", DtmfReceived) == [DtmfReceived(bcid, "5", 120), DtmfReceived(bcid, "#", 120)]


def test_in_dialog_request_for_unknown_dialog_gets_481() -> None:
    p = Pair()
    cid, _bcid = _established(p)
    p.a.hangup(cid, p.now)
    p.pump()
    p.advance(40)
    bye = p.sent("a", "BYE")[0]
    bye.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnewone;rport")
    p.b.receive(bytes(bye), p.peer_of("a"), p.now)
    p.pump()
    assert p.sent("b", "481 BYE")


def test_local_hold_api_sends_sendonly_then_sendrecv() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.hold(cid, True, p.now)
    p.pump()
    offer = p.sent("a", "INVITE")[-1]
    assert b"a=sendonly" in offer.body and b"a=sendrecv" not in offer.body
    assert b"o=a 1 2 IN IP4" in offer.body
    assert p.of("b", HoldChanged) == [HoldChanged(bcid, True)]
    p.a.hold(cid, False, p.now)
    p.pump()
    assert b"a=sendrecv" in p.sent("a", "INVITE")[-1].body
    assert p.of("b", HoldChanged)[-1] == HoldChanged(bcid, False)


def test_while_we_hold_our_answer_to_the_peers_re_offer_keeps_the_hold() -> None:
    """A refresh re-INVITE from the peer during our hold must not resume it (RFC 3264 §8.4:
    our answer stays ``sendonly``); after our resume, answers are ``sendrecv`` again."""
    p = Pair()
    cid, bcid = _established(p)
    p.a.hold(cid, True, p.now)
    p.pump()
    p.b.reinvite(bcid, SDP_B, p.now)
    p.pump()
    answer = p.sent("a", "200 INVITE")[-1].body
    assert b"a=sendonly" in answer and b"a=sendrecv" not in answer
    p.a.hold(cid, False, p.now)
    p.pump()
    p.b.reinvite(bcid, SDP_B, p.now)
    p.pump()
    assert b"a=sendrecv" in p.sent("a", "200 INVITE")[-1].body


def test_a_hold_asked_while_a_glare_retry_waits_is_refused_and_the_retry_goes_out() -> None:
    """After a 491 our re-INVITE waits 2.1-4 s to be sent again (RFC 3261 §14.1): another
    re-INVITE of ours is refused meanwhile (it would collide with the retry), and the retry
    still goes out: the call's timers go on."""
    p = Pair()
    cid, bcid = _established(p)
    p.a.hold(cid, True, p.now)
    p.b.reinvite(bcid, SDP_B.replace(b"a=sendrecv", b"a=sendonly"), p.now)  # glare
    p.pump()
    assert p.sent("a", "491 INVITE")
    with pytest.raises(SipStateError):
        p.a.hold(cid, False, p.now)
    sent = len(p.sent("a", "INVITE"))
    p.advance(5.0)  # the retry is due within 4 s
    retry = p.sent("a", "INVITE")[sent:]
    assert retry and b"a=sendonly" in retry[0].body


def test_session_refresh_with_the_same_sdp_keeps_the_version() -> None:
    p = Pair()
    cid, _bcid = _established(p)
    p.a.reinvite(cid, SDP_A, p.now)
    p.pump()
    p.a.reinvite(cid, SDP_A, p.now)
    p.pump()
    answers = [r.body for r in p.sent("b", "200 INVITE")]
    assert answers[-1] == answers[-2], "a refresh answer repeats the same o= version"
    assert not p.of("b", HoldChanged)


def test_hangup_before_the_ack_waits_for_it() -> None:
    """§15: the callee must not send BYE before the ACK for its 2xx (or the ACK timeout)."""
    p = Pair()
    p.drop = lambda side, msg: isinstance(msg, Request) and msg.method == "ACK"
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.answer(bcid, SDP_B, p.now)
    p.pump()
    p.b.hangup(bcid, p.now)
    p.pump()
    assert not p.sent("b", "BYE")
    p.drop = lambda side, msg: False
    p.advance(1.0)  # the 2xx retransmission draws a new ACK, and then the BYE goes
    assert len(p.sent("b", "BYE")) == 1
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.LOCAL_BYE)]
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.REMOTE_BYE)]


def test_bye_on_the_early_dialog_ends_the_call() -> None:
    p = Pair()
    cid = p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    p.b.ring(bcid, p.now)
    p.pump()
    ringing = p.sent("b", "180 INVITE")[0]
    call = p.a.calls[cid]
    assert call.dialog is not None and call.dialog.remote_tag == ringing.to.tag
    bye = call.dialog.request("BYE", p.a.via("udp"), None)
    p.b.receive(bytes(bye), p.peer_of("a"), p.now)
    p.pump()
    assert p.sent("b", "200 BYE") and p.sent("b", "487 INVITE")
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.REMOTE_BYE, 487)]
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.FAILED, 487)]


def test_forked_2xx_is_acked_and_byed() -> None:
    """§13.2.2.4: a 2xx from a second fork (other To tag) after the call is up: ACK + BYE it,
    the established call goes on."""
    p = Pair()
    cid, _bcid = _established(p)
    ok = p.sent("b", "200 INVITE")[0]
    forked = parse_message(bytes(ok).replace(f"tag={ok.to.tag}".encode(), b"tag=otherfork"))
    p.a.receive(bytes(forked), p.peer_of("b"), p.now)
    out = [s.message for s in p.a.drain() if isinstance(s, Send)]
    assert [(m.method, m.to.tag) for m in out if isinstance(m, Request)] == [
        ("ACK", "otherfork"),
        ("BYE", "otherfork"),
    ]
    assert p.a.calls[cid].state.value == "confirmed"


def test_outbound_call_answers_a_reoffer_with_the_codec_in_use() -> None:
    """We offered PCMU and PCMA; the callee picked PCMA; its re-offer is answered with PCMA."""
    p = Pair()
    p.a.invite(BOB, SDP_A, p.now)
    p.pump()
    bcid = _offered(p)
    pcma = SDP_B.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101")
    p.b.answer(bcid, pcma, p.now)
    p.pump()
    p.b.reinvite(bcid, pcma.replace(b"RTP/AVP 8 101", b"RTP/AVP 0 8 101"), p.now)
    p.pump()
    answer = p.sent("a", "200 INVITE")[-1]
    assert b"m=audio 4000 RTP/AVP 8 101" in answer.body
    assert not p.of("a", CallEnded)


def test_refer_in_refused_by_the_owner() -> None:
    p = Pair()
    cid, bcid = _established(p)
    p.a.refer(cid, "sip:mallory@198.51.100.7", p.now)
    p.pump()
    assert len(p.of("b", ReferReceived)) == 1
    p.b.answer_refer(bcid, 403, p.now, "Forbidden (transfers by REFER are not accepted)")
    p.pump()
    assert p.sent("b", "403 REFER") and not p.sent("b", "202 REFER")
    assert not p.sent("b", "NOTIFY")
    final = p.of("a", ReferProgress)[-1]
    assert final.final and final.status == 0 and "403" in final.reason
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)  # the call goes on
