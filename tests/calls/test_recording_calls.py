"""Recorded calls with a real softphone: what baresip said is on the left, what it heard on the
right, on one timeline; a barge-in's cut is where baresip heard the agent stop; the turn
latency of an upstream that thinks 300 ms before speaking.

baresip speaks espeak-ng speech (aufile) and dumps what it hears (sndfile); the local agent
parrots each turn. The recording is compared with both of baresip's files, sample by sample.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.calls.baresip_calls import call_with_baresip, heard, make_confdir, speech_wav
from tests.calls.conftest import Stack
from tests.support.audio import best_lag, loud_frames

pytestmark = pytest.mark.peer("baresip")

RATE = 8000
FRAME = RATE // 50


def lag_of(part: NDArray[np.int16], whole: NDArray[np.int16]) -> tuple[float, int]:
    """Where ``part`` is in ``whole`` (up to a second before it starts) and how well."""
    return best_lag(part, whole, before=RATE)


def recording(stack: Stack, call_id: str) -> tuple[int, NDArray[np.int16], NDArray[np.int16]]:
    path = stack.manager.recordings.path_for(call_id)
    assert path.stat().st_mode & 0o777 == 0o600
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert channels == 2
    stereo = data.reshape(-1, 2)
    return rate, stereo[:, 0].copy(), stereo[:, 1].copy()


def segments(loud: NDArray[np.bool_], gap: int = 25) -> list[tuple[int, int]]:
    """Runs of loud frames (in frames), merging runs closer than ``gap`` frames (pauses
    between words)."""
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(loud):
        if runs and i - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], int(i) + 1)
        else:
            runs.append((int(i), int(i) + 1))
    return runs


@pytest.mark.parametrize(
    "stack_options",
    [
        {"profile": {"record": "stereo"}},
        {"profile": {"record": "stereo"}, "agent": {"formats": ["pcm16"]}},
    ],
    ids=["pass-through", "transcoding"],
)
async def test_left_is_what_baresip_said_right_what_it_heard_on_one_timeline(
    stack: Stack, tmp_path: Path
) -> None:
    source, speech = speech_wav(tmp_path)
    confdir = make_confdir(tmp_path, source)
    log = await call_with_baresip(confdir, f"sip:bot@127.0.0.1:{stack.sip_port}")
    got_heard = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye", log[-2000:]
    rate, left, right = recording(stack, record.call_id)
    assert rate == RATE
    # the caller's words, on the left, as sent; the parrot, on the right, as heard
    voiced = speech[int(0.3 * RATE) : len(speech) - int(6.0 * RATE)]
    score_left, at_left = lag_of(voiced, left)
    score_right, at_right = lag_of(got_heard[: len(right)], right)
    # the parrot's answer in what baresip heard, and where it is in baresip's own timeline
    score_echo, echo_in_heard = lag_of(voiced, got_heard)
    print(
        f"left {score_left:.3f} at {at_left / RATE:.3f} s, right {score_right:.3f} "
        f"(heard starts {at_right / RATE:.3f} s in), echo in heard {score_echo:.3f} at "
        f"{echo_in_heard / RATE:.3f} s"
    )
    assert score_left > 0.9, log[-2000:]
    assert score_right > 0.9
    assert score_echo > 0.8
    # one timeline: the caller's speech sits where baresip sent it, relative to what baresip
    # heard (baresip starts its dump with the first packet it hears and its microphone when
    # the call is up: the same moment, give or take one frame)
    sent_at = int(0.3 * RATE)  # where the words start in baresip's file
    assert abs((at_left - sent_at) - at_right) <= FRAME, (at_left - sent_at, at_right)
    # and the left channel is silence where baresip was silent
    quiet = left[at_left + len(voiced) + RATE // 2 : at_left + len(voiced) + 4 * RATE]
    assert np.sqrt(np.mean(quiet.astype(np.float64) ** 2)) < 100


@pytest.mark.parametrize(
    "stack_options",
    [{"profile": {"record": "stereo"}, "agent_kwargs": {"chunk_interval_s": 0.1}}],
)
async def test_a_barge_in_cuts_the_right_channel_where_the_caller_heard_the_agent_stop(
    stack: Stack, tmp_path: Path
) -> None:
    """The agent streams in real time, so its answer is still playing when the caller talks
    over it: the recording's agent channel stops where baresip's ears did."""
    _plain, raw = speech_wav(tmp_path, tail_s=0.0)
    gap = np.zeros(int(0.9 * RATE), dtype=np.int16)
    tail = np.zeros(int(7.0 * RATE), dtype=np.int16)
    source = tmp_path / "barge.wav"
    with wave.open(str(source), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate([raw, gap, raw, tail]).tobytes())
    confdir = make_confdir(tmp_path, source)
    log = await call_with_baresip(confdir, f"sip:bot@127.0.0.1:{stack.sip_port}", seconds=35)
    got_heard = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    events = [(e.kind, e.data) for e in stack.store.events(record.call_id)]
    cleared = [d for k, d in events if k == "output_audio_buffer.cleared"]
    assert cleared and cleared[0]["truncated"], log[-2000:]
    heard_ms = cleared[0]["truncated"][0]["audio_end_ms"]
    _rate, _left, right = recording(stack, record.call_id)
    score, at = lag_of(got_heard[: len(right)], right)
    assert score > 0.9
    heard_runs = segments(loud_frames(got_heard, FRAME))
    right_runs = segments(loud_frames(right, FRAME))
    print(f"heard {heard_runs}, recorded {right_runs} (heard starts at frame {at / FRAME:.1f})")
    # the first answer is cut: it is shorter than the second (the whole parrot)
    assert len(heard_runs) >= 2 and len(right_runs) >= 2
    cut_heard = heard_runs[0][1] + at / FRAME  # on the recording's timeline
    cut_right = right_runs[0][1]
    assert abs(cut_right - cut_heard) <= 1, (cut_right, cut_heard)
    # and what the recording holds of it is what rtbridge told the agent was heard
    played_ms = (right_runs[0][1] - right_runs[0][0]) * 20
    assert played_ms <= heard_ms + 40
    assert right_runs[0][1] - right_runs[0][0] < right_runs[1][1] - right_runs[1][0]


@pytest.mark.parametrize(
    "stack_options",
    # PCM16 to the agent: the local agent then takes the audio as it comes (with G.711 its
    # own resampler waits for the next packet before its VAD sees the last one: 20-40 ms of
    # the upstream's own on top of the 300)
    [
        {
            "profile": {"record": "stereo"},
            "agent": {"first_audio_delay_ms": 300, "formats": ["pcm16"]},
        }
    ],
)
async def test_an_upstream_thinking_300_ms_is_reported_as_300_ms_plus_rtbridges_share(
    stack: Stack, tmp_path: Path
) -> None:
    """The turn starts where the caller's words end on the recording's timeline (plus the
    silence the agent's VAD waits for), and its upstream share is the 300 ms the agent was
    told to think."""
    source, _speech = speech_wav(tmp_path)
    confdir = make_confdir(tmp_path, source)
    log = await call_with_baresip(confdir, f"sip:bot@127.0.0.1:{stack.sip_port}")
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    turns = [e.data for e in stack.store.events(record.call_id) if e.kind == "turn.latency"]
    assert turns, log[-2000:]
    turn = turns[0]
    _rate, left, _right = recording(stack, record.call_id)
    words_end = segments(loud_frames(left, FRAME))[0][1] * FRAME / RATE
    print(f"turn: {turn}; the words end at {words_end:.3f} s on the recording")
    assert turn["total_s"] == pytest.approx(turn["upstream_s"] + turn["bridge_s"], abs=1e-3)
    # 300 ms plus rtbridge's own share, within 40 ms; rtbridge's share on its own
    assert abs(turn["total_s"] - (0.300 + turn["bridge_s"])) <= 0.040, turn
    assert 0 <= turn["bridge_s"] < 0.1
    # the turn ends where the words end on the left plus the agent VAD's 200 ms of silence
    # (the left channel places a frame in the period it arrived in: up to two periods early)
    assert words_end <= turn["speech_end_s"] <= words_end + 0.2 + 0.06, (words_end, turn)
