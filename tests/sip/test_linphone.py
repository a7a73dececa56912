"""Tier 3: linphonec (Linphone's console softphone) calls rtbridge and is called by it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sip.events import CallAnswered, CallEnded, EndReason
from tests.sip.sipp_support import ANSWER_SDP, endpoint, free_port
from tests.sip.test_baresip import _Answerer
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("linphonec")

RC = """[sip]
use_ipv6=0
sip_port={port}
sip_tcp_port=-1
default_proxy=-1
register_only_when_network_is_up=0
[rtp]
audio_rtp_port={rtp}-{rtp_end}
[sound]
echocancellation=0
[net]
firewall_policy=0
[video]
enabled=0
"""


async def start_linphonec(
    tmp_path: Path, port: int, *, auto_answer: bool, srtp: bool = False
) -> asyncio.subprocess.Process:
    """linphonec on ``port`` (UDP); with ``srtp`` its media must be SRTP (SDES)."""
    linphonec = require_peer("linphonec")
    (Path.home() / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
    rtp = free_port()
    rc = tmp_path / "linphonerc"
    text = RC.format(port=port, rtp=rtp, rtp_end=rtp + 20)
    if srtp:
        srtp_lines = "media_encryption=srtp\nmedia_encryption_mandatory=1\n"
        text = text.replace("[sip]\n", "[sip]\n" + srtp_lines)
    rc.write_text(text)
    args = [linphonec, "-c", str(rc), "-d", "0"] + (["-a"] if auto_answer else [])
    with (tmp_path / "linphonec.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    await asyncio.sleep(1.5)
    assert proc.stdin is not None
    proc.stdin.write(b"soundcard use files\n")
    await proc.stdin.drain()
    return proc


async def stop_linphonec(proc: asyncio.subprocess.Process, tmp_path: Path) -> str:
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), 10)
    except (TimeoutError, ConnectionError):
        proc.kill()
        await proc.wait()
    return (tmp_path / "linphonec.log").read_text(errors="replace")


async def test_linphonec_calls_rtbridge(tmp_path: Path) -> None:
    answerer = _Answerer(hold_s=1.0)
    ep = await endpoint(answerer)
    proc = await start_linphonec(tmp_path, free_port(), auto_answer=False)
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"call sip:bot@127.0.0.1:{ep.ports['udp']}\n".encode())
        await proc.stdin.drain()
        async with asyncio.timeout(15):
            await answerer.done.wait()
    finally:
        out = await stop_linphonec(proc, tmp_path)
        await ep.close()
    assert [type(e) for e in answerer.events] == [CallAnswered, CallEnded], out[-2000:]
    assert "connected" in out and "ended" in out


async def test_rtbridge_calls_linphonec(tmp_path: Path) -> None:
    port = free_port()
    proc = await start_linphonec(tmp_path, port, auto_answer=True)
    ep = await endpoint()
    events: list[object] = []
    try:
        call = await ep.invite(f"sip:linphone@127.0.0.1:{port}", ANSWER_SDP)
        async with asyncio.timeout(15):
            async for ev in call.events():
                events.append(ev)
                if isinstance(ev, CallAnswered):
                    await asyncio.sleep(1.0)
                    call.hangup()
    finally:
        await ep.close()
        out = await stop_linphonec(proc, tmp_path)
    answered = [e for e in events if isinstance(e, CallAnswered)]
    assert answered and b"m=audio" in answered[0].sdp, out[-2000:]
    assert isinstance(events[-1], CallEnded) and events[-1].reason is EndReason.LOCAL_BYE
