"""Attack traffic for ``rtbridge bench flood``, from a process of its own (issue 12).

``python -m bridge.bench._flood KIND --port P [--source ADDR[,ADDR...]] ...`` sends, from the
addresses in turn (127.0.0.x: each is another source to rtbridge) to ``127.0.0.1:P``:

* ``invites``: INVITEs with distinct Call-IDs (and SDP), at ``--rate`` a second, counting the
  answers, so "at most one response per refused INVITE" can be checked from outside;
* ``vias``: 58 KB datagrams of Via values (the issue's probe: they once cost 10 ms of parsing
  each on the event loop that paces every call);
* ``hold``: TCP (or TLS, ``--transport tls``: no hello) connections that send half a 60 KB
  header, or nothing, and wait, counting how many were reset at once or closed later.

:class:`Attacker` runs one such process from the benchmark's side (``module`` lets the security
tests run their own attacker built on this one). It prints one JSON line when it starts and one
with what it saw when it ends (``--count``
messages, or ``--seconds``). Blocking sockets and sleeps only: its work never runs on
rtbridge's loop. ``--nice N`` lowers its priority: on the Internet the attacker's own CPU is on
other machines, so on one shared box it should not be what rtbridge waits for. The security
tests' attacker (``tests/security/attacker.py``) builds on the pieces here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "Attacker",
    "Udp",
    "flood",
    "hold",
    "main",
    "paced",
    "request",
    "say",
    "sdp",
    "sources",
    "via_datagram",
    "vias",
]


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def request(
    method: str,
    n: int,
    source: str,
    port: int,
    *,
    transport: str = "UDP",
    via: str | None = None,
    extra: str = "",
    body: str = "",
) -> bytes:
    """One request from a scanner at ``source``, with a Call-ID of its own."""
    via = via or f"SIP/2.0/{transport} {source}:5999;branch=z9hG4bKatk{n}x{time.time_ns()};rport"
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{method} sip:bot@127.0.0.1:{port} SIP/2.0\r\nVia: {via}\r\n"
        f"From: <sip:scanner@{source}>;tag=a{n}\r\nTo: <sip:bot@127.0.0.1>\r\n"
        f"Call-ID: attack-{n}-{time.time_ns()}@{source}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:scanner@{source}:5999>\r\nMax-Forwards: 70\r\n{extra}{ctype}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


def sdp(host: str, port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


class Udp:
    """A UDP socket at ``source`` aimed at rtbridge; counts the responses it gets."""

    def __init__(self, source: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.target = ("127.0.0.1", port)
        self.statuses: Counter[int] = Counter()
        self.bytes_in = 0

    def send(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            self.sock.sendto(data, self.target)

    def drain(self, wait: float = 0.0) -> list[bytes]:
        got: list[bytes] = []
        end = time.monotonic() + wait
        while True:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return got
            data = self.sock.recv(65536)
            self.bytes_in += len(data)
            got.append(data)
            if data.startswith(b"SIP/2.0 "):
                self.statuses[int(data[8:11])] += 1


def paced(count: int, rate: float, seconds: float | None = None) -> Iterator[int]:
    """0, 1, ... at ``rate`` a second, ``count`` of them or for ``seconds``."""
    start = time.monotonic()
    n = 0
    while n < count and (seconds is None or time.monotonic() - start < seconds):
        yield n
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def sources(args: argparse.Namespace) -> list[str]:
    return [s.strip() for s in args.source.split(",") if s.strip()]


def flood(args: argparse.Namespace, method: str = "INVITE") -> dict[str, Any]:
    """``method`` requests with distinct Call-IDs, from each source in turn; answers counted
    (retransmissions would come during ``--linger``)."""
    socks = [Udp(source, args.port) for source in sources(args)]
    sent = out = 0
    for n in paced(args.count, args.rate, args.seconds):
        udp = socks[n % len(socks)]
        source = udp.sock.getsockname()[0]
        body = sdp(args.media_host or source, 9) if method == "INVITE" else ""
        data = request(method, n, source, args.port, body=body)
        udp.send(data)
        sent += 1
        out += len(data)
        udp.drain()
    for udp in socks:
        udp.drain(args.linger / len(socks))
    statuses: Counter[int] = Counter()
    for udp in socks:
        statuses.update(udp.statuses)
    responses = sum(statuses.values())
    return {
        "sent": sent,
        "bytes_out": out,
        "responses": responses,
        "responses_per_request": round(responses / max(1, sent), 4),
        "statuses": {str(k): v for k, v in statuses.items()},
        "bytes_in": sum(udp.bytes_in for udp in socks),
    }


def via_datagram(n: int, source: str, port: int, size: int = 58_000) -> bytes:
    """A complete INVITE of about ``size`` bytes, nearly all of it Via values."""
    room = size - len(request("INVITE", n, source, port, via=""))
    values: list[str] = []
    while room > 60:
        i = len(values)
        values.append(f"SIP/2.0/UDP 10.{i // 250}.{i % 250}.1:5060;branch=z9hG4bKv{i}")
        room -= len(values[-1]) + 2
    return request("INVITE", n, source, port, via=", ".join(values))


def vias(args: argparse.Namespace) -> dict[str, Any]:
    """58 KB INVITEs made of Via values (complete messages: a parser reads them whole)."""
    udp = Udp(sources(args)[0], args.port)
    template = via_datagram(0, sources(args)[0], args.port)
    sent = 0
    for n in paced(args.count, args.rate, args.seconds):
        udp.send(template.replace(b"attack-0-", f"attack-{n}-".encode(), 1))
        sent += 1
        udp.drain()
    udp.drain(args.linger)
    return {"sent": sent, "bytes": len(template), "responses": sum(udp.statuses.values())}


def hold(args: argparse.Namespace) -> dict[str, Any]:
    """Connections that send half of a 60 KB header (TCP) or nothing at all (TLS: no hello),
    then wait ``--seconds``. Those the server closed within a second of the last one opening
    were reset at the cap (every deadline is longer); the others it closed later, or not."""
    socks: list[tuple[socket.socket, float]] = []
    refused = 0
    pad = "X-Pad: " + "a" * 60_000 + "\r\n"
    addresses = sources(args)
    for n in range(args.count):
        source = addresses[n % len(addresses)]
        half = request("OPTIONS", n, source, args.port, transport="TCP", extra=pad)[:30_000]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        try:
            s.connect(("127.0.0.1", args.port))
            if args.transport == "tcp":
                s.sendall(half)
        except OSError:
            refused += 1
            s.close()
            continue
        socks.append((s, time.monotonic()))
    say({"opened": len(socks)})
    live = dict(socks)
    opened = time.monotonic()

    def watch(until: float) -> list[float]:
        closed: list[float] = []
        while live and time.monotonic() < until:
            ready, _, _ = select.select(list(live), [], [], 0.1)
            for s in ready:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed.append(time.monotonic() - live.pop(s))
                    s.close()
        return closed

    at_once = watch(opened + 1.0)
    later = watch(opened + (args.seconds or 10.0))
    for s in live:
        s.close()
    return {
        "attempted": args.count,
        "reset_at_once": refused + len(at_once),
        "closed_later": len(later),
        "still_open": len(live),
        "closed_after_s": [round(max(later), 2)] if later else None,
    }


class Attacker:
    """One attacker process (this module's, or ``module``), seen from the benchmark or test."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        kind: str,
        port: int,
        *,
        module: str = "bridge.bench._flood",
        cwd: str | None = None,
        **options: object,
    ) -> Attacker:
        args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RTBRIDGE_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            kind,
            f"--port={port}",
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        attacker = cls(proc)
        await attacker.line(30)  # {"started": kind}
        return attacker

    async def line(self, timeout: float) -> dict[str, Any]:
        """Its next line (``hold`` says how many connections it opened)."""
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"the attacker exited without a result ({self.proc.returncode})")
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def result(self, timeout: float = 60.0) -> dict[str, Any]:
        """Its final line: what it saw (killed past ``timeout``)."""
        assert self.proc.stdout is not None
        try:
            out = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        except TimeoutError:
            self.proc.kill()
            out = await self.proc.stdout.read()
        await self.proc.wait()
        self.lines += [json.loads(x) for x in out.splitlines() if x.strip()]
        return self.lines[-1] if self.lines else {"error": "no result"}

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


KINDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "invites": flood,
    "vias": vias,
    "hold": hold,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.2")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--linger", type=float, default=2.0)
    p.add_argument("--transport", default="tcp")
    p.add_argument("--media-host", default="")
    p.add_argument("--nice", type=int, default=0)
    return p


def main(
    argv: list[str] | None = None,
    kinds: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] | None = None,
    arguments: argparse.ArgumentParser | None = None,
) -> int:
    args = (arguments or parser()).parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    say({"started": args.kind})
    say((kinds or KINDS)[args.kind](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
