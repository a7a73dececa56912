"""Running SIPp against an in-process rtbridge SIP endpoint (tests only)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

from sip.driver import CallHandler, DefaultHandler, SipEndpoint, start_sip
from sip.settings import SipSettings, TrunkSettings

SCENARIOS = Path(__file__).parent / "scenarios"
ANSWER_SDP = (
    b"v=0\r\no=rtbridge 1 1 IN IP4 127.0.0.1\r\ns=rtbridge\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


async def endpoint(
    handler: CallHandler | None = None,
    *,
    udp: bool = True,
    tcp: bool = True,
    trunks: list[TrunkSettings] | None = None,
) -> SipEndpoint:
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=0 if udp else None,
        tcp_port=0 if tcp else None,
        trunks=trunks or [],
    )
    return await start_sip(settings, handler or DefaultHandler(ANSWER_SDP))


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> str:
        return f"rc={self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-2000:]}"


async def run_sipp(
    sipp: str,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 60.0,
    sipp_timeout: int = 30,
    local_ip: str = "127.0.0.1",
) -> SippResult:
    """Run SIPp with a private control port, no stdin and a hard timeout (logs go to ``cwd``),
    from ``local_ip`` (another 127.0.0.x is another source to rtbridge)."""
    cmd = [
        sipp,
        *args,
        "-cp",
        str(free_port(socket.SOCK_DGRAM)),
        "-nostdin",
        "-timeout",
        f"{sipp_timeout}s",
        "-timeout_error",
        "-i",
        local_ip,
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return SippResult(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )
