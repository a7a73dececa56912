"""The recording mixer on virtual time: both directions land on the frame clock's grid, with
silence where nothing was sent or received, and pause records silence without moving time."""

from __future__ import annotations

import numpy as np
import pytest

from media import g711
from media.playout import Frame, PlayoutEncoding, PlayoutFormat
from media.recording import (
    BLOCK_FRAMES,
    LAG_FRAMES,
    MAX_AHEAD_FRAMES,
    RecordingMixer,
    RecordingMode,
)

T0 = 100.0
P = 0.02
FS = 160  # 20 ms at 8 kHz


def pcm_frame(value: int, n: int = FS) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def ulaw(value: int) -> bytes:
    return g711.ulaw_encode(pcm_frame(value))


def mixer(mode: RecordingMode = RecordingMode.STEREO) -> RecordingMixer:
    return RecordingMixer(
        mode,
        caller=PlayoutEncoding.PCMU,
        caller_rate=8000,
        agent=PlayoutFormat(PlayoutEncoding.PCMU, 8000),
    )


def agent_frame(index: int, value: int | None) -> Frame:
    if value is None:
        return Frame(bytes([0xFF]) * FS, index, T0 + index * P)
    return Frame(ulaw(value), index, T0 + index * P, "resp", "item", 0.0, FS)


def run(m: RecordingMixer, ticks: int, caller: dict[int, int | None], agent: dict[int, int | None]):
    """Drive ``ticks`` ticks; caller frame ``k`` arrives in period ``k``, agent frames are
    emitted on their tick. Returns the samples released, then flushed."""
    out = bytearray()
    for k in range(ticks):
        block = m.tick(T0 + k * P)
        if block:
            out += block
        if k in agent:
            m.agent_frames([agent_frame(k, agent[k])])
        if k in caller:
            value = caller[k]
            m.caller_frame(None if value is None else ulaw(value), end(k))
    tail = m.flush()
    if tail:
        out += tail
    return np.frombuffer(bytes(out), dtype="<i2")


def end(k: int, late: float = 0.0) -> float:
    """When rtbridge had caller frame ``k`` whole: at the start of period ``k`` (plus
    ``late``)."""
    return T0 + k * P + late


def decoded(value: int) -> int:
    return int(g711.ulaw_decode(g711.ulaw_encode(pcm_frame(value)))[0])


def test_both_directions_land_on_their_frame_with_silence_between() -> None:
    m = mixer()
    caller = {k: 1000 + 10 * k for k in range(5, 30)}
    caller[12] = None  # concealed: nothing was received
    agent: dict[int, int | None] = {k: -2000 - 10 * k for k in range(20, 40)}
    agent.update({k: None for k in range(0, 20)})  # silence frames between responses
    stereo = run(m, 60, caller, agent).reshape(-1, 2)
    left, right = stereo[:, 0], stereo[:, 1]
    for k in range(0, 60):
        frame_l = left[k * FS : (k + 1) * FS]
        frame_r = right[k * FS : (k + 1) * FS]
        want_l = decoded(caller[k]) if caller.get(k) is not None else 0
        want_r = decoded(agent[k]) if agent.get(k) is not None else 0
        assert (frame_l == want_l).all(), k
        assert (frame_r == want_r).all(), k
    assert m.stats.frames_dropped == m.stats.frames_late == 0


def test_blocks_are_released_behind_the_clock_in_pieces() -> None:
    m = mixer()
    sizes = []
    for k in range(200):
        block = m.tick(T0 + k * P)
        if block:
            sizes.append(len(block) // 4)
    assert sizes and all(n >= BLOCK_FRAMES * FS for n in sizes)
    # what is released is never closer to the clock than the lag
    assert sum(sizes) <= (199 - LAG_FRAMES) * FS


def test_gap_leaves_silence_and_the_next_frame_lands_on_its_own_slot() -> None:
    m = mixer()
    caller = {**{k: 500 for k in range(0, 10)}, **{k: 700 for k in range(30, 40)}}  # a hold
    left = run(m, 50, caller, {}).reshape(-1, 2)[:, 0]
    assert (left[10 * FS : 30 * FS] == 0).all()
    assert (left[30 * FS : 40 * FS] == decoded(700)).all()


def test_jittered_arrivals_stay_contiguous_from_the_first_frame() -> None:
    m = mixer()
    jitter = [0.0, 0.012, 0.003, 0.016, 0.001, 0.009] * 5  # up to 16 ms late, never early
    caller: dict[int, int | None] = {}
    out = bytearray()
    for k in range(40):
        block = m.tick(T0 + k * P)
        if block:
            out += block
        if k < 30:
            caller[k] = 100 + 20 * k
            m.caller_frame(ulaw(caller[k] or 0), end(k, jitter[k]))
    out += m.flush() or b""
    left = np.frombuffer(bytes(out), dtype="<i2").reshape(-1, 2)[:, 0]
    for k in range(30):  # each frame on its own period: no gap, no overlap
        assert (left[k * FS : (k + 1) * FS] == decoded(100 + 20 * k)).all(), k


def test_a_caller_running_ahead_is_cut_back_and_counted() -> None:
    m = mixer()
    m.tick(T0)
    for _ in range(MAX_AHEAD_FRAMES + 4):  # a burst, all arriving at once
        m.caller_frame(ulaw(300), end(0))
    assert m.stats.frames_dropped == 3


def test_pause_records_silence_and_keeps_the_timeline() -> None:
    m = mixer()
    out = bytearray()
    for k in range(40):
        if k == 10:
            m.pause(True)
        if k == 20:
            m.pause(False)
        block = m.tick(T0 + k * P)
        if block:
            out += block
        m.caller_frame(ulaw(900), end(k))
        m.agent_frames([agent_frame(k, -900)])
    out += m.flush() or b""
    stereo = np.frombuffer(bytes(out), dtype="<i2").reshape(-1, 2)
    assert len(stereo) == 40 * FS
    assert (stereo[10 * FS : 20 * FS] == 0).all()
    assert (stereo[: 10 * FS, 0] == decoded(900)).all()
    assert (stereo[20 * FS :, 1] == decoded(-900)).all()


def test_mixed_is_the_saturated_sum() -> None:
    m = mixer(RecordingMode.MIXED)
    mono = run(m, 30, {k: 30000 for k in range(30)}, {k: 30000 for k in range(30)})
    assert len(mono) == 30 * FS
    assert mono.max() == 32767


@pytest.mark.parametrize(("wire_rate", "rate"), [(24000, 24000), (16000, 16000), (48000, 24000)])
def test_pcm_agent_at_another_rate_is_resampled_to_the_recording_rate(
    wire_rate: int, rate: int
) -> None:
    m = RecordingMixer(
        RecordingMode.STEREO,
        caller=PlayoutEncoding.PCM16,
        caller_rate=24000,
        agent=PlayoutFormat(PlayoutEncoding.PCM16, wire_rate),
    )
    assert m.rate == rate
    n_wire = wire_rate // 50
    out = bytearray()
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(n_wire * 100) / wire_rate)).astype(np.int16)
    for k in range(100):
        block = m.tick(T0 + k * P)
        if block:
            out += block
        payload = tone[k * n_wire : (k + 1) * n_wire].tobytes()
        m.agent_frames([Frame(payload, k, T0 + k * P, "r", "i", 0.0, n_wire)])
        m.caller_frame(np.zeros(480, dtype=np.int16).tobytes(), end(k))
    out += m.flush() or b""
    right = np.frombuffer(bytes(out), dtype="<i2").reshape(-1, 2)[:, 1]
    # all of it is there, give or take the resampler's streaming delay (<= 2 ms)
    assert abs(len(right) - 100 * rate // 50) <= rate // 500
    mid = right[rate // 2 : rate].astype(np.float64)
    assert np.sqrt(np.mean(mid**2)) > 5000  # the tone, not silence


def test_an_agent_format_change_mid_call_goes_on_recording_the_agent() -> None:
    """A re-INVITE moved the call from u-law to 16 kHz PCM frames: the agent's channel keeps
    its level across the change, at the recording's own rate."""
    m = mixer()
    out = bytearray()
    for k in range(60):
        block = m.tick(T0 + k * P)
        if block:
            out += block
        if k == 30:
            m.agent_format(PlayoutFormat(PlayoutEncoding.PCM16, 16000))
        if k < 30:
            m.agent_frames([agent_frame(k, 4000)])
        else:
            wide = pcm_frame(4000, 320).tobytes()
            m.agent_frames([Frame(wide, k, T0 + k * P, "r", "i", 0.0, 320)])
    out += m.flush() or b""
    right = np.frombuffer(bytes(out), dtype="<i2").reshape(-1, 2)[:, 1]
    # all of it, give or take the two resamplers' streaming delay (<= 4 ms)
    assert m.rate == 8000 and abs(len(right) - 60 * FS) <= 32
    assert abs(int(right[20 * FS]) - decoded(4000)) <= 1  # u-law before
    assert abs(int(right[50 * FS]) - 4000) <= 40  # 16 kHz PCM after, resampled to 8 kHz
