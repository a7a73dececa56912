"""A recorded browser call: 24 kHz stereo, the caller's voice on the left and the parrot's
answer as the browser heard it on the right, the same as phone calls."""

from __future__ import annotations

import asyncio
import wave

import numpy as np

from bridge.calls.end import EndReason
from bridge.webrtc.peer import ClientPeer
from media.resample import Resampler
from tests.support.audio import best_correlation, voiced_signal
from tests.webrtc.conftest import Bridge, place_call

PROFILE = {"record": "stereo"}  # the bridge fixture's default profile records


def _at_48k(pcm: np.ndarray) -> np.ndarray:
    r = Resampler(24000, 48000)
    return np.concatenate([r.process(pcm), r.flush()])


async def test_a_browser_call_is_recorded_both_ways(bridge: Bridge) -> None:
    voice = voiced_signal(1.5, seed=5)
    peer = ClientPeer()
    try:
        call_id = await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        peer.mic.play(_at_48k(voice))
        async with asyncio.timeout(30):
            await peer.wait_event("output_audio_buffer.stopped")
        call = bridge.manager.calls[call_id]
        assert call.recording_status() == {
            "mode": "stereo",
            "format": "wav",
            "sample_rate": 24000,
            "url": f"/v1/calls/{call_id}/recording",
            "paused": False,
        }
        call.end(EndReason.API_HANGUP)
        await bridge.manager.wait_idle()
    finally:
        await peer.close()
    path = bridge.manager.recordings.path_for(call_id)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 24000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    seconds = len(stereo) / 24000
    loud_left = np.flatnonzero(np.abs(stereo[:, 0]) > 2000) / 24000
    loud_right = np.flatnonzero(np.abs(stereo[:, 1]) > 2000) / 24000
    inner = voice[2400:-2400]
    left, right = best_correlation(inner, stereo[:, 0]), best_correlation(inner, stereo[:, 1])
    stats = call.recording.mixer.stats if call.recording is not None else None
    print(
        f"browser call recording: {seconds:.2f} s, voice on the left {loud_left[0]:.2f}-"
        f"{loud_left[-1]:.2f} s (correlation {left:.3f}), the parrot on the right "
        f"{loud_right[0]:.2f}-{loud_right[-1]:.2f} s ({right:.3f}); frames dropped "
        f"{stats and stats.frames_dropped}, late {stats and stats.frames_late}"
    )
    # the caller's second and a half on the left, the parrot's answer after it on the right
    # (this test's process runs the browser, rtbridge and the agent: a loaded machine stalls
    # it, and a stall shows in the recording as it did on the wire, so no sample-exact check)
    assert 1.0 <= loud_left[-1] - loud_left[0] <= 2.5
    assert loud_right[0] > loud_left[-1]
