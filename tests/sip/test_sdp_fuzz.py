"""Property tests: malformed, truncated and mutated SDP raises only SdpError (RFC 8866 parser)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.offer_answer import is_hold, negotiate, remote_endpoint, rtcp_endpoint
from sip.sdp import Direction, SdpError, SessionDescription
from tests.sip.test_sdp import FIXTURES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = sorted(FIXTURES.values())
SDP_ALPHABET = st.sampled_from(list("vosicbtmaerzkup=:/ \r\n0123456789-.IPN4A6RTVFSXGUMC*\xe9\x00"))


def exercise(text: str | bytes) -> None:
    """Parse; on success, every accessor and the offer/answer code must behave too."""
    try:
        sdp = SessionDescription.parse(text)
    except SdpError:
        return
    again = SessionDescription.parse(str(sdp))
    assert again == sdp  # serialising is idempotent
    for index, media in enumerate(sdp.media):
        media.rtpmaps()
        for pt in media.payload_types:
            media.codec(pt)
            media.fmtp(pt)
        _ = (media.ptime, media.maxptime, media.direction, sdp.media_direction(index))
        remote_endpoint(sdp, index)
        rtcp_endpoint(sdp, index)
    is_hold(sdp)
    for prefs in (["PCMU", "PCMA"], ["opus", "G722"]):
        try:
            answer = negotiate(sdp, prefs, "127.0.0.1", 4000, direction=Direction.SENDRECV)
        except SdpError:
            continue
        assert len(answer.sdp.media) == len(sdp.media)
        assert SessionDescription.parse(str(answer)) == answer.sdp
        for index, media in enumerate(answer.sdp.media):
            if index == answer.media.media_index:
                assert media.port == 4000 and 1 <= len(media.formats) <= 2
                assert media.formats[0] == str(answer.media.codec.payload_type)
            else:
                assert media.port == 0 and media.media == sdp.media[index].media


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    exercise(text)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=2000))
def test_truncated_fixtures(seed: str, cut: int) -> None:
    exercise(seed[:cut])


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=2000), st.text(SDP_ALPHABET, max_size=6)),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_fixtures(seed: str, edits: list[tuple[int, str]]) -> None:
    text = seed
    for position, insert in edits:
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + len(insert) // 2 :]
    exercise(text)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_shuffled_and_dropped_lines(seed: str, data: st.DataObject) -> None:
    lines = seed.split("\r\n")
    picked = data.draw(st.lists(st.sampled_from(lines), max_size=len(lines) + 3))
    exercise("\r\n".join(lines[:1] + picked))


def test_huge_numbers_are_sdp_errors_not_value_errors() -> None:
    digits = "9" * 5000
    for text in (
        f"v=0\r\no=- {digits} 1 IN IP4 a\r\ns=-\r\n",
        f"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP {digits}\r\n",
    ):
        exercise(text)
