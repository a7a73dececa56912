"""RTP packets (RFC 3550 §5), sequence arithmetic and receiver statistics (§A.1, §A.3, §A.8)."""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp import (
    ReceiverStats,
    RtpClock,
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpSendState,
    SequenceUnwrapper,
    TimestampUnwrapper,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)
from tests.support.pcap import read_udp
from tests.support.peers import require_peer


def test_round_trip_plain_g711_packet() -> None:
    p = RtpPacket(0, 4321, 160_000, 0xDEADBEEF, bytes(range(160)), marker=True)
    data = bytes(p)
    assert len(data) == 172
    assert data[:12] == bytes.fromhex("80 80 10e1 00027100 deadbeef")
    assert RtpPacket.parse(data) == p
    assert RtpPacket.parse(memoryview(data)) == p


def test_round_trip_with_csrc_extension_and_padding() -> None:
    p = RtpPacket(
        111,
        65535,
        0xFFFFFFFF,
        1,
        b"opus",
        csrc=(1, 2, 0xFFFFFFFF),
        extension=RtpExtension(0xBEDE, b"\x10\xff\x00\x00"),
        padding=4,
    )
    data = bytes(p)
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[-1] == 4 and len(data) == 12 + 12 + 8 + 4 + 4
    assert RtpPacket.parse(data) == p


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (b"", "truncated", "0 bytes is shorter than its header"),
        (bytes.fromhex("8000000100000000000000"), "truncated", "11 bytes"),
        (bytes.fromhex("400000010000000000000000"), "version", "RTP version 1"),
        (bytes.fromhex("820000010000000000000000") + b"\0" * 4, "csrc", "CSRC count 2"),
        (bytes.fromhex("900000010000000000000000"), "extension", "header is missing"),
        (bytes.fromhex("90000001000000000000000000000002") + b"\0" * 4, "extension", "overruns"),
        (bytes.fromhex("a0000001000000000000000000"), "padding", "padding count 0"),
        (
            bytes.fromhex("a0000001000000000000000003"),
            "padding",
            "padding count 3 is invalid for 1",
        ),
    ],
)
def test_parse_errors_are_precise(data: bytes, kind: str, message: str) -> None:
    with pytest.raises(RtpError, match=message) as info:
        RtpPacket.parse(data)
    assert info.value.kind == kind


def test_fields_are_validated_on_construction() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"payload_type": 128}, "field"),
        ({"sequence_number": 65536}, "field"),
        ({"timestamp": -1}, "field"),
        ({"ssrc": 1 << 32}, "field"),
        ({"csrc": tuple(range(16))}, "csrc"),
        ({"padding": 256}, "padding"),
    ]
    for kwargs, kind in cases:
        args: dict[str, Any] = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0}
        with pytest.raises(RtpError) as info:
            RtpPacket(**(args | kwargs))
        assert info.value.kind == kind
    with pytest.raises(RtpError):
        RtpExtension(1, b"abc")


@given(st.binary(max_size=200))
def test_fuzz_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        return
    again = RtpPacket.parse(bytes(p))
    assert again == p


@given(st.binary(min_size=12, max_size=120))
def test_fuzz_parse_version2_headers(data: bytes) -> None:
    data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        return
    assert len(bytes(p)) == len(data)


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(RtpExtension, st.integers(0, 0xFFFF), st.binary(max_size=8).map(lambda b: b * 4)),
    padding=st.integers(0, 255),
)


@given(packets)
def test_fuzz_build_parse_round_trip(p: RtpPacket) -> None:
    assert RtpPacket.parse(bytes(p)) == p


@pytest.mark.peer("sipp")
def test_sipp_g711a_capture_parses_and_round_trips() -> None:
    require_peer("sipp")
    dgrams = read_udp(Path("/usr/share/sip-tester/g711a.pcap"))
    assert len(dgrams) == 236
    pkts = [RtpPacket.parse(d.payload) for d in dgrams]
    assert all(bytes(p) == d.payload for p, d in zip(pkts, dgrams, strict=True))
    assert {p.payload_type for p in pkts} == {8}
    assert {len(p.payload) for p in pkts} == {240}  # 30 ms packets
    assert all(
        seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in itertools.pairwise(pkts)
    )
    assert all(ts_diff(b.timestamp, a.timestamp) == 240 for a, b in itertools.pairwise(pkts))
    stats = ReceiverStats(8000)
    for d, p in zip(dgrams, pkts, strict=True):
        stats.update(p, d.time)
    snap = stats.snapshot()
    assert (stats.lost, snap.fraction_lost) == (0, 0)
    assert stats.received == 235  # the first packet is the §A.1 probation packet
    assert 0 <= stats.jitter_ms < 5


def test_sequence_and_timestamp_arithmetic() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767 and seq_diff(32768, 0) == -32768
    assert seq_add(65535, 2) == 1
    assert ts_diff(5, 0xFFFFFFFB) == 10
    assert ts_diff(0xFFFFFFFB, 5) == -10
    assert ts_add(0xFFFFFF00, 0x200) == 0x100
    u = SequenceUnwrapper()
    seqs = [65533, 65534, 0, 65535, 1, 2, 65532, 3]
    assert [u.unwrap(s) for s in seqs] == [65533, 65534, 65536, 65535, 65537, 65538, 65532, 65539]
    assert u.highest == 65539
    tu = TimestampUnwrapper()
    assert [tu.unwrap(t) for t in (0xFFFFFF60, 0, 0xFFFFFEC0, 160)] == [
        0xFFFFFF60,
        1 << 32,
        0xFFFFFEC0,
        (1 << 32) + 160,
    ]


def stream(seqs: list[int], ssrc: int = 9, ptime: int = 160) -> list[RtpPacket]:
    return [RtpPacket(0, s & 0xFFFF, (s * ptime) & 0xFFFFFFFF, ssrc, bytes(ptime)) for s in seqs]


def test_receiver_stats_loss_across_wrap_and_fraction_per_interval() -> None:
    st_ = ReceiverStats(8000)
    seqs = [s for s in range(65500, 65500 + 100) if s not in (65530, 65540, 65541)]
    for i, p in enumerate(stream(seqs)):
        st_.update(p, i * 0.02)
    # Probation consumed 65500; base is 65501: expected 99, received 96.
    assert st_.expected == 99 and st_.received == 96 and st_.lost == 3
    snap = st_.snapshot()
    assert snap.fraction_lost == (3 << 8) // 99
    assert snap.cumulative_lost == 3
    assert snap.extended_highest_seq == 65500 + 99
    for i, p in enumerate(stream(list(range(65600, 65650)))):
        st_.update(p, 2 + i * 0.02)
    assert st_.snapshot().fraction_lost == 0  # nothing lost in the new interval
    assert st_.snapshot().fraction_lost == 0  # empty interval


def test_receiver_stats_duplicates_reorder_restart_and_new_ssrc() -> None:
    st_ = ReceiverStats(8000)
    for i, p in enumerate(stream([1, 2, 3, 3, 5, 4, 6])):
        st_.update(p, i * 0.02)
    assert st_.expected == 5 and st_.received == 6 and st_.lost == -1
    # A jump of 20000: ignored until a second sequential packet confirms the restart.
    assert st_.update(stream([20000])[0], 1.0) is False
    assert st_.update(stream([20001])[0], 1.02) is True
    assert st_.extended_highest_seq == 20001 and st_.expected == 1
    # A new SSRC is a new source (§8.2): statistics restart.
    st_.update(stream([7], ssrc=10)[0], 2.0)
    st_.update(stream([8], ssrc=10)[0], 2.02)
    assert st_.ssrc == 10 and st_.ssrc_changes == 1 and st_.received == 1


def test_interarrival_jitter_matches_rfc3550_a8() -> None:
    rng = random.Random(5)
    st_ = ReceiverStats(8000)
    arrivals = [n * 0.02 + rng.uniform(0, 0.015) for n in range(500)]
    ref = 0.0
    prev: tuple[float, int] | None = None
    for n, t in enumerate(arrivals):
        p = stream([n])[0]
        counted = st_.update(p, t)
        if counted:
            if prev is not None:
                d = (t - prev[0]) * 8000 - (p.timestamp - prev[1])
                ref += (abs(d) - ref) / 16
            prev = (t, p.timestamp)
    assert st_.jitter == pytest.approx(ref)
    assert 20 < st_.jitter < 60  # uniform 0-15 ms arrival noise: ~5 ms of jitter
    assert st_.snapshot().jitter == int(ref)
    perfect = ReceiverStats(8000, min_sequential=1)
    for n in range(50):
        perfect.update(stream([n])[0], 0.5 + n * 0.02)
    assert perfect.jitter == pytest.approx(0, abs=1e-6) and perfect.received == 50


def test_send_state_and_media_clock() -> None:
    s = RtpSendState(0xABCD, first_sequence=65535)
    clock = RtpClock(8000, origin=100.0, base_timestamp=0xFFFFFF00)
    a = s.packet(0, clock.timestamp(100.0), bytes(160), marker=True, now=100.0)
    b = s.packet(0, clock.timestamp(100.02), bytes(160), now=100.02)
    assert (a.sequence_number, b.sequence_number) == (65535, 0)
    c = s.packet(0, clock.timestamp(100.04), bytes(160))
    assert ts_diff(b.timestamp, a.timestamp) == 160 and c.timestamp == 0x40
    assert s.packets_sent == 3 and s.octets_sent == 480 and s.last_sent_at == 100.02
    assert s.last_timestamp == c.timestamp
    r = RtpSendState(rng=random.Random(1))
    assert 0 <= r.ssrc < 1 << 32 and 0 <= r.next_sequence < 1 << 16


def test_header_is_built_with_struct_layout() -> None:
    p = RtpPacket(8, 1, 2, 3, b"x")
    assert struct.unpack("!BBHII", bytes(p)[:12]) == (0x80, 8, 1, 2, 3)


@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(-(1 << 40), 1 << 40),
    st.binary(max_size=200),
    st.booleans(),
)
def test_encoded_packets_are_the_packets_bytes(
    pt: int, first: int, ts: int, payload: bytes, marker: bool
) -> None:
    built, encoded = (RtpSendState(0x1234, first_sequence=first) for _ in range(2))
    for n in range(3):  # the sequence number moves on the same way, across its wrap
        pkt = built.packet(pt, ts + n, payload, marker=marker, now=float(n))
        assert encoded.encode(pt, ts + n, payload, marker=marker, now=float(n)) == bytes(pkt)
    counters = ("next_sequence", "packets_sent", "octets_sent", "last_timestamp", "last_sent_at")
    assert [getattr(built, k) for k in counters] == [getattr(encoded, k) for k in counters]
    with pytest.raises(RtpError, match="payload type"):
        encoded.encode(128, 0, b"")
