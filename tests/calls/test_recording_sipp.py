"""Recorded SIPp calls: the consent announcement comes before anything else the agent says
(and only when the call records), and a paused recording holds silence, not the caller."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack
from tests.support.audio import ulaw_file

pytestmark = pytest.mark.peer("sipp")

CONSENT = "This call is recorded for quality."
GREETING = "Hello, how can I help?"


async def call(stack: Stack, tmp_path: Path, seconds: float = 4.0) -> str:
    audio = ulaw_file(tmp_path / "a.ulaw", ("silence", seconds))
    steps = (sc.stream(audio), sc.pause(int(seconds * 1000)), sc.send_bye(2))
    res = await stack.sipp_caller(tmp_path, sc.uac(*steps))
    assert res.returncode == 0, res.summary()
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    return record.call_id


@pytest.mark.parametrize(
    ("stack_options", "said"),
    [
        (
            {"profile": {"record": "stereo", "record_announcement": CONSENT, "greeting": GREETING}},
            [f"Say: {CONSENT}", f"Say: {GREETING}"],
        ),
        (
            {"profile": {"record": "off", "record_announcement": CONSENT, "greeting": GREETING}},
            [f"Say: {GREETING}"],
        ),
    ],
    ids=["recorded", "not-recorded"],
)
async def test_the_consent_announcement_comes_first_and_only_when_recording(
    stack: Stack, tmp_path: Path, said: list[str]
) -> None:
    call_id = await call(stack, tmp_path)
    responses = stack.agent.sessions[0].responses
    assert [r.instructions for r in responses] == said
    assert all(r.status == "completed" for r in responses)  # one after the other, no collision
    path = stack.manager.recordings.path_for(call_id)
    assert path.exists() == (len(said) == 2)
    if path.exists():
        with wave.open(str(path), "rb") as w:
            right = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")[1::2]
        assert np.abs(right).max() > 1000  # the announcement is in the recording
        record = stack.store.get_call(call_id)
        assert record is not None  # what the recording dropped is in the call's record: nothing
        assert record.stats["recording_dropped_blocks"] == 0
        assert record.stats["recording_dropped_frames"] == 0
