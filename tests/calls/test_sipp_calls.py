"""Phone calls end to end with SIPp as the caller and the callee, and the local agent upstream."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.calls.conftest import Stack
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")


def _pcap_dir(tmp_path: Path) -> Path:
    link = tmp_path / "pcap"
    if not link.exists():
        os.symlink("/usr/share/sip-tester", link)
    return tmp_path


async def _records_settled(stack: Stack) -> None:
    async with asyncio.timeout(20):
        await stack.manager.wait_idle()
    stack.store.flush()


async def test_sipp_uac_pcap_alaw_audio_and_digit_reach_the_agent(
    stack: Stack, tmp_path: Path
) -> None:
    sipp = require_peer("sipp")
    res = await run_sipp(
        sipp,
        "-sn",
        "uac_pcap",
        f"127.0.0.1:{stack.sip_port}",
        "-m",
        "1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        cwd=_pcap_dir(tmp_path),
        timeout=90,
    )
    assert res.returncode == 0, res.summary()
    await _records_settled(stack)

    # The agent got the caller's A-law untouched (pass-through), re-cut from 30 ms to 20 ms.
    session = stack.agent.sessions[0]
    assert session.session["audio"]["input"]["format"] == {"type": "audio/pcma"}
    sizes = session.audio_chunk_sizes
    assert len(sizes) >= 300 and set(sizes) == {160}, sizes[:10]

    (record,) = stack.store.list_calls()
    assert (record.direction, record.codec, record.session_format) == (
        "inbound",
        "PCMA",
        "g711_alaw",
    )
    assert record.end_reason == "remote-bye"
    digits = [e.data["digit"] for e in stack.store.events(record.call_id) if e.kind == "dtmf"]
    assert digits == ["1"]
    assert stack.manager.ports.in_use == 0  # the call is freed
