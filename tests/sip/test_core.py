"""Tier 1/2: the UA core's answers to single messages: OPTIONS, policy, malformed input, auth."""

from __future__ import annotations

from sip.events import CallEnded, CallOffered, EndReason
from sip.headers import Via
from sip.message import Request, Response, parse_message
from sip.policy import TrunkPolicy
from sip.settings import TrunkSettings
from sip.transaction import Peer, Send
from sip.ua import CoreConfig, Credentials, SipCore
from sip.uri import SipUri
from tests.sip.pair import SDP_A, SDP_B, Pair

LOOP = Peer("udp", "127.0.0.1", 5090)
STRANGER = Peer("udp", "192.0.2.7", 5090)


def _request(method: str, *, to_tag: str = "", extra: str = "") -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK{method.lower()}1;rport\r\n"
        f"From: <sip:x@127.0.0.1>;tag=abc\r\nTo: <sip:bot@127.0.0.1>{tag}\r\n"
        f"Call-ID: {method.lower()}-1\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _responses(core: SipCore) -> list[tuple[Response, Peer]]:
    return [
        (s.message, s.peer)
        for s in core.drain()
        if isinstance(s, Send) and isinstance(s.message, Response)
    ]


def test_options_200_while_serving_503_while_draining() -> None:
    core = SipCore(CoreConfig())
    core.receive(_request("OPTIONS"), LOOP, 0.0)
    [(resp, peer)] = _responses(core)
    assert resp.status == 200 and peer == LOOP
    assert "INVITE" in (resp.headers.get("Allow") or "")
    assert resp.to.tag, "a final response to an out-of-dialog request carries a To tag"
    core.draining = True
    core.receive(_request("OPTIONS").replace(b"options1", b"options2"), LOOP, 0.0)
    assert _responses(core)[0][0].status == 503


def test_rport_and_received_are_stamped() -> None:
    core = SipCore(CoreConfig())
    data = _request("OPTIONS").replace(b"127.0.0.1:5090;branch", b"10.9.9.9:5999;branch")
    core.receive(data, LOOP, 0.0)
    [(resp, peer)] = _responses(core)
    assert resp.top_via.param("received") == "127.0.0.1"
    assert resp.top_via.param("rport") == "5090"
    assert peer == LOOP  # rport: back to the source, not to the Via's 10.9.9.9:5999


def test_no_trunk_loopback_only() -> None:
    core = SipCore(CoreConfig())
    core.receive(_request("INVITE"), STRANGER, 0.0)
    statuses = [r.status for r, _ in _responses(core)]
    assert statuses == [403]  # one stateless answer: no 100 Trying, no transaction
    assert core.layer.servers == {} and core.next_deadline() is None
    core.receive(
        _request("INVITE").replace(b"invite1", b"invite2").replace(b"invite-1", b"i-2"), LOOP, 0.0
    )
    assert [type(e) for e in core.drain() if not isinstance(e, Send)] == [CallOffered]


def test_offer_carries_the_invite_headers_in_order() -> None:
    """The call's owner reads the INVITE's headers from the offer, never from the core."""
    core = SipCore(CoreConfig())
    data = _request("INVITE", extra="X-Account: 42\r\nX-Account: 43\r\n")
    core.receive(data.replace(b"From: ", b"f: "), LOOP, 0.0)
    [offer] = [e for e in core.drain() if isinstance(e, CallOffered)]
    assert [name for name, _ in offer.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "X-Account", "X-Account",
        "Content-Length",
    ]  # fmt: skip
    assert offer.headers[1] == ("From", "<sip:x@127.0.0.1>;tag=abc")  # compact "f" spelt out
    assert offer.headers[6:8] == (("X-Account", "42"), ("X-Account", "43"))
    assert Via.parse(offer.headers[0][1]).param("rport") == "5090"  # stamped (RFC 3581 §4)


def test_trunk_allowlist() -> None:
    trunk = TrunkSettings(name="pbx", host="198.51.100.1", inbound_allow=["192.0.2.0/24"])
    core = SipCore(CoreConfig(), TrunkPolicy([trunk]))
    core.receive(_request("INVITE"), STRANGER, 0.0)
    offered = [e for e in core.drain() if isinstance(e, CallOffered)]
    assert offered and offered[0].trunk == "pbx"
    core.receive(
        _request("INVITE").replace(b"invite1", b"invite2").replace(b"invite-1", b"i-2"), LOOP, 0.0
    )
    assert [r.status for r, _ in _responses(core)] == [403]


def test_malformed_request_gets_400_with_reason() -> None:
    core = SipCore(CoreConfig())
    bad = _request("INVITE").replace(b"CSeq: 7 INVITE", b"CSeq: seven INVITE")
    core.receive(bad, LOOP, 0.0)
    [(resp, _)] = _responses(core)
    assert resp.status == 400 and "bad CSeq" in resp.reason
    core.receive(b"\x00garbage\r\n\r\n", LOOP, 0.0)
    assert core.drain() == []
    assert core.stats["malformed"] == 2 and core.stats["malformed_answered"] == 1


def test_unknown_method_501_and_stray_in_dialog_481() -> None:
    core = SipCore(CoreConfig())
    core.receive(_request("FROB"), LOOP, 0.0)
    assert _responses(core)[0][0].status == 501
    core.receive(_request("BYE", to_tag="zz"), LOOP, 0.0)
    assert _responses(core)[0][0].status == 481


def test_outbound_invite_answers_a_digest_challenge() -> None:
    """A trunk that challenges (401); the caller retries once with credentials and gets in;
    wrong credentials surface as a failed call with the 401."""
    env = {"PBX_PW": "s3cret"}
    trunk = TrunkSettings(
        name="pbx", host="127.0.0.1", username="alice", password_env="PBX_PW", inbound_digest=True
    )
    for password, expect_offer in (("s3cret", True), ("wrong", False)):
        p = Pair()
        p.b.policy = TrunkPolicy([trunk], env)
        cid = p.a.invite(
            SipUri(host="127.0.0.1", port=5062, user="bot"),
            SDP_A,
            p.now,
            credentials=Credentials("alice", password),
        )
        p.pump()
        assert len(p.sent("b", "401 INVITE")) == (1 if expect_offer else 2)
        assert bool(p.of("b", CallOffered)) is expect_offer
        if not expect_offer:
            assert p.of("a", CallEnded) == [CallEnded(cid, EndReason.FAILED, 401)]
        invites = p.sent("a", "INVITE")
        assert (invites[1].headers.get("Authorization") or "").startswith("Digest ")
        assert invites[1].cseq.seq == invites[0].cseq.seq + 1


def test_parse_of_our_own_output_round_trips() -> None:
    p = Pair()
    p.a.invite(SipUri(host="127.0.0.1", port=5062, user="bot"), SDP_A, p.now)
    p.pump()
    for _, msg in p.wire:
        assert bytes(parse_message(bytes(msg))) == bytes(msg)


def test_require_max_forwards_and_content_type_checks() -> None:
    core = SipCore(CoreConfig())
    core.receive(_request("INVITE", extra="Require: 100rel\r\n"), LOOP, 0.0)
    [(resp, _)] = _responses(core)
    assert resp.status == 420 and resp.headers.get("Unsupported") == "100rel"
    mf0 = _request("INVITE").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    core.receive(mf0.replace(b"invite1", b"invite3"), LOOP, 0.0)
    assert _responses(core)[0][0].status == 483
    body = b"hello"
    text = _request("INVITE", extra="Content-Type: text/plain\r\n").replace(b"invite1", b"inv4")
    text = text.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 5\r\n\r\n" + body)
    core.receive(text, LOOP, 0.0)
    assert _responses(core)[0][0].status == 415


def test_record_route_is_copied_and_becomes_the_route_set() -> None:
    """§12.1.1: the 200 copies Record-Route; our BYE carries it as Route (in order) and is
    addressed to the caller's Contact (the remote target), sent to where the INVITE came from
    (the proxy)."""
    core = SipCore(CoreConfig())
    rr = "Record-Route: <sip:lb1.example;lr>, <sip:lb2.example;lr>\r\n"
    contact = "Contact: <sip:caller@10.0.0.5:5099>\r\n"
    core.receive(_request("INVITE", extra=rr + contact), LOOP, 0.0)
    [offer] = [e for e in core.drain() if isinstance(e, CallOffered)]
    core.answer(offer.call_id, SDP_A, 0.0)
    [(ok, _)] = [(r, p) for r, p in _responses(core) if r.status == 200]
    assert ok.headers.get_all("Record-Route") == ["<sip:lb1.example;lr>", "<sip:lb2.example;lr>"]
    ack = _request("ACK", to_tag=ok.to.tag or "").replace(b"Call-ID: ack-1", b"Call-ID: invite-1")
    core.receive(ack, LOOP, 0.1)
    core.hangup(offer.call_id, 0.2)
    [bye] = [
        s for s in core.drain() if isinstance(s, Send) and getattr(s.message, "method", "") == "BYE"
    ]
    assert isinstance(bye.message, Request)
    assert str(bye.message.uri) == "sip:caller@10.0.0.5:5099"
    assert bye.message.headers.get_all("Route") == [
        "<sip:lb1.example;lr>",
        "<sip:lb2.example;lr>",
    ]
    assert bye.peer == LOOP


def test_reject_with_retry_after_and_draining_503s() -> None:
    core = SipCore(CoreConfig())
    core.receive(_request("INVITE"), LOOP, 0.0)
    [offer] = [e for e in core.drain() if isinstance(e, CallOffered)]
    core.reject(offer.call_id, 0.0, 503, "Too Many Calls", headers=(("Retry-After", "30"),))
    [(resp, _)] = [(r, p) for r, p in _responses(core) if r.status == 503]
    assert resp.reason == "Too Many Calls" and resp.headers.get("Retry-After") == "30"
    core.draining, core.retry_after = True, 42
    core.receive(_request("OPTIONS"), LOOP, 0.0)
    core.receive(_request("INVITE").replace(b"invite", b"inv9"), LOOP, 0.0)
    finals = [r for r, _ in _responses(core) if r.status == 503]
    assert [r.cseq.method for r in finals] == ["OPTIONS", "INVITE"]
    assert all(r.headers.get("Retry-After") == "42" for r in finals)


def test_ipv6_advertised_host_is_bracketed() -> None:
    core = SipCore(CoreConfig(host="::1"))
    assert str(core.contact("udp").uri) == "sip:rtbridge@[::1]:5060"
    assert Via.parse(core.via("udp")).host == "[::1]"
    cid = core.invite(SipUri(host="[::1]", port=5062, user="bot"), SDP_A, 0.0)
    [send] = [s for s in core.drain() if isinstance(s, Send)]
    assert send.peer == Peer("udp", "::1", 5062)
    assert parse_message(bytes(send.message)).call_id == cid


def test_refusals_are_reported_challenges_are_not() -> None:
    """A stranger's INVITE is a security notice (counted, never a call); draining 503s are
    reported as refused calls."""
    from sip.events import CallRefused, NoticeKind, SecurityNotice

    core = SipCore(CoreConfig())
    core.receive(_request("INVITE"), STRANGER, 0.0)
    out = core.drain()
    assert not [e for e in out if isinstance(e, CallRefused)]
    notices = [e for e in out if isinstance(e, SecurityNotice)]
    assert [(n.kind, n.source) for n in notices] == [(NoticeKind.REFUSED_REQUEST, STRANGER)]
    core.draining = True
    core.receive(
        _request("INVITE").replace(b"invite1", b"invite2").replace(b"invite-1", b"i-2"), LOOP, 0.0
    )
    assert [e.status for e in core.drain() if isinstance(e, CallRefused)] == [503]


def _established(*, lose_200: bool = False) -> tuple[Pair, str, Response]:
    """a calls b, b answers: the call id and b's 200 (its To tag is b's dialog tag);
    ``lose_200``: the 200 never reaches a."""
    p = Pair()
    if lose_200:
        p.drop = lambda side, msg: isinstance(msg, Response) and msg.status == 200
    cid = p.a.invite(SipUri(host="127.0.0.1", port=5062, user="bot"), SDP_A, p.now)
    p.pump()
    (offer,) = [e for e in p.events["b"] if isinstance(e, CallOffered)]
    p.b.answer(offer.call_id, SDP_B, p.now)
    p.pump()
    (ok,) = p.sent("b", "200 INVITE")
    assert isinstance(ok, Response)
    return p, cid, ok


def _sends(core: SipCore) -> list[Send]:
    return [s for s in core.drain() if isinstance(s, Send)]


def test_an_in_dialog_request_needs_both_tags_not_just_ours() -> None:
    """RFC 3261 §12.2.2: a dialog is its Call-ID and both tags. A BYE with our To tag and
    the wrong From tag (a third party who learnt the Call-ID and our tag) ends nothing."""
    p, cid, ok = _established()
    forged = (
        "BYE sip:bot@127.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.9:5090;branch=z9hG4bKforgedbye1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=WRONGTAG\r\n"
        f"To: {ok.headers.get('To')}\r\nCall-ID: {cid}\r\nCSeq: 99 BYE\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    p.b.receive(forged.encode(), Peer("udp", "127.0.0.9", 5090), p.now)
    [answer] = _sends(p.b)
    assert isinstance(answer.message, Response) and answer.message.status == 481
    assert not [e for e in p.events["b"] if isinstance(e, CallEnded)]
    p.a.hangup(cid, p.now)  # the caller's own BYE still ends it
    p.pump()
    assert [r.status for r in p.sent("b", "200 BYE")] == [200]
    assert [e.reason for e in p.events["b"] if isinstance(e, CallEnded)] == [EndReason.REMOTE_BYE]


def test_a_forged_2xx_with_an_inbound_call_s_call_id_is_stray() -> None:
    """A 200 to an INVITE we never sent (the call is inbound), from anyone who knows its
    Call-ID: it made b ACK it and send BYE, in a dialog that looked like the caller's own."""
    p, cid, ok = _established()
    forged = (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKnotours1\r\n"
        f"From: {ok.headers.get('From')}\r\nTo: <sip:evil@127.0.0.5:5099>;tag=evil\r\n"
        f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:evil@127.0.0.5:5099>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    stray = p.b.stats["stray"]
    p.b.receive(forged.encode(), Peer("udp", "127.0.0.5", 5099), p.now)
    assert _sends(p.b) == []  # no ACK, no BYE
    assert p.b.stats["stray"] == stray + 1
    p.advance(5.0)
    assert not [e for e in p.events["b"] if isinstance(e, CallEnded)]


def test_a_received_parameter_the_sender_wrote_is_replaced_by_the_source() -> None:
    """Over TCP a response whose connection is gone goes to the Via's received address: a
    sender's own received= would make us connect where it points."""
    core = SipCore(CoreConfig())
    data = _request("OPTIONS").replace(b";rport", b";received=127.0.0.7;rport")
    core.receive(data, LOOP, 0.0)
    [(resp, _)] = _responses(core)
    assert resp.top_via.param("received") == "127.0.0.1"
    via = Via.parse("SIP/2.0/TCP 127.0.0.1:5090;branch=z9hG4bK1;received=127.0.0.7;rport=47778")
    tcp = Peer("tcp", "127.0.0.1", 40000)
    assert SipCore._via_fallback(via, tcp) == Peer("tcp", "127.0.0.1", 47778)


def test_tel_uris_in_from_and_to_are_a_call_and_an_unreadable_to_is_still_answered() -> None:
    """RFC 3261 §20.20, §20.39: From and To take any URI, and carriers send tel: there. They
    were refused (From: 400) or, for To, not answered at all: the caller retransmitted for
    32 s. A Contact must be a SIP URI (§8.1.1.8): in-dialog requests go there."""
    core = SipCore(CoreConfig())
    data = (
        _request("INVITE", extra="Contact: <sip:gw@127.0.0.1:5090>\r\n")
        .replace(b"<sip:x@127.0.0.1>;tag=abc", b'"Alice" <tel:+1-415-555-0100>;tag=abc')
        .replace(b"To: <sip:bot@127.0.0.1>", b"To: <tel:+15550100>")
    )
    core.receive(data, LOOP, 0.0)
    [offer] = [e for e in core.drain() if isinstance(e, CallOffered)]
    assert str(offer.caller.uri) == "tel:+1-415-555-0100"
    assert offer.caller.display_name == "Alice"
    for header, status in (
        (b"Contact: <tel:+14155550100>\r\n", 416),  # refused as it is parsed
        (b"Record-Route: <tel:+14155550100>\r\n", 416),
        (b"", 400),  # Missing Contact: nowhere to send in-dialog requests, From is tel:
    ):
        tel_from = _request("INVITE").replace(b"<sip:x@127.0.0.1>", b"<tel:+14155550100>")
        tel_from = tel_from.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + header)
        fresh = b"i-" + header[:5]  # a new Call-ID and branch: a new request
        core.receive(tel_from.replace(b"invite-1", fresh).replace(b"invite1", fresh), LOOP, 0.0)
        [(resp, _)] = [(r, p) for r, p in _responses(core) if r.status >= 200]
        assert resp.status == status, (resp.status, resp.reason)
    garbled = _request("OPTIONS").replace(b"To: <sip:bot@127.0.0.1>", b"To: <sip:bot@127.0.0.1")
    core.receive(garbled, LOOP, 0.0)
    [(resp, _)] = _responses(core)
    assert resp.status == 400 and "To" in resp.reason
    to = resp.headers.get("To") or ""
    assert to.startswith("<sip:bot@127.0.0.1;tag=")  # as sent, with our tag


def test_a_response_whose_contact_is_no_sip_uri_is_dropped_not_a_crash() -> None:
    """A 200 to our INVITE with a tel: Contact: nowhere to send the ACK or a BYE. It is
    dropped as malformed as it is parsed (it reached dialog creation, raised out of the
    core and left the call confirmed with no dialog)."""
    p, cid, ok = _established(lose_200=True)
    forged = bytes(ok).replace(b"Contact: <sip:bob@127.0.0.1:5062", b"Contact: <tel:+15550100")
    assert b"tel:+15550100" in forged
    p.a.receive(forged, p.peer_of("b"), p.now)  # raises nothing
    assert p.a.stats["malformed"] >= 1
    assert not [e for e in p.events["a"] if isinstance(e, CallEnded)]
    assert cid in p.a.calls
