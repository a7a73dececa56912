"""tel: URIs (RFC 3966 §3) and the serialiser's refusal of CR/LF in anything it is handed
(defence in depth against header injection: nothing is sent)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sip.errors import LocalProtocolError, SipParseError
from sip.headers import Headers
from sip.message import Request, Response, parse_message
from sip.uri import SipUri, TelUri, parse_uri


@pytest.mark.parametrize(
    ("text", "number", "digits", "params"),
    [
        ("tel:+1-201-555-0123", "+1-201-555-0123", "+12015550123", ()),
        ("tel:+15550100;ext=12", "+15550100", "+15550100", (("ext", "12"),)),
        ("TEL:+44(20)7946.0000", "+44(20)7946.0000", "+442079460000", ()),
        ("tel:7042;phone-context=example.com", "7042", "7042", (("phone-context", "example.com"),)),
    ],
)
def test_tel_uris_parse(text: str, number: str, digits: str, params: tuple[object, ...]) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, TelUri)
    assert (uri.number, uri.digits, uri.params, uri.scheme) == (number, digits, params, "tel")
    assert uri.is_global is number.startswith("+")
    assert TelUri.parse(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("tel:+1555?x=1", "'?' and '@'"),
        ("tel:+1555@evil.example", "'?' and '@'"),
        ("tel:5550100", "phone-context"),
        ("tel:+", "bad telephone number"),
        ("tel:+1 555", "bad telephone number"),
        ("mailto:a@b", "unsupported URI scheme"),
    ],
)
def test_bad_tel_uris_are_precise_errors(text: str, why: str) -> None:
    with pytest.raises(SipParseError, match=why):
        parse_uri(text)


def test_parse_uri_takes_sip_too() -> None:
    assert parse_uri("sips:desk@pbx.example.com:5061") == SipUri(
        host="pbx.example.com", user="desk", port=5061, scheme="sips"
    )


def _refer(refer_to: str, uri: SipUri | None = None) -> Request:
    return Request(
        method="REFER",
        uri=uri or SipUri(host="127.0.0.1", user="caller"),
        headers=Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"),
                ("Call-ID", "a@b"),
                ("Refer-To", refer_to),
            ]
        ),
    )


@pytest.mark.parametrize(
    "value",
    [
        "<sip:x@127.0.0.1>\r\nContact: <sip:evil@192.0.2.66>",
        "<sip:x@127.0.0.1>\nX-Injected: 1",
        "<sip:x@127.0.0.1>\rX: 1",
        "<sip:x@127.0.0.1>\x00",
    ],
)
def test_a_header_value_with_a_line_break_is_never_serialised(value: str) -> None:
    with pytest.raises(LocalProtocolError, match="header 'Refer-To'"):
        bytes(_refer(value))


def test_a_start_line_with_a_line_break_is_never_serialised() -> None:
    # SipUri keeps a parameter value as given: the serialiser is the last line of defence
    uri = SipUri.parse("sip:caller@127.0.0.1;x=1\r\nX-Injected: 1")
    with pytest.raises(LocalProtocolError, match="the start line"):
        bytes(_refer("<sip:desk@127.0.0.1>", uri))
    resp = Response(status=200, reason="OK\r\nX: 1", headers=Headers([("Call-ID", "a@b")]))
    with pytest.raises(LocalProtocolError, match="the start line"):
        bytes(resp)


def test_clean_messages_serialise_as_before() -> None:
    assert bytes(_refer("<sip:desk@127.0.0.1>")) == (
        b"REFER sip:caller@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        b"Call-ID: a@b\r\nRefer-To: <sip:desk@127.0.0.1>\r\nContent-Length: 0\r\n\r\n"
    )


def test_a_bare_cr_in_a_received_header_is_a_parse_error() -> None:
    msg = (
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\rX-Evil: 1\r\n"
        b"From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(SipParseError, match="bare CR"):
        parse_message(msg)


async def test_the_driver_drops_an_injected_message_and_keeps_working() -> None:
    """A REFER whose Refer-To carries CR/LF reaches the driver's send path (as if every check
    above it had failed): nothing leaves the socket, and the next message still goes out."""
    from sip.driver import start_sip
    from sip.settings import SipSettings

    class NoCalls:
        async def on_offer(self, call: object) -> None:
            return None

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    endpoint = await start_sip(
        SipSettings(bind_host="127.0.0.1", udp_port=0, tcp_port=None), NoCalls()
    )
    try:
        from sip.transaction import Peer

        target = Peer("udp", "127.0.0.1", peer.getsockname()[1])
        bad = _refer("<sip:x@127.0.0.1>\r\nContact: <sip:evil@192.0.2.66>")
        bad.headers.add("From", "<sip:a@127.0.0.1>;tag=1")
        bad.headers.add("To", "<sip:b@127.0.0.1>")
        bad.headers.add("CSeq", "1 REFER")
        bad.headers.replace_all("Via", [str(endpoint.core.via("udp"))])
        sent = asyncio.ensure_future(endpoint.send_request(bad, target))
        good = Request(method="OPTIONS", uri=SipUri(host="127.0.0.1"), headers=Headers())
        good.headers.add("Via", str(endpoint.core.via("udp")))
        good.headers.add("From", "<sip:a@127.0.0.1>;tag=2")
        good.headers.add("To", "<sip:b@127.0.0.1>")
        good.headers.add("Call-ID", "good@127.0.0.1")
        good.headers.add("CSeq", "1 OPTIONS")
        good_sent = asyncio.ensure_future(endpoint.send_request(good, target))
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(peer, 65535), 5)
        assert data.startswith(b"OPTIONS ") and b"Call-ID: good@127.0.0.1" in data
        assert await asyncio.wait_for(sent, 5) is None  # the REFER failed as a send error
        good_sent.cancel()
        with pytest.raises(BlockingIOError):
            peer.recv(65535)  # and nothing else ever arrived
    finally:
        await endpoint.close()
        peer.close()
