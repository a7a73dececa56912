"""``rtbridge bench media``: CPU per 20 ms frame of every media stage, and resampler quality.

Prints one JSON object::

    {"ops": {"<operation>": us_per_20ms_frame, ...},
     "quality": {"<in_rate>_<out_rate>": {"sinad_db": x, "alias_db": y, "latency_ms": z}, ...}}

``ops`` is CPU time of this thread (``time.thread_time``, so other processes on a shared core
do not count) per 20 ms frame: the best of several repeats of many frames each. Operations:

* ``<codec>_encode`` / ``<codec>_decode`` for PCMU, PCMA, G.722, Opus (mono encode, stereo
  encode, decode to 48 kHz stereo);
* ``resample_<in>_<out>`` for every resampler direction (``48000x2`` is interleaved stereo in);
* ``reframe_30ms_to_20ms``: one 30 ms SIPp packet re-cut into 20 ms frames, per 20 ms out;
* ``sip_in_path``: RTP parse + G.711 u-law decode + resample 8k -> 24k + the
  ``input_audio_buffer.append`` frame (``bridge.realtime.wire.append_frame``);
* ``sip_out_path``: resample 24k -> 8k + G.711 u-law encode + RTP build (``media.rtp``);
* ``webrtc_in_path``: Opus decode + resample 48k stereo -> 24k mono + append frame;
* ``sip_leg_in_<case>`` / ``webrtc_leg_in``: one caller RTP packet object through the leg's
  media (``SipMedia.on_rtp``, ``WebRtcMedia.on_rtp``: reorder window, then pass-through or
  decode + resample + re-cut) to its agent frame;
* ``sip_leg_out_<case>`` / ``webrtc_leg_out``: one tick of the leg's media
  (``SipMedia.on_tick``: playout, encode, RTP build; ``WebRtcMedia.on_tick``: playout, Opus
  encode, track hand-over) with the agent's 100 ms deltas pushed as they come. ``<case>`` is
  ``passthrough`` (the agent takes the trunk's u-law) or ``transcoding`` (PCM16 24 kHz).

``quality`` comes from ``media.quality.measure_resampler`` (worst SINAD over passband tones,
worst alias/image rejection, latency), keyed like ``8000_24000`` and ``48000x2_24000``.
``--seconds`` scales the number of timed frames (default 1: about 2,000 frames per operation).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bridge.calls.sip_media import SipMedia
from bridge.config import Settings
from bridge.realtime.formats import AudioFormat
from bridge.realtime.wire import append_frame
from bridge.webrtc.media import TickedAudioTrack, WebRtcMedia
from media.codecs import G722Codec, OpusCodec, PcmaCodec, PcmuCodec
from media.framing import Reframer
from media.g711 import ulaw_decode, ulaw_encode
from media.quality import measure_resampler
from media.resample import SUPPORTED_RATES, Resampler
from media.rtp import RtpPacket, RtpSendState

__all__ = ["run"]

_REPEATS = 5


def _speechlike(rate: int, seconds: float, channels: int = 1, seed: int = 1) -> NDArray[np.int16]:
    """Tones plus noise at about -16 dBFS: content that keeps codecs honest."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = 2500 * np.sin(2 * np.pi * 220 * t) + 1500 * np.sin(2 * np.pi * 1330 * t)
    x = x + rng.standard_normal(n) * 800
    mono = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return np.repeat(mono, channels) if channels == 2 else mono


def _frames(x: NDArray[np.int16], size: int) -> list[NDArray[np.int16]]:
    return [x[i : i + size].copy() for i in range(0, len(x) - size + 1, size)]


def _cycling(fn: Callable[[Any], object], items: Sequence[Any]) -> Callable[[int], object]:
    """A timing step that calls ``fn`` on the items in turn."""
    n = len(items)

    def step(i: int) -> object:
        return fn(items[i % n])

    return step


def _time_per_frame(step: Callable[[int], object], frames: int, per_call_ms: float = 20.0) -> float:
    """Best-of-repeats thread CPU microseconds per 20 ms of audio; ``step(i)`` does call i."""
    best = float("inf")
    for _ in range(_REPEATS):
        t0 = time.thread_time_ns()
        for i in range(frames):
            step(i)
        elapsed = time.thread_time_ns() - t0
        best = min(best, elapsed / frames)
    return round(best / 1000.0 * (20.0 / per_call_ms), 2)


def _codec_ops(frames: int) -> dict[str, float]:
    ops: dict[str, float] = {}
    pcm8 = _frames(_speechlike(8000, 1.0), 160)
    for label, codec in (("pcmu", PcmuCodec()), ("pcma", PcmaCodec())):
        payloads = [codec.encode(f) for f in pcm8]
        ops[f"{label}_encode"] = _time_per_frame(_cycling(codec.encode, pcm8), frames)
        ops[f"{label}_decode"] = _time_per_frame(_cycling(codec.decode, payloads), frames)

    g722 = G722Codec()
    pcm16 = _frames(_speechlike(16000, 1.0), 320)
    g722_payloads = [g722.encode(f) for f in pcm16]
    ops["g722_encode"] = _time_per_frame(_cycling(g722.encode, pcm16), frames)
    ops["g722_decode"] = _time_per_frame(_cycling(g722.decode, g722_payloads), frames)

    pcm48 = _frames(_speechlike(48000, 1.0), 960)
    pcm48s = _frames(_speechlike(48000, 1.0, channels=2), 1920)
    mono = OpusCodec()
    stereo = OpusCodec(stereo=True)
    opus_payloads = [mono.encode(f) for f in pcm48]
    mono.reset()
    ops["opus_encode_mono"] = _time_per_frame(_cycling(mono.encode, pcm48), frames)
    ops["opus_encode_stereo"] = _time_per_frame(_cycling(stereo.encode, pcm48s), frames)
    decoder = OpusCodec()
    ops["opus_decode"] = _time_per_frame(_cycling(decoder.decode, opus_payloads), frames)
    return ops


def _direction_key(in_rate: int, out_rate: int, channels: int) -> str:
    return f"{in_rate}x2_{out_rate}" if channels == 2 else f"{in_rate}_{out_rate}"


def _directions() -> list[tuple[int, int, int]]:
    return [(a, b, 1) for a, b in sorted(SUPPORTED_RATES)] + [(48000, 24000, 2)]


def _resample_ops(frames: int) -> dict[str, float]:
    ops: dict[str, float] = {}
    for in_rate, out_rate, channels in _directions():
        r = Resampler(in_rate, out_rate, channels)
        chunks = _frames(_speechlike(in_rate, 1.0, channels), in_rate // 50 * channels)
        key = "resample_" + _direction_key(in_rate, out_rate, channels)
        ops[key] = _time_per_frame(_cycling(r.process, chunks), frames)
    reframer = Reframer(160)
    packets = _frames(_speechlike(8000, 1.2), 240)
    ops["reframe_30ms_to_20ms"] = _time_per_frame(
        _cycling(reframer.push, packets), frames, per_call_ms=30.0
    )
    return ops


def _path_ops(frames: int) -> dict[str, float]:
    ops: dict[str, float] = {}
    # Caller -> agent: RTP datagram in, append frame out.
    sender = RtpSendState(ssrc=0x1234ABCD, first_sequence=0)
    pcm8 = _frames(_speechlike(8000, 1.0), 160)
    datagrams = [bytes(sender.packet(0, 160 * i, ulaw_encode(f))) for i, f in enumerate(pcm8)]
    n = len(datagrams)
    up = Resampler(8000, 24000)

    def sip_in(i: int) -> str:
        pkt = RtpPacket.parse(datagrams[i % n])
        return append_frame(up.process(ulaw_decode(pkt.payload)).tobytes())

    ops["sip_in_path"] = _time_per_frame(sip_in, frames)

    # Agent -> caller: 20 ms of 24 kHz PCM in, RTP datagram out.
    pcm24 = _frames(_speechlike(24000, 1.0), 480)
    n24 = len(pcm24)
    down = Resampler(24000, 8000)
    out_state = RtpSendState(ssrc=0x5678, first_sequence=0)

    def sip_out(i: int) -> bytes:
        payload = ulaw_encode(down.process(pcm24[i % n24]))
        return bytes(out_state.packet(0, 160 * i, payload))

    ops["sip_out_path"] = _time_per_frame(sip_out, frames)

    # Browser -> agent: Opus payload in, append frame out.
    enc = OpusCodec()
    pcm48 = _frames(_speechlike(48000, 1.0), 960)
    opus_payloads = [enc.encode(f) for f in pcm48]
    n48 = len(opus_payloads)
    dec = OpusCodec()
    to24 = Resampler(48000, 24000, channels_in=2)

    def webrtc_in(i: int) -> str:
        return append_frame(to24.process(dec.decode(opus_payloads[i % n48])).tobytes())

    ops["webrtc_in_path"] = _time_per_frame(webrtc_in, frames)
    return ops


class _AiortcPacket:
    """The fields of an aiortc ``RtpPacket`` that ``WebRtcMedia.on_rtp`` reads."""

    def __init__(self, seq: int, payload: bytes) -> None:
        self.payload_type = 111
        self.sequence_number = seq & 0xFFFF
        self.timestamp = seq * 960 & 0xFFFFFFFF
        self.ssrc = 0x5EB
        self.payload = payload


def _leg_ops(frames: int) -> dict[str, float]:
    ops: dict[str, float] = {}
    counter = itertools.count()  # sequence numbers and ticks run on across repeats
    ulaw = [ulaw_encode(f) for f in _frames(_speechlike(8000, 1.0), 160)]
    pcm_delta = _speechlike(24000, 0.1).tobytes()  # an agent delta of 100 ms
    deltas = {"passthrough": ulaw_encode(_speechlike(8000, 0.1)), "transcoding": pcm_delta}
    for case, fmt in (("passthrough", AudioFormat.PCMU), ("transcoding", AudioFormat.PCM16)):
        media = SipMedia(
            PcmuCodec(),
            payload_type=0,
            session_format=fmt,
            send_rtp=lambda _b: True,
            to_agent=lambda _b: True,
            dtmf_payload_type=101,
        )

        def sip_in(i: int, media: SipMedia = media) -> None:
            k = next(counter)
            packet = RtpPacket(0, k & 0xFFFF, k * 160 & 0xFFFFFFFF, 0x1234, ulaw[k % len(ulaw)])
            media.on_rtp(packet, k * 0.02)

        ops[f"sip_leg_in_{case}"] = _time_per_frame(sip_in, frames)

        def sip_out(i: int, media: SipMedia = media, delta: bytes = deltas[case]) -> None:
            k = next(counter)
            if k % 5 == 0:
                media.push_agent_audio("resp", "item", delta)
            media.on_tick(k * 0.02, k * 0.02)

        ops[f"sip_leg_out_{case}"] = _time_per_frame(sip_out, frames)

    enc = OpusCodec(stereo=True)
    opus = [enc.encode(f) for f in _frames(_speechlike(48000, 1.0, channels=2), 1920)]
    browser = WebRtcMedia(to_agent=lambda _b: True, track=TickedAudioTrack())

    def webrtc_in(i: int) -> None:
        k = next(counter)
        browser.on_rtp(_AiortcPacket(k, opus[k % len(opus)]), k * 0.02)

    ops["webrtc_leg_in"] = _time_per_frame(webrtc_in, frames)

    def webrtc_out(i: int) -> None:
        k = next(counter)
        if k % 5 == 0:
            browser.push_agent_audio("resp", "item", pcm_delta)
        browser.on_tick(k * 0.02, k * 0.02)

    ops["webrtc_leg_out"] = _time_per_frame(webrtc_out, frames)
    return ops


def _quality() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for in_rate, out_rate, channels in _directions():
        make = functools.partial(Resampler, in_rate, out_rate, channels)
        q = measure_resampler(make, in_rate, out_rate, channels)
        out[_direction_key(in_rate, out_rate, channels)] = q.as_dict()
    return out


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    del settings
    seconds = getattr(args, "seconds", None)
    frames = max(100, int(2000 * (seconds or 1.0)))
    ops: dict[str, float] = {}
    ops.update(_codec_ops(frames))
    ops.update(_resample_ops(frames))
    ops.update(_path_ops(frames))
    ops.update(_leg_ops(frames))
    return {"ops": ops, "quality": _quality()}
