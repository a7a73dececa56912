"""Digest authentication against SIPp, in both directions.

- An INVITE challenged with 407 is retried with credentials: SIPp plays
  ``scenarios/invite_407.xml`` (407, field-by-field checks of the retried INVITE's
  Proxy-Authorization, 200 with SDP, ACK, BYE). The caller is a raw UDP UAC built from
  ``sip.message`` values, ``sip.auth.DigestClient`` and ``sip.offer_answer`` (RFC 3261
  sections 13.2, 17.1.1.3 and 22.3); the digest is recomputed independently with hashlib,
  because SIPp 3.6.1 cannot verify a Proxy-Authorization. (tests/sip/test_sipp.py runs the same
  scenario through the driver's trunk credentials.)
- SIPp as a client answers ``sip.auth.DigestVerifier``'s challenge
  (``scenarios/auth_uac_register.xml``): the right password is accepted, a wrong one is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from pathlib import Path

import pytest

from sip.auth import (
    DigestClient,
    DigestCredentials,
    DigestVerifier,
    Verification,
    VerifyOutcome,
    choose_challenge,
)
from sip.headers import Headers, NameAddr, Via
from sip.message import Request, Response, parse_message, reason_phrase
from sip.offer_answer import make_offer, parse_answer
from sip.sdp import SessionDescription
from sip.uri import SipUri
from tests.sip.sipp_support import (
    SCENARIOS,
    finish_sipp,
    free_port,
    open_client,
    start_sipp,
    unattended,
)
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")

USER, PASSWORD = "rtbridge", "invite-secret"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Uac:
    """Just enough of an INVITE client to exercise the challenge exchange."""

    def __init__(self, port: int, target: SipUri) -> None:
        self.port = port
        self.target = target
        self.call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        self.from_ = NameAddr(SipUri(host="127.0.0.1", user=USER)).with_tag(secrets.token_hex(4))
        self.cseq = 0

    def request(
        self,
        method: str,
        *,
        uri: SipUri | None = None,
        to: str | None = None,
        branch: str | None = None,
        cseq: int | None = None,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        h = Headers()
        h.add("Via", str(Via("UDP", "127.0.0.1", self.port, (("branch", branch),))))
        h.add("Max-Forwards", "70")
        h.add("From", str(self.from_))
        h.add("To", to or str(NameAddr(self.target)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("Contact", str(NameAddr(SipUri(host="127.0.0.1", user=USER, port=self.port))))
        for name, value in extra:
            h.add(name, value)
        if body:
            h.add("Content-Type", "application/sdp")
        return Request(h, body, method, uri or self.target)


async def test_invite_challenged_with_407_is_retried_with_credentials(tmp_path: Path) -> None:
    sipp_port = free_port()
    proc = await start_sipp("invite_407.xml", sipp_port, tmp_path)
    transport, client = await open_client(sipp_port)
    try:
        target = SipUri(host="127.0.0.1", user="bot", port=sipp_port)
        uac = Uac(client.port, target)
        offer = make_offer("127.0.0.1", 40000, ["PCMU", "PCMA"])
        first = uac.request("INVITE", body=bytes(offer))
        challenged = await client(first)
        assert challenged is not None and challenged.status == 407
        # ACK for a non-2xx final: same branch and CSeq number, To with the tag (§17.1.1.3).
        ack = uac.request(
            "ACK", to=challenged.headers.get("To"), branch=first.top_via.branch, cseq=1
        )
        transport.sendto(bytes(ack), ("127.0.0.1", sipp_port))

        challenge = choose_challenge(challenged.headers.get_all("Proxy-Authenticate"))
        digest = DigestClient(USER, PASSWORD)
        value = digest.authorize(challenge, "INVITE", str(target), bytes(offer))
        retry = uac.request("INVITE", body=bytes(offer), extra=(("Proxy-Authorization", value),))
        assert retry.cseq.seq == first.cseq.seq + 1
        answered = await client(retry)
        assert answered is not None and answered.status == 200, answered

        media = parse_answer(offer, SessionDescription.parse(answered.body))
        assert media.codec.name == "PCMU" and media.remote is not None

        contact = answered.contact
        assert contact is not None
        to = answered.headers.get("To")
        ack2 = uac.request("ACK", uri=contact.uri, to=to, cseq=retry.cseq.seq)
        transport.sendto(bytes(ack2), ("127.0.0.1", sipp_port))
        bye = await client(uac.request("BYE", uri=contact.uri, to=to))
        assert bye is not None and bye.status == 200
    finally:
        transport.close()
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output

    # The digest, recomputed from RFC 2617 section 3.2.2 without sip.auth.
    creds = DigestCredentials.parse(value)
    assert (creds.username, creds.realm, creds.nonce) == (USER, "proxy.sipp", challenge.nonce)
    ha1 = md5(f"{USER}:proxy.sipp:{PASSWORD}")
    ha2 = md5(f"INVITE:{target}")
    expected = md5(f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:auth:{ha2}")
    assert creds.response == expected
    assert isinstance(answered, Response)


class Registrar(asyncio.DatagramProtocol):
    """Answers REGISTER with 401 + challenges until DigestVerifier accepts, then 200."""

    def __init__(self, verifier: DigestVerifier) -> None:
        self.verifier = verifier
        self.results: list[Verification] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = parse_message(data)
        assert isinstance(request, Request) and self.transport is not None
        now = asyncio.get_running_loop().time()
        h = Headers()
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in request.headers.get_all(name):
                h.add(name, value)
        stale = False
        credentials = request.headers.get("Authorization")
        if credentials is not None:
            result = self.verifier.verify(credentials, request.method, now, uri=str(request.uri))
            self.results.append(result)
            if result.ok:
                self.transport.sendto(bytes(Response(h, b"", 200, "OK")), addr)
                return
            stale = result.outcome is VerifyOutcome.STALE
        for challenge in self.verifier.challenges(now, stale=stale):
            h.add("WWW-Authenticate", str(challenge))
        self.transport.sendto(bytes(Response(h, b"", 401, reason_phrase(401))), addr)


@pytest.mark.parametrize("password", ["trunk-secret", "a-wrong-guess"])
async def test_sipp_answers_our_digest_challenge(tmp_path: Path, password: str) -> None:
    sipp = require_peer("sipp")
    verifier = DigestVerifier("rtbridge", {"trunk": "trunk-secret"}.get)
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(
        lambda: Registrar(verifier), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sipp,
            "-sf",
            str(SCENARIOS / "auth_uac_register.xml"),
            f"127.0.0.1:{port}",
            "-p",
            str(free_port()),
            "-au",
            "trunk",
            "-ap",
            password,
            "-m",
            "1",
            *unattended(),
            "-trace_err",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        rc, output = await finish_sipp(proc, tmp_path)
    finally:
        transport.close()
    (result,) = registrar.results
    assert result.username == "trunk"
    if password == "trunk-secret":
        assert rc == 0, output
        assert result.outcome is VerifyOutcome.OK
    else:
        assert rc != 0  # SIPp expected a 200 and got a second 401
        assert (result.outcome, result.reason) == (VerifyOutcome.WRONG, "wrong password")
