"""Reframer: any packet size in, exact frames out, nothing lost or invented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs import PcmaCodec
from media.framing import Reframer
from media.resample import Resampler
from media.rtp import RtpPacket
from tests.support.pcap import read_udp
from tests.support.peers import require_peer


def test_sipp_30ms_packets_become_20ms_frames() -> None:
    r = Reframer(160)
    x = np.arange(240 * 4, dtype=np.int16)
    frames = [f for i in range(4) for f in r.push(x[i * 240 : (i + 1) * 240])]
    assert [len(f) for f in frames] == [160] * 6
    assert np.array_equal(np.concatenate(frames), x)
    assert r.pending == 0


def test_remainder_is_carried_and_flushed() -> None:
    r = Reframer(160)
    assert r.push(np.ones(100, dtype=np.int16)) == []
    assert r.pending == 100
    (frame,) = r.push(np.full(100, 2, dtype=np.int16))
    assert frame.tolist() == [1] * 100 + [2] * 60
    assert r.pending == 40
    assert r.flush().tolist() == [2] * 40
    assert r.pending == 0 and len(r.flush()) == 0


def test_empty_and_single_samples() -> None:
    r = Reframer(3)
    assert r.push(np.zeros(0, dtype=np.int16)) == []
    out = [f for v in range(7) for f in r.push(np.array([v], dtype=np.int16))]
    assert [f.tolist() for f in out] == [[0, 1, 2], [3, 4, 5]]
    assert r.pending == 1


def test_frames_do_not_alias_the_callers_buffer() -> None:
    r = Reframer(4)
    buf = np.arange(8, dtype=np.int16)
    frames = r.push(buf)
    buf[:] = 0
    assert np.concatenate(frames).tolist() == list(range(8))


def test_stereo_frames_count_pairs() -> None:
    r = Reframer(2, channels=2)
    frames = r.push(np.arange(9, dtype=np.int16))
    assert [f.tolist() for f in frames] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert r.pending == 1  # half a pair waits


def test_reset_drops_the_partial_frame() -> None:
    r = Reframer(160)
    r.push(np.ones(10, dtype=np.int16))
    r.reset()
    assert r.pending == 0


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Reframer(0)
    with pytest.raises(ValueError):
        Reframer(160, channels=3)
    floats: Any = np.zeros(3)
    with pytest.raises(TypeError, match="int16"):
        Reframer(160).push(floats)


@given(
    sizes=st.lists(st.integers(0, 500), max_size=40),
    frame=st.sampled_from([1, 80, 160, 320, 480, 960]),
)
@settings(max_examples=100, deadline=None)
def test_concatenation_is_preserved(sizes: list[int], frame: int) -> None:
    total = sum(sizes)
    x = (np.arange(total) % 30000).astype(np.int16)
    r = Reframer(frame)
    frames, pos = [], 0
    for n in sizes:
        frames += r.push(x[pos : pos + n])
        pos += n
    assert all(len(f) == frame for f in frames)
    assert len(frames) == total // frame
    rest = r.flush()
    assert np.array_equal(np.concatenate([*frames, rest]), x)


@pytest.mark.peer("sipp")
def test_sipp_capture_30ms_pcma_becomes_20ms_24k_frames() -> None:
    """SIPp's own A-law capture (30 ms packets) through decode, re-cut and resampling."""
    require_peer("sipp")
    path = Path("/usr/share/sip-tester/g711a.pcap")
    packets = [RtpPacket.parse(d.payload) for d in read_udp(path)]
    assert {len(p.payload) for p in packets} == {240}
    codec, reframer, up = PcmaCodec(), Reframer(160), Resampler(8000, 24000)
    decoded, frames, out = [], [], []
    for p in packets:
        pcm = codec.decode(p.payload)
        decoded.append(pcm)
        for frame in reframer.push(pcm):
            frames.append(frame)
            out.append(up.process(frame))
    assert len(frames) == len(packets) * 240 // 160
    assert all(len(f) == 160 for f in frames)
    assert np.array_equal(np.concatenate(frames), np.concatenate(decoded)[: 160 * len(frames)])
    assert sum(len(o) for o in out) == 3 * 160 * len(frames) - up.delay_samples
