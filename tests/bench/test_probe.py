"""The SIP benchmark's timing probe: absent unless installed, exact pairing when it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from bridge.agent import LocalAgent
from bridge.bench import _probe
from bridge.calls.sip_media import SipMedia
from bridge.config import AgentSettings, UpstreamSettings
from bridge.realtime.formats import AudioFormat
from bridge.upstream import UpstreamSession
from media.codecs import codec_for
from media.rtp import RtpPacket


@pytest.fixture
def probe() -> Iterator[_probe.LatencyProbe]:
    installed = _probe.install(size=100)
    try:
        yield installed
    finally:
        _probe.uninstall()


def _collect(into: list[bytes]) -> Callable[[bytes], bool]:
    def add(data: bytes) -> bool:
        into.append(data)
        return True

    return add


def _media(sent: list[bytes], to_agent: Callable[[bytes], bool]) -> SipMedia:
    return SipMedia(
        codec_for("PCMU", 8000),
        payload_type=0,
        session_format=AudioFormat.PCMU,
        send_rtp=_collect(sent),
        to_agent=to_agent,
    )


def _packet(seq: int) -> RtpPacket:
    return RtpPacket(0, seq, 160 * seq, 0x1234, b"\xff" * 160)


def test_without_a_probe_nothing_is_wrapped() -> None:
    assert _probe.ACTIVE is None
    media = _media([], _collect([]))
    assert media.on_rtp.__func__ is SipMedia.on_rtp  # type: ignore[attr-defined]
    up = UpstreamSession(UpstreamSettings(url="ws://127.0.0.1:9/v1/realtime"))
    assert up.send_audio.__func__ is UpstreamSession.send_audio  # type: ignore[attr-defined]
    assert up._probe_pending is None


def test_reservoir_is_bounded_and_counts_everything() -> None:
    r = _probe.Reservoir(size=10)
    for i in range(1000):
        r.add(float(i))
    assert len(r.samples) == 10 and r.count == 1000 and r.max == 999.0
    s = r.summary()
    assert s["count"] == 1000 and s["p50"] <= s["p90"] <= s["p99"] <= s["max"]


def test_media_hooks_mark_the_packet_and_time_rtp_sends(probe: _probe.LatencyProbe) -> None:
    seen: list[tuple[float, float] | None] = []
    sent: list[bytes] = []

    def to_agent(frame: bytes) -> bool:
        seen.append(probe.arrival)
        return True

    media = _media(sent, to_agent)
    send_rtp = media._send_rtp
    media.on_rtp(_packet(1), 0.0)  # disarmed: nothing wrapped, the packet not marked
    assert media.on_rtp.__func__ is SipMedia.on_rtp  # type: ignore[attr-defined]
    probe.arm(True)
    media.on_rtp(_packet(2), 0.0)
    assert len(seen) == 2 and seen[0] is None
    assert seen[1] is not None and seen[1][0] <= seen[1][1]
    assert probe.arrival is None  # only while the packet is being handled
    now = time.monotonic()
    for n in range(3):
        media.on_tick(now + 0.02 * n, now + 0.02 * n)
    assert len(sent) == 3
    assert probe.rtp_send_interval_jitter_ms.count == 2  # intervals between 3 sends
    probe.arm(False)  # the originals again: the CPU window measures rtbridge alone
    assert media.on_rtp.__func__ is SipMedia.on_rtp  # type: ignore[attr-defined]
    assert media._send_rtp is send_rtp


async def test_upstream_times_each_append_handed_to_the_socket(
    probe: _probe.LatencyProbe,
) -> None:
    async with (
        LocalAgent(AgentSettings(port=0)) as agent,
        UpstreamSession(UpstreamSettings(url=agent.url)) as up,
    ):
        probe.arm(True)
        t = time.monotonic()
        probe.arrival = (t - 0.002, t - 0.001)  # the kernel got it 2 ms ago
        for _ in range(5):
            assert up.send_audio(b"\xff" * 160)
        probe.arrival = None
        assert up.send_audio(b"\xff" * 160)  # an append made on a tick: no packet
        await up.send({"type": "input_audio_buffer.clear"})  # not an append: ignored
        async with asyncio.timeout(10):
            while up.stats.frames_sent < 7:
                await asyncio.sleep(0.01)
    assert probe.enqueue_to_sent_us.count == 6
    assert probe.in_to_sent_us.count == probe.in_to_enqueue_us.count == 5
    assert probe.appends_without_packet == 1
    assert min(probe.in_to_sent_us.samples) >= 2000.0  # measured from the kernel's stamp
    assert min(probe.in_to_enqueue_us.samples) >= 1000.0  # from reaching the media path
