"""Audio levels for the dashboard's meters, measured on the latest frame each way: a tone's
level within a dB of its true RMS, on the SIP leg's pass-through and transcoding paths and on
the browser leg (Opus); silence and a stopped stream read as such."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.calls.sip_media import SipMedia
from bridge.realtime.formats import AudioFormat
from bridge.webrtc.media import TickedAudioTrack, WebRtcMedia
from media import g711
from media.codecs import codec_for
from media.codecs.opus import OpusCodec
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


def _opus_tone(dbfs_level: float, seconds: float) -> list[RtpPacket]:
    """A browser's microphone: a tone as 48 kHz stereo Opus RTP (RFC 7587), 20 ms a packet."""
    enc = OpusCodec(stereo=True, bit_rate=64000)
    mono = tone(dbfs_level, 48000, seconds)
    stereo = np.stack([mono, mono], axis=1).reshape(-1)
    return [
        RtpPacket(111, i, i * 960, 0x1234, enc.encode(stereo[i * 1920 : (i + 1) * 1920]))
        for i in range(len(stereo) // 1920)
    ]


async def test_browser_levels_follow_both_directions() -> None:
    """The browser leg's meters read like the SIP leg's: the caller's decoded Opus and the
    agent's PCM16 before Opus, each within a dB of the tone's level; None once stopped."""
    media = WebRtcMedia(to_agent=lambda _b: True, track=TickedAudioTrack())
    assert media.levels() == (None, None)
    now = 100.0
    for packet in _opus_tone(-20.0, 0.3):
        now += 0.020
        media.on_rtp(packet, now)
        media.on_tick(now, now + 0.0005)  # nobody reads the track: it keeps its newest 10
    level_in, level_out = media.levels()
    assert level_in is not None and abs(level_in - -20.0) < 1.5, level_in
    assert level_out == SILENCE_DBFS  # the agent has not spoken: silence frames go out

    media.push_agent_audio("resp_1", "item_1", tone(-30.0, 24000, 0.2).tobytes())
    for _ in range(5):
        now += 0.020
        media.on_tick(now, now + 0.0005)
    level_in, level_out = media.levels()
    assert level_out is not None and abs(level_out - -30.0) < 1.0, level_out
    assert level_in is None  # the browser stopped sending 100 ms ago
