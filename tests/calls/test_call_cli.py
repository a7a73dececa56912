"""``rtbridge call TARGET`` as a user runs it, against SIPp callees."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer
from tests.support.procs import RTBRIDGE

pytestmark = pytest.mark.peer("sipp")
SIP_SCENARIOS = Path(__file__).parents[1] / "sip" / "scenarios"


async def _call(tmp_path: Path, target: str, *extra: str) -> tuple[int, list[dict[str, object]]]:
    cfg = tmp_path / "rtbridge.toml"
    cfg.write_text('[profiles.default]\ndial_targets = ["sip:*@127.0.0.1:*"]\n')
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "call",
        target,
        "--config",
        str(cfg),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path), "RTBRIDGE_API_KEY": "k"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
    assert proc.returncode is not None, err.decode()[-2000:]
    return proc.returncode, lines


async def test_call_to_a_busy_callee_exits_1_and_says_busy(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    port = free_port()
    callee = asyncio.create_task(
        run_sipp(
            sipp,
            "-sf",
            str(SIP_SCENARIOS / "uas_486.xml"),
            "-m",
            "1",
            "-p",
            str(port),
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)
    code, lines = await _call(tmp_path, f"sip:busy@127.0.0.1:{port}")
    assert code == 1
    assert lines[0]["outcome"] == "busy" and lines[0]["sip_status"] == 486
    assert (await callee).returncode == 0


async def test_answered_call_is_hung_up_after_duration(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    port, media = free_port(), free_port()
    callee = asyncio.create_task(
        run_sipp(
            sipp,
            "-sn",
            "uas",
            "-rtp_echo",
            "-m",
            "1",
            "-p",
            str(port),
            "-mp",
            str(media),
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)
    code, lines = await _call(tmp_path, f"sip:echo@127.0.0.1:{port}", "--duration", "1.5")
    assert code == 0
    assert lines[0]["outcome"] == "answered"
    assert lines[1] == {"call_id": lines[0]["call_id"], "ended": "local-hangup"}
    assert (await callee).returncode == 0  # SIPp got our BYE


async def test_target_outside_the_allowlist_exits_2(tmp_path: Path) -> None:
    code, lines = await _call(tmp_path, "sip:+4420@carrier.example.com")
    assert code == 2 and lines == []
