"""A phone call outlives its agent's upstream sessions: baresip talks to the parrot through
rtbridge while the local agent ends every session after 4 s the way its dialect does (so a
15 s call lives through at least two renewals), and every turn the caller speaks comes back.

The gaps are measured in audio time, each way:

* caller -> agent: the caller audio rtbridge took from the call (RTP frames to the agent, and
  those it dropped while no session was up) minus the audio the agent's sessions received
  (less what was sent again: a turn an ended session never answered);
* agent -> caller: for each of the caller's turns, the voiced 20 ms frames of what it said that
  are silent in the parrot's answer as baresip recorded it.

The figures are printed and written to ``test-artifacts/renewal/<dialect>.json``.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.calls.baresip_calls import call_with_baresip, heard, make_confdir
from tests.calls.conftest import Stack
from tests.support.audio import best_lag, loud_frames, voiced_signal

pytestmark = pytest.mark.peer("baresip")

RATE = 8000
FRAME = RATE // 50  # 20 ms
TURNS = 4
TURN_S, PAUSE_S = 1.2, 2.3
SESSION_MAX_S = 4.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "renewal"


def _caller_wav(root: Path) -> tuple[Path, list[NDArray[np.int16]]]:
    """0.3 s of silence, then four turns of distinct speech-like signal with pauses."""
    turns = [voiced_signal(TURN_S, rate=RATE, seed=10 + n) for n in range(TURNS)]
    parts: list[NDArray[np.int16]] = [np.zeros(int(0.3 * RATE), dtype=np.int16)]
    for turn in turns:
        parts += [turn, np.zeros(int(PAUSE_S * RATE), dtype=np.int16)]
    path = root / "turns.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(parts).tobytes())
    return path, turns


def _dialect_options(dialect: str) -> dict[str, Any]:
    return {
        "agent": {"dialect": dialect, "session_max_s": SESSION_MAX_S},
        "profile": {"upstream": {"dialect": dialect}},
    }


@pytest.mark.parametrize(
    "stack_options",
    [_dialect_options(d) for d in ("ga", "azure", "gemini", "gpt-live")],
    ids=["ga", "azure", "gemini", "gpt-live"],
)
async def test_a_call_lives_through_two_session_ends_with_audio_both_ways(
    stack: Stack, tmp_path: Path, stack_options: dict[str, Any]
) -> None:
    dialect = stack_options["agent"]["dialect"]
    source, turns = _caller_wav(tmp_path)
    confdir = make_confdir(tmp_path, source)
    log = await call_with_baresip(confdir, f"sip:bot@127.0.0.1:{stack.sip_port}", seconds=30)
    recorded = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye", log[-2000:]
    renewals = [e.data for e in stack.store.events(record.call_id) if e.kind == "session.renewed"]
    assert len(renewals) >= 2, (renewals, log[-2000:])

    # caller -> agent: audio rtbridge took from the call that no agent session received (a
    # turn the old session never answered is sent again to the next: counted once)
    stats = record.stats
    taken_ms = 20 * (stats["frames_to_agent"] + stats["frames_dropped_upstream"])
    resent_ms = sum(r["audio_resent_ms"] for r in renewals)
    received_ms = sum(s.decoded_samples for s in stack.agent.sessions) / 24 - resent_ms
    to_agent_gap_ms = max(0.0, taken_ms - received_ms)
    # agent -> caller: each turn's voiced frames that are silent in its answer
    answers = []
    for turn in turns:
        score, lag = best_lag(turn, recorded)
        said = loud_frames(turn, FRAME)
        back = loud_frames(recorded[lag : lag + len(turn)], FRAME)[: len(said)]
        missing = int(np.sum(said[: len(back)] & ~back) + max(0, len(said) - len(back)))
        answers.append({"correlation": round(score, 3), "missing_ms": 20 * missing})
    figures = {
        "dialect": dialect,
        "session_format": record.session_format,
        "renewals": [
            {k: r[k] for k in ("how", "cause", "gap_ms", "audio_dropped_ms", "audio_resent_ms")}
            for r in renewals
        ],
        "caller_to_agent": {
            "taken_ms": taken_ms,
            "received_by_agent_ms": round(received_ms),
            "resent_ms": resent_ms,
            "missing_ms": round(to_agent_gap_ms),
            "dropped_while_renewing_ms": sum(r["audio_dropped_ms"] for r in renewals),
        },
        "agent_to_caller": {
            "turns": answers,
            "missing_ms": sum(a["missing_ms"] for a in answers),
        },
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{dialect}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
    # every turn came back, those spoken across a renewal included
    assert all(a["correlation"] > 0.7 for a in answers), figures
    # the gaps, bounded in audio time: a renewal costs the caller at most a few frames
    assert to_agent_gap_ms <= 200 * len(renewals), figures
    assert figures["agent_to_caller"]["missing_ms"] <= 200 * len(renewals), figures


def test_the_caller_signal_is_what_the_analysis_expects(tmp_path: Path) -> None:
    """The measurement itself: a turn found in a recording at its offset, with nothing
    missing; a turn with a 200 ms hole is 200 ms short."""
    _, turns = _caller_wav(tmp_path)
    recording = np.concatenate([np.zeros(4000, dtype=np.int16), turns[1], turns[2]])
    score, lag = best_lag(turns[1], recording)
    assert lag == 4000 and score > 0.99
    holed = turns[2].copy()
    holed[4000 : 4000 + 1600] = 0
    said, back = loud_frames(turns[2], FRAME), loud_frames(holed, FRAME)
    assert 20 * int(np.sum(said & ~back)) == 200
