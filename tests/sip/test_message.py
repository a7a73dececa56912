"""Tier 1: SIP message parsing and serialisation on fixtures (RFC 3261 §7, §20, §25; RFC 4475)."""

from __future__ import annotations

import pytest

from sip.errors import SipParseError
from sip.headers import CSeq, Headers, NameAddr, Via, canonical_name, split_commas
from sip.message import Request, Response, StreamFramer, parse_message
from sip.uri import SipUri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: Bob <sip:bob@biloxi.example.com>\r\n"
    b'f: "Alice, A" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.example.com;transport=tcp>\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\n"
    b"v=0\nTRAILING"
)


def test_parse_request_compact_and_lists() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, Request)
    assert m.method == "INVITE"
    assert m.uri == SipUri(host="biloxi.example.com", user="bob")
    assert [v.branch for v in m.vias] == ["z9hG4bK776asdhds", "z9hG4bKp1", None]
    assert m.vias[1].sent_by == ("proxy.example.com", 5070)
    assert m.top_via.param("rport") == ""
    assert m.from_.display_name == "Alice, A"
    assert m.from_.tag == "1928301774"
    assert m.to.tag is None
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.cseq == CSeq(314159, "INVITE")
    assert m.contact is not None and m.contact.uri.transport == "tcp"
    assert m.headers.get_all("record-route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]
    assert m.content_type == "application/sdp"
    assert m.body == b"v=0\n"  # bytes past Content-Length are discarded (§18.3)


def test_round_trip_is_stable() -> None:
    m = parse_message(INVITE)
    again = parse_message(bytes(m))
    assert bytes(again) == bytes(m)
    assert b"Call-ID: a84b4c76e66710" in bytes(m)  # compact names serialise in long form
    assert bytes(m).endswith(b"Content-Length: 4\r\n\r\nv=0\n")


def test_response_round_trip() -> None:
    r = parse_message(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(r, Response)
    assert (r.status, r.reason, r.to.tag) == (180, "Ringing", "2")
    assert parse_message(bytes(r)).status == 180


def test_uri_full_grammar() -> None:
    u = SipUri.parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=x?subject=hi&p=1")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert u.param("lr") == "" and u.param("TRANSPORT") == "tcp"
    assert u.headers == (("subject", "hi"), ("p", "1"))
    assert str(u) == "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=x?subject=hi&p=1"


def test_name_addr_forms() -> None:
    a = NameAddr.parse("sip:bob@h;tag=xyz")  # addr-spec: params belong to the header
    assert a.tag == "xyz" and a.uri.params == ()
    b = NameAddr.parse('"Bob \\"B\\"" <sip:bob@h;transport=udp>;tag=1;expires=60')
    assert b.display_name == 'Bob \\"B\\"'
    assert b.uri.param("transport") == "udp" and b.param("expires") == "60"
    assert str(b.with_tag("9")) == '"Bob \\"B\\"" <sip:bob@h;transport=udp>;expires=60;tag=9'


def test_split_commas_respects_quotes_and_brackets() -> None:
    assert split_commas('"a, b" <sip:x@y;p=1,2>, <sip:z@w>') == [
        '"a, b" <sip:x@y;p=1,2>',
        "<sip:z@w>",
    ]
    h = Headers([("WWW-Authenticate", 'Digest realm="r", nonce="n"')])
    assert h.get_all("www-authenticate") == ['Digest realm="r", nonce="n"']


def test_an_empty_supported_or_allow_lists_nothing_but_an_empty_via_is_refused() -> None:
    # §25.1 allows "Supported:" with no option tag (baresip sends it on every INVITE)
    h = Headers([("Supported", ""), ("Allow", " "), ("Via", "")])
    assert h.get_all("Supported") == [] and h.get_all("Allow") == []
    with pytest.raises(SipParseError):
        h.get_all("Via")


def test_canonical_names() -> None:
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("CALL-id") == "Call-ID"
    assert canonical_name("x-custom-thing") == "X-Custom-Thing"
    assert canonical_name("cseq") == "CSeq"


def test_via_rport_received() -> None:
    v = Via.parse("SIP/2.0/udp 192.0.2.1:5060 ; branch=z9hG4bK1;rport")
    assert v.transport == "UDP" and v.port == 5060
    v2 = v.with_param("received", "198.51.100.7").with_param("rport", "4000")
    assert str(v2) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=198.51.100.7;rport=4000"


@pytest.mark.parametrize(
    ("data", "fragment", "status"),
    [
        (b"", "empty message", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n", "no blank line", 400),
        (
            INVITE.replace(b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""),
            "missing Call-ID",
            400,
        ),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), "does not match", 400),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: abc INVITE"), "bad CSeq", 400),
        (INVITE.replace(b"l: 4", b"l: 400"), "body shorter than Content-Length", 400),
        (INVITE.replace(b"INVITE sip:bob", b"INVITE tel:bob"), "unsupported URI scheme", 416),
        (INVITE.replace(b"SIP/2.0/UDP pc33", b"SIP/3.0/UDP pc33"), "bad Via protocol", 400),
        (INVITE.replace(b"t: Bob <sip", b"t: Bob sip"), "bad To header", 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7000"), "bad Max-Forwards", 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards 70"), "malformed header line", 400),
        (INVITE[:-20] + b"\xff\xfe\r\n\r\n", "not UTF-8", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", "more than 128", 400),
        (b"x" * 70000, "exceeds 65535", 513),
    ],
)
def test_exact_errors(data: bytes, fragment: str, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert fragment in str(info.value)
    assert info.value.status == status
    assert info.value.reason and "\n" not in info.value.reason


def test_missing_header_reason_phrase() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"CSeq: 314159 INVITE\r\n", b""))
    assert info.value.reason == "Missing CSeq Header"


def test_stream_framer_splits_and_waits() -> None:
    one = bytes(parse_message(INVITE))
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n" + one[:10]) == []
    out = f.feed(one[10:] + one + one[:-1])
    assert out == [one, one]
    assert f.feed(one[-1:]) == [one]
    assert f.buffered == 0


def test_stream_framer_requires_content_length() -> None:
    f = StreamFramer()
    with pytest.raises(SipParseError, match="missing Content-Length"):
        f.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
    with pytest.raises(SipParseError, match="missing Content-Length"):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", stream=True)


def test_stream_framer_size_limit() -> None:
    f = StreamFramer(max_size=100)
    with pytest.raises(SipParseError) as info:
        f.feed(b"A" * 101)
    assert info.value.status == 513
