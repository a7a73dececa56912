"""The floor for ``rtbridge bench sip``: the same packet load through a bare asyncio UDP relay.

``python -m bridge.bench._udp_floor`` answers SIPp's calls with the least SIP that works (a
200 OK with an SDP naming a fresh UDP socket, 200 to BYE; no transactions, no records, no
agent) and, for each call, echoes every datagram it receives on that call's socket back to
its sender: one socket per call, receive and send back, nothing else. While the benchmark's
window is open no SIP flows, so the process's CPU time is that of the UDP relay alone.

It prints ``{"sip_port": P, "pid": PID}`` when ready and answers ``status`` on stdin with the
live calls and datagrams echoed; ``hangup`` sends BYE on every call (as rtbridge's worker does
at the end of a run). It exits on stdin close or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["main"]

Address = tuple[str, int]


class _Echo(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport

    def __init__(self, counter: list[int]) -> None:
        self.counter = counter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.transport.sendto(data, addr)
        self.counter[0] += 1


def _response(request: list[str], status: str, *, tag: str, body: str = "") -> bytes:
    """A response copying Via/From/To/Call-ID/CSeq from the request (a To tag added)."""
    lines = [f"SIP/2.0 {status}"]
    for line in request[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            lines.append(line)
        elif name in ("to", "t"):
            lines.append(line if ";tag=" in line else f"{line};tag={tag}")
    lines.append("Contact: <sip:floor@127.0.0.1>")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _sdp(port: int) -> str:
    return (
        "v=0\r\no=floor 1 1 IN IP4 127.0.0.1\r\ns=floor\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )


@dataclass
class _FloorCall:
    rtp: asyncio.DatagramTransport
    answer: bytes
    invite: list[str]
    signalling: Address


class FloorUas(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.calls: dict[str, _FloorCall] = {}
        self.port = 0
        self.echoed = [0]
        self._pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        call_id = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in lines
                if ln.lower().startswith(("call-id:", "i:"))
            ),
            "",
        )
        if method == "INVITE":
            known = self.calls.get(call_id)
            if known is not None:  # a retransmission: the same answer again
                self._send(known.answer, addr)
                return
            task = asyncio.create_task(self._answer(lines, call_id, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        elif method == "BYE":
            self._send(_response(lines, "200 OK", tag="floor"), addr)
            call = self.calls.pop(call_id, None)
            if call is not None:
                call.rtp.close()
        elif method not in ("ACK", "SIP/2.0"):
            self._send(_response(lines, "200 OK", tag="floor"), addr)

    async def _answer(self, lines: list[str], call_id: str, addr: Address) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Echo(self.echoed), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        answer = _response(lines, "200 OK", tag="floor", body=_sdp(port))
        self.calls[call_id] = _FloorCall(transport, answer, lines, addr)
        self._send(answer, addr)

    def hangup(self) -> None:
        """BYE on every call (the caller answers 200, which is ignored)."""
        for n, (call_id, call) in enumerate(list(self.calls.items())):
            headers = {ln.split(":", 1)[0].strip().lower(): ln for ln in call.invite[1:]}
            to = headers.get("to", "To: <sip:floor@127.0.0.1>")
            caller = headers.get("from", "From: <sip:caller@127.0.0.1>")
            contact = headers.get("contact", "")
            target = contact.split(":", 1)[1].strip().strip("<>") if contact else "sip:caller"
            bye = (
                f"BYE {target} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-floor-bye-{n}\r\n"
                f"From: {to.split(':', 1)[1].strip()};tag=floor\r\n"
                f"To: {caller.split(':', 1)[1].strip()}\r\n"
                f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            self._send(bye.encode(), call.signalling)
            call.rtp.close()
            del self.calls[call_id]

    def _send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def status(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "echoed": self.echoed[0]}


async def _run() -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    transport, uas = await loop.create_datagram_endpoint(FloorUas, local_addr=("127.0.0.1", 0))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"sip_port": transport.get_extra_info("sockname")[1], "pid": os.getpid()})

    async def commands() -> None:
        while line := (await reader.readline()).decode():
            cmd = line.strip()
            if cmd == "hangup":
                uas.hangup()
                await asyncio.sleep(0.5)  # let SIPp's 200s arrive before we may exit
            say(uas.status() if cmd in ("status", "hangup") else {"error": cmd})
        stop.set()

    task = asyncio.create_task(commands())
    try:
        await stop.wait()
    finally:
        task.cancel()
        for call in uas.calls.values():
            call.rtp.close()
        transport.close()
    return 0


def main() -> int:
    return asyncio.run(_run())


if __name__ == "__main__":
    sys.exit(main())
