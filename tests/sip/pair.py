"""A fake link joining two sans-IO SIP cores on virtual time (like h11's ConnectionPair)."""

from __future__ import annotations

from collections.abc import Callable

from sip.events import CallEvent
from sip.message import Request, Response
from sip.transaction import Peer, Send
from sip.ua import CoreConfig, SipCore

SDP_A = (
    b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
SDP_B = (
    b"v=0\r\no=b 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


class Pair:
    """Core ``a`` on port 5060 and core ``b`` on 5062; ``drop`` decides which sends are lost."""

    def __init__(self, transport: str = "udp") -> None:
        self.transport = transport
        self.a = SipCore(CoreConfig(ports={transport: 5060}, user="alice"))
        self.b = SipCore(CoreConfig(ports={transport: 5062}, user="bob"))
        self.now = 0.0
        self.events: dict[str, list[CallEvent]] = {"a": [], "b": []}
        self.wire: list[tuple[str, Request | Response]] = []
        self.drop: Callable[[str, Request | Response], bool] = lambda side, msg: False
        self.cores = {5060: ("a", self.a), 5062: ("b", self.b)}

    def peer_of(self, side: str) -> Peer:
        return Peer(self.transport, "127.0.0.1", 5060 if side == "a" else 5062)

    def pump(self) -> None:
        """Deliver everything in flight until both cores are quiet (no time passes)."""
        for _ in range(1000):
            moved = False
            for port, (side, core) in list(self.cores.items()):
                for item in core.drain():
                    moved = True
                    if isinstance(item, Send):
                        self.wire.append((side, item.message))
                        if self.drop(side, item.message):
                            continue
                        _dest_side, dest = self.cores[item.peer.port]
                        dest.receive(
                            bytes(item.message), Peer(self.transport, "127.0.0.1", port), self.now
                        )
                    else:
                        self.events[side].append(item)
            if not moved:
                return
        raise AssertionError("the link never went quiet")

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            self.a.tick(self.now)
            self.b.tick(self.now)
            self.pump()

    def of(self, side: str, kind: type) -> list[CallEvent]:
        return [e for e in self.events[side] if isinstance(e, kind)]

    def sent(self, side: str, what: str) -> list[Request | Response]:
        out = []
        for s, m in self.wire:
            if s != side:
                continue
            label = m.method if isinstance(m, Request) else f"{m.status} {m.cseq.method}"
            if label == what:
                out.append(m)
        return out
