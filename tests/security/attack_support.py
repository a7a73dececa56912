"""What the loopback attack tests share (issue 12): a SIPp call with RTP placed during an
attack, the agent audio rtbridge sent it, and whether that audio was on time.

"On time" is judged in audio terms, never by a wall-clock bound: rtbridge paces agent audio on
a 20 ms grid and stamps each RTP packet from its frame's deadline. If the event loop ever fell
more than three frames behind, the grid re-anchors and the RTP timestamps jump; so agent RTP
whose sequence numbers and timestamps advance by exactly one packet and one 20 ms frame each,
from the first packet to the last, was never late by more than the playout's catch-up window.
How late each packet left against its own timestamp is reported too (``lateness_ms``).

rtbridge runs inside the test process here, beside pytest's own objects: a full collection of
the cyclic garbage collector over all of them stops the loop for 60-90 ms, which rtbridge's
own process never pays. :func:`call_during` freezes what exists before the call
(``gc.freeze()``: the collector skips it), so what is measured is rtbridge under attack.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.bench._flood import Attacker
from bridge.bench._probe import percentiles
from bridge.calls.call import Call
from media.rtp import RtpPacket
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack, sipp_caller
from tests.sip.sipp_support import SippResult
from tests.support.audio import ulaw_file

__all__ = ["AgentRtp", "attacker", "call_during", "sipp_call", "talking", "until"]

ROOT = Path(__file__).resolve().parents[2]
FRAME = 160  # samples of one 20 ms frame at 8 kHz
SILENCE_ULAW = frozenset({0xFF, 0x7F})


@dataclass
class AgentRtp:
    """The agent's RTP as rtbridge handed it to the caller's socket."""

    sent: list[tuple[float, RtpPacket]] = field(default_factory=list)

    def attach(self, call: Call) -> None:
        media = call.media
        real = media._send_rtp  # what leaves through the call's RTP socket

        def send(data: bytes) -> bool:
            with contextlib.suppress(Exception):
                self.sent.append((time.monotonic(), RtpPacket.parse(bytes(data))))
            return real(data)

        media._send_rtp = send

    @property
    def voiced(self) -> int:
        """Packets carrying sound (not u-law digital silence): the agent's answers."""
        return sum(1 for _, p in self.sent if set(p.payload) - SILENCE_ULAW)

    def lateness_ms(self) -> dict[str, float | int]:
        """Each packet's send time against its RTP timestamp, relative to the earliest."""
        if not self.sent:
            return percentiles([])
        t0, p0 = self.sent[0]
        offsets = [
            (t - t0 - ((p.timestamp - p0.timestamp) & 0xFFFFFFFF) / 8000.0) * 1000.0
            for t, p in self.sent
        ]
        least = min(offsets)
        return percentiles([o - least for o in offsets], 2)

    def assert_on_time(self, *, at_least: int = 100) -> None:
        """Contiguous sequence numbers and timestamps (no frame skipped, no re-anchor: never
        more than three frames late), and the agent's answer among them."""
        packets = [p for _, p in self.sent]
        assert len(packets) >= at_least, f"only {len(packets)} agent RTP packets"
        for a, b in itertools.pairwise(packets):
            assert (b.sequence_number - a.sequence_number) & 0xFFFF == 1, (a, b)
            assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == FRAME, (
                f"agent audio slipped: timestamp {a.timestamp} -> {b.timestamp}"
                f" (lateness {self.lateness_ms()})"
            )
        assert self.voiced > 25, "the agent's answer never reached the caller"


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def talking(tmp: Path) -> str:
    """The SIPp step that streams speech-like turns (1.2 s voiced, 1.3 s silent, looped: the
    local agent answers each) for the rest of the call."""
    return sc.stream(ulaw_file(tmp / "turns.ulaw", ("voice", 1.2), ("silence", 1.3)), loops=-1)


def sipp_call(seconds: float, tmp: Path) -> str:
    """A SIPp caller talking for ``seconds``, then hanging up."""
    return sc.uac(talking(tmp), sc.pause(int(seconds * 1000)), sc.send_bye(2))


async def call_during(
    stack: Stack,
    tmp: Path,
    *,
    seconds: float = 6.0,
    extra: tuple[str, ...] = (),
    port: int | None = None,
    scenario: str | None = None,
    on_call: Callable[[Call], Awaitable[None]] | None = None,
) -> tuple[SippResult, AgentRtp]:
    """Place one SIPp call with RTP (to ``port``, by default the UDP one; ``scenario``, by
    default :func:`sipp_call`) and record the agent audio rtbridge sends it; ``on_call`` runs
    once the call is up (an attack on that call starts there)."""
    rtp = AgentRtp()
    scenario = scenario or sipp_call(seconds, tmp)
    gc.collect()
    gc.freeze()  # the test process's own heap (see the module docstring)
    task = asyncio.create_task(
        sipp_caller(port or stack.sip_port, tmp, scenario, extra=extra, timeout=seconds + 60)
    )
    seen: set[str] = set(stack.manager.calls)
    try:
        async with asyncio.timeout(30):
            while True:
                fresh = [
                    c
                    for i, c in stack.manager.calls.items()
                    if i not in seen and (c.info.from_uri or "").startswith("sip:sipp@127.0.0.1")
                ]
                if fresh:
                    call = fresh[0]
                    assert isinstance(call, Call)
                    rtp.attach(call)
                    if on_call is not None:
                        await on_call(call)
                    break
                if task.done():
                    break
                await asyncio.sleep(0.002)
        return await task, rtp
    except BaseException:
        task.cancel()
        raise
    finally:
        gc.unfreeze()


async def attacker(kind: str, port: int, **options: object) -> Attacker:
    """:mod:`tests.security.attacker` in a process of its own (its work stays off rtbridge's
    event loop, as it would on the Internet)."""
    return await Attacker.start(
        kind, port, module="tests.security.attacker", cwd=str(ROOT), **options
    )
