"""The browser call's media path on its own, without sockets or clocks: explicit downmix and
resampling of 48 kHz stereo caller audio, inline Opus decoding, paced Opus out on the ticker
with silence frames between responses, and the bounded hand-over to aiortc's sender."""

from __future__ import annotations

import asyncio

import numpy as np
from numpy.typing import NDArray

from bridge.webrtc.media import (
    OPUS_SILENCE,
    OPUS_TICKS_PER_FRAME,
    TRACK_QUEUE,
    TickedAudioTrack,
    WebRtcMedia,
)
from media.codecs.opus import OpusCodec
from media.playout import PlaybackFinished, PlaybackStarted
from media.resample import Resampler
from media.rtp import RtpPacket
from tests.support.audio import best_correlation, voiced_signal


def _media() -> tuple[WebRtcMedia, list[bytes]]:
    sent: list[bytes] = []

    def to_agent(frame: bytes) -> bool:
        sent.append(frame)
        return True

    return WebRtcMedia(to_agent=to_agent, track=TickedAudioTrack()), sent


def _pcm(frames: list[bytes]) -> NDArray[np.int16]:
    return np.frombuffer(b"".join(frames), dtype=np.int16)


def _at_48k(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    r = Resampler(24000, 48000)
    return np.concatenate([r.process(pcm), r.flush()])


def _stereo(left: NDArray[np.int16], right: NDArray[np.int16]) -> NDArray[np.int16]:
    return np.stack([left, right], axis=1).reshape(-1).astype(np.int16)


async def test_stereo_48k_is_downmixed_and_resampled_to_24k_mono() -> None:
    media, sent = _media()
    voice = voiced_signal(1.0)
    x = _at_48k(voice)
    both = _stereo(x, x)
    for i in range(0, len(both), 1920):  # 20 ms of interleaved stereo per push
        media.caller.push_pcm(both[i : i + 1920])
    assert all(len(f) == 960 for f in sent)  # 20 ms of 24 kHz mono PCM16
    assert best_correlation(voice[480:-480], _pcm(sent)) > 0.99

    opposite, sent2 = _media()
    cancel = _stereo(x, (-x.astype(np.int32)).clip(-32768, 32767).astype(np.int16))
    opposite.caller.push_pcm(cancel)
    assert np.max(np.abs(_pcm(sent2).astype(np.int32))) <= 2  # (L + R) / 2, not one channel


def _opus_packets(voice: NDArray[np.int16]) -> list[RtpPacket]:
    enc = OpusCodec(stereo=True, bit_rate=64000)
    x = _at_48k(voice)
    stereo = _stereo(x, x)
    return [
        RtpPacket(111, i, i * 960, 0x1234, enc.encode(stereo[i * 1920 : (i + 1) * 1920]))
        for i in range(len(stereo) // 1920)
    ]


async def test_caller_packets_are_decoded_and_forwarded_on_arrival() -> None:
    media, sent = _media()
    voice = voiced_signal(1.0)
    packets = _opus_packets(voice)
    for i, packet in enumerate(packets):
        media.on_rtp(packet, now=i * 0.02)
        # nothing waits for later packets: each one reaches the agent as it arrives (give or
        # take the resampler's few samples carried over to the next 20 ms frame)
        assert len(sent) >= i
    assert media.stats.frames_in == len(packets)
    assert media.stats.last_frame_at == (len(packets) - 1) * 0.02
    assert best_correlation(voice[2400:-2400], _pcm(sent)) > 0.8


async def test_a_swap_is_reordered_and_a_loss_concealed() -> None:
    media, sent = _media()
    packets = _opus_packets(voiced_signal(0.6))
    order = [0, 1, 2, 4, 3, 5, 6, 8, 9, 10]  # 3/4 swapped; 7 lost
    for n, i in enumerate(order):
        media.on_rtp(packets[i], now=n * 0.02)
    media.on_tick(1.0, 1.0)  # a held packet is released after one frame period
    assert media.caller.reorder.stats.reordered == 1
    assert media.caller.reorder.stats.lost == 1
    assert media.stats.frames_concealed == 1
    assert len(sent) >= len(order)  # the lost frame's slot was filled, not skipped


async def test_ticks_send_silence_then_paced_agent_audio() -> None:
    media, _ = _media()
    events: list[object] = []
    media.on_playback = events.append
    voice = voiced_signal(0.2)  # 10 frames
    t = 100.0
    out = []
    for k in range(20):
        if k == 5:
            media.push_agent_audio("resp_1", "item_1", voice.tobytes())
            media.mark_done("resp_1")
        media.on_tick(t + 0.02 * k, t + 0.02 * k)
        out.append(await media.track.recv())
    # one packet per tick, RTP timestamps 960 apart, stamped from the frame deadlines
    assert [p.pts for p in out] == [OPUS_TICKS_PER_FRAME * k for k in range(20)]
    payloads = [bytes(p) for p in out]
    assert payloads[:5] == [OPUS_SILENCE] * 5  # idle: the constant silence frame
    assert all(p != OPUS_SILENCE for p in payloads[5:15])  # the agent's 200 ms, encoded
    assert payloads[15:] == [OPUS_SILENCE] * 5
    assert media.stats.audio_packets_out == 10
    assert [type(e) for e in events] == [PlaybackStarted, PlaybackFinished]


async def test_a_sender_that_does_not_read_loses_the_oldest_packets() -> None:
    media, _ = _media()
    for k in range(TRACK_QUEUE + 6):
        media.on_tick(0.02 * k, 0.02 * k)
    assert media.track.dropped == 6
    assert media.stats.packets_dropped_out == 6
    first = await media.track.recv()
    assert first.pts == 6 * OPUS_TICKS_PER_FRAME  # what is left is the most recent audio


async def test_track_recv_waits_for_the_ticker_and_ends_on_stop() -> None:
    track = TickedAudioTrack()
    waiter = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert track.put(OPUS_SILENCE, 0)
    packet = await asyncio.wait_for(waiter, 1)
    assert bytes(packet) == OPUS_SILENCE
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    try:
        await asyncio.wait_for(pending, 1)
    except Exception as exc:  # aiortc's MediaStreamError: the sender stops reading
        assert type(exc).__name__ == "MediaStreamError"
    else:
        raise AssertionError("recv() returned after stop()")
