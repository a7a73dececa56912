"""Our SDP answers against real softphones: baresip and linphonec call rtbridge.

The SIP side is the driver (``sip.driver.start_sip``); its call handler answers with
``sip.offer_answer.negotiate``: one codec from the preference list plus telephone-event. What a
user would notice is checked: the call is established without a re-INVITE or hold, and the
phone's audio arrives as RTP at the address and port the answer advertised, in the negotiated
codec's payload type (RFC 3264 section 6.1: the offerer sends what the answer lists). baresip also
puts the call on hold and resumes it (RFC 3264 section 8.4), answered by the driver through
``negotiate``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from sip.driver import Answer as Accept
from sip.driver import SipCall, SipEndpoint, start_sip
from sip.events import CallAnswered, CallEnded, CallEvent, HoldChanged
from sip.offer_answer import Answer, negotiate
from sip.sdp import SessionDescription
from sip.settings import SipSettings
from tests.support.peers import require_peer


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtpSink(asyncio.DatagramProtocol):
    """Counts RTP packets (version 2) by payload type; ignores STUN and the like."""

    def __init__(self) -> None:
        self.payload_types: list[int] = []
        self.times: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2 and not 72 <= data[1] & 0x7F <= 76:
            self.payload_types.append(data[1] & 0x7F)
            self.times.append(asyncio.get_running_loop().time())


class Negotiator:
    """The call handler: answer every offer with negotiate() and record what happens."""

    def __init__(self, prefs: list[str], rtp_port: int) -> None:
        self.prefs = prefs
        self.rtp_port = rtp_port
        self.answers: list[Answer] = []
        self.events: list[CallEvent] = []
        self.event_times: list[float] = []
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    async def on_offer(self, call: SipCall) -> Accept:
        assert call.offer is not None
        offer = SessionDescription.parse(call.offer.sdp)
        answer = negotiate(offer, self.prefs, "127.0.0.1", self.rtp_port)
        self.answers.append(answer)
        task = asyncio.get_running_loop().create_task(self._watch(call))
        self._watchers.add(task)
        return Accept(bytes(answer.sdp))

    async def _watch(self, call: SipCall) -> None:
        async for event in call.events():
            self.events.append(event)
            self.event_times.append(asyncio.get_running_loop().time())
            self.changed.set()
            if isinstance(event, CallEnded):
                self.ended.set()
                return


def tone(path: Path, seconds: float = 2.0, rate: int = 8000, channels: int = 1) -> Path:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) * channels
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


async def serve(
    prefs: list[str],
) -> tuple[Negotiator, RtpSink, asyncio.DatagramTransport, int, SipEndpoint]:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    rtp_port = int(transport.get_extra_info("sockname")[1])
    handler = Negotiator(prefs, rtp_port)
    endpoint = await start_sip(
        SipSettings(bind_host="127.0.0.1", udp_port=0, tcp_port=None), handler
    )
    return (
        handler,
        sink,
        transport,
        endpoint.ports["udp"],
        endpoint,
    )


async def run(proc: asyncio.subprocess.Process, timeout: float = 30) -> str:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    return out.decode(errors="replace")[-3000:]


def check(handler: Negotiator, sink: RtpSink, payload_type: int, output: str) -> None:
    (answer,) = handler.answers
    audio = answer.sdp.media[answer.media.media_index]
    te = answer.media.telephone_event
    assert audio.formats == (str(payload_type), *([str(te.payload_type)] if te else []))
    kinds = [type(e) for e in handler.events]
    assert kinds == [CallAnswered, CallEnded], (kinds, output)  # no re-INVITE, no hold
    received = [pt for pt in sink.payload_types if pt == payload_type]
    assert len(received) >= 50, (sink.payload_types[:20], output)  # >= 1 s of 20 ms packets
    allowed = {payload_type} | ({te.payload_type} if te else set())
    assert set(sink.payload_types) <= allowed


@pytest.mark.peer("baresip")
# baresip's aufile source must match the codec's rate and channels (G.722 16 kHz; Opus is
# opus/48000/2 in SDP, so baresip encodes stereo).
@pytest.mark.parametrize(
    ("prefs", "payload_type", "rate", "channels"),
    [
        (["PCMA", "PCMU"], 8, 8000, 1),
        (["PCMU"], 0, 8000, 1),
        (["G722", "PCMA"], 9, 16000, 1),
        (["opus", "PCMU"], 96, 48000, 2),
    ],
)
async def test_baresip_calls_and_sends_the_negotiated_codec(
    tmp_path: Path, prefs: list[str], payload_type: int, rate: int, channels: int
) -> None:
    baresip = require_peer("baresip")
    handler, sink, transport, port, endpoint = await serve(prefs)
    try:
        wav = tone(tmp_path / "tone.wav", rate=rate, channels=channels)
        conf = tmp_path / "conf"
        conf.mkdir()
        (conf / "config").write_text(
            "sip_listen 127.0.0.1:0\n"
            f"audio_player aufile,{tmp_path / 'heard.wav'}\n"
            f"audio_source aufile,{wav}\n"
            "module_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule g722.so\nmodule opus.so\n"
            "module aufile.so\nmodule account.so\nmodule menu.so\nmodule uuid.so\n"
        )
        (conf / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0\n")
        proc = await asyncio.create_subprocess_exec(
            baresip,
            "-f",
            str(conf),
            "-e",
            f"/dial sip:bot@127.0.0.1:{port}",
            "-t",
            "8",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output = await run(proc)  # baresip hangs up when its WAV ends
        await asyncio.wait_for(handler.ended.wait(), 10)
    finally:
        transport.close()
        await endpoint.close()
    check(handler, sink, payload_type, output)


@pytest.mark.peer("linphonec")
async def test_linphone_calls_and_sends_the_negotiated_codec(tmp_path: Path) -> None:
    linphonec = require_peer("linphonec")
    handler, sink, transport, port, endpoint = await serve(["PCMA", "PCMU"])
    try:
        wav = tone(tmp_path / "tone.wav")
        (tmp_path / ".local" / "share" / "linphone").mkdir(parents=True)
        rc = tmp_path / "linphonerc"
        rc.write_text(
            "[sip]\nsip_port=-1\nsip_tcp_port=-1\ndefault_proxy=-1\n"
            "[rtp]\naudio_rtp_port=-1\n"
            "[sound]\nplayback_dev_id=\nringer_dev_id=\ncapture_dev_id=\n"
            "[video]\nenabled=0\ncapture=0\ndisplay=0\n"
        )
        proc = await asyncio.create_subprocess_exec(
            linphonec,
            "-c",
            str(rc),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert proc.stdin is not None
        for command, pause in (
            ("soundcard use files", 0.5),
            (f"call sip:bot@127.0.0.1:{port}", 1.5),
            (f"play {wav}", 3.0),
            ("terminate", 1.0),
            ("quit", 0.0),
        ):
            proc.stdin.write(command.encode() + b"\n")
            await proc.stdin.drain()
            await asyncio.sleep(pause)
        output = await run(proc)
        await asyncio.wait_for(handler.ended.wait(), 10)
    finally:
        transport.close()
        await endpoint.close()
    check(handler, sink, 8, output)


async def wait_for_event(handler: Negotiator, kind: type, count: int = 1) -> float:
    """Wait until ``count`` events of ``kind`` arrived; the time the last one did."""
    while True:
        times = [
            t
            for e, t in zip(handler.events, handler.event_times, strict=True)
            if isinstance(e, kind)
        ]
        if len(times) >= count:
            return times[count - 1]
        handler.changed.clear()
        await asyncio.wait_for(handler.changed.wait(), 10)


async def baresip_command(port: int, command: str) -> bytes:
    """One ctrl_tcp command (a netstring of JSON), its response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"command": command, "token": command}).encode()
    writer.write(str(len(body)).encode() + b":" + body + b",")
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    return reply


@pytest.mark.peer("baresip")
async def test_baresip_hold_and_resume(tmp_path: Path) -> None:
    """baresip's hold re-INVITE (sendonly) is answered by the driver through negotiate():
    HoldChanged(True), then resume brings HoldChanged(False) and its audio back."""
    baresip = require_peer("baresip")
    handler, sink, transport, port, endpoint = await serve(["PCMA"])
    control = free_tcp_port()
    try:
        wav = tone(tmp_path / "tone.wav", seconds=6.0)
        conf = tmp_path / "conf"
        conf.mkdir()
        (conf / "config").write_text(
            "sip_listen 127.0.0.1:0\n"
            f"audio_player aufile,{tmp_path / 'heard.wav'}\n"
            f"audio_source aufile,{wav}\n"
            "module_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule aufile.so\nmodule account.so\nmodule menu.so\n"
            f"module uuid.so\nmodule ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{control}\n"
        )
        (conf / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0\n")
        proc = await asyncio.create_subprocess_exec(
            baresip,
            "-f",
            str(conf),
            "-e",
            f"/dial sip:bot@127.0.0.1:{port}",
            "-t",
            "12",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        await wait_for_event(handler, CallAnswered)
        await asyncio.sleep(1.0)
        assert b'"ok":true' in await baresip_command(control, "hold")
        await wait_for_event(handler, HoldChanged)
        await asyncio.sleep(1.0)
        assert b'"ok":true' in await baresip_command(control, "resume")
        resumed = await wait_for_event(handler, HoldChanged, 2)
        output = await run(proc)
        await asyncio.wait_for(handler.ended.wait(), 10)
    finally:
        transport.close()
        await endpoint.close()
    holds = [e.on_hold for e in handler.events if isinstance(e, HoldChanged)]
    assert holds == [True, False], (handler.events, output)
    assert isinstance(handler.events[-1], CallEnded)
    after = [t for t in sink.times if t > resumed]
    assert len(after) >= 25, (len(sink.times), output)  # audio flows again after the resume
