"""Jitter buffer on virtual time: reorder, duplicates, late packets, loss concealment, depth."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.jitter import JitterBuffer, JitterFrame
from media.rtp import RtpPacket, ts_diff

RATE = 8000
FRAME = 160


def l16_decode(payload: bytes) -> npt.NDArray[np.int16]:
    """RTP L16 (RFC 3551 §4.5.11, network byte order): a codec-free decode for these tests."""
    return np.frombuffer(payload, dtype=">i2").astype(np.int16)


def voice(seconds: float, seed: int = 0) -> npt.NDArray[np.int16]:
    """A voiced, speech-like test signal: 140 Hz harmonics with a slow envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    x = sum((3000 / k) * np.sin(2 * np.pi * 140 * k * t + rng.uniform(0, 6)) for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    return np.asarray(np.clip(x * env, -32000, 32000), dtype=np.int16)


def packetize(
    signal: npt.NDArray[np.int16], ptime_samples: int = FRAME, ts0: int = 1000, seq0: int = 100
) -> list[RtpPacket]:
    return [
        RtpPacket(
            11,
            (seq0 + i) & 0xFFFF,
            (ts0 + i * ptime_samples) & 0xFFFFFFFF,
            0x5EED,
            signal[i * ptime_samples : (i + 1) * ptime_samples].astype(">i2").tobytes(),
        )
        for i in range(len(signal) // ptime_samples)
    ]


def simulate(
    jb: JitterBuffer,
    arrivals: Iterable[tuple[float, RtpPacket]],
    until: float,
    start: float = 0.0,
) -> list[JitterFrame]:
    """Deliver packets at their arrival times and pull one frame every 20 ms of virtual time."""
    pending = sorted(arrivals, key=lambda a: a[0])
    out: list[JitterFrame] = []
    i = 0
    tick = start
    while tick <= until:
        while i < len(pending) and pending[i][0] <= tick:
            jb.put(pending[i][1], pending[i][0])
            i += 1
        f = jb.get(tick)
        if f is not None:
            out.append(f)
        tick = round(tick + 0.020, 9)
    return out


def concat(frames: list[JitterFrame]) -> npt.NDArray[np.int16]:
    return np.concatenate([f.pcm for f in frames])


def concealed(frames: list[JitterFrame], signal: npt.NDArray[np.int16]) -> int:
    """Frames with concealment while the signal lasted (after it, the stream simply ended)."""
    return sum(f.is_concealed for f in frames[: len(signal) // FRAME])


def max_step(x: npt.NDArray[np.int16]) -> int:
    return int(np.max(np.abs(np.diff(x.astype(np.int32)))))


def on_time(
    packets: list[RtpPacket], jitter_s: float = 0.0, seed: int = 1
) -> list[tuple[float, RtpPacket]]:
    rng = random.Random(seed)
    return [(i * 0.020 + rng.uniform(0, jitter_s), p) for i, p in enumerate(packets)]


def test_clean_stream_with_arrival_jitter_is_bit_exact_and_delayed_by_target() -> None:
    sig = voice(2.0)
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, on_time(packetize(sig), jitter_s=0.030), until=2.5)
    assert frames[0].timestamp == 1000
    out = concat(frames)[: len(sig)]
    assert np.array_equal(out, sig)
    assert concealed(frames, sig) == 0 and jb.stats.late == 0
    # Playout starts 40 ms after the first packet.
    jb2 = JitterBuffer(l16_decode, target_ms=40)
    jb2.put(packetize(sig)[0], 0.005)
    assert jb2.get(0.044) is None
    assert jb2.get(0.045) is not None
    assert all(len(f.pcm) == FRAME for f in frames)


def test_reordering_and_duplicates_are_absorbed() -> None:
    sig = voice(2.0, seed=2)
    pkts = packetize(sig)
    arrivals = on_time(pkts)
    rng = random.Random(4)
    for i in range(5, len(arrivals) - 2, 7):  # swap neighbours: reordered by one packet
        (ta, a), (tb, b) = arrivals[i], arrivals[i + 1]
        arrivals[i], arrivals[i + 1] = (ta, b), (tb, a)
    dups = [(t + rng.uniform(0, 0.03), p) for t, p in arrivals[::5]]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals + dups, until=2.5)
    assert np.array_equal(concat(frames)[: len(sig)], sig)
    assert jb.stats.duplicates == len(dups)
    assert concealed(frames, sig) == 0 and jb.lost == 0


@pytest.mark.parametrize("burst", [1, 2, 3, 5, 10])
def test_loss_is_concealed_without_clicks_or_zero_bursts(burst: int) -> None:
    sig = voice(3.0, seed=burst)
    pkts = packetize(sig)
    lost = {i for start in range(20, len(pkts) - 20, 25) for i in range(start, start + burst)}
    arrivals = [(t, p) for i, (t, p) in enumerate(on_time(pkts, 0.01)) if i not in lost]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals, until=3.5)
    out = concat(frames)[: len(sig)]
    assert jb.lost == len(lost)
    assert concealed(frames, sig) == len(lost)
    # Ordered and aligned: every received packet's audio is where it belongs, bit-exact, except
    # the cross-fade at the start of the packet that ends a gap.
    for i in range(len(pkts)):
        if i not in lost and i - 1 not in lost:
            assert np.array_equal(
                out[i * FRAME : (i + 1) * FRAME], sig[i * FRAME : (i + 1) * FRAME]
            )
    # No clicks: sample steps stay within the clean signal's largest step (plus 25 %).
    assert max_step(out) <= 1.25 * max_step(sig)
    # No burst of zeros: the first 10 ms of every gap carries audio at speech level.
    for start in range(20, len(pkts) - 20, 25):
        gap = out[start * FRAME : start * FRAME + 80].astype(np.float64)
        ref = sig[start * FRAME : start * FRAME + 80].astype(np.float64)
        assert np.sqrt(np.mean(gap**2)) > 0.5 * np.sqrt(np.mean(ref**2))
    # Long gaps fade to silence rather than repeating forever.
    if burst >= 5:
        start = 20 * FRAME
        tail = out[start + 70 * 8 : start + burst * FRAME]
        assert np.max(np.abs(tail)) == 0


def test_concealment_of_a_pure_tone_is_nearly_seamless() -> None:
    t = np.arange(RATE * 2) / RATE
    sig = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    pkts = packetize(sig)
    arrivals = [(t_, p) for i, (t_, p) in enumerate(on_time(pkts)) if i != 50]
    out = concat(simulate(JitterBuffer(l16_decode), arrivals, until=2.5))[: len(sig)]
    # The first 10 ms of the gap (full gain) continue the tone closely.
    err = out[50 * FRAME : 50 * FRAME + 80].astype(float) - sig[50 * FRAME : 50 * FRAME + 80]
    assert np.sqrt(np.mean(err**2)) < 0.1 * 10000
    assert max_step(out) <= 1.1 * max_step(sig)


def test_late_packets_are_dropped_counted_and_never_played_out_of_order() -> None:
    sig = voice(2.0, seed=9)
    pkts = packetize(sig)
    arrivals = on_time(pkts)
    late = {30, 31, 60}
    arrivals = [(t + (0.2 if i in late else 0.0), p) for i, (t, p) in enumerate(arrivals)]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals, until=2.5)
    out = concat(frames)[: len(sig)]
    assert jb.stats.late == len(late)
    assert concealed(frames, sig) == len(late)
    assert jb.lost == 0  # they did arrive, just too late
    for i in range(len(pkts)):
        if i not in late and i - 1 not in late:
            assert np.array_equal(
                out[i * FRAME : (i + 1) * FRAME], sig[i * FRAME : (i + 1) * FRAME]
            )
    timestamps = [f.timestamp for f in frames]
    assert timestamps == [1000 + FRAME * n for n in range(len(frames))]


def test_30ms_packets_are_recut_into_20ms_frames_across_timestamp_wrap() -> None:
    sig = voice(1.5, seed=5)
    pkts = packetize(sig, ptime_samples=240, ts0=0xFFFFFFFF - 2000, seq0=65530)
    arrivals = [(i * 0.030, p) for i, p in enumerate(pkts)]
    jb = JitterBuffer(l16_decode, target_ms=60)
    frames = simulate(jb, arrivals, until=2.0)
    assert np.array_equal(concat(frames)[: len(sig)], sig)
    assert concealed(frames, sig) == 0 and jb.lost == 0


def test_sender_pause_resyncs_instead_of_playing_seconds_of_silence() -> None:
    sig = voice(2.0, seed=6)
    first, second = (
        packetize(sig[:8000]),
        packetize(sig[8000:], ts0=1000 + 8000 + 5 * RATE, seq0=150),
    )
    # 1 s of audio, a 5 s timestamp jump (sender muted), audio resumes 0.2 s later in real time.
    arrivals = on_time(first) + [(1.2 + i * 0.02, p) for i, p in enumerate(second)]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals, until=3.0)
    out = concat(frames)
    assert jb.stats.resyncs == 1
    # The second half is played target_ms after it starts arriving, in full.
    idx = int(np.flatnonzero(np.array([f.timestamp for f in frames]) >= 1000 + 8000 + 5 * RATE)[0])
    resumed = np.concatenate([f.pcm for f in frames[idx:]])
    assert np.array_equal(resumed[FRAME:8000], sig[8000 + FRAME : 16000])
    assert max_step(out) <= 1.25 * max_step(sig)


def test_new_ssrc_restarts_the_timeline() -> None:
    sig = voice(2.0, seed=7)
    a = packetize(sig[:8000])
    b = [
        RtpPacket(11, 5000 + i, 777 + i * FRAME, 0xB, p.payload)
        for i, p in enumerate(packetize(sig[8000:]))
    ]
    arrivals = on_time(a) + [(1.0 + i * 0.02, p) for i, p in enumerate(b)]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals, until=2.5)
    out = concat(frames)
    assert jb.stats.resyncs == 1
    # Output never paused (a frame on every tick from 40 ms on) and joins without a click.
    assert len(frames) == round((2.5 - 0.04) / 0.02) + 1
    assert max_step(out) <= 1.25 * max_step(sig)
    assert jb.stats.late == 0
    # The new source plays in full, target_ms after the switch, keeping the depth.
    switch = next(i for i in range(1, len(frames)) if frames[i].timestamp < frames[i - 1].timestamp)
    new = [f for f in frames[switch:] if ts_diff(f.timestamp, 777) >= FRAME]
    assert len(new) >= len(b) - 2
    for f in new[: len(b) - 2]:
        k = 8000 + (f.timestamp - 777)
        assert np.array_equal(f.pcm, sig[k : k + FRAME])


def test_burst_after_network_stall_is_trimmed_back_to_depth() -> None:
    sig = voice(3.0, seed=8)
    pkts = packetize(sig)
    # Packets 50-74 are held by the network for 500 ms and arrive together.
    arrivals = [(max(t, 1.5) if 50 <= i < 75 else t, p) for i, (t, p) in enumerate(on_time(pkts))]
    jb = JitterBuffer(l16_decode, target_ms=40, max_ms=100)
    frames = simulate(jb, arrivals, until=3.5)
    out = concat(frames)
    assert jb.stats.late > 0 and jb.stats.discarded == 0
    assert max_step(out) <= 1.25 * max_step(sig)
    # A sender-side burst (too many packets ahead) is trimmed, cross-faded.
    jb2 = JitterBuffer(l16_decode, target_ms=40, max_ms=100)
    arrivals2 = [(0.0 if i < 40 else (i - 30) * 0.02, p) for i, p in enumerate(pkts)]
    frames2 = simulate(jb2, arrivals2, until=3.5)
    assert jb2.stats.discarded > 0
    assert jb2.depth_ms <= 100 + 20
    assert max_step(concat(frames2)) <= 1.25 * max_step(sig)


def test_empty_and_undecodable_payloads() -> None:
    def bad(payload: bytes) -> npt.NDArray[np.int16]:
        raise ValueError("corrupt")

    jb = JitterBuffer(bad)
    assert jb.put(RtpPacket(0, 1, 0, 1, b""), 0.0) is False
    assert jb.put(RtpPacket(0, 2, 160, 1, b"\x01\x02"), 0.0) is False
    assert jb.stats.decode_errors == 1
    assert jb.get(1.0) is None  # nothing decodable yet: still buffering
    decode: Callable[[bytes], npt.NDArray[np.int16]] = l16_decode
    jb2 = JitterBuffer(decode)
    assert jb2.get(0.0) is None
    with pytest.raises(ValueError):
        JitterBuffer(decode, sample_rate=11025)


def test_timestamps_jumping_backwards_restart_the_timeline() -> None:
    sig = voice(2.0, seed=10)
    a = packetize(sig[:8000], ts0=500_000)
    b = packetize(sig[8000:], ts0=1000, seq0=150)  # same SSRC, timestamps restarted
    arrivals = on_time(a) + [(1.0 + i * 0.02, p) for i, p in enumerate(b)]
    jb = JitterBuffer(l16_decode, target_ms=40)
    frames = simulate(jb, arrivals, until=2.5)
    assert jb.stats.resyncs == 1
    out = concat(frames)
    # The first 2 packets after the jump are late (they could be stragglers); the 3rd, 40 ms
    # later, restarts the timeline (cross-faded in), and from the 4th on the second half plays
    # bit-exact and in order.
    after = [f for f in frames if 1000 + 3 * FRAME <= f.timestamp < 9000]
    assert len(after) == 50 - 3
    for f in after:
        k = 8000 + f.timestamp - 1000
        assert np.array_equal(f.pcm, sig[k : k + FRAME])
    assert max_step(out) <= 1.25 * max_step(sig)


@pytest.mark.peer("sipp")
def test_sipp_alaw_capture_reordered_and_lossy_plays_continuously() -> None:
    """SIPp's own A-law capture (30 ms packets): shuffled within 40 ms, 5 % lost, duplicated;
    decoded with the G.711 module, re-cut into 20 ms frames, concealed without clicks."""
    from media.g711 import alaw_decode
    from tests.support.pcap import read_udp
    from tests.support.peers import require_peer

    require_peer("sipp")
    pkts = [RtpPacket.parse(d.payload) for d in read_udp("/usr/share/sip-tester/g711a.pcap")]
    clean = np.concatenate([alaw_decode(p.payload) for p in pkts])
    rng = random.Random(12)
    lost = set(rng.sample(range(5, len(pkts) - 5), len(pkts) // 20))
    arrivals = [(i * 0.030 + rng.uniform(0, 0.040), p) for i, p in enumerate(pkts) if i not in lost]
    dups = [(t + 0.005, p) for t, p in arrivals[::9]]
    arrivals += dups
    jb = JitterBuffer(alaw_decode, target_ms=60)
    frames = simulate(jb, arrivals, until=len(pkts) * 0.030 + 0.2)
    out = concat(frames)[: len(clean)]
    assert jb.lost == len(lost) and jb.stats.late == 0
    assert jb.stats.duplicates == len(dups)
    for i in range(len(pkts)):
        if i not in lost and i - 1 not in lost:
            assert np.array_equal(out[i * 240 : (i + 1) * 240], clean[i * 240 : (i + 1) * 240])
    assert max_step(out) <= 1.25 * max_step(clean)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 119),  # packet index
            st.floats(0, 0.25),  # extra network delay
        ),
        max_size=160,
    ),
    st.sampled_from([80, 160, 240]),
    st.integers(0, 100),
)
def test_any_arrival_pattern_gives_whole_ordered_bounded_frames(
    deliveries: list[tuple[int, float]], ptime: int, target_ms: int
) -> None:
    """Random subsets, orders, duplicates and delays of a stream: every frame is whole, frame
    timestamps advance by one frame (or jump forward on a resync), and no sample step exceeds
    the clean signal's largest step by more than 25 %."""
    sig = voice(120 * ptime / RATE + 0.1, seed=ptime)
    pkts = packetize(sig, ptime_samples=ptime, ts0=0xFFFFF000)
    arrivals = [(k * ptime / RATE + delay, pkts[k]) for k, delay in deliveries]
    jb = JitterBuffer(l16_decode, target_ms=target_ms)
    frames = simulate(jb, arrivals, until=120 * ptime / RATE + 0.5)
    assert all(len(f.pcm) == FRAME for f in frames)
    jumps = sum(ts_diff(b.timestamp, a.timestamp) < FRAME for a, b in itertools.pairwise(frames))
    assert jumps <= jb.stats.resyncs
    if frames:
        assert max_step(concat(frames)) <= 1.25 * max_step(sig)
    assert jb.stats.received == len(deliveries)


# ---------------------------------------------------------------- arrival-driven mode (drain)


def simulate_drain(
    jb: JitterBuffer, arrivals: Iterable[tuple[float, RtpPacket]], until: float
) -> list[tuple[float, JitterFrame]]:
    """The caller -> agent driver: drain on every arrival and whenever drain_deadline() says."""
    pending = sorted(arrivals, key=lambda a: a[0])
    out: list[tuple[float, JitterFrame]] = []
    i = 0
    idle = 0
    while True:
        idle += 1
        assert idle < 1000, "drain_deadline() keeps firing without progress"
        deadline = jb.drain_deadline()
        t_packet = pending[i][0] if i < len(pending) else None
        if t_packet is not None and (deadline is None or t_packet <= deadline):
            jb.put(pending[i][1], t_packet)
            i += 1
            now = t_packet
        elif deadline is not None:
            now = max(deadline, out[-1][0] if out else 0.0)
        else:
            return out
        if now > until:
            return out
        frames = jb.drain(now)
        if frames or t_packet == now:
            idle = 0
        out += [(now, f) for f in frames]


def test_drain_forwards_in_order_packets_on_arrival() -> None:
    sig = voice(2.0, seed=20)
    arrivals = on_time(packetize(sig), jitter_s=0.015)
    jb = JitterBuffer(l16_decode)
    emitted = simulate_drain(jb, arrivals, until=2.0)
    frames = [f for _, f in emitted]
    assert np.array_equal(concat(frames)[: len(sig)], sig)
    # Zero added latency: each frame leaves at the arrival of the packet that carries it.
    for (t, f), (t_arr, p) in zip(emitted, arrivals, strict=False):
        assert f.timestamp == p.timestamp and t == t_arr
    assert jb.stats.concealed_frames == 0


def test_drain_waits_one_reorder_window_then_conceals() -> None:
    sig = voice(1.0, seed=21)
    pkts = packetize(sig)
    arrivals = on_time(pkts)
    # Packet 10 is 16 ms late, 11 is 8 ms early: 11 arrives first.
    arrivals[10], arrivals[11] = (0.216, pkts[10]), (0.212, pkts[11])
    del arrivals[20]  # lost
    jb = JitterBuffer(l16_decode, reorder_ms=20)
    emitted = simulate_drain(jb, arrivals, until=1.0)
    times = {f.timestamp: t for t, f in emitted}
    # 11 waits for 10 (within the one-frame reorder window): both leave when 10 arrives.
    assert times[pkts[10].timestamp] == times[pkts[11].timestamp] == 0.216
    # Packet 20 never came: concealed 20 ms after packet 21 arrived, 21 follows at once.
    assert times[pkts[20].timestamp] == times[pkts[21].timestamp] == pytest.approx(0.440)
    out = concat([f for _, f in emitted])[: len(sig)]
    assert np.array_equal(out[: 20 * FRAME], sig[: 20 * FRAME])
    assert max_step(out) <= 1.25 * max_step(sig)
    assert jb.stats.concealed_frames == 1 and jb.stats.late == 0


def test_drain_keeps_real_time_pace_and_fades_when_the_sender_stops_then_resumes() -> None:
    sig = voice(2.0, seed=22)
    pkts = packetize(sig)
    # 0.5 s of audio, a 1 s pause without a timestamp jump (old clock), then the rest.
    arrivals = [(i * 0.02, p) for i, p in enumerate(pkts[:25])]
    arrivals += [(1.5 + (i - 25) * 0.02, p) for i, p in enumerate(pkts[25:], start=25)]
    jb = JitterBuffer(l16_decode)
    emitted = simulate_drain(jb, arrivals, until=3.0)
    pause = [(t, f) for t, f in emitted if 0.5 <= t < 1.5]
    # Concealment frames keep the 20 ms pace (each at its due time), fading to silence.
    assert len(pause) == pytest.approx(50, abs=2)
    assert all(f.concealed == FRAME for _, f in pause)
    assert all(b - a == pytest.approx(0.02) for (a, _), (b, _) in itertools.pairwise(pause))
    assert not np.any(pause[-1][1].pcm)
    # The sender resumed on its old clock: played at once, not dropped as late.
    resumed = [f for t, f in emitted if t >= 1.5]
    assert jb.stats.resyncs == 1 and jb.stats.late == 0
    assert np.array_equal(concat(resumed[1:])[: 24 * FRAME], sig[26 * FRAME : 50 * FRAME])
    assert max_step(concat([f for _, f in emitted])) <= 1.25 * max_step(sig)


def test_drain_recuts_30ms_packets_and_survives_loss_and_jitter() -> None:
    sig = voice(3.0, seed=23)
    pkts = packetize(sig, ptime_samples=240)
    rng = random.Random(24)
    arrivals = [
        (i * 0.03 + rng.uniform(0, 0.01), p) for i, p in enumerate(pkts) if rng.random() > 0.05
    ]
    jb = JitterBuffer(l16_decode)
    emitted = simulate_drain(jb, arrivals, until=3.2)
    frames = [f for _, f in emitted]
    assert all(ts_diff(b.timestamp, a.timestamp) == FRAME for a, b in itertools.pairwise(frames))
    assert max_step(concat(frames)) <= 1.25 * max_step(sig)
    assert jb.lost == len(pkts) - len(arrivals)


def test_drain_after_a_driver_stall_bursts_at_most_three_concealed_frames() -> None:
    pkts = packetize(voice(0.2, seed=25))
    jb = JitterBuffer(l16_decode)
    for i, p in enumerate(pkts):
        jb.put(p, i * 0.02)
        assert len(jb.drain(i * 0.02)) == 1
    assert jb.drain_deadline() == pytest.approx(0.18 + 0.02 + 0.02)
    # The driver wakes 300 ms late: three frames, then the pace restarts from now.
    assert len(jb.drain(0.5)) == 3
    assert jb.drain_deadline() == pytest.approx(0.52)
    assert jb.drain(0.519) == []
    assert len(jb.drain(0.52)) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 119), st.floats(0, 0.25)), max_size=160),
    st.sampled_from([80, 160, 240]),
    st.integers(0, 60),
)
def test_drain_any_arrival_pattern_gives_whole_bounded_frames(
    deliveries: list[tuple[int, float]], ptime: int, reorder_ms: int
) -> None:
    sig = voice(120 * ptime / RATE + 0.1, seed=ptime + 1)
    pkts = packetize(sig, ptime_samples=ptime, ts0=0xFFFFF000)
    arrivals = [(k * ptime / RATE + delay, pkts[k]) for k, delay in deliveries]
    jb = JitterBuffer(l16_decode, reorder_ms=reorder_ms)
    emitted = simulate_drain(jb, arrivals, until=120 * ptime / RATE + 1.0)
    frames = [f for _, f in emitted]
    assert all(len(f.pcm) == FRAME for f in frames)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(emitted))
    jumps = sum(ts_diff(b.timestamp, a.timestamp) != FRAME for a, b in itertools.pairwise(frames))
    assert jumps <= jb.stats.resyncs
    if frames:
        assert max_step(concat(frames)) <= 1.25 * max_step(sig)


def test_telephone_events_on_the_stream_or_their_own_ssrc_leave_audio_alone() -> None:
    sig = voice(1.0, seed=30)
    pkts = packetize(sig, seq0=10)
    # Events on the audio SSRC take sequence numbers 30-32 (audio after them is renumbered);
    # SIPp-style events come on their own SSRC.
    stream: list[tuple[float, RtpPacket]] = []
    for i, p in enumerate(pkts):
        seq = p.sequence_number + (3 if i >= 20 else 0)
        stream.append((i * 0.02, RtpPacket(11, seq, p.timestamp, p.ssrc, p.payload)))
        if i == 19:
            for k in range(3):
                stream.append(
                    (i * 0.02, RtpPacket(101, 30 + k, p.timestamp, p.ssrc, b"\x01\x0a\0\xa0"))
                )
                stream.append((i * 0.02, RtpPacket(101, 900 + k, 5, 0xD7, b"\x01\x0a\0\xa0")))
    jb = JitterBuffer(l16_decode, payload_type=11)
    emitted = simulate_drain(jb, stream, until=1.0)
    assert np.array_equal(concat([f for _, f in emitted])[: len(sig)], sig)
    assert jb.lost == 0 and jb.stats.resyncs == 0 and jb.stats.received == len(pkts)
