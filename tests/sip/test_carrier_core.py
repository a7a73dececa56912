"""Tier 2: what carriers need of the SIP core (issue 14), two sans-IO cores on virtual time.

Session timers (RFC 4028) both ways, UPDATE (RFC 3311), delayed offer (RFC 3261 §13.2.1) in
both directions, codec changes by re-offer, RFC 3263 failover, the ring timeout, Reason on BYE,
flow reuse over TCP and the option tags we accept.
"""

from __future__ import annotations

from sip.events import (
    CallAnswered,
    CallEnded,
    CallOffered,
    EndReason,
    RemoteSdpChanged,
)
from sip.message import Request, Response
from sip.offer_answer import MediaPrefs
from sip.policy import make_policy
from sip.session_timer import Refresher, TimerPolicy
from sip.settings import SipSettings, TrunkSettings
from sip.transaction import Peer, Send
from sip.ua import ALLOW, CoreConfig, SipCore
from sip.uri import SipUri
from tests.sip.pair import SDP_A, SDP_B, Pair

BOB = SipUri(host="127.0.0.1", port=5062, user="bot")


def _policy(expires: int, refresher: Refresher = Refresher.UAC, min_se: int = 90) -> TimerPolicy:
    return TimerPolicy(session_expires=expires, min_se=min_se, refresher=refresher)


def _pair(a: TimerPolicy | None = None, b: TimerPolicy | None = None) -> Pair:
    p = Pair()
    if a is not None:
        p.a.config.session_timer = a
    if b is not None:
        p.b.config.session_timer = b
    return p


def _call(p: Pair, sdp: bytes = SDP_A, **kwargs: object) -> tuple[str, str]:
    cid = p.a.invite(BOB, sdp, p.now, **kwargs)  # type: ignore[arg-type]
    p.pump()
    (offer,) = p.of("b", CallOffered)
    return cid, offer.call_id


def _answer(p: Pair, bcid: str, sdp: bytes = SDP_B) -> None:
    p.b.answer(bcid, sdp, p.now, media=MediaPrefs(codecs=("PCMU", "PCMA")))
    p.pump()


def _methods(p: Pair, side: str, method: str) -> list[Request]:
    return [m for s, m in p.wire if s == side and isinstance(m, Request) and m.method == method]


def test_the_caller_refreshes_by_update_and_the_call_lives_on() -> None:
    p = _pair(a=_policy(120), b=_policy(1800))
    _cid, bcid = _call(p)
    invite = p.sent("a", "INVITE")[0]
    assert invite.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in (invite.headers.get("Supported") or "")
    _answer(p, bcid)
    ok = p.sent("b", "200 INVITE")[0]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    p.advance(400)
    updates = _methods(p, "a", "UPDATE")
    assert len(updates) >= 6, "a refresh every 60 s"
    assert all(u.headers.get("Session-Expires") == "120;refresher=uac" for u in updates)
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)
    assert not _methods(p, "b", "UPDATE") and not _methods(p, "b", "INVITE")


def test_a_session_not_refreshed_is_ended_by_the_other_side_with_bye() -> None:
    p = _pair(a=_policy(120), b=_policy(1800))
    _cid, bcid = _call(p)
    _answer(p, bcid)
    p.drop = lambda side, msg: isinstance(msg, Request) and msg.method == "UPDATE"
    p.advance(120)
    # the callee does not refresh: it ends the session min(32, 120/3) s before it expires
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.SESSION_EXPIRED)]
    (bye,) = _methods(p, "b", "BYE")
    assert "session expired" in (bye.headers.get("Reason") or "")
    assert p.of("a", CallEnded)[0].reason in (EndReason.REMOTE_BYE, EndReason.SESSION_EXPIRED)


def test_the_callee_refreshes_when_asked_and_ends_the_call_when_refreshes_go_unanswered() -> None:
    p = _pair(a=_policy(100, Refresher.UAS), b=_policy(1800))
    _cid, bcid = _call(p)
    _answer(p, bcid)
    assert p.sent("b", "200 INVITE")[0].headers.get("Session-Expires") == "100;refresher=uas"
    p.advance(120)
    assert len(_methods(p, "b", "UPDATE")) >= 2  # the callee refreshes every 50 s
    assert not p.of("b", CallEnded)

    def silent_caller(side: str, msg: Request | Response) -> bool:
        return side == "a" and isinstance(msg, Response) and msg.cseq.method == "UPDATE"

    p.drop = silent_caller
    p.advance(200)
    assert p.of("b", CallEnded) == [CallEnded(bcid, EndReason.SESSION_EXPIRED)]
    assert _methods(p, "b", "BYE")


def test_a_refresh_by_reinvite_when_the_peer_does_not_allow_update() -> None:
    p = _pair(a=_policy(100, Refresher.UAS), b=_policy(1800))
    invite = SDP_A
    p.a.invite(BOB, invite, p.now)
    # the caller's INVITE says it allows no UPDATE: rewrite it on its way
    p.pump()
    (offer,) = p.of("b", CallOffered)
    p.b.calls[offer.call_id].peer_allows_update = False
    _answer(p, offer.call_id)
    p.advance(60)
    reinvites = [r for r in _methods(p, "b", "INVITE")]
    assert reinvites and reinvites[0].body == p.sent("b", "200 INVITE")[0].body
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)


def test_422_makes_the_caller_ask_again_with_the_callee_s_min_se() -> None:
    p = _pair(a=_policy(60, min_se=30), b=_policy(1800, min_se=90))
    _cid, bcid = _call(p)
    assert [r.status for r in p.sent("b", "422 INVITE")] == [422]
    assert p.sent("b", "422 INVITE")[0].reason == "Session Interval Too Small"  # RFC 4028
    assert p.sent("b", "422 INVITE")[0].headers.get("Min-SE") == "90"
    second = p.sent("a", "INVITE")[-1]
    assert second.headers.get("Session-Expires") == "90" and second.cseq.seq == 2
    _answer(p, bcid)
    assert p.sent("b", "200 INVITE")[-1].headers.get("Session-Expires") == "90;refresher=uac"


def test_allow_lists_update_and_require_timer_is_accepted_but_not_100rel() -> None:
    assert "UPDATE" in ALLOW and "PRACK" not in ALLOW
    core = SipCore(CoreConfig(ports={"udp": 5062}))
    peer = Peer("udp", "127.0.0.1", 5060)

    def invite(require: str, branch: str) -> bytes:
        return (
            f"INVITE sip:bot@127.0.0.1:5062 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{branch}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n"
            f"Call-ID: {branch}@x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5060>\r\n"
            f"Require: {require}\r\nSupported: timer\r\nSession-Expires: 1800\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()

    core.receive(invite("timer", "t1"), peer, 0.0)
    out = core.drain()
    assert any(isinstance(o, CallOffered) for o in out)
    core.receive(invite("100rel", "t2"), peer, 0.0)
    statuses = [o.message.status for o in core.drain() if isinstance(o, Send)]
    assert 420 in statuses


def test_delayed_offer_both_ways_answer_in_the_ack() -> None:
    p = Pair()
    a_media = MediaPrefs(codecs=("PCMU",), address="127.0.0.1", port=4000)
    _cid, bcid = _call(p, b"", media=a_media)
    offered = p.of("b", CallOffered)[0]
    assert offered.sdp == b""
    _answer(p, bcid, SDP_B)  # our offer goes in the 200
    (a_answered,) = p.of("a", CallAnswered)
    assert a_answered.delayed_offer and a_answered.sdp == SDP_B
    assert b"m=audio 4000 RTP/AVP 0 101" in a_answered.ack_sdp
    (b_answered,) = p.of("b", CallAnswered)
    assert b_answered.delayed_offer and b_answered.ack_sdp == a_answered.ack_sdp
    assert b_answered.sdp == SDP_B


def test_reason_header_on_a_bye_the_owner_explains() -> None:
    p = Pair()
    _cid, bcid = _call(p)
    _answer(p, bcid)
    p.b.hangup(bcid, p.now, cause=(488, 'no answer in the ACK "really"'))
    p.pump()
    (bye,) = _methods(p, "b", "BYE")
    assert bye.headers.get("Reason") == 'SIP ;cause=488 ;text="no answer in the ACK really"'


def test_a_reoffer_without_our_codec_changes_the_codec() -> None:
    p = Pair()
    cid, bcid = _call(p)
    _answer(p, bcid)
    pcma_only = SDP_A.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 8 101").replace(b"o=a 1 1", b"o=a 1 2")
    p.a.reinvite(cid, pcma_only, p.now)
    p.pump()
    (changed,) = p.of("b", RemoteSdpChanged)
    assert changed.remote_offered and b"RTP/AVP 8 101" in changed.local_sdp
    assert b"PCMA/8000" in changed.local_sdp
    (a_changed,) = p.of("a", RemoteSdpChanged)
    assert not a_changed.remote_offered and a_changed.sdp == changed.local_sdp


def test_an_update_offer_is_answered_in_its_200() -> None:
    p = Pair()
    cid, bcid = _call(p)
    _answer(p, bcid)
    call = p.a.calls[cid]
    assert call.dialog is not None
    moved = SDP_A.replace(b"m=audio 4000", b"m=audio 4100").replace(b"o=a 1 1", b"o=a 1 2")
    update = call.dialog.request(
        "UPDATE", p.a.via("udp"), p.a.contact("udp"), body=moved, extra=p.a.common_headers()
    )
    p.a.send_request(call, update, "update", p.now)
    p.a.tick(p.now)  # the core's outbox reaches the wire
    p.pump()
    (ok,) = p.sent("b", "200 UPDATE")
    assert b"m=audio 5000" in ok.body
    (changed,) = p.of("b", RemoteSdpChanged)
    assert b"m=audio 4100" in changed.sdp


def test_a_503_or_a_silent_target_sends_the_invite_to_the_next_one() -> None:
    p = Pair()
    refuser = SipCore(CoreConfig(ports={"udp": 5064}, user="carol"))
    p.cores[5064] = ("c", refuser)
    p.events["c"] = []
    first = Peer("udp", "127.0.0.1", 5064)
    p.a.invite(BOB, SDP_A, p.now, peer=first, alternates=(p.peer_of("b"),))
    p.pump()
    (refused,) = p.of("c", CallOffered)
    refuser.reject(refused.call_id, p.now, 503)
    p.pump()
    (offer,) = p.of("b", CallOffered)
    _answer(p, offer.call_id)
    assert p.of("a", CallAnswered) and not p.of("a", CallEnded)

    # a target that never answers: timer B, then the next one
    q = Pair()
    q.drop = lambda side, msg: isinstance(msg, Request) and msg.cseq.seq == 1
    q.a.invite(BOB, SDP_A, q.now, alternates=(q.peer_of("b"),))
    q.pump()
    assert not q.of("b", CallOffered)
    q.advance(33)
    assert q.of("b", CallOffered) and not q.of("a", CallEnded)


def test_ring_timeout_cancels_and_ends_no_answer() -> None:
    p = Pair()
    cid, bcid = _call(p, ring_timeout=5.0)
    p.b.ring(bcid, p.now)
    p.pump()
    p.advance(6)
    assert _methods(p, "a", "CANCEL")
    assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.NO_ANSWER, 487)]
    assert p.of("b", CallEnded)[0].reason is EndReason.CANCELLED


def test_in_dialog_messages_on_tcp_name_the_flow_and_a_fallback() -> None:
    p = Pair("tcp")
    _cid, bcid = _call(p)
    _answer(p, bcid)
    p.b.hangup(bcid, p.now)
    (bye,) = [o for o in p.b.drain() if isinstance(o, Send)]
    assert bye.peer == Peer("tcp", "127.0.0.1", 5060)  # the connection the call came on
    assert bye.fallback == Peer("tcp", "127.0.0.1", 5060)  # the caller's Contact


def test_a_trunk_with_its_own_session_timers_off_neither_asks_nor_grants_one() -> None:
    """``[sip.trunks.session_timers] enabled = false``: that trunk's calls carry no session
    timer either way; calls from elsewhere keep the endpoint's."""
    settings = SipSettings(trunks=[TrunkSettings(name="quiet", host="127.0.0.1")])
    config = CoreConfig(
        ports={"udp": 5062},
        session_timer=_policy(1800),
        trunk_session_timers={"quiet": TimerPolicy(enabled=False)},
    )
    core = SipCore(config, make_policy(settings))
    core.invite(BOB, SDP_A, 0.0, trunk="quiet")
    core.invite(BOB, SDP_A, 0.0)
    quiet, other = [o.message for o in core.drain() if isinstance(o, Send)]
    assert quiet.headers.get("Session-Expires") is None
    assert other.headers.get("Session-Expires") == "1800;refresher=uac"

    invite = (
        "INVITE sip:bot@127.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKquiet\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n"
        "Call-ID: quiet@x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5060>\r\n"
        "Supported: timer\r\nSession-Expires: 300;refresher=uac\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(SDP_A)}\r\n\r\n"
    ).encode() + SDP_A
    core.receive(invite, Peer("udp", "127.0.0.1", 5060), 0.0)
    (offered,) = [o for o in core.drain() if isinstance(o, CallOffered)]
    assert offered.trunk == "quiet"
    core.answer(offered.call_id, SDP_B, 0.0, media=MediaPrefs(codecs=("PCMU",)))
    (ok,) = [
        o.message
        for o in core.drain()
        if isinstance(o, Send) and isinstance(o.message, Response) and o.message.status == 200
    ]
    assert ok.headers.get("Session-Expires") is None and ok.headers.get("Require") is None


def test_a_timer_the_callee_imposes_is_kept_by_a_trunk_with_timers_off() -> None:
    """Our INVITE on a trunk with timers off asks for none, but says ``Supported: timer``: a
    callee that imposes one (RFC 4028 §9) gets its refreshes, and the call lives on."""
    p = _pair(b=_policy(300))
    p.a.config.trunk_session_timers = {"quiet": TimerPolicy(enabled=False)}
    _cid, bcid = _call(p, trunk="quiet")
    assert p.sent("a", "INVITE")[0].headers.get("Session-Expires") is None
    _answer(p, bcid)
    assert p.sent("b", "200 INVITE")[0].headers.get("Session-Expires") == "300;refresher=uac"
    p.advance(1000)
    updates = _methods(p, "a", "UPDATE")
    assert len(updates) >= 6, "a refresh every 150 s"
    assert all(u.headers.get("Session-Expires") == "300;refresher=uac" for u in updates)
    assert not p.of("a", CallEnded) and not p.of("b", CallEnded)
