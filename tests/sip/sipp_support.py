"""Running SIPp against an in-process rtbridge SIP endpoint, and a minimal UDP client for
SIPp registrars and servers (tests only)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sip.driver import CallHandler, DefaultHandler, SipEndpoint, start_sip
from sip.message import Request, Response, parse_message
from sip.settings import SipSettings, TrunkSettings
from tests.support.peers import require_peer

SCENARIOS = Path(__file__).parent / "scenarios"
#: RFC 3261 timers of :class:`UdpClient`'s non-INVITE client transactions (§17.1.2)
T1, T2, TIMER_F = 0.5, 4.0, 32.0
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


def unattended(sipp_timeout: int = 30, local_ip: str = "127.0.0.1") -> list[str]:
    """SIPp's options for a run no one watches: from ``local_ip``, a private control port, no
    stdin, and a hard timeout that counts as a failure."""
    return [
        "-i",
        local_ip,
        "-cp",
        str(free_port()),
        "-nostdin",
        "-timeout",
        f"{sipp_timeout}s",
        "-timeout_error",
    ]


async def run_sipp(
    sipp: str,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 60.0,
    sipp_timeout: int = 30,
    local_ip: str = "127.0.0.1",
) -> SippResult:
    """Run SIPp with a private control port, no stdin and a hard timeout (logs go to ``cwd``),
    from ``local_ip`` (another 127.0.0.x is another source to rtbridge).

    Cancelled (a test gives up on its caller), SIPp is killed and reaped before the
    cancellation goes on: left running, it outlived the test's event loop, and its transport,
    collected in some later test, failed that test with "Event loop is closed"."""
    proc = await asyncio.create_subprocess_exec(
        sipp,
        *args,
        *unattended(sipp_timeout, local_ip),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()  # reads the pipes to their end: the transport closes
        raise
    return SippResult(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


class UdpClient(asyncio.DatagramProtocol):
    """Sends requests over UDP and returns each one's final response (matched by branch)."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[str, asyncio.Future[Response]] = {}
        self.sent: list[Request] = []
        self.received: list[Response] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if not isinstance(message, Response):
            return
        self.received.append(message)
        future = self.waiting.get(message.top_via.branch or "")
        if message.status >= 200 and future is not None and not future.done():
            future.set_result(message)

    async def __call__(self, request: Request) -> Response | None:
        assert self.transport is not None
        branch = request.top_via.branch or ""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiting[branch] = future
        self.sent.append(request)
        data = bytes(request)
        interval, elapsed = T1, 0.0
        try:
            while elapsed < TIMER_F:
                self.transport.sendto(data, self.peer)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), interval)
                except TimeoutError:
                    elapsed += interval
                    interval = min(interval * 2, T2)
            return None
        finally:
            del self.waiting[branch]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def start_sipp(
    scenario: str, port: int, cwd: Path, *, tcp: bool = False
) -> asyncio.subprocess.Process:
    sipp = require_peer("sipp")
    proc = await asyncio.create_subprocess_exec(
        sipp,
        "-sf",
        str(SCENARIOS / scenario),
        "-p",
        str(port),
        "-m",
        "1",
        *unattended(),
        "-trace_err",
        *(["-t", "t1"] if tcp else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    for _ in range(100):  # wait until SIPp holds its port
        try:
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            return proc
        await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("SIPp did not bind its port")


async def finish_sipp(proc: asyncio.subprocess.Process, cwd: Path) -> tuple[int, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in cwd.glob("*_errors.log"))
    text = out.decode(errors="replace")[-3000:] + err.decode(errors="replace")[-2000:] + errors
    assert proc.returncode is not None
    return proc.returncode, text


async def open_client(sipp_port: int) -> tuple[asyncio.DatagramTransport, UdpClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: UdpClient(("127.0.0.1", sipp_port)), local_addr=("127.0.0.1", 0)
    )
    return transport, client
