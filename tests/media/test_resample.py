"""Streaming resampler: exact lengths, chunking invariance, quality bars, stereo downmix."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from media.quality import measure_resampler, passband_tones, sinad_db, tone
from media.resample import _DESIGNS, SUPPORTED_RATES, Resampler, _bank, _design_taps

DIRECTIONS = sorted(SUPPORTED_RATES)
ALL_CASES = [(a, b, 1) for a, b in DIRECTIONS] + [(48000, 24000, 2)]


ALL_IDS = [f"{a}x2-{b}" if ch == 2 else f"{a}-{b}" for a, b, ch in ALL_CASES]


def _noise(n: int, seed: int = 0, scale: float = 6000.0) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(n) * scale, -32768, 32767).astype(np.int16)


def _reference(x: NDArray[np.int16], in_rate: int, out_rate: int, n_out: int) -> NDArray[np.int16]:
    """Direct form: zero-stuff by L, convolve with the whole prototype, pick every M-th sample."""
    b = _bank(in_rate, out_rate)
    h = _design_taps(_DESIGNS[(min(in_rate, out_rate), max(in_rate, out_rate))]) * b.up
    xu = np.zeros(len(x) * b.up)
    xu[:: b.up] = x
    full = np.convolve(xu, h)
    j = np.arange(n_out)
    return np.clip(np.rint(full[j * b.down + b.lookahead]), -32768, 32767).astype(np.int16)


def _chunks(x: NDArray[np.int16], sizes: list[int]) -> list[NDArray[np.int16]]:
    out, i, k = [], 0, 0
    while i < len(x):
        size = sizes[k % len(sizes)]
        out.append(x[i : i + size])
        i += size
        k += 1
    return out


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_matches_direct_form_filter_with_random_chunks(in_rate: int, out_rate: int) -> None:
    x = _noise(4 * in_rate // 10)
    sizes = [int(s) for s in np.random.default_rng(1).integers(0, 50, size=97)] + [0, 1, 3]
    r = Resampler(in_rate, out_rate)
    y = np.concatenate([r.process(c) for c in _chunks(x, sizes)])
    assert y.dtype == np.int16
    want = _reference(x, in_rate, out_rate, len(y))
    assert np.abs(y.astype(np.int32) - want).max() <= 1  # float summation order only


@pytest.mark.parametrize(("in_rate", "out_rate", "channels"), ALL_CASES, ids=ALL_IDS)
def test_output_length_tracks_input_exactly_over_a_long_stream(
    in_rate: int, out_rate: int, channels: int
) -> None:
    r = Resampler(in_rate, out_rate, channels)
    rng = np.random.default_rng(7)
    block = _noise(4000 * channels, seed=3)
    delay = r.delay_samples
    n_in = total = 0
    # About 60 s of input in chunks of 0 .. 1500 values (odd sizes included).
    while n_in < 60 * in_rate:
        size = int(rng.integers(0, 1500))
        if channels == 2:
            size = size * 2 + int(rng.integers(0, 2))  # sometimes half a frame
        total += len(r.process(block[: min(size, len(block))]))
        values = r.input_count
        n_in = values
        assert total == max(0, n_in * out_rate // in_rate - delay)
        assert r.output_count == total
    total += len(r.flush())
    assert total == n_in * out_rate // in_rate


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_delay_count_is_the_documented_latency(in_rate: int, out_rate: int) -> None:
    documented = {
        (8000, 24000): 48,
        (24000, 8000): 16,
        (16000, 24000): 30,
        (24000, 16000): 20,
        (48000, 24000): 20,
        (24000, 48000): 40,
    }
    r = Resampler(in_rate, out_rate)
    assert r.delay_samples == documented[(in_rate, out_rate)]
    assert r.delay_samples / out_rate * 1000 == pytest.approx(r.latency_ms, abs=1000 / out_rate)
    assert r.latency_ms <= 2.0


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_one_sample_chunks_equal_one_shot(in_rate: int, out_rate: int) -> None:
    x = _noise(in_rate // 50 * 3 + 7, seed=5)
    one = Resampler(in_rate, out_rate)
    whole = one.process(x)
    tail = one.flush()
    many = Resampler(in_rate, out_rate)
    parts = [many.process(x[i : i + 1]) for i in range(len(x))]
    assert np.array_equal(np.concatenate([*parts, many.flush()]), np.concatenate([whole, tail]))


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_small_frame_and_oversized_chunks_mixed_match_direct_form(
    in_rate: int, out_rate: int
) -> None:
    # The work buffer slides its history forward when small chunks fill it, and a chunk longer
    # than it gets a buffer of its own for one call; a stream mixing both stays exact.
    x = _noise(6 * in_rate, seed=33)
    frame = in_rate // 50
    sizes = [1, 7, 0, *[frame] * 60, 13, 3 * in_rate // 2, *[frame] * 30, in_rate // 2, 5000]
    r = Resampler(in_rate, out_rate)
    y = np.concatenate([r.process(c) for c in _chunks(x, sizes)] + [r.flush()])
    assert len(y) == len(x) * out_rate // in_rate
    want = _reference(x, in_rate, out_rate, len(y) - r.delay_samples)
    assert np.abs(y[: len(want)].astype(np.int32) - want).max() <= 1
    one = Resampler(in_rate, out_rate)
    assert np.array_equal(y, np.concatenate([one.process(x), one.flush()]))


@given(
    data=st.lists(st.integers(-32768, 32767), min_size=0, max_size=700),
    cuts=st.lists(st.integers(0, 700), max_size=12),
    direction=st.sampled_from(DIRECTIONS),
)
@settings(max_examples=60, deadline=None)
def test_any_partition_gives_the_same_stream(
    data: list[int], cuts: list[int], direction: tuple[int, int]
) -> None:
    x = np.array(data, dtype=np.int16)
    a = Resampler(*direction)
    whole = np.concatenate([a.process(x), a.flush()])
    b = Resampler(*direction)
    bounds = sorted({0, len(x), *(c for c in cuts if c <= len(x))})
    parts = [b.process(x[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
    assert np.array_equal(np.concatenate([*parts, b.flush()]), whole)
    assert len(whole) == len(x) * direction[1] // direction[0]


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_flush_returns_the_zero_padded_tail_and_resets(in_rate: int, out_rate: int) -> None:
    x = _noise(1001, seed=9)
    r = Resampler(in_rate, out_rate)
    head = r.process(x)
    tail = r.flush()
    assert len(head) + len(tail) == len(x) * out_rate // in_rate
    padded = np.concatenate([x, np.zeros(200, dtype=np.int16)])
    want = _reference(padded, in_rate, out_rate, len(head) + len(tail))
    got = np.concatenate([head, tail])
    assert np.abs(got.astype(np.int32) - want).max() <= 1
    assert r.input_count == 0 and r.output_count == 0
    # After flush the instance is fresh.
    assert np.array_equal(r.process(x), Resampler(in_rate, out_rate).process(x))


def test_reset_forgets_history() -> None:
    r = Resampler(8000, 24000)
    r.process(_noise(333, seed=2))
    r.reset()
    x = _noise(500, seed=4)
    assert np.array_equal(r.process(x), Resampler(8000, 24000).process(x))


@pytest.mark.parametrize(("in_rate", "out_rate", "channels"), ALL_CASES, ids=ALL_IDS)
def test_empty_input(in_rate: int, out_rate: int, channels: int) -> None:
    r = Resampler(in_rate, out_rate, channels)
    y = r.process(np.zeros(0, dtype=np.int16))
    assert y.dtype == np.int16 and y.shape == (0,)
    assert r.flush().shape == (0,)


@pytest.mark.parametrize(("in_rate", "out_rate", "channels"), ALL_CASES, ids=ALL_IDS)
def test_quality_bars(in_rate: int, out_rate: int, channels: int) -> None:
    q = measure_resampler(
        lambda: Resampler(in_rate, out_rate, channels), in_rate, out_rate, channels
    )
    assert q.sinad_db >= 80.0
    assert q.alias_db >= 60.0
    assert q.latency_ms <= 2.0
    assert q.latency_ms == pytest.approx(Resampler(in_rate, out_rate).latency_ms, abs=0.01)


@pytest.mark.parametrize(("in_rate", "out_rate"), [d for d in DIRECTIONS if d[0] < d[1]])
def test_interpolators_reach_80_db_sinad_over_the_full_output_band(
    in_rate: int, out_rate: int
) -> None:
    # Stricter than the bar: images count as distortion here.
    for f in passband_tones(in_rate, out_rate):
        r = Resampler(in_rate, out_rate)
        y = r.process(tone(f, in_rate, int(1.3 * in_rate)))
        window = y[out_rate // 10 : out_rate // 10 + out_rate]
        assert sinad_db(window, f) >= 80.0, f


def test_8k_pair_filter_edges() -> None:
    # Decimating 24k -> 8k: 4.6 kHz and up must not fold back; 4 kHz is already well down.
    def level(f: int) -> float:
        r = Resampler(24000, 8000)
        y = r.process(tone(f, 24000, 30000)).astype(np.float64)[2000:10000]
        return float(20 * np.log10(np.sqrt(2 * np.mean(y**2)) / 29204.0 + 1e-12))

    assert level(1001) == pytest.approx(0.0, abs=0.01)
    assert level(3399) > -0.15
    assert level(4001) < -8.0
    assert max(level(f) for f in (4601, 5003, 7001, 9001, 11999)) < -85.0


def test_dc_gain_is_unity() -> None:
    for in_rate, out_rate in DIRECTIONS:
        r = Resampler(in_rate, out_rate)
        y = r.process(np.full(in_rate // 10, 10000, dtype=np.int16))
        assert np.all(np.abs(y[len(y) // 2 :].astype(np.int32) - 10000) <= 1)


def test_full_scale_square_wave_saturates_instead_of_wrapping() -> None:
    x = np.tile(np.r_[np.full(40, 32767), np.full(40, -32768)].astype(np.int16), 50)
    y = Resampler(8000, 24000).process(x)
    ref = _reference(x, 8000, 24000, len(y))
    assert np.array_equal(y, ref)
    # Gibbs overshoot reaches the rails but never flips sign.
    assert y.max() == 32767 and y.min() == -32768


def test_stereo_downmix_is_the_channel_mean() -> None:
    left = tone(1001, 48000, 48000)
    right = tone(3001, 48000, 48000, amplitude=10000.0)
    stereo = np.empty(2 * len(left), dtype=np.int16)
    stereo[0::2], stereo[1::2] = left, right
    y = Resampler(48000, 24000, channels_in=2).process(stereo)
    mono_in = ((left.astype(np.float64) + right) / 2).astype(np.int16)  # reference path
    want = Resampler(48000, 24000).process(mono_in)
    assert np.abs(y.astype(np.int32) - want).max() <= 1
    # Opposite channels cancel.
    anti = np.empty_like(stereo)
    anti[0::2], anti[1::2] = left, -left
    assert np.abs(Resampler(48000, 24000, channels_in=2).process(anti)).max() <= 1


def test_stereo_half_frames_are_carried() -> None:
    stereo = _noise(2 * 3000, seed=11)
    a = Resampler(48000, 24000, channels_in=2)
    whole = a.process(stereo)
    b = Resampler(48000, 24000, channels_in=2)
    parts = [b.process(stereo[i : i + 7]) for i in range(0, len(stereo), 7)]
    assert np.array_equal(np.concatenate(parts), whole)
    b.process(stereo[:3])
    assert b.input_count == len(stereo) // 2 + 1  # the third value waits for its partner


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Resampler(8000, 16000)
    with pytest.raises(ValueError, match="channels_in"):
        Resampler(48000, 24000, channels_in=6)
    r = Resampler(8000, 24000)
    floats: Any = np.zeros(4, dtype=np.float32)
    with pytest.raises(TypeError, match="int16"):
        r.process(floats)
    with pytest.raises(ValueError, match="1-D"):
        r.process(np.zeros((2, 2), dtype=np.int16))


@pytest.mark.parametrize(("in_rate", "out_rate"), DIRECTIONS)
def test_long_single_call_equals_frames(in_rate: int, out_rate: int) -> None:
    # Over the internal block size: the filter runs in bounded steps, same samples.
    x = _noise(3 * in_rate + 13, seed=21)
    whole = Resampler(in_rate, out_rate).process(x)
    r = Resampler(in_rate, out_rate)
    frame = in_rate // 50
    framed = np.concatenate([r.process(x[i : i + frame]) for i in range(0, len(x), frame)])
    assert len(whole) > 8192
    assert np.array_equal(whole, framed)
