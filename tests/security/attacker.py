"""The attacker of the loopback attack tests, in a process of its own (issue 12).

``python -m tests.security.attacker KIND --port P [--source ADDR] ...`` attacks rtbridge at
``127.0.0.1:P`` over real sockets, from ``ADDR`` (another 127.0.0.x, so that rtbridge sees a
stranger while SIPp calls from 127.0.0.1), the way the issue's probes did; it prints one JSON
line when it starts and one with what it saw when it is done. Running apart from rtbridge's
process keeps the attack's own work off rtbridge's event loop, as on the Internet.

The kinds ``rtbridge bench flood`` uses (``invites``, ``vias``, ``hold``) come from
:mod:`bridge.bench._flood`; these are the tests' own: ``registers``/``options`` (floods of
those), ``digest`` (wrong passwords), ``noread`` (a TCP peer that pipelines requests and never
reads), ``rtp`` (forged RTP to a port, listening for any audio sent back), ``unacked`` (an
INVITE never ACKed whose SDP names a victim socket, counting what reaches it).
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import sys
import time
from typing import Any

from bridge.bench._flood import KINDS, Udp, flood, main, paced, parser, request, sdp
from media.rtp import RtpPacket
from sip.auth import DigestClient, choose_challenge
from sip.message import Response, parse_message


def digest(args: argparse.Namespace) -> dict[str, Any]:
    udp = Udp(args.source, args.port)
    udp.send(request("INVITE", 0, args.source, args.port, body=sdp(args.source, 9)))
    challenges = [d for d in udp.drain(2.0) if d.startswith(b"SIP/2.0 401")]
    if not challenges:
        return {"error": "no challenge"}
    first = parse_message(challenges[0])
    assert isinstance(first, Response)
    challenge = choose_challenge(first.headers.get_all("WWW-Authenticate"))
    udp.statuses.clear()
    for n in paced(args.count, args.rate):
        guess = DigestClient(args.user, f"guess-{n}")
        value = guess.authorize(challenge, "INVITE", f"sip:bot@127.0.0.1:{args.port}")
        extra = f"Authorization: {value}\r\n"
        udp.send(request("INVITE", n + 1, args.source, args.port, extra=extra))
        udp.drain()
    udp.drain(args.linger)
    return {"sent": args.count, "statuses": dict(udp.statuses)}


def noread(args: argparse.Namespace) -> dict[str, Any]:
    """Pipelines OPTIONS over TCP and never reads a response: is it cut off, and when?"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((args.source, 0))
    s.connect(("127.0.0.1", args.port))
    s.settimeout(5)
    sent = 0
    started = time.monotonic()
    end = started + (args.seconds or 20.0)
    try:
        while time.monotonic() < end:  # until the server resets the connection
            if sent < args.count:
                s.sendall(request("OPTIONS", sent, args.source, args.port, transport="TCP"))
                sent += 1
            else:
                time.sleep(0.25)
                s.sendall(b"\r\n\r\n")  # a keep-alive: fails once the server let go
    except OSError:
        return {"sent": sent, "closed": True, "after_s": round(time.monotonic() - started, 2)}
    finally:
        s.close()
    return {"sent": sent, "closed": False}


def rtp(args: argparse.Namespace) -> dict[str, Any]:
    """Forged RTP, in sequence, to the call's port; then listen for anything sent back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.source, 0))
    s.setblocking(False)
    received = 0
    for n in paced(args.count, args.rate):
        pkt = RtpPacket(
            payload_type=0, sequence_number=n, timestamp=160 * n, ssrc=0xBAD, payload=b"\0" * 160
        )
        with contextlib.suppress(BlockingIOError):
            s.sendto(bytes(pkt), ("127.0.0.1", args.target))
        while select.select([s], [], [], 0)[0]:
            s.recv(2048)
            received += 1
    end = time.monotonic() + args.linger
    while time.monotonic() < end:
        if select.select([s], [], [], 0.1)[0]:
            s.recv(2048)
            received += 1
    return {"sent": args.count, "received": received}


def unacked(args: argparse.Namespace) -> dict[str, Any]:
    """An INVITE whose SDP names a victim socket, never ACKed: what the victim receives."""
    udp = Udp(args.source, args.port)
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind((args.source, 0))
    victim.setblocking(False)
    body = sdp(args.source, victim.getsockname()[1])
    udp.send(request("INVITE", 1, args.source, args.port, body=body))
    media = 0
    finals: list[bytes] = []
    end = time.monotonic() + (args.seconds or 10.0)
    while time.monotonic() < end:
        ready, _, _ = select.select([udp.sock, victim], [], [], 0.1)
        if victim in ready:
            victim.recv(2048)
            media += 1
        if udp.sock in ready:
            finals += udp.drain()
    byes = sum(1 for d in finals if d.startswith(b"BYE "))
    return {"statuses": dict(udp.statuses), "media_packets": media, "byes": byes}


if __name__ == "__main__":
    arguments = parser()
    arguments.add_argument("--user", default="alice")
    arguments.add_argument("--target", type=int, default=0)
    sys.exit(
        main(
            arguments=arguments,
            kinds={
                **KINDS,
                "registers": lambda a: flood(a, "REGISTER"),
                "options": lambda a: flood(a, "OPTIONS"),
                "digest": digest,
                "noread": noread,
                "rtp": rtp,
                "unacked": unacked,
            },
        )
    )
