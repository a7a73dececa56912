"""RFC 4733 telephone events: SIPp's own captures, loss/duplication patterns, sender timing."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.dtmf import (
    MAX_QUEUED_DIGITS,
    DtmfDigit,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)
from media.rtp import RtpClock, RtpPacket, RtpSendState, seq_diff, ts_diff
from tests.support.pcap import read_udp
from tests.support.peers import require_peer

PCAP_DIR = Path("/usr/share/sip-tester")
CAPTURES = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}


def capture(name: str) -> list[tuple[float, RtpPacket]]:
    """The RTP packets of one of SIPp's captures (needs Debian's sip-tester)."""
    require_peer("sipp")
    path = PCAP_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing although sipp is installed")
    return [(d.time, RtpPacket.parse(d.payload)) for d in read_udp(path)]


def feed(rx: DtmfReceiver, packets: list[tuple[float, RtpPacket]]) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for t, p in packets:
        out += rx.receive(p, t)
    return out


@pytest.mark.peer("sipp")
@pytest.mark.parametrize("digit", list(CAPTURES))
def test_sipp_capture_decodes_its_digit(digit: str) -> None:
    packets = capture(CAPTURES[digit])
    assert {p.payload_type for _, p in packets} == {101}
    rx = DtmfReceiver(101)
    digits = feed(rx, packets)
    assert [d.digit for d in digits] == [digit]
    assert digits[0].duration_ms == 280.0  # 2240 units at 8 kHz
    assert digits[0].ended
    assert digits[0].received_at == packets[0][0]
    assert rx.stats.duplicates == 2  # the final packet's two repeats
    assert rx.poll(packets[-1][0] + 10) == []


@pytest.mark.peer("sipp")
def test_sipp_captures_back_to_back_with_loss_and_reordering_and_audio() -> None:
    """All twelve captures in one stream, mixed with A-law audio on another SSRC; marker
    packets lost, updates reordered, some final packets lost: each digit exactly once."""
    rng = random.Random(3)
    audio = capture("g711a.pcap")
    rx = DtmfReceiver(101)
    got: list[str] = []
    t = 0.0
    for n, digit in enumerate(CAPTURES):
        packets = [p for _, p in capture(CAPTURES[digit])]
        if n % 2 == 0:
            packets = packets[1:]  # the marker packet is lost
        if n % 3 == 0:
            i = rng.randrange(0, 5)
            packets[i], packets[i + 1] = packets[i + 1], packets[i]  # reordered update
        if n % 4 == 1:
            packets = packets[:-2]  # two of the three final packets lost
        for j, p in enumerate(packets):
            t += 0.020
            got += [d.digit for d in rx.receive(audio[(n * 10 + j) % len(audio)][1], t)]
            got += [d.digit for d in rx.receive(p, t)]
    assert got == list(CAPTURES)
    assert rx.stats.timeouts == 0


@pytest.mark.peer("sipp")
def test_all_final_packets_lost_closes_on_timeout_or_next_digit() -> None:
    one = [p for _, p in capture(CAPTURES["1"])][:-3]
    two = [p for _, p in capture(CAPTURES["2"])][:-3]
    rx = DtmfReceiver(101, timeout=0.5)
    for i, p in enumerate(one):
        assert rx.receive(p, i * 0.02) == []
    assert rx.pending == "1"
    assert rx.next_deadline() == pytest.approx(6 * 0.02 + 0.5)
    # The next event begins before the timeout: "1" closes with the longest duration seen (240 ms).
    closed = rx.receive(two[0], 0.2)
    assert [(d.digit, d.ended, d.duration_ms) for d in closed] == [("1", False, 240.0)]
    for p in two[1:]:
        rx.receive(p, 0.3)
    assert rx.poll(0.79) == []
    timed_out = rx.poll(0.8)
    assert [(d.digit, d.ended) for d in timed_out] == [("2", False)]
    assert rx.stats.timeouts == 1


def test_other_ssrc_wrong_payload_type_and_malformed_packets() -> None:
    rx = DtmfReceiver(101)
    ev = bytes(TelephoneEvent(5, end=True, duration=800))
    assert rx.receive(RtpPacket(0, 1, 0, 1, ev), 0.0) == []  # not the event payload type
    assert rx.receive(RtpPacket(101, 1, 0, 1, b"\x05"), 0.0) == []  # too short
    assert rx.receive(RtpPacket(101, 2, 0, 1, bytes(TelephoneEvent(16, True))), 0.0) == []
    assert rx.stats.malformed == 1 and rx.stats.other_events == 1
    a = rx.receive(RtpPacket(101, 3, 1000, 0xAAAA, ev), 0.0)
    b = rx.receive(RtpPacket(101, 9, 1000, 0xBBBB, ev), 0.0)  # same timestamp, other source
    assert [(d.digit, d.ssrc) for d in a + b] == [("5", 0xAAAA), ("5", 0xBBBB)]
    # A straggling update of the finished event does not start a new digit.
    assert rx.receive(RtpPacket(101, 2, 1000, 0xAAAA, bytes(TelephoneEvent(5))), 0.1) == []
    assert rx.pending is None


def test_long_event_segments_are_one_digit() -> None:
    rx = DtmfReceiver(101)
    out = rx.receive(RtpPacket(101, 1, 100, 7, bytes(TelephoneEvent(3, duration=0xFFFF))), 0)
    out += rx.receive(
        RtpPacket(101, 2, 100 + 0xFFFF, 7, bytes(TelephoneEvent(3, True, 10, 800))), 9
    )
    assert [(d.digit, d.duration_ms, d.timestamp) for d in out] == [("3", (0xFFFF + 800) / 8, 100)]


def test_telephone_event_wire_format() -> None:
    ev = TelephoneEvent(11, end=True, volume=10, duration=2240)
    assert bytes(ev) == b"\x0b\x8a\x08\xc0"
    assert TelephoneEvent.parse(b"\x0b\x8a\x08\xc0extra") == ev
    with pytest.raises(DtmfError):
        TelephoneEvent.parse(b"\x0b\x8a")
    with pytest.raises(DtmfError):
        TelephoneEvent(1, volume=64)
    assert [event_to_digit(i) for i in range(17)] == [*"0123456789*#ABCD", None]
    assert digit_to_event("a") == 12
    with pytest.raises(DtmfError):
        digit_to_event("E")


def make_sender(origin: float = 0.0) -> tuple[RtpSendState, RtpClock, DtmfSender]:
    stream = RtpSendState(0x1234, first_sequence=65530)
    clock = RtpClock(8000, origin, base_timestamp=0xFFFFF000)
    return stream, clock, DtmfSender(stream, clock, 101)


def run(sender: DtmfSender, start: float) -> list[tuple[float, RtpPacket]]:
    out: list[tuple[float, RtpPacket]] = []
    while (d := sender.next_deadline()) is not None:
        out += [(d, p) for p in sender.tick(max(d, start))]
    return out


def test_sender_packet_sequence() -> None:
    stream, clock, tx = make_sender()
    tx.send("7", 1.0, duration_ms=100)
    assert tx.sending
    sent = run(tx, 1.0)
    times = [round(t - 1.0, 6) for t, _ in sent]
    assert times == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14]
    pkts = [p for _, p in sent]
    evs = [TelephoneEvent.parse(p.payload) for p in pkts]
    assert [p.marker for p in pkts] == [True] + [False] * 7
    assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert [e.end for e in evs] == [False] * 5 + [True] * 3
    assert {p.timestamp for p in pkts} == {clock.timestamp(1.0)}
    assert {p.ssrc for p in pkts} == {0x1234}
    # Every packet, final repeats included, has its own sequence number (wrapping).
    assert [p.sequence_number for p in pkts] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]
    assert stream.packets_sent == 8 and stream.octets_sent == 32
    assert not tx.sending


def test_sender_timestamps_follow_the_media_clock_while_audio_is_paused() -> None:
    stream, clock, tx = make_sender(origin=10.0)
    # Audio frames stamped at their deadlines (every 20 ms from 10.0) ... then a pause.
    audio = [stream.packet(0, clock.timestamp(10.0 + n * 0.02), bytes(160)) for n in range(5)]
    # Digits sent 3.27 s later, with no audio in between: the event timestamps are where the
    # audio clock would be then, queued digits start after the previous one and its gap.
    tx.send("12", 13.37, duration_ms=60, gap_ms=40)
    sent = run(tx, 13.37)
    ts = sorted({p.timestamp for _, p in sent}, key=lambda x: ts_diff(x, audio[0].timestamp))
    assert ts_diff(ts[0], audio[0].timestamp) == round(3.37 * 8000)
    # "2" starts 60 ms + 2 repeats x 20 ms + 40 ms gap after "1": 140 ms = 1120 units.
    assert ts_diff(ts[1], ts[0]) == 1120
    rx = DtmfReceiver(101)
    digits = [d for t, p in sent for d in rx.receive(p, t)]
    assert [(d.digit, d.duration_ms) for d in digits] == [("1", 60.0), ("2", 60.0)]


def test_sender_to_receiver_with_losses() -> None:
    rng = random.Random(11)
    _, _, tx = make_sender()
    digits = "0123456789*#ABCD"
    tx.send(digits, 0.0, duration_ms=80)
    rx = DtmfReceiver(101)
    got = []
    for t, p in run(tx, 0.0):
        if rng.random() < 0.2:  # 20 % packet loss, marker packets included
            continue
        got += [d.digit for d in rx.receive(p, t)]
        got += [d.digit for d in rx.poll(t)]
    got += [d.digit for d in rx.poll(1e9)]
    assert "".join(got) == digits


def test_sender_rejects_bad_digits_and_cancel_finishes_current_event() -> None:
    _, _, tx = make_sender()
    with pytest.raises(DtmfError):
        tx.send("12x", 0.0)
    assert not tx.sending
    tx.send("", 0.0)
    assert not tx.sending
    tx.send("159", 0.0, duration_ms=100)
    first = tx.tick(0.0)
    assert len(first) == 1 and first[0].marker
    tx.cancel()
    rest = run(tx, 0.0)
    evs = [TelephoneEvent.parse(p.payload) for _, p in rest]
    assert {e.event for e in evs} == {1}
    assert sum(e.end for e in evs) == 3


@given(st.binary(max_size=12))
def test_fuzz_telephone_event_parse_raises_only_dtmf_error(data: bytes) -> None:
    try:
        ev = TelephoneEvent.parse(data)
    except DtmfError:
        assert len(data) < 4
        return
    assert bytes(ev) == data[:4] or (data[1] & 0x40 and bytes(ev)[1] == data[1] & 0xBF)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # ssrc
            st.integers(0, 5),  # event timestamp slot
            st.integers(0, 17),  # event code
            st.booleans(),  # end bit
            st.integers(0, 0xFFFF),  # duration
            st.binary(max_size=6),  # or garbage instead
        ),
        max_size=80,
    )
)
def test_fuzz_receiver_reports_each_event_at_most_once(
    items: list[tuple[int, int, int, bool, int, bytes]],
) -> None:
    rx = DtmfReceiver(101)
    seen: list[tuple[int, int]] = []
    t = 0.0
    for n, (ssrc, slot, code, end, duration, junk) in enumerate(items):
        payload = junk if code == 17 else bytes(TelephoneEvent(code, end, 10, duration))
        t += 0.02
        pkt = RtpPacket(101, n & 0xFFFF, slot * 1600, ssrc, payload)
        for d in rx.receive(pkt, t) + rx.poll(t):
            assert d.digit in "0123456789*#ABCD"
            assert 0 <= d.duration_ms <= 2 * 0xFFFF / 8
            seen.append((d.ssrc, d.timestamp))
    seen += [(d.ssrc, d.timestamp) for d in rx.poll(t + 10)]
    assert len(seen) == len(set(seen))


def test_same_digit_twice_is_two_digits() -> None:
    _, _, tx = make_sender()
    tx.send("11", 0.0, duration_ms=40, gap_ms=0)
    rx = DtmfReceiver(101)
    got = [d.digit for t, p in run(tx, 0.0) for d in rx.receive(p, t)]
    assert got == ["1", "1"]


def test_audio_and_digits_share_one_stream_across_a_pause() -> None:
    """Sender and receiver cores joined: playout frames and RFC 4733 events on one SSRC and
    sequence space, audio held back while digits go out, timestamps from one media clock."""
    from media.caller_path import CallerPath
    from media.playout import PlayoutBuffer, PlayoutEncoding, PlayoutFormat
    from media.rtp import ReceiverStats

    stream = RtpSendState(0xC0FFEE, first_sequence=65500)
    clock = RtpClock(8000, origin=0.0, base_timestamp=0xFFFFE000)
    pb = PlayoutBuffer(PlayoutFormat(PlayoutEncoding.PCMU, 8000))
    tx = DtmfSender(stream, clock, 101)
    pb.start(0.0)
    audio = bytes(range(1, 201)) * 40  # 1 s of u-law audio
    pb.push("r", "i", audio)
    sent: list[tuple[float, RtpPacket]] = []
    t = 0.0
    while t < 1.6:
        if abs(t - 0.5) < 1e-9:
            pb.pause()
            tx.send("42", t, duration_ms=80, gap_ms=40)
        for p in tx.tick(t):
            sent.append((t, p))
        if pb.paused and not tx.sending:
            pb.resume(t)
        for f in pb.tick(t):
            if not f.is_silence:
                sent.append((t, stream.packet(0, clock.timestamp(f.deadline), f.payload)))
        t = round(t + 0.01, 6)
    # One sequence space without gaps, one SSRC.
    seqs = [p.sequence_number for _, p in sent]
    assert all(seq_diff(b, a) == 1 for a, b in itertools.pairwise(seqs))
    assert {p.ssrc for _, p in sent} == {0xC0FFEE}
    stats = ReceiverStats(8000)
    rx = DtmfReceiver(101)
    heard: list[bytes] = []
    caller = CallerPath.pass_through(PlayoutEncoding.PCMU, lambda f: heard.append(f) or True)
    digits: list[DtmfDigit] = []
    for at, p in sent:
        stats.update(p, at)
        digits += rx.receive(p, at)
        if p.payload_type == 0:  # the leg hands the audio payload type to the caller path
            caller.push(p, at)
    assert stats.lost == 0 and caller.reorder.stats.late == 0
    assert [(d.digit, d.duration_ms) for d in digits] == [("4", 80.0), ("2", 80.0)]
    # Events are stamped where the audio clock stood when each began, audio resumes on it.
    assert digits[0].timestamp == clock.timestamp(0.5)
    assert digits[1].timestamp == clock.timestamp(0.5 + 0.08 + 0.04 + 0.04)
    resumed = next(p for at, p in sent if at > 0.5 and p.payload_type == 0)
    resume_at = next(at for at, p in sent if p is resumed)
    assert resumed.timestamp == clock.timestamp(resume_at)
    # every frame of the second of audio reached the far end intact and in order (the audio
    # sequence numbers the digits took read as a gap, which the caller path conceals)
    chunks = [audio[i : i + 160] for i in range(0, len(audio), 160)]
    assert [f for f in heard if f in chunks] == chunks
    assert len(heard) == 50 + caller.stats.frames_concealed


def test_sender_holds_at_most_max_queued_digits_and_refuses_more_whole() -> None:
    _, _, tx = make_sender()
    tx.send("1" * (MAX_QUEUED_DIGITS - 1), 0.0)
    with pytest.raises(DtmfError, match="at most 128"):
        tx.send("23", 0.0)  # one would fit: none is queued
    assert tx.room == 1
    tx.send("2", 0.0)
    assert tx.room == 0
    with pytest.raises(DtmfError):
        tx.send("3", 0.0)
    tx.tick(10.0)  # the first digits go out: room again
    assert tx.room > 0
    events = {TelephoneEvent.parse(p.payload).event for _, p in run(tx, 10.0)}
    assert events <= {1, 2}
