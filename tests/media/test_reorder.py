"""Caller audio order: in-order packets pass at once; one-frame reorder is repaired; loss is
reported for concealment; late and duplicate packets never reach the agent."""

from __future__ import annotations

from media.reorder import LOST, MAX_MISORDER, ReorderWindow
from media.rtp import RtpPacket


def pkt(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(
        payload_type=8, sequence_number=seq & 0xFFFF, timestamp=seq * 160 & 0xFFFFFFFF, ssrc=ssrc
    )


def seqs(out: list[RtpPacket | None]) -> list[int | None]:
    return [p.sequence_number if p is not None else None for p in out]


def test_in_order_is_forwarded_immediately_across_wraparound() -> None:
    w = ReorderWindow()
    got = []
    for i, s in enumerate(range(65530, 65540)):
        got += seqs(w.push(pkt(s), i * 0.02))
    assert got == [s & 0xFFFF for s in range(65530, 65540)]
    assert w.stats.lost == 0


def test_one_frame_reorder_is_repaired() -> None:
    w = ReorderWindow()
    assert seqs(w.push(pkt(1), 0.00)) == [1]
    assert seqs(w.push(pkt(3), 0.02)) == []  # 2 is missing: hold 3
    assert seqs(w.push(pkt(2), 0.025)) == [2, 3]
    assert w.stats.reordered == 1 and w.stats.lost == 0
    assert w.release_at is None and w.expire(1.0) == []


def test_missing_frame_is_concealed_after_one_period() -> None:
    w = ReorderWindow()
    w.push(pkt(1), 0.0)
    assert w.release_at is None  # nothing held: a tick has nothing to do
    assert w.push(pkt(3), 0.02) == []
    assert w.release_at == 0.04
    assert w.expire(0.03) == []  # not yet a whole period
    assert seqs(w.expire(0.04)) == [None, 3]
    assert w.release_at is None
    assert seqs(w.push(pkt(2), 0.05)) == []  # too late now
    assert (w.stats.lost, w.stats.late) == (1, 1)


def test_next_packet_while_holding_gives_up_at_once() -> None:
    w = ReorderWindow()
    w.push(pkt(10), 0.0)
    w.push(pkt(12), 0.02)
    assert seqs(w.push(pkt(13), 0.021)) == [None, 12, 13]


def test_burst_loss_conceals_at_most_three_frames() -> None:
    w = ReorderWindow(max_conceal=3)
    w.push(pkt(1), 0.0)
    # a gap of more than one frame is not waited for: conceal (at most 3) and go on
    out = w.push(pkt(9), 0.02)
    assert seqs(out) == [LOST, LOST, LOST, 9]
    assert w.stats.lost == 7 and w.stats.concealed == 3
    assert not w.holding


def test_duplicates_and_new_ssrc() -> None:
    w = ReorderWindow()
    w.push(pkt(5), 0.0)
    assert w.push(pkt(5), 0.01) == []
    assert w.stats.late == 1
    assert seqs(w.push(pkt(900, ssrc=2), 0.02)) == [900]  # a new source restarts the sequence
    assert w.stats.restarts == 1 and w.stats.lost == 0


def test_the_same_source_starting_its_sequence_afresh_far_behind_is_followed() -> None:
    """An SBC or media server that switches what it relays (an announcement, then the
    bridged call) may keep the SSRC and restart the sequence: 3,000 back, or 32,768 away
    (as far behind as ahead). Every packet of the new sequence but the first reaches the
    agent; before, none did until the sequence caught up (up to 11 minutes)."""
    for jump in (-3000, -MAX_MISORDER - 1, 32768):
        w = ReorderWindow()
        for s in range(1000, 1010):
            w.push(pkt(s), 0.0)
        start = 1010 + jump
        got = []
        for i in range(50):
            got += seqs(w.push(pkt(start + i), 0.2 + i * 0.02))
        assert got == [(start + i) & 0xFFFF for i in range(1, 50)], jump
        assert (w.stats.restarts, w.stats.late, w.stats.lost) == (1, 1, 0), jump


def test_stragglers_and_a_lone_packet_far_behind_are_only_late() -> None:
    w = ReorderWindow()
    for s in range(5000, 5010):
        w.push(pkt(s), 0.0)
    assert w.push(pkt(5010 - MAX_MISORDER), 0.2) == []  # reordered long ago: late
    assert w.push(pkt(100), 0.21) == []  # one stray packet far behind, then the stream
    assert w.push(pkt(5010), 0.22) != []
    assert w.push(pkt(101), 0.23) == []  # not right after 100: no restart
    assert seqs(w.push(pkt(5011), 0.24)) == [5011]
    assert (w.stats.restarts, w.stats.late) == (0, 3)
