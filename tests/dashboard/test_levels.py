"""Audio levels for the dashboard's meters, measured on the latest frame each way: a tone's
level within a dB of its true RMS, on the pass-through and the transcoding paths; silence and
a stopped stream read as such."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.calls.sip_media import SipMedia
from bridge.realtime.formats import AudioFormat
from media import g711
from media.codecs import codec_for
from media.level import SILENCE_DBFS
from media.rtp import RtpPacket


def tone(dbfs: float, rate: int, seconds: float) -> np.ndarray:
    amp = 32768 * math.sqrt(2) * 10 ** (dbfs / 20)
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


@pytest.mark.parametrize("fmt", [AudioFormat.PCMU, AudioFormat.PCM16])
def test_levels_follow_both_directions(fmt: AudioFormat) -> None:
    media = SipMedia(
        codec_for("PCMU", 8000),
        payload_type=0,
        session_format=fmt,
        send_rtp=lambda _b: True,
        to_agent=lambda _b: True,
    )
    assert media.pass_through is (fmt is AudioFormat.PCMU)
    assert media.levels() == (None, None)
    now = 100.0
    media.on_tick(now, now)
    caller = tone(-20.0, 8000, 0.2)
    for i in range(10):
        now += 0.020
        payload = g711.ulaw_encode(caller[i * 160 : (i + 1) * 160])
        media.on_rtp(RtpPacket(0, i, i * 160, 7, payload), now)
        media.on_tick(now, now + 0.0005)
    level_in, level_out = media.levels()
    assert level_in is not None and abs(level_in - -20.0) < 1.0
    assert level_out == SILENCE_DBFS  # the agent has not spoken: silence frames go out

    agent = tone(-30.0, 8000 if fmt is AudioFormat.PCMU else 24000, 0.2)
    audio = g711.ulaw_encode(agent) if fmt is AudioFormat.PCMU else agent.tobytes()
    media.push_agent_audio("resp_1", "item_1", audio)
    for _ in range(5):
        now += 0.020
        media.on_tick(now, now + 0.0005)
    level_in, level_out = media.levels()
    assert level_out is not None and abs(level_out - -30.0) < 1.0
    assert level_in is None  # the caller stopped sending 100 ms ago
