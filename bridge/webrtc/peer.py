"""A WebRTC client peer built on aiortc, for ``rtbridge bench webrtc`` and the tests.

It does what a browser does against ``POST /v1/realtime/calls``: an offer with one audio track
and the ``oai-events`` data channel, host candidates on the given addresses only (no STUN), the
answer applied. Its microphone is :class:`PlayerTrack` (a mono 48 kHz signal, paced in real
time, silence when the signal runs out; or ready-made Opus payloads); what it hears is
collected as 48 kHz mono (:attr:`ClientPeer.heard`), or only counted when ``keep_audio`` is
off (a load generator must stay cheap), and every data-channel event is kept.
Signalling is left to the caller (:meth:`ClientPeer.offer` / :meth:`ClientPeer.accept`), so a
test can post the offer with the openai SDK, raw HTTP or anything else.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.packet import Packet
from numpy.typing import NDArray

from bridge.webrtc.call import CHANNEL_LABEL
from bridge.webrtc.ice import gather_on_hosts
from bridge.webrtc.media import OPUS_SILENCE, forward_on_arrival

__all__ = ["ClientPeer", "PlayerTrack"]

RATE = 48000
FRAME = 960  # 20 ms
_TIME_BASE = fractions.Fraction(1, RATE)


class PlayerTrack(MediaStreamTrack):
    """A microphone that plays queued mono 48 kHz int16 audio in real time, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[NDArray[np.int16]] = []
        self._buf: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._pts = 0
        self._t0: float | None = None
        self.played_at: list[tuple[float, int]] = []  # (monotonic time, samples) per play()
        self._encoded: deque[bytes] = deque()
        self.encoded_only = False  # silence as Opus silence frames, not encoded zeros

    def play(self, pcm: NDArray[np.int16]) -> None:
        self._queue.append(pcm.astype(np.int16))

    def play_encoded(self, payloads: Sequence[bytes]) -> None:
        """Queue ready-made 20 ms Opus payloads (a load generator encodes its speech once)."""
        self._encoded.extend(payloads)

    async def recv(self) -> AudioFrame | Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        due = self._t0 + self._pts / RATE
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._encoded or self.encoded_only:
            packet = Packet(self._encoded.popleft() if self._encoded else OPUS_SILENCE)
            packet.pts = self._pts
            packet.time_base = _TIME_BASE
            self._pts += FRAME
            return packet
        if len(self._buf) < FRAME and self._queue:
            nxt = self._queue.pop(0)
            self.played_at.append((time.monotonic(), len(nxt)))
            self._buf = np.concatenate([self._buf, nxt])
        chunk = self._buf[:FRAME]
        self._buf = self._buf[FRAME:]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)])
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += FRAME
        return frame


class ClientPeer:
    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",), *, keep_audio: bool = True) -> None:
        self.hosts = list(hosts)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = PlayerTrack()
        self.pc.addTrack(self.mic)
        self.channel: RTCDataChannel = self.pc.createDataChannel(CHANNEL_LABEL)
        self.events: list[dict[str, Any]] = []
        self._event_signal = asyncio.Event()
        self.opened = asyncio.Event()
        self.keep_audio = keep_audio
        self._heard: list[NDArray[np.int16]] = []
        self.heard_samples = 0
        self._reader: asyncio.Task[None] | None = None
        self.channel.on("open", self.opened.set)
        self.channel.on("message", self._on_message)
        if keep_audio:
            self.pc.on("track", self._on_track)
        else:  # a load generator: count what arrives, decode nothing
            self.mic.encoded_only = True
            receiver = self.pc.getTransceivers()[0].receiver
            if not forward_on_arrival(receiver, self._count, time.monotonic):
                self.pc.on("track", self._on_track)

    def _on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        if isinstance(event, dict):
            self.events.append(event)
            self._event_signal.set()

    def _count(self, packet: object, now: float) -> None:
        del packet, now
        self.heard_samples += FRAME

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            pcm = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            mono = pcm[::channels] if channels > 1 else pcm
            self.heard_samples += len(mono)
            if self.keep_audio:
                self._heard.append(mono.astype(np.int16))

    @property
    def heard(self) -> NDArray[np.int16]:
        if not self._heard:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._heard)

    async def offer(self) -> str:
        await gather_on_hosts(self.pc, self.hosts)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        desc = self.pc.localDescription
        assert desc is not None
        return str(desc.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def wait_event(self, kind: str, *, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` at index >= ``after`` (waits for it)."""
        while True:
            for event in self.events[after:]:
                if event.get("type") == kind:
                    return event
            self._event_signal.clear()
            await self._event_signal.wait()

    async def close(self) -> None:
        self.mic.stop()
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
