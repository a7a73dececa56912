"""RTCP (RFC 3550 §6): packet formats, compound packets, errors, fuzz, and a report exchange."""

from __future__ import annotations

import contextlib
import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.clock import VirtualClock
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    RtcpReporter,
    RtcpUnknown,
    SenderReport,
    SourceDescription,
    build_compound,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
)
from media.rtp import ReceiverStats, RtpClock, RtpPacket, RtpSendState


def test_sender_report_wire_format() -> None:
    block = ReportBlock(0x22222222, 25, -2, 0x0001FFFF, 40, 0x12345678, 65536)
    sr = SenderReport(0x11111111, 0x83AA7E80_80000000, 160, 3, 480, (block,))
    data = bytes(sr)
    assert data[:4] == bytes.fromhex("81c8000c")  # V=2 RC=1, PT=200, 12 words after header
    assert data[28:36] == bytes.fromhex("22222222 19fffffe")  # fraction 25, lost -2 (24-bit)
    assert parse_compound(data) == [sr]
    assert len(data) == 52


def test_compound_round_trip_with_all_types() -> None:
    pkts: list[RtcpPacket] = [
        ReceiverReport(7, (ReportBlock(8, 0, 0, 100, 3),)),
        SourceDescription.cname(7, "rtbridge@127.0.0.1"),
        RtcpUnknown(204, 1, b"\x00\x00\x00\x07name"),
        Bye((7, 9), "call ended"),
    ]
    data = build_compound(pkts)
    assert len(data) % 4 == 0
    back = parse_compound(data)
    assert back == pkts
    sdes = back[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "rtbridge@127.0.0.1"
    assert is_rtcp(data) and not is_rtcp(bytes(RtpPacket(0, 1, 2, 3)))


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "x" * 255])
def test_sdes_padding_for_every_length(cname: str) -> None:
    data = bytes(SourceDescription.cname(1, cname))
    assert len(data) % 4 == 0
    (pkt,) = parse_compound(data)
    assert isinstance(pkt, SourceDescription) and pkt.chunks[0].cname == cname


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x80\xc9", "truncated"),
        (bytes.fromhex("40c90001 00000001"), "version"),
        (bytes.fromhex("80c90005 00000001"), "length"),
        (bytes.fromhex("81c90001 00000001"), "count"),  # one block announced, none present
        (bytes.fromhex("80c80001 00000001"), "truncated"),  # SR without sender info
        (bytes.fromhex("a0c90001 00000000"), "padding"),
        (bytes.fromhex("a0c90001 00000001 80c90000"), "padding"),  # padding not on the last
        (bytes.fromhex("81ca0001 00000001"), "sdes"),  # chunk without null terminator
        (bytes.fromhex("81ca0002 00000001 01050000"), "sdes"),  # item overruns
        (bytes.fromhex("82cb0001 00000001"), "bye"),
        (bytes.fromhex("80cb0001 09000000"), "bye"),  # reason of 9 bytes overruns
        (bytes.fromhex("80c90001 00000001 00"), "truncated"),  # stray byte
    ],
)
def test_parse_errors_are_precise(data: bytes, kind: str) -> None:
    with pytest.raises(RtcpError) as info:
        parse_compound(data)
    assert info.value.kind == kind


@given(st.binary(max_size=160))
def test_fuzz_parse_raises_only_rtcp_error(data: bytes) -> None:
    try:
        pkts = parse_compound(data)
    except RtcpError:
        return
    parse_compound(build_compound(pkts))  # what parsed can be rebuilt and parsed again


@given(st.binary(min_size=4, max_size=160))
def test_fuzz_parse_plausible_headers(data: bytes) -> None:
    words = (len(data) - 4) // 4
    head = bytes([0x80 | (data[0] & 0x3F), 200 + data[1] % 5]) + words.to_bytes(2, "big")
    with contextlib.suppress(RtcpError):
        parse_compound(head + data[4 : 4 + 4 * words])


blocks = st.builds(
    ReportBlock,
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(-0x800000, 0x7FFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.lists(blocks, max_size=31),
    st.text(max_size=40),
)
def test_fuzz_build_parse_round_trip(
    ssrc: int, ntp: int, bl: list[ReportBlock], cname: str
) -> None:
    pkts: list[RtcpPacket] = [
        SenderReport(ssrc, ntp, 1, 2, 3, tuple(bl)),
        SourceDescription.cname(ssrc, cname),
        Bye((ssrc,), cname[:20] or None),
    ]
    assert parse_compound(build_compound(pkts)) == pkts


def test_field_validation() -> None:
    with pytest.raises(RtcpError):
        ReportBlock(1, fraction_lost=256)
    with pytest.raises(RtcpError):
        ReportBlock(1, cumulative_lost=0x800000)
    with pytest.raises(RtcpError):
        ReceiverReport(1, tuple(ReportBlock(i) for i in range(32)))
    with pytest.raises(RtcpError):
        Bye((1,), "x" * 256)


def test_ntp_conversion() -> None:
    ntp = ntp_from_unix(1_700_000_000.5)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert ntp & 0xFFFFFFFF == 0x80000000
    assert ntp_middle32(ntp) == ((ntp >> 16) & 0xFFFFFFFF)


def test_report_exchange_loss_jitter_lsr_dlsr_and_rtt() -> None:
    clock = VirtualClock(1_700_000_000.0)  # serves as wall and monotonic clock here
    rng = random.Random(2)
    a_send = RtpSendState(0xAAAA, first_sequence=0)
    a_clock = RtpClock(8000, clock.now(), 1000)
    a = RtcpReporter(a_send, "a@test", wall=clock, rtp_clock=a_clock, rng=rng)
    b_send = RtpSendState(0xBBBB, first_sequence=0)
    b = RtcpReporter(b_send, "b@test", wall=clock, rng=rng)
    b_stats = ReceiverStats(8000)
    # A sends 100 packets of 20 ms; B loses 5 of them.
    start = clock.now()
    for n in range(100):
        p = a_send.packet(0, a_clock.timestamp(start + n * 0.02), bytes(160))
        if n % 20 != 7:
            b_stats.update(p, start + n * 0.02 + 0.05)
    clock.advance_to(start + 2.0)
    sr_data = a.report(clock.now())
    sr = parse_compound(sr_data)[0]
    assert isinstance(sr, SenderReport)
    assert (sr.packet_count, sr.octet_count) == (100, 16000)
    assert sr.rtp_timestamp == a_clock.timestamp(clock.now())
    assert sr.ntp_timestamp == ntp_from_unix(clock.now())
    clock.advance(0.05)  # one-way delay 50 ms
    b.receive(sr_data, clock.now())
    clock.advance(1.0)  # B reports one second later
    rr_data = b.report(clock.now(), [b_stats])
    rr, sdes = parse_compound(rr_data)
    assert isinstance(rr, ReceiverReport) and isinstance(sdes, SourceDescription)
    (block,) = rr.reports
    assert block.ssrc == 0xAAAA
    assert block.cumulative_lost == 5
    assert block.fraction_lost == (5 << 8) // 99  # the probation packet is not expected
    assert block.lsr == ntp_middle32(sr.ntp_timestamp)
    assert block.dlsr == 65536
    assert block.jitter == 0
    clock.advance(0.05)
    a.receive(rr_data, clock.now())
    assert a.rtt == pytest.approx(0.1, abs=2 / 65536)
    # A sent nothing since its last report: the next is an RR. BYE ends the session.
    assert isinstance(parse_compound(a.report(clock.now()))[0], ReceiverReport)
    b.receive(a.bye("hangup"), clock.now())
    assert b.peer_bye == Bye((0xAAAA,), "hangup")
    assert 2.5 <= a.next_deadline(clock.now()) - clock.now() <= 7.5


def test_sender_reports_naming_made_up_sources_keep_no_memory_and_lose_no_lsr() -> None:
    """Anything on the peer's host may send SRs naming a new SSRC each: the reporter keeps
    the latest few senders only (it kept every one: 37 MB for 200,000), and the real
    sender's report still carries its LSR."""
    clock = VirtualClock(1_700_000_000.0)
    a_send = RtpSendState(0xAAAA, first_sequence=0)
    a_clock = RtpClock(8000, clock.now(), 1000)
    a = RtcpReporter(a_send, "a@test", wall=clock, rtp_clock=a_clock, rng=random.Random(3))
    b = RtcpReporter(RtpSendState(0xBBBB, first_sequence=0), "b@test", wall=clock)
    stats = ReceiverStats(8000)
    for n in range(10):
        stats.update(a_send.packet(0, a_clock.timestamp(clock.now() + n * 0.02), bytes(160)), 0)
    clock.advance(1.0)
    real = a.report(clock.now())
    b.receive(real, clock.now())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for ssrc in range(1, 20_001):  # made-up senders, after the real one's report
            forged = SenderReport(ssrc, ntp_from_unix(clock.now()), 0, 0, 0)
            b.receive(build_compound([forged]), clock.now())
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown  # about 4 MB when every sender was kept
    b.receive(real, clock.now())  # the real sender reports again
    (block,) = parse_compound(b.report(clock.now() + 1, [stats]))[0].reports
    assert block.ssrc == 0xAAAA and block.lsr != 0
