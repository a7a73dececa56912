"""SDP parsing, serialisation and RFC 3264 offer/answer against offers real peers send."""

from __future__ import annotations

import pytest

from sip.errors import SipError
from sip.offer_answer import (
    LocalSession,
    NegotiationError,
    RtpEndpoint,
    TelephoneEvent,
    is_hold,
    make_offer,
    negotiate,
    parse_answer,
    remote_endpoint,
    rtcp_endpoint,
)
from sip.sdp import Connection, Direction, RtpMap, SdpError, SessionDescription


def crlf(text: str) -> str:
    return "".join(line.strip() + "\r\n" for line in text.strip().splitlines())


# `sipp -sd uac`, keywords filled in as SIPp does for 127.0.0.1 and media port 6000.
SIPP_UAC = crlf("""
    v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
""")

# `sipp -sd uac_pcap`: A-law plus telephone-event with a gap in the event list.
SIPP_UAC_PCAP = crlf("""
    v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6002 RTP/AVP 8 101
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-11,16
""")

# Captured from baresip 1.0.0 (`/dial`) with g711, g722 and opus loaded.
BARESIP = (
    "v=0\r\no=- 3235259641 1484732505 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\n"
    "t=0 0\r\na=tool:baresip 1.0.0\r\nm=audio 45874 RTP/AVP 0 8 9 96 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\n"
    "a=rtcp-rsize\r\na=ssrc:290137719 cname:sip:rt@127.0.0.1\r\na=minptime:20\r\na=ptime:20\r\n"
)

# Captured from linphonec (liblinphone 5): IPv6, static PTs 0/8/18 without rtpmap, three
# telephone-event clock rates.
LINPHONE = (
    "v=0\r\no=linphone 3000 929 IN IP6 fd00::2\r\ns=Talk\r\nc=IN IP6 fd00::2\r\nt=0 0\r\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 99 100 101\r\na=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1\r\na=rtpmap:97 speex/16000\r\na=fmtp:97 vbr=on\r\n"
    "a=rtpmap:98 speex/8000\r\na=fmtp:98 vbr=on\r\na=fmtp:18 annexb=yes\r\n"
    "a=rtpmap:99 telephone-event/48000\r\na=rtpmap:100 telephone-event/16000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=rtcp-fb:* trr-int 5000\r\n"
    "a=rtcp-fb:* ccm tmmbr\r\n"
)

# A Chrome-style offer (many codecs, ICE, DTLS-SRTP), once as Chrome sends it and once as a
# gateway that terminates DTLS would pass it on (plain RTP/AVPF, same codec list).
CHROME = crlf("""
    v=0
    o=- 4611731400430051336 2 IN IP4 127.0.0.1
    s=-
    t=0 0
    a=group:BUNDLE 0
    a=extmap-allow-mixed
    a=msid-semantic: WMS
    m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
    c=IN IP4 0.0.0.0
    a=rtcp:9 IN IP4 0.0.0.0
    a=ice-ufrag:3cJ1
    a=ice-pwd:b9pZaZ2ZSmHoIbMPVpo8yrJq
    a=ice-options:trickle
    a=fingerprint:sha-256 9A:4E:45:D9:55:7B:6E:87:18:84:30:A3:2C:4A:1A:E0
    a=setup:actpass
    a=mid:0
    a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
    a=sendrecv
    a=msid:- 0f5c2a5e-41d4-4b1d-8b5b-3f0c1d6b2a71
    a=rtcp-mux
    a=rtpmap:111 opus/48000/2
    a=rtcp-fb:111 transport-cc
    a=fmtp:111 minptime=10;useinbandfec=1
    a=rtpmap:63 red/48000/2
    a=fmtp:63 111/111
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:13 CN/8000
    a=rtpmap:110 telephone-event/48000
    a=rtpmap:126 telephone-event/8000
    a=ssrc:1911961254 cname:mJ5k0rkB4xSmWUO3
""")
CHROME_AVPF = CHROME.replace("m=audio 9 UDP/TLS/RTP/SAVPF", "m=audio 40000 RTP/AVPF").replace(
    "c=IN IP4 0.0.0.0", "c=IN IP4 127.0.0.1"
)

FIXTURES = {
    "sipp_uac": SIPP_UAC,
    "sipp_uac_pcap": SIPP_UAC_PCAP,
    "baresip": BARESIP,
    "linphone": LINPHONE,
    "chrome": CHROME,
    "chrome_avpf": CHROME_AVPF,
}


def audio_lines(answer: SessionDescription) -> list[str]:
    return str(answer).split("\r\n")


# --- parse / serialise ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixtures_round_trip_byte_for_byte(name: str) -> None:
    text = FIXTURES[name]
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_parse_gives_typed_values() -> None:
    sdp = SessionDescription.parse(LINPHONE)
    assert sdp.origin.username == "linphone"
    assert sdp.origin.session_version == 929
    assert sdp.connection == Connection("fd00::2", "IP6")
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 7078, "RTP/AVP")
    assert audio.payload_types == (96, 97, 98, 0, 8, 18, 99, 100, 101)
    assert audio.rtpmaps()[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.codec(18) == RtpMap(18, "G729", 8000)  # static, no rtpmap line
    assert audio.fmtp(18) == "annexb=yes"
    assert audio.fmtp(0) is None
    assert audio.direction is None and sdp.media_direction(0) is Direction.SENDRECV
    assert (
        sdp.attribute(
            "rtcp-xr",
        )
        is not None
    )


def test_ptime_maxptime_direction_and_media_level_connection() -> None:
    text = crlf("""
        v=0
        o=- 1 1 IN IP4 10.0.0.1
        s=-
        c=IN IP4 10.0.0.1
        t=0 0
        a=recvonly
        m=audio 5004 RTP/AVP 0
        c=IN IP4 10.0.0.2
        a=ptime:30
        a=maxptime:60
        a=sendonly
        m=video 0 RTP/AVP 96
        a=rtpmap:96 VP8/90000
    """)
    sdp = SessionDescription.parse(text)
    assert sdp.media[0].ptime == 30 and sdp.media[0].maxptime == 60
    assert sdp.media_direction(0) is Direction.SENDONLY  # media level wins
    assert sdp.media_direction(1) is Direction.RECVONLY  # inherited from session level
    assert remote_endpoint(sdp, 0) == RtpEndpoint("10.0.0.2", 5004)
    assert remote_endpoint(sdp, 1) is None  # port 0
    assert str(sdp) == text


def test_lf_only_and_trailing_whitespace_are_accepted() -> None:
    sdp = SessionDescription.parse(SIPP_UAC.replace("\r\n", " \n") + "\n\n")
    assert str(sdp) == SIPP_UAC


def test_runs_of_spaces_between_fields_are_tolerated() -> None:
    sloppy = SIPP_UAC.replace("o=user1 53655765", "o=user1  53655765").replace(
        "m=audio 6000 RTP/AVP 0", "m=audio  6000 RTP/AVP  0"
    )
    assert str(SessionDescription.parse(sloppy)) == SIPP_UAC


def test_decimal_ptime_is_accepted() -> None:
    sdp = SessionDescription.parse(SIPP_UAC + "a=ptime:20.0\r\n")
    assert sdp.media[0].ptime == 20


def test_unknown_attributes_and_session_lines_survive() -> None:
    text = crlf("""
        v=0
        o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
        s=Session
        i=A Seminar on the session description protocol
        u=http://www.example.com/seminars/sdp.pdf
        e=j.doe@example.com (Jane Doe)
        p=+1 617 555-6011
        c=IN IP4 224.2.17.12/127
        b=CT:128
        t=2873397496 2873404696
        r=7d 1h 0 25h
        z=2882844526 -1h 2898848070 0
        a=x-vendor:something odd
        m=audio 49170/2 RTP/AVP 0
        i=voice
        b=AS:64
        a=x-flag
        a=fmtp:0 foo
    """)
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    assert sdp.connection is not None and sdp.connection.suffix == "127"
    assert sdp.media[0].port_count == 2
    assert sdp.attribute("x-vendor") == "something odd"
    assert sdp.media[0].attribute("x-flag") == ""


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", None, "empty"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", 1, "first line must be v="),
        ("v=1\r\n", 1, "unsupported SDP version"),
        ("v=0\r\ns=-\r\n", None, "o= line is missing"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", None, "s= line is missing"),
        ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\n", 2, "sess-id"),
        ("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", 2, "6 space-separated"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nq=what\r\n", 4, "unknown SDP line type"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", 4, "m= port"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP\r\n", 4, "m= needs"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\ns=x\r\n", 5, "not allowed"),
        (
            "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            5,
            "rtpmap",
        ),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=ptime:abc\r\n", 5, "ptime"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\n", 4, "c= needs"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nr=1 2 3\r\n", 4, "r= must follow"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\ns=again\r\n", 4, "appears twice"),
        ("v=0\r\nno equals sign\r\n", 2, "expected '<type>=<value>'"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\na=sendonly:x\r\n", 4, "takes no value"),
    ],
)
def test_malformed_sdp_raises_one_precise_error(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text)
    assert info.value.line == line
    assert fragment in str(info.value)
    assert isinstance(info.value, SipError)
    assert info.value.status == 400


def test_non_utf8_and_oversized_bodies() -> None:
    with pytest.raises(SdpError, match="not UTF-8"):
        SessionDescription.parse(b"v=0\r\ns=\xff\r\n")
    with pytest.raises(SdpError, match="larger than"):
        SessionDescription.parse(b"v=0\r\n" + b"a=x\r\n" * 20000)


# --- negotiate (we answer) ------------------------------------------------------------------


def test_sipp_uac_gets_pcmu_and_no_telephone_event() -> None:
    answer = negotiate(SessionDescription.parse(SIPP_UAC), ["PCMA", "PCMU"], "203.0.113.5", 20000)
    assert answer.media.codec.name == "PCMU" and answer.media.codec.payload_type == 0
    assert answer.media.telephone_event is None
    assert answer.media.remote == RtpEndpoint("127.0.0.1", 6000)
    assert str(answer) == crlf("""
        v=0
        o=rtbridge 0 0 IN IP4 203.0.113.5
        s=rtbridge
        c=IN IP4 203.0.113.5
        t=0 0
        m=audio 20000 RTP/AVP 0
        a=rtpmap:0 PCMU/8000
        a=ptime:20
        a=sendrecv
    """)


def test_sipp_uac_pcap_keeps_telephone_event_pt() -> None:
    answer = negotiate(SessionDescription.parse(SIPP_UAC_PCAP), ["PCMU", "PCMA"], "127.0.0.1", 4000)
    assert answer.media.codec.name == "PCMA"
    assert answer.media.telephone_event == TelephoneEvent(101, 8000, "0-16")
    audio = answer.sdp.media[0]
    assert audio.formats == ("8", "101")
    assert audio.fmtp(101) == "0-16"


@pytest.mark.parametrize(
    ("prefs", "name", "pt", "te_pt"),
    [
        (["PCMU"], "PCMU", 0, 101),
        (["PCMA", "PCMU"], "PCMA", 8, 101),
        (["G722", "PCMU"], "G722", 9, 101),
        (["opus", "PCMU"], "opus", 96, 101),
    ],
)
def test_baresip_preference_order_picks_exactly_one_codec(
    prefs: list[str], name: str, pt: int, te_pt: int
) -> None:
    answer = negotiate(SessionDescription.parse(BARESIP), prefs, "127.0.0.1", 4000)
    assert (answer.media.codec.name, answer.media.codec.payload_type) == (name, pt)
    audio = answer.sdp.media[0]
    assert audio.formats == (str(pt), str(te_pt))  # one codec + telephone-event, nothing else
    assert audio.rtpmaps()[pt].encoding == name
    assert [a.name for a in audio.attributes].count("rtpmap") == 2
    assert audio.ptime == 20


def test_linphone_static_pts_without_rtpmap_and_te_rate_follows_codec() -> None:
    offer = SessionDescription.parse(LINPHONE)
    pcma = negotiate(offer, ["PCMA"], "::1", 4000)
    assert pcma.media.codec.payload_type == 8
    assert pcma.media.telephone_event == TelephoneEvent(101, 8000)
    assert pcma.sdp.connection == Connection("::1", "IP6")
    assert pcma.media.remote == RtpEndpoint("fd00::2", 7078)
    opus = negotiate(offer, ["opus"], "::1", 4000)
    assert opus.media.codec == opus.media.codec.__class__("opus", 96, 48000, 2, "useinbandfec=1")
    assert opus.media.telephone_event == TelephoneEvent(99, 48000)
    assert "a=rtpmap:96 opus/48000/2" in audio_lines(opus.sdp)
    # The offerer's fmtp is for our encoder, not echoed; ours is configured.
    assert not any(line.startswith("a=fmtp:96") for line in audio_lines(opus.sdp))
    fec = negotiate(offer, ["opus"], "::1", 4000, codec_fmtp={"OPUS": "useinbandfec=1"})
    assert "a=fmtp:96 useinbandfec=1" in audio_lines(fec.sdp)


def test_baresip_stereo_opus_fmtp_is_not_echoed() -> None:
    answer = negotiate(SessionDescription.parse(BARESIP), ["opus"], "127.0.0.1", 4000)
    assert answer.media.codec.fmtp == "stereo=1;sprop-stereo=1"
    assert "stereo" not in str(answer)


def test_bracketed_ipv6_local_address_is_written_bare() -> None:
    session = LocalSession.create("[::1]")
    answer = negotiate(SessionDescription.parse(LINPHONE), ["PCMU"], "[::1]", 4000, session=session)
    assert answer.sdp.connection == Connection("::1", "IP6")
    assert answer.sdp.origin.address == "::1" and answer.sdp.origin.addrtype == "IP6"
    assert Connection.for_address("pbx.example") == Connection("pbx.example", "IP4")


def test_chrome_dtls_offer_is_rejected_with_488_naming_the_transport() -> None:
    with pytest.raises(NegotiationError) as info:
        negotiate(SessionDescription.parse(CHROME), ["PCMU"], "127.0.0.1", 4000)
    assert info.value.status == 488
    assert "UDP/TLS/RTP/SAVPF" in str(info.value)


def test_chrome_codec_list_over_avpf() -> None:
    answer = negotiate(SessionDescription.parse(CHROME_AVPF), ["G722", "PCMU"], "127.0.0.1", 4000)
    assert answer.media.codec.payload_type == 9
    assert answer.media.telephone_event == TelephoneEvent(126, 8000)
    assert answer.sdp.media[0].proto == "RTP/AVPF"
    assert answer.sdp.media[0].formats == ("9", "126")


def test_no_common_codec_raises_488() -> None:
    offer = SessionDescription.parse(SIPP_UAC)
    with pytest.raises(NegotiationError) as info:
        negotiate(offer, ["PCMA", "G722"], "127.0.0.1", 4000)
    assert info.value.status == 488 and info.value.warning == 305
    assert "offers PCMU, we accept PCMA, G722" in str(info.value)


def test_offer_without_audio_raises_304() -> None:
    offer = SessionDescription.parse(
        crlf("""
        v=0
        o=- 1 1 IN IP4 127.0.0.1
        s=-
        c=IN IP4 127.0.0.1
        t=0 0
        m=video 5000 RTP/AVP 96
        a=rtpmap:96 VP8/90000
    """)
    )
    with pytest.raises(NegotiationError) as info:
        negotiate(offer, ["PCMU"], "127.0.0.1", 4000)
    assert info.value.warning == 304


def test_other_streams_rejected_with_port_zero_in_order() -> None:
    offer = SessionDescription.parse(
        crlf("""
        v=0
        o=- 1 1 IN IP4 127.0.0.1
        s=-
        c=IN IP4 127.0.0.1
        t=0 0
        m=video 5000 RTP/AVP 96
        a=rtpmap:96 VP8/90000
        m=audio 0 RTP/AVP 0
        m=audio 5002 RTP/SAVP 0
        m=audio 5004 RTP/AVP 0 8
        m=audio 5006 RTP/AVP 0
    """)
    )
    answer = negotiate(offer, ["PCMU"], "127.0.0.1", 4000)
    got = [(m.media, m.port, m.proto) for m in answer.sdp.media]
    assert got == [
        ("video", 0, "RTP/AVP"),
        ("audio", 0, "RTP/AVP"),
        ("audio", 0, "RTP/SAVP"),
        ("audio", 4000, "RTP/AVP"),
        ("audio", 0, "RTP/AVP"),
    ]
    assert answer.media.media_index == 3
    assert answer.sdp.media[0].formats == ("96",)
    assert answer.media.remote == RtpEndpoint("127.0.0.1", 5004)


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_direction_answers(offered: str, answered: Direction) -> None:
    offer = SessionDescription.parse(SIPP_UAC + f"a={offered}\r\n")
    answer = negotiate(offer, ["PCMU"], "127.0.0.1", 4000)
    assert answer.media.direction is answered
    assert answer.sdp.media[0].direction is answered
    assert is_hold(offer) is (offered in ("sendonly", "inactive"))


def test_we_may_restrict_direction() -> None:
    answer = negotiate(
        SessionDescription.parse(SIPP_UAC),
        ["PCMU"],
        "127.0.0.1",
        4000,
        direction=Direction.SENDONLY,
    )
    assert answer.media.direction is Direction.SENDONLY


def test_rfc2543_hold_with_null_connection() -> None:
    offer = SessionDescription.parse(SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert is_hold(offer)
    assert negotiate(offer, ["PCMU"], "127.0.0.1", 4000).media.remote is None


def test_ptime_is_mirrored_or_defaulted() -> None:
    with_ptime = SessionDescription.parse(SIPP_UAC + "a=ptime:30\r\n")
    assert negotiate(with_ptime, ["PCMU"], "127.0.0.1", 1).sdp.media[0].ptime == 30
    without = SessionDescription.parse(SIPP_UAC)
    assert negotiate(without, ["PCMU"], "127.0.0.1", 1, ptime=40).media.ptime == 40


def test_unknown_preference_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unsupported codec 'AMR'"):
        negotiate(SessionDescription.parse(SIPP_UAC), ["AMR"], "127.0.0.1", 1)


# --- session versions -----------------------------------------------------------------------


def test_local_session_create_is_unique() -> None:
    a, b = LocalSession.create("127.0.0.1"), LocalSession.create("127.0.0.1")
    assert a.session_id != b.session_id and a.version == a.session_id
    sdp = make_offer("127.0.0.1", 1, ["PCMU"], session=a)
    assert SessionDescription.parse(str(sdp)).origin.session_id == a.session_id


def test_origin_version_increments_only_when_the_body_changes() -> None:
    session = LocalSession("127.0.0.1", session_id=424242, version=1)
    offer = SessionDescription.parse(SIPP_UAC)
    first = negotiate(offer, ["PCMU"], "127.0.0.1", 4000, session=session).sdp
    assert (first.origin.session_id, first.origin.session_version) == (424242, 1)
    again = negotiate(offer, ["PCMU"], "127.0.0.1", 4000, session=session).sdp
    assert again.origin.session_version == 1  # session refresh: same SDP, same version
    hold = SessionDescription.parse(SIPP_UAC + "a=sendonly\r\n")
    held = negotiate(hold, ["PCMU"], "127.0.0.1", 4000, session=session).sdp
    assert held.origin.session_version == 2
    reoffer = make_offer("127.0.0.1", 4000, ["PCMU"], session=session)
    assert reoffer.origin.session_version == 3 and reoffer.origin.session_id == 424242


# --- make_offer / parse_answer (we offer) ---------------------------------------------------


def test_make_offer_with_our_fmtp() -> None:
    offer = make_offer("127.0.0.1", 1, ["opus"], codec_fmtp={"opus": "useinbandfec=1"})
    assert offer.media[0].fmtp(111) == "useinbandfec=1"


def test_make_offer_lists_codecs_in_order_with_telephone_event() -> None:
    offer = make_offer("198.51.100.7", 30000, ["PCMA", "PCMU", "opus"])
    assert str(offer) == crlf("""
        v=0
        o=rtbridge 0 0 IN IP4 198.51.100.7
        s=rtbridge
        c=IN IP4 198.51.100.7
        t=0 0
        m=audio 30000 RTP/AVP 8 0 111 101 110
        a=rtpmap:8 PCMA/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:111 opus/48000/2
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=rtpmap:110 telephone-event/48000
        a=fmtp:110 0-16
        a=ptime:20
        a=sendrecv
    """)


def test_offer_answer_between_two_of_our_own_sides() -> None:
    offer = make_offer("127.0.0.1", 30000, ["PCMU", "PCMA"])
    answer = negotiate(offer, ["PCMA", "PCMU"], "127.0.0.2", 40000)
    ours = parse_answer(offer, answer.sdp)
    assert ours.codec.name == "PCMA" and ours.codec.payload_type == 8
    assert ours.telephone_event == TelephoneEvent(101, 8000, "0-16")
    assert ours.remote == RtpEndpoint("127.0.0.2", 40000)
    assert ours.direction is Direction.SENDRECV


def test_parse_answer_from_sipp_uas() -> None:
    # `sipp -sn uas` answers with its own fixed SDP: PCMU only, no telephone-event.
    offer = make_offer("127.0.0.1", 30000, ["PCMA", "PCMU"])
    answer = SessionDescription.parse(SIPP_UAC.replace("6000", "6010"))
    ours = parse_answer(offer, answer)
    assert ours.codec.name == "PCMU" and ours.telephone_event is None
    assert ours.remote == RtpEndpoint("127.0.0.1", 6010)


def test_parse_answer_uses_the_answers_payload_type_and_direction() -> None:
    offer = make_offer("127.0.0.1", 30000, ["opus", "PCMU"])
    answer = SessionDescription.parse(
        crlf("""
        v=0
        o=- 5 5 IN IP4 127.0.0.1
        s=-
        c=IN IP4 127.0.0.1
        t=0 0
        m=audio 6000 RTP/AVP 120 97
        a=rtpmap:120 OPUS/48000/2
        a=rtpmap:97 telephone-event/48000
        a=ptime:40
        a=recvonly
    """)
    )
    ours = parse_answer(offer, answer)
    assert ours.codec.payload_type == 120 and ours.ptime == 40
    assert ours.telephone_event == TelephoneEvent(97, 48000, "0-15")
    assert ours.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("answer_media", "fragment"),
    [
        ("m=audio 6000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n", "has 2 m-lines"),
        ("m=video 6000 RTP/AVP 96\r\n", "is video"),
        ("m=audio 0 RTP/AVP 0\r\n", "rejected every audio stream"),
        ("m=audio 6000 RTP/AVP 18\r\n", "no codec that we offered"),
    ],
)
def test_parse_answer_errors(answer_media: str, fragment: str) -> None:
    offer = make_offer("127.0.0.1", 30000, ["PCMU"])
    head = "v=0\r\no=- 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    with pytest.raises(NegotiationError, match=fragment):
        parse_answer(offer, SessionDescription.parse(head + answer_media))


def test_rtcp_endpoint() -> None:
    sdp = SessionDescription.parse(SIPP_UAC)
    assert rtcp_endpoint(sdp, 0) == RtpEndpoint("127.0.0.1", 6001)
    named = SessionDescription.parse(SIPP_UAC + "a=rtcp:7001 IN IP4 10.1.1.1\r\n")
    assert rtcp_endpoint(named, 0) == RtpEndpoint("10.1.1.1", 7001)
    port_only = SessionDescription.parse(SIPP_UAC + "a=rtcp:7001\r\n")
    assert rtcp_endpoint(port_only, 0) == RtpEndpoint("127.0.0.1", 7001)
    muxed = SessionDescription.parse(SIPP_UAC + "a=rtcp-mux\r\na=rtcp:7001\r\n")
    assert rtcp_endpoint(muxed, 0) == RtpEndpoint("127.0.0.1", 6000)
    held = SessionDescription.parse(
        SIPP_UAC.replace("IN IP4 127.0.0.1\r\nt", "IN IP4 0.0.0.0\r\nt")
    )
    assert rtcp_endpoint(held, 0) is None


@pytest.mark.parametrize(
    ("connection", "why"),
    [
        ("c=IN IP4 224.0.0.251/127\r\n", "multicast"),
        ("c=IN IP4 239.1.1.1/16\r\n", "multicast"),
        ("c=IN IP4 255.255.255.255\r\n", "broadcast"),
        ("c=IN IP4 ::1\r\n", "not an IP4 address"),
        ("c=IN IP6 127.0.0.1\r\n", "not an IP6 address"),
        ("", "no connection address"),
    ],
)
def test_an_offer_whose_media_address_takes_no_call_is_refused(connection: str, why: str) -> None:
    """The agent's audio would go to a multicast group, the broadcast address or nowhere
    (these offers were answered 200 and the call went on); a hold (0.0.0.0) is fine."""
    offer = (
        f"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\n{connection}t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    with pytest.raises(NegotiationError, match=why) as info:
        negotiate(SessionDescription.parse(offer), ["PCMU"], "127.0.0.1", 5000)
    assert (info.value.status, info.value.warning) == (488, 301)  # the address, not a codec
    held = offer.replace(connection, "c=IN IP4 0.0.0.0\r\n") if connection else offer
    if connection:
        assert negotiate(SessionDescription.parse(held), ["PCMU"], "127.0.0.1", 5000)
        # an answer to our offer (an outbound call) naming such an address is refused too
        ours = make_offer("127.0.0.1", 5000, ["PCMU"])
        answer = held.replace("c=IN IP4 0.0.0.0\r\n", connection)
        with pytest.raises(NegotiationError, match=why):
            parse_answer(ours, SessionDescription.parse(answer))
