"""Playout buffer on virtual time: pacing, stall policy, playback events, clear() accounting."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.clock import VirtualClock
from media.playout import (
    Frame,
    PlaybackFinished,
    PlaybackStarted,
    PlayoutBuffer,
    PlayoutEncoding,
    PlayoutError,
    PlayoutFormat,
    ResponseState,
)

ULAW_8K = PlayoutFormat(PlayoutEncoding.PCMU, 8000)
PCM_24K = PlayoutFormat(PlayoutEncoding.PCM16, 24000)


def ramp_bytes(n: int, start: int = 0) -> bytes:
    """Distinct-looking G.711 bytes (never the silence byte 0xFF) to trace audio through."""
    return bytes(((start + i) % 200) + 1 for i in range(n))


def run_until(pb: PlayoutBuffer, clock: VirtualClock, until: float) -> list[Frame]:
    """Drive the buffer like the asyncio driver: sleep to each deadline exactly, tick."""
    out: list[Frame] = []
    while True:
        d = pb.next_deadline()
        assert d is not None
        if d > until:
            return out
        clock.advance_to(d)
        out.extend(pb.tick(clock.now()))


def test_ten_minutes_paced_with_zero_drift() -> None:
    clock = VirtualClock(1000.0)
    pb = PlayoutBuffer(PCM_24K)
    start = clock.now()
    pb.start(start)
    total_frames = 10 * 60 * 50
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(480 * 50) / 24000)).astype(np.int16)
    # The agent delivers a second of audio at a time, faster than real time.
    sent = 0
    frames: list[Frame] = []
    for second in range(600):
        pb.push("resp", "item", tone)
        sent += len(tone)
        frames.extend(run_until(pb, clock, start + (second + 1) - 0.001))
    pb.mark_done("resp")
    frames.extend(run_until(pb, clock, start + 600.5))
    audio = [f for f in frames if not f.is_silence]
    assert len(audio) == total_frames
    for n, f in enumerate(frames):
        assert f.index == n
        assert f.deadline == start + n * 0.020  # exactly the drift-free schedule
        assert not f.catch_up
    assert frames[total_frames - 1].deadline == pytest.approx(start + 600.0 - 0.020, abs=1e-9)
    assert audio[-1].item_offset_ms == pytest.approx(600_000 - 20)
    # Every sample came out once, in order.
    out = np.concatenate([f.pcm16() for f in audio])
    assert np.array_equal(out, np.tile(tone, 600))
    events = pb.take_events()
    assert events == [
        PlaybackStarted("resp", "item", start),
        PlaybackFinished("resp", start + total_frames * 0.020, 600_000.0, (("item", 600_000.0),)),
    ]
    assert pb.stats.underruns == 0 and pb.stats.reanchors == 0


def test_one_frame_per_tick_and_silence_when_idle() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    assert pb.next_deadline() is None
    pb.start(0.0)
    assert pb.tick(-0.001) == []
    f = pb.tick(0.0)
    assert len(f) == 1 and f[0].is_silence and f[0].payload == b"\xff" * 160
    assert pb.tick(0.0) == []  # not due again until 20 ms
    assert pb.tick(0.0199) == []
    assert len(pb.tick(0.020)) == 1


def test_clear_at_random_points_reports_exact_ms_and_stops() -> None:
    rng = random.Random(7)
    for _ in range(50):
        clock = VirtualClock()
        pb = PlayoutBuffer(ULAW_8K)
        pb.start(0.0)
        # Response r1: item a (odd length, 1234 ms + 3 samples), item b 800 ms. r2 queued.
        a_len = 8 * 1234 + 3
        pb.push("r1", "a", ramp_bytes(a_len))
        pb.push("r1", "b", ramp_bytes(6400, 5))
        pb.mark_done("r1")
        pb.push("r2", "c", ramp_bytes(1600))
        cut_at = rng.randrange(0, 120) * 0.020
        frames = run_until(pb, clock, cut_at)
        sent_a = sum(f.audio_samples for f in frames if f.item_id == "a")
        sent_b = sum(f.audio_samples for f in frames if f.item_id == "b")
        sent_c = sum(f.audio_samples for f in frames if f.item_id == "c")
        finished = {e.response_id for e in pb.take_events() if isinstance(e, PlaybackFinished)}
        result = pb.clear()
        played = {(p.response_id, p.item_id): p for p in result.played}
        unplayed = {(p.response_id, p.item_id) for p in result.unplayed}
        for key, sent in ((("r1", "a"), sent_a), (("r1", "b"), sent_b), (("r2", "c"), sent_c)):
            if key[0] in finished:  # played out completely: nothing to truncate
                assert key not in played and key not in unplayed
            elif sent:
                assert played[key].sent_samples == sent
                assert played[key].audio_end_ms == sent // 8
                assert played[key].sent_ms == sent / 8
            else:
                assert key in unplayed
        # a is 1234.375 ms: never reported beyond its audio.
        if sent_a == a_len and "r1" not in finished:
            assert played[("r1", "a")].audio_end_ms == 1234
        # Nothing of the cleared responses is emitted afterwards, even if late deltas arrive.
        assert pb.push("r1", "b", ramp_bytes(800)) is False
        after = run_until(pb, clock, cut_at + 1.0)
        assert after and all(f.is_silence for f in after)
        assert pb.response_state("r2") is ResponseState.CLEARED
        assert result.responses == (("r2",) if "r1" in finished else ("r1", "r2"))


def test_clear_reports_unplayed_items_not_zero() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    pb.push("r1", "a", ramp_bytes(800))
    result = pb.clear()
    assert result.played == ()
    assert [(u.item_id, u.started) for u in result.unplayed] == [("a", False)]
    assert result.responses == ("r1",)
    assert pb.take_events() == []  # never started: no started/finished


def test_item_offsets_and_padding_between_items() -> None:
    clock = VirtualClock()
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    pb.push("r", "a", ramp_bytes(250))  # 1 frame + 90 samples
    frames = run_until(pb, clock, 0.1)
    # The tail waits for more of item a (underrun silence), since r is not done.
    assert [f.item_id for f in frames[:2]] == ["a", None]
    assert pb.stats.underruns >= 1
    pb.push("r", "b", ramp_bytes(160, 9))
    more = run_until(pb, clock, 0.2)
    assert (more[0].item_id, more[0].audio_samples, more[0].item_offset_ms) == ("a", 90, 20.0)
    assert more[0].payload[90:] == b"\xff" * 70  # padded with u-law silence, items never mix
    assert (more[1].item_id, more[1].item_offset_ms) == ("b", 0.0)


def test_stall_policy_catch_up_then_reanchor() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    pb.push("r", "a", ramp_bytes(160 * 100))
    assert len(pb.tick(0.0)) == 1
    # Small lateness (45 ms): the overdue frames go out on their original deadlines, no re-anchor.
    frames = pb.tick(0.065)
    assert [f.deadline for f in frames] == [0.020, 0.040, 0.060]
    assert [f.catch_up for f in frames] == [True, True, False]
    assert pb.next_deadline() == pytest.approx(0.080)
    # A 500 ms stall: at most 3 frames, then the schedule re-anchors at now + 20 ms.
    frames = pb.tick(0.580)
    assert len(frames) == 3
    assert all(f.catch_up for f in frames)
    assert pb.stats.reanchors == 1
    assert pb.next_deadline() == pytest.approx(0.600)
    assert pb.tick(0.599) == []
    assert len(pb.tick(0.600)) == 1
    # No audio was dropped: the rest of the item still plays out in order.
    clock = VirtualClock(0.600)
    rest = run_until(pb, clock, 5.0)
    audio = [f for f in rest if f.item_id == "a"]
    assert len(audio) + 8 == 100
    assert [f.item_offset_ms for f in audio] == [20.0 * n for n in range(8, 100)]


def test_started_and_finished_events() -> None:
    clock = VirtualClock()
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    run_until(pb, clock, 0.05)  # idle: 0, 20, 40 ms
    pb.push("r1", "a", ramp_bytes(400))  # 50 ms
    run_until(pb, clock, 0.2)
    assert pb.take_events() == [PlaybackStarted("r1", "a", 3 * 0.020)]
    pb.mark_done("r1")
    pb.push("r2", "b", ramp_bytes(160))
    pb.mark_done("r2")
    run_until(pb, clock, 0.4)
    # r1's last 10 ms waited (not done) until mark_done; it went at 220 ms, r2 at 240 ms.
    events = pb.take_events()
    assert events == [
        PlaybackFinished("r1", 12 * 0.020, 50.0, (("a", 50.0),)),
        PlaybackStarted("r2", "b", 12 * 0.020),
        PlaybackFinished("r2", 13 * 0.020, 20.0, (("b", 20.0),)),
    ]
    assert pb.response_state("r1") is ResponseState.FINISHED
    assert pb.push("r1", "a", ramp_bytes(10)) is False


def test_pause_and_resume_for_hold() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    pb.push("r", "a", ramp_bytes(160 * 5))
    pb.tick(0.0)
    pb.pause()
    assert pb.next_deadline() is None
    assert pb.tick(1.0) == []
    pb.resume(3.0)
    assert pb.next_deadline() == 3.0
    f = pb.tick(3.0)
    assert len(f) == 1 and f[0].item_offset_ms == 20.0 and f[0].deadline == 3.0
    assert pb.stats.reanchors == 0


def test_resume_at_the_instant_of_the_last_frame_does_not_repeat_its_deadline() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    pb.start(0.0)
    assert [f.deadline for f in pb.tick(0.0)] == [0.0]
    pb.pause()
    pb.resume(0.0)  # hold and unhold within one tick
    assert pb.tick(0.0) == []
    assert [f.deadline for f in pb.tick(0.02)] == [0.02]


def test_accepts_empty_and_odd_input() -> None:
    pb = PlayoutBuffer(PCM_24K)
    assert pb.push("r", "a", b"") is True
    assert pb.active_responses == ()
    pb.push("r", "a", b"\x01\x02\x03")  # one sample and a half
    pb.push("r", "a", np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match="takes int16 arrays, got float64"):
        pb.push("r", "a", np.zeros(3))  # type: ignore[arg-type]
    pb.mark_done("r")
    frames = pb.tick(0.0)
    assert frames[0].audio_samples == 1 and len(frames[0].payload) == PCM_24K.frame_bytes
    # Audio after mark_done (upstream out of order) still plays before the response finishes.
    assert pb.push("r", "a", b"\x00\x00" * 480) is True
    assert [f.audio_samples for f in pb.tick(0.020)] == [480]
    assert pb.tick(0.040)[0].is_silence
    assert pb.take_events()[-1] == PlaybackFinished("r", 0.040, 481 / 24, (("a", 481 / 24),))


def test_format_validation() -> None:
    with pytest.raises(ValueError):
        PlayoutFormat(PlayoutEncoding.PCMU, 8000, frame_ms=0)
    with pytest.raises(ValueError):
        PlayoutFormat(PlayoutEncoding.PCMU, 11025, frame_ms=20)
    assert PlayoutFormat(PlayoutEncoding.PCMA, 8000).frame_bytes == 160
    assert PCM_24K.frame_bytes == 960


def test_encodings_convert_their_samples_to_and_from_pcm16() -> None:
    from media import g711

    pcm = (np.arange(-16000, 16000, 97)).astype(np.int16)
    raw = PlayoutEncoding.PCM16.from_pcm16(pcm)
    assert raw == pcm.astype("<i2").tobytes()
    assert np.array_equal(PlayoutEncoding.PCM16.to_pcm16(raw + b"\x01"), pcm)  # odd byte ignored
    for enc, encode, decode in (
        (PlayoutEncoding.PCMU, g711.ulaw_encode, g711.ulaw_decode),
        (PlayoutEncoding.PCMA, g711.alaw_encode, g711.alaw_decode),
    ):
        assert enc.from_pcm16(pcm) == encode(pcm)
        assert np.array_equal(enc.to_pcm16(encode(pcm)), decode(encode(pcm)))
        assert enc.from_pcm16(np.zeros(4, dtype=np.int16)) == bytes([enc.silence_byte]) * 4


def test_illegal_response_transition_names_state_and_event() -> None:
    from media.playout import _Ev, _Response

    resp = _Response("r9", ResponseState.FINISHED)
    with pytest.raises(
        PlayoutError, match="'r9': event 'first_frame' is illegal in state 'finished'"
    ):
        resp.apply(_Ev.FIRST_FRAME)


def test_a_driver_grid_a_rounding_error_early_still_gets_its_frame() -> None:
    pb = PlayoutBuffer(ULAW_8K)
    anchor, period = 1234.567, 0.020
    pb.start(anchor + 7 * period)  # anchored on a foreign grid's tick
    for k in range(7, 5000):
        tick = anchor + k * period  # the driver's own arithmetic, not the buffer's
        assert len(pb.tick(tick - 1e-9)) == 1
    assert pb.stats.catch_up_frames == 0 and pb.stats.reanchors == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["push", "push", "push", "done", "clear", "tick", "tick", "pause"]),
            st.integers(0, 3),  # response
            st.integers(0, 1),  # item
            st.integers(0, 700),  # bytes / ms to advance
        ),
        max_size=60,
    )
)
def test_random_operations_keep_the_books_straight(ops: list[tuple[str, int, int, int]]) -> None:
    """Whatever the order of operations: frames are whole and on a strictly increasing schedule,
    at most 3 per tick; every sample sent is accounted to its item exactly once; nothing of a
    cleared response is emitted after the clear."""
    pb = PlayoutBuffer(ULAW_8K)
    now = 0.0
    pb.start(now)
    sent: dict[tuple[str, str], int] = {}
    pushed: dict[tuple[str, str], int] = {}
    cleared: set[str] = set()
    last_deadline = -1.0
    for op, r, i, n in ops:
        rid, iid = f"r{r}", f"i{i}"
        if op == "push":
            if pb.push(rid, iid, ramp_bytes(n)) and n:
                pushed[(rid, iid)] = pushed.get((rid, iid), 0) + n
        elif op == "done":
            pb.mark_done(rid)
        elif op == "clear":
            result = pb.clear()
            for rec in result.played + result.unplayed:
                key = (rec.response_id, rec.item_id)
                assert rec.sent_samples == sent.get(key, 0)
                assert rec.sent_samples <= rec.buffered_samples == pushed[key]
                assert rec.audio_end_ms <= rec.sent_ms
            cleared |= set(result.responses)
        elif op == "pause":
            if pb.paused:
                pb.resume(now)
            else:
                pb.pause()
        else:
            now += n / 1000.0
            frames = pb.tick(now)
            assert len(frames) <= 3
            for f in frames:
                assert len(f.payload) == 160
                assert f.deadline > last_deadline
                last_deadline = f.deadline
                if f.response_id is not None:
                    assert f.item_id is not None
                    assert f.response_id not in cleared
                    key = (f.response_id, f.item_id)
                    assert f.item_offset_ms == sent.get(key, 0) / 8
                    sent[key] = sent.get(key, 0) + f.audio_samples
                    assert 0 < f.audio_samples <= 160
    for key, total in sent.items():
        assert total <= pushed[key]


def test_clocks() -> None:
    from media.clock import Clock, SystemClock, WallClock

    c = VirtualClock(5.0, epoch=1000.0)
    assert c.advance(0.25) == 5.25 and c.advance_to(6.0) == 6.0 and c.now() == 6.0
    with pytest.raises(ValueError):
        c.advance(-1)
    with pytest.raises(ValueError):
        c.advance_to(5.0)
    assert c.wall() == 1006.0
    m = SystemClock()
    assert m.now() <= m.now() and m.wall() > 1.6e9
    assert WallClock().now() > 1.6e9
    assert all(isinstance(x, Clock) for x in (c, m, WallClock()))
