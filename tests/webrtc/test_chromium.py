"""Headless Chromium calls rtbridge: the ``@openai/agents-realtime`` WebRTC transport pointed at
``/v1/realtime/calls``, and the demo page at ``/``, each with a fake microphone playing speech
made by espeak-ng. The agent must receive the speech and the page must hear the parrot.

Chromium (Debian's ``/usr/bin/chromium``) is driven by playwright-core from npm
(``tests/peers``); no browser is ever downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import os
import subprocess
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from scipy.signal import resample_poly

from tests.support.audio import best_correlation, write_wav
from tests.support.peers import in_ci, require_peer
from tests.webrtc.conftest import KEY, Bridge

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / "tests" / "peers"
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
ARTIFACTS = REPO / "test-artifacts"
SPEECH = "Hello there. This is a browser calling through the bridge. Please repeat what I say."

pytestmark = pytest.mark.peer("chromium")


def _require_node_modules() -> Path:
    node_modules = PEERS / "node_modules"
    needed = [node_modules / "playwright-core", node_modules / "@openai" / "agents-realtime"]
    missing = [p.name for p in needed if not p.exists()]
    if missing:
        msg = f"npm peers {missing} are not installed (run `bash tests/peers/install.sh`)"
        if in_ci():
            pytest.fail(msg + " and CI=true forbids skipping peer tests")
        pytest.skip(msg)
    return node_modules


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng speech as a 48 kHz mono s16 WAV: 0.5 s silence, the sentence, 8 s silence
    (Chromium loops the file; the parrot finishes before the speech comes round again)."""
    espeak = require_peer("espeak-ng")
    out = tmp_path_factory.mktemp("speech")
    raw = out / "espeak.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(raw), SPEECH], check=True)
    with wave.open(str(raw)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert rate == 22050
    speech = resample_poly(pcm.astype(np.float64), 320, 147)  # 22050 -> 48000
    speech = speech / np.max(np.abs(speech)) * 20000
    full = np.concatenate([np.zeros(24000), speech, np.zeros(48000 * 8)]).astype(np.int16)
    return write_wav(out / "speech48k.wav", full, 48000)


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _static_site(node_modules: Path, tmp: Path) -> Iterator[str]:
    """The SDK test page on its own origin (so CORS is exercised), with the SDK's bundle."""
    site = tmp / "site"
    site.mkdir()
    (site / "sdk.html").write_text((BROWSER_DIR / "sdk.html").read_text())
    (site / "bundle").symlink_to(node_modules / "@openai" / "agents-realtime" / "dist" / "bundle")
    handler = functools.partial(_Handler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _drive(node_modules: Path, config: dict[str, Any]) -> dict[str, Any]:
    node = require_peer("node")
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    proc = await asyncio.create_subprocess_exec(
        node,
        str(BROWSER_DIR / "driver.cjs"),
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"chromium driver failed:\n{err.decode()[-4000:]}"
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _speech_energy(pcm: np.ndarray) -> float:
    """RMS of the loudest second of 24 kHz audio."""
    if len(pcm) < 24000:
        return 0.0
    x = pcm.astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    return float(np.sqrt(np.max(csum[24000:] - csum[:-24000]) / 24000))


async def _wait_gone(bridge: Bridge, call_id: str) -> str | None:
    async with asyncio.timeout(30):
        while call_id in bridge.manager.calls:
            await asyncio.sleep(0.1)
    bridge.store.flush()
    record = bridge.store.get_call(call_id)
    return record.end_reason if record is not None else None


async def test_agents_sdk_webrtc_in_chromium(
    bridge: Bridge, speech_wav: Path, tmp_path: Path
) -> None:
    chromium = require_peer("chromium")
    node_modules = _require_node_modules()
    from openai import AsyncOpenAI

    secret = await AsyncOpenAI(
        base_url=f"{bridge.url}/v1", api_key=KEY
    ).realtime.client_secrets.create(session={"type": "realtime"})
    ARTIFACTS.mkdir(exist_ok=True)
    with _static_site(node_modules, tmp_path) as site:
        result = await _drive(
            node_modules,
            {
                "chromium": chromium,
                "wav": str(speech_wav),
                "pageUrl": f"{site}/sdk.html",
                "mode": "sdk",
                "screenshot": str(ARTIFACTS / "webrtc-agents-sdk.png"),
                "sdk": {
                    "baseUrl": f"{bridge.url}/v1/realtime/calls",
                    "key": secret.value,
                    "listenMs": 30000,
                },
            },
        )
    # connect() resolved on the session.updated answering the SDK's session.update: inside that
    # message's dispatch (so it is the very next event the page's listener sees), not on the
    # SDK's 5 s fallback timer
    at_connect = result["atConnect"]
    assert "session.updated" not in at_connect
    assert result["events"][len(at_connect)] == "session.updated"
    assert "error" not in result["events"]
    assert result["callId"] and result["callId"].startswith("call_")
    # the agent received the speech: it heard a turn and parroted it
    session = bridge.agent.sessions[-1]
    assert session.instructions == "Repeat after me."
    assert _speech_energy(session.decoded_pcm) > 1000
    # and it is the speech: a second of the WAV is found in what the agent received, through
    # Chromium's capture processing and Opus
    with wave.open(str(speech_wav)) as w:
        ref = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    ref24 = resample_poly(ref.astype(np.float64), 1, 2)[18000:42000].astype(np.int16)
    assert best_correlation(ref24, session.decoded_pcm) > 0.6
    assert any(r.source == "parrot" and r.audio_ms >= 1000 for r in session.responses)
    # the page heard the parrot on the remote track
    assert "output_audio_buffer.started" in result["events"]
    assert result["maxRms"] > 0.05
    assert result["audibleMs"] >= 1000
    assert "response.output_audio.delta" not in result["events"]
    assert await _wait_gone(bridge, result["callId"]) in ("peer-closed", "datachannel-closed")


async def test_demo_page_in_chromium(bridge: Bridge, speech_wav: Path) -> None:
    chromium = require_peer("chromium")
    node_modules = _require_node_modules()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "webrtc-demo-page.png"
    result = await _drive(
        node_modules,
        {
            "chromium": chromium,
            "wav": str(speech_wav),
            "pageUrl": f"{bridge.url}/",
            "mode": "demo",
            "screenshot": str(shot),
        },
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    assert result["remoteLevel"] > 0.01  # the page heard the agent
    assert "Agent:" in result["transcript"]
    assert "output_audio_buffer.started" in result["eventLog"]
    session = bridge.agent.sessions[-1]
    assert _speech_energy(session.decoded_pcm) > 1000
    assert await _wait_gone(bridge, result["callId"]) in ("peer-closed", "datachannel-closed")
