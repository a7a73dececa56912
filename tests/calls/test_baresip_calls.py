"""A real softphone talks to the agent through rtbridge and hears its own words come back.

baresip speaks espeak-ng speech (aufile) and records what it hears (sndfile); the local
agent parrots each turn. Pass-through G.711, forced transcoding (agent accepts only PCM16)
and upstreams in the xAI, Azure, Gemini Live and GPT-Live dialects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.calls.baresip_calls import call_with_baresip, heard, make_confdir, speech_wav
from tests.calls.conftest import Stack
from tests.support.audio import best_correlation

pytestmark = pytest.mark.peer("baresip")


@pytest.mark.parametrize(
    ("stack_options", "expected_format"),
    [
        ({}, "g711_ulaw"),
        ({"agent": {"formats": ["pcm16"]}}, "pcm16"),
        ({"agent": {"dialect": "xai"}, "profile": {"upstream": {"dialect": "xai"}}}, "g711_ulaw"),
        (
            {"agent": {"dialect": "azure"}, "profile": {"upstream": {"dialect": "azure"}}},
            "g711_ulaw",
        ),
        (  # Gemini takes PCM only: the call transcodes, and its input is resampled to 16 kHz
            {"agent": {"dialect": "gemini"}, "profile": {"upstream": {"dialect": "gemini"}}},
            "pcm16",
        ),
        (
            {"agent": {"dialect": "gpt-live"}, "profile": {"upstream": {"dialect": "gpt-live"}}},
            "g711_ulaw",
        ),
    ],
    ids=["pass-through", "transcoding", "xai-dialect", "azure", "gemini", "gpt-live"],
)
async def test_baresip_hears_the_parrot(
    stack: Stack, tmp_path: Path, stack_options: dict[str, object], expected_format: str
) -> None:
    source, speech = speech_wav(tmp_path)
    confdir = make_confdir(tmp_path, source)
    log = await call_with_baresip(confdir, f"sip:bot@127.0.0.1:{stack.sip_port}")
    recorded = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.session_format == expected_format, log[-2000:]
    assert record.end_reason == "remote-bye"
    voiced = speech[int(0.3 * 8000) : int(0.3 * 8000) + len(speech) - int(6.3 * 8000)]
    score = best_correlation(voiced, recorded)
    print(f"parrot correlation ({expected_format}): {score:.3f}")
    assert score > 0.8, (score, log[-2000:])
