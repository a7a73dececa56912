"""SDES keys in SDP (RFC 4568) and the SRTP they set up (RFC 3711, libsrtp through pylibsrtp):
an SRTP offer answered and the audio protected by one side is read by the other; what a
trunk's ``media_encryption`` refuses; keys never in a repr or a redacted log line."""

from __future__ import annotations

import base64

import pytest

from media.rtp import RtpPacket
from media.srtp import SrtpError, SrtpSession
from sip.offer_answer import NegotiationError, make_offer, negotiate, parse_answer
from sip.sdes import SUITES, CryptoAttribute, Encryption, new_key, redact
from sip.sdp import SessionDescription

KEY = bytes(range(30))
OPTIONAL = Encryption.OPTIONAL
LINE = f"1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(KEY).decode()}"


def _offer(proto: str = "RTP/SAVP", crypto: str | None = LINE) -> SessionDescription:
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio 5000 {proto} 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
    ]
    if crypto is not None:
        lines.append(f"a=crypto:{crypto}")
    return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode())


def test_a_crypto_line_round_trips_and_never_shows_its_key() -> None:
    attr = CryptoAttribute.parse(LINE)
    assert (attr.tag, attr.suite, attr.key) == (1, "AES_CM_128_HMAC_SHA1_80", KEY)
    assert attr.usable and str(attr) == LINE
    secret = base64.b64encode(KEY).decode()
    assert secret not in repr(attr)
    redacted = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[redacted]\r\n"
    assert redact(f"a=crypto:{LINE}\r\n") == redacted
    with_mki = CryptoAttribute.parse(LINE + "|2^20|1:4")
    assert not with_mki.usable  # MKI is not supported (Twilio sends none)
    with pytest.raises(Exception, match="base64"):
        CryptoAttribute.parse("1 AES_CM_128_HMAC_SHA1_80 inline:%%%")


@pytest.mark.parametrize("proto", ["RTP/SAVP", "RTP/AVP"])
def test_an_sdes_offer_is_answered_with_our_own_key_and_the_audio_flows_both_ways(
    proto: str,
) -> None:
    answer = negotiate(_offer(proto), ["PCMU"], "127.0.0.1", 4000, encryption=OPTIONAL)
    keys = answer.media.srtp
    assert keys is not None and keys.remote == KEY and keys.local != KEY
    (media,) = answer.sdp.media
    assert media.proto == proto
    (ours,) = [CryptoAttribute.parse(a.value or "") for a in media.attributes if a.name == "crypto"]
    assert ours.tag == 1 and ours.key == keys.local
    assert base64.b64encode(keys.local).decode() not in repr(answer.media)

    caller = SrtpSession("AES_CM_128_HMAC_SHA1_80", KEY, keys.local)
    callee = SrtpSession(keys.suite, keys.local, keys.remote)
    rtp = bytes(RtpPacket(0, 1, 160, 0x1234, b"\xff" * 160))
    wire = caller.protect(rtp)
    assert wire != rtp and len(wire) == len(rtp) + 10  # 80-bit tag
    assert callee.unprotect(wire) == rtp
    back = callee.protect(rtp)
    assert caller.unprotect(back) == rtp
    with pytest.raises(SrtpError):
        callee.unprotect(wire)  # a replay
    tampered = bytearray(caller.protect(bytes(RtpPacket(0, 2, 320, 0x1234, b"\x00" * 160))))
    tampered[20] ^= 1
    with pytest.raises(SrtpError):
        callee.unprotect(bytes(tampered))


def test_media_encryption_decides_what_is_acceptable() -> None:
    with pytest.raises(NegotiationError, match="off"):
        negotiate(_offer("RTP/SAVP"), ["PCMU"], "127.0.0.1", 4000, encryption=Encryption.OFF)
    plain = negotiate(_offer("RTP/AVP"), ["PCMU"], "127.0.0.1", 4000, encryption=Encryption.OFF)
    assert plain.media.srtp is None and "crypto" not in bytes(plain.sdp).decode()
    with pytest.raises(NegotiationError, match="plain RTP"):
        negotiate(
            _offer("RTP/AVP", None), ["PCMU"], "127.0.0.1", 4000, encryption=Encryption.REQUIRED
        )
    with pytest.raises(NegotiationError, match="no usable SDES"):
        negotiate(
            _offer("RTP/SAVP", LINE + "|1:4"), ["PCMU"], "127.0.0.1", 4000, encryption=OPTIONAL
        )


@pytest.mark.parametrize("encryption", [Encryption.OPTIONAL, Encryption.REQUIRED])
def test_our_srtp_offer_settles_keys_from_the_answer(encryption: Encryption) -> None:
    offer = make_offer("127.0.0.1", 4000, ["PCMU"], encryption=encryption)
    assert offer.media[0].proto == ("RTP/SAVP" if encryption is Encryption.REQUIRED else "RTP/AVP")
    offered = [a for a in offer.media[0].attributes if a.name == "crypto"]
    assert len(offered) == len(SUITES)
    answer = negotiate(offer, ["PCMU"], "127.0.0.1", 5000, encryption=OPTIONAL)
    ours = parse_answer(offer, answer.sdp)
    theirs = answer.media.srtp
    assert ours.srtp is not None and theirs is not None
    assert ours.srtp.suite == theirs.suite == "AES_CM_128_HMAC_SHA1_80"
    assert (ours.srtp.local, ours.srtp.remote) == (theirs.remote, theirs.local)


@pytest.mark.parametrize("suite", list(SUITES))
def test_every_suite_protects_rtp_and_rtcp(suite: str) -> None:
    a_key, b_key = new_key(suite), new_key(suite)
    a, b = SrtpSession(suite, a_key, b_key), SrtpSession(suite, b_key, a_key)
    rtp = bytes(RtpPacket(8, 7, 1120, 0xCAFE, b"\xd5" * 160))
    assert b.unprotect(a.protect(rtp)) == rtp
    rtcp = bytes.fromhex("80c90001") + (0xCAFE).to_bytes(4, "big")  # an empty receiver report
    assert b.unprotect_rtcp(a.protect_rtcp(rtcp)) == rtcp
    with pytest.raises(SrtpError):
        SrtpSession(suite, a_key[:10], b_key)


def test_an_aes_256_offer_is_answered_in_kind_and_its_audio_read() -> None:
    """A trunk that offers only AEAD_AES_256_GCM (RFC 7714 section 12: 32-byte key, 12-byte
    salt) gets it: our answer carries a 44-byte key of that suite and both sides read each
    other's packets."""
    key = bytes(range(44))
    line = f"1 AEAD_AES_256_GCM inline:{base64.b64encode(key).decode()}"
    answer = negotiate(_offer(crypto=line), ["PCMU"], "127.0.0.1", 4000, encryption=OPTIONAL)
    keys = answer.media.srtp
    assert keys is not None and keys.suite == "AEAD_AES_256_GCM"
    assert keys.remote == key and len(keys.local) == 44
    caller = SrtpSession("AEAD_AES_256_GCM", key, keys.local)
    callee = SrtpSession(keys.suite, keys.local, keys.remote)
    rtp = bytes(RtpPacket(0, 1, 160, 0x1234, b"\xff" * 160))
    wire = caller.protect(rtp)
    assert len(wire) == len(rtp) + 16  # GCM's 128-bit tag
    assert callee.unprotect(wire) == rtp and caller.unprotect(callee.protect(rtp)) == rtp
