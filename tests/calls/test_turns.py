"""Turn latency on virtual time: ``audio_end_ms`` maps back to when that caller audio arrived,
and the turn splits into the upstream's share and rtbridge's."""

from __future__ import annotations

import pytest

from bridge.calls.turns import TurnTimer, latency_summary


def feed(timer: TurnTimer, frames: int, start: float = 10.0, jitter: float = 0.0) -> None:
    for i in range(frames):
        timer.caller_frame(start + (i + 1) * 0.02 + (jitter if i % 2 else 0.0))


def test_a_turn_is_measured_from_the_audio_the_upstream_named() -> None:
    timer = TurnTimer()
    feed(timer, 100)  # frame i (20 ms) reached rtbridge at 10.02 + 0.02 i
    # the upstream says speech ended 1500 ms into the audio; it says so later (its VAD)
    timer.speech_stopped(1500, now=11.9)
    timer.response_created("resp_1")
    timer.audio_delta("resp_1", now=12.0)
    timer.audio_delta("resp_1", now=12.05)  # only the first delta counts
    turn = timer.playback_started("resp_1", at=12.013, origin=9.0)
    assert turn is not None
    assert turn.speech_end_s == pytest.approx(1.5 + 10.0 - 9.0)
    assert turn.upstream_s == pytest.approx(0.5)
    assert turn.bridge_s == pytest.approx(0.013)
    assert turn.total_s == pytest.approx(0.513)
    assert timer.count == 1


def test_responses_that_answer_no_turn_are_not_turns() -> None:
    timer = TurnTimer()
    feed(timer, 10)
    timer.response_created("greeting")
    timer.audio_delta("greeting", 1.0)
    assert timer.playback_started("greeting", 1.1, origin=0.0) is None
    assert timer.count == 0


def test_a_renewed_session_counts_its_audio_from_zero() -> None:
    timer = TurnTimer()
    feed(timer, 50)  # one second in the first session
    timer.renewed()
    feed(timer, 50, start=11.0)  # the second session's audio: frame j at 11.02 + 0.02 j
    timer.speech_stopped(400, now=12.0)
    timer.response_created("r")
    timer.audio_delta("r", 12.0)
    turn = timer.playback_started("r", 12.0, origin=0.0)
    assert turn is not None
    assert turn.speech_end_s == pytest.approx(11.4)


def test_unknown_audio_falls_back_to_when_the_upstream_said_so() -> None:
    timer = TurnTimer()
    feed(timer, 10)
    timer.speech_stopped(10_000, now=5.0)  # beyond what was sent
    timer.response_created("r")
    timer.audio_delta("r", 5.2)
    turn = timer.playback_started("r", 5.25, origin=0.0)
    assert turn is not None and turn.upstream_s == pytest.approx(0.2)


def test_summary() -> None:
    assert latency_summary([]) == {"p50": None, "p95": None, "count": 0}
    timer = TurnTimer()
    for n in range(20):
        feed(timer, 5, start=n * 10.0)
        timer.speech_stopped(None, now=n * 10.0)
        timer.response_created(f"r{n}")
        timer.audio_delta(f"r{n}", n * 10.0 + 0.1 * (n + 1))
        timer.playback_started(f"r{n}", n * 10.0 + 0.1 * (n + 1), origin=0.0)
    summary = latency_summary(list(timer.turns))
    assert summary["count"] == 20
    assert summary["p50"] == pytest.approx(1.0)
    assert summary["p95"] == pytest.approx(1.9)
