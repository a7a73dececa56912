"""``kill -9`` of a real ``rtbridge serve`` with three SIPp calls up, then a restart on the same
data directory: the three call records are ``ended`` with reason ``interrupted`` (at the time
of their last event), and the control plane lists no live call: no ghosts.

And a recorded call through it: the API shows the recording, pauses and resumes it, serves it
with ranges while the call goes on; ``kill -9`` mid-call leaves a file that plays up to about
its last second and holds what the caller said, and the restarted server still serves it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import best_correlation, ulaw_file, voiced_signal
from tests.support.peers import require_peer
from tests.support.procs import start_rtbridge

pytestmark = pytest.mark.peer("sipp")

KEY = "rtb_crash_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _env(data: Path, *, record: bool = False) -> dict[str, str]:
    base = rtp_range()["rtp_port_min"]
    env = {
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(data),
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(base),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(base + 200),
    }
    if record:
        env["RTBRIDGE_PROFILES__DEFAULT__RECORD"] = "stereo"
    return env


async def test_kill_9_with_three_calls_up_leaves_no_ghost_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sip_port = free_port()
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 60.0))
    scenario = tmp_path / "long.xml"
    scenario.write_text(sc.uac(sc.stream(audio), sc.pause(60000), sc.send_bye(2)))
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)), "--sip-port", str(sip_port))
    async with start_rtbridge(*args, env=_env(data)) as first:
        callers = asyncio.create_task(
            run_sipp(
                require_peer("sipp"),
                "-sf",
                str(scenario),
                f"127.0.0.1:{sip_port}",
                "-m",
                "3",
                "-l",
                "3",
                "-r",
                "10",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port()),
                cwd=tmp_path,
                timeout=90,
            )
        )
        try:
            async with httpx.AsyncClient(base_url=first.url, headers=AUTH, timeout=10) as client:
                async with asyncio.timeout(30):
                    while True:
                        live = (await client.get("/v1/calls", params={"state": "active"})).json()
                        if len(live["data"]) == 3:
                            break
                        await asyncio.sleep(0.1)
                ids = sorted(c["id"] for c in live["data"])
                await asyncio.sleep(1.5)  # the calls log events (transcripts, playback)
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
        finally:
            callers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await callers
    assert first.proc.returncode == -signal.SIGKILL

    async with (
        start_rtbridge(*args, env=_env(data)) as second,
        httpx.AsyncClient(base_url=second.url, headers=AUTH, timeout=10) as client,
    ):
        listed = (await client.get("/v1/calls")).json()["data"]
        assert [c for c in listed if c["state"] != "ended"] == []  # no ghost
        ended = {
            c["id"]: c
            for c in (await client.get("/v1/calls", params={"state": "ended"})).json()["data"]
        }
        assert sorted(ended) == ids
        for call_id in ids:
            call = ended[call_id]
            assert call["end_reason"] == "interrupted", call
            events = (await client.get(f"/v1/calls/{call_id}/events")).json()["data"]
            assert events and call["ended_at"] == max(e["ts"] for e in events)


async def test_recording_api_and_kill_9_mid_call(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sip_port = free_port()
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 60.0))
    scenario = tmp_path / "long.xml"
    scenario.write_text(sc.uac(sc.stream(audio), sc.pause(60000), sc.send_bye(2)))
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)), "--sip-port", str(sip_port))
    async with start_rtbridge(*args, env=_env(data, record=True)) as first:
        caller = asyncio.create_task(
            run_sipp(
                require_peer("sipp"),
                "-sf",
                str(scenario),
                f"127.0.0.1:{sip_port}",
                "-m",
                "1",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port()),
                cwd=tmp_path,
                timeout=90,
            )
        )
        try:
            async with httpx.AsyncClient(base_url=first.url, headers=AUTH, timeout=10) as client:
                async with asyncio.timeout(30):
                    while True:
                        live = (await client.get("/v1/calls", params={"state": "active"})).json()
                        if live["data"]:
                            break
                        await asyncio.sleep(0.1)
                call_id = live["data"][0]["id"]
                answered = time.monotonic()
                url = f"/v1/calls/{call_id}"
                view = (await client.get(url)).json()
                assert view["recording"] == {
                    "mode": "stereo",
                    "format": "wav",
                    "sample_rate": 8000,
                    "url": f"/v1/calls/{call_id}/recording",
                    "paused": False,
                }
                assert view["turn_latency"] == {"p50": None, "p95": None, "count": 0}
                # the parrot answers the caller's second of voice: one turn
                async with asyncio.timeout(20):
                    while not (await client.get(url)).json()["turns"]:
                        await asyncio.sleep(0.2)
                view = (await client.get(url)).json()
                (turn,) = view["turns"]
                assert set(turn) == {
                    "response_id",
                    "speech_end_s",
                    "upstream_s",
                    "bridge_s",
                    "total_s",
                }
                assert view["turn_latency"]["count"] == 1
                assert view["turn_latency"]["p50"] == turn["total_s"]
                paused = (await client.post(f"{url}/recording/pause")).json()
                assert paused["recording"]["paused"] is True
                resumed = (await client.post(f"{url}/recording/resume")).json()
                assert resumed["recording"]["paused"] is False
                # served while it grows, with ranges
                part = await client.get(f"{url}/recording", headers={"Range": "bytes=0-43"})
                assert part.status_code == 206, part.text
                assert part.content[:4] == b"RIFF" and len(part.content) == 44
                assert part.headers["content-type"] == "audio/wav"
                assert (await client.get("/v1/calls/call_nope/recording")).status_code == 404
                await asyncio.sleep(2.5)  # the file grows; its header follows every second
                metrics = (await client.get("/metrics")).text
                assert "rtbridge_turn_latency_seconds_count 1.0" in metrics
                assert "rtbridge_upstream_first_audio_seconds_count 1.0" in metrics
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
            lived = time.monotonic() - answered
        finally:
            caller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await caller

    # what kill -9 left: a WAV that plays (Python's own reader trusts the header) up to its
    # last second, owner-only, with the caller's voice on the left
    path = data / "recordings" / f"{call_id}.wav"
    assert path.stat().st_mode & 0o777 == 0o600
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        frames = w.getnframes()
        stereo = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, 2)
    print(f"kill -9 after {lived:.2f} s of call: {frames / 8000:.2f} s readable")
    assert frames / 8000 >= lived - 2.0  # header at most ~1 s behind, mixer ~0.3 s
    score = best_correlation(voiced_signal(1.0, rate=8000, seed=1)[800:7200], stereo[:, 0])
    assert score > 0.9, score
    assert np.abs(stereo[:, 1]).max() > 1000  # the parrot's answer, on the right

    async with (
        start_rtbridge(*args, env=_env(data, record=True)) as second,
        httpx.AsyncClient(base_url=second.url, headers=AUTH, timeout=10) as client,
    ):
        ended = (await client.get(f"/v1/calls/{call_id}")).json()
        assert ended["end_reason"] == "interrupted"
        assert ended["recording"]["mode"] == "stereo" and ended["recording"]["sample_rate"] == 8000
        assert ended["turn_latency"]["count"] == 1
        whole = await client.get(f"/v1/calls/{call_id}/recording")
        assert whole.status_code == 200 and whole.content == path.read_bytes()
        size = len(whole.content)
        tail = await client.get(
            f"/v1/calls/{call_id}/recording", headers={"Range": f"bytes={size - 100}-"}
        )
        assert tail.status_code == 206
        assert tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
        kinds = [
            e["kind"] for e in (await client.get(f"/v1/calls/{call_id}/events")).json()["data"]
        ]
        assert kinds.index("recording.paused") < kinds.index("recording.resumed")
        assert "turn.latency" in kinds and "recording.started" in kinds
        unauthenticated = await client.get(
            f"/v1/calls/{call_id}/recording", headers={"Authorization": ""}
        )
        assert unauthenticated.status_code == 401
