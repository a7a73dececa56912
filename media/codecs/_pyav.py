"""Thin encoder/decoder wrappers over PyAV (FFmpeg) codec contexts, shared by G.722 and Opus.

PyAV ships without type stubs for these paths; the ``type: ignore`` comments are confined here.
FFmpeg errors are re-raised as :class:`media.codecs.base.CodecError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from numpy.typing import NDArray

from media.codecs.base import CodecError

_LAYOUTS = {1: "mono", 2: "stereo"}


class PyAVEncoder:
    """Packed s16 PCM frames in, one payload out per frame."""

    def __init__(
        self,
        codec: str,
        rate: int,
        channels: int,
        frame_samples: int,
        bit_rate: int | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self._codec = codec
        self._rate = rate
        self._channels = channels
        self._layout = _LAYOUTS[channels]
        self._frame_samples = frame_samples
        self._bit_rate = bit_rate
        self._options = dict(options or {})
        self._ctx: Any = None
        self._pts = 0
        self.reset()

    def reset(self) -> None:
        ctx: Any = av.CodecContext.create(self._codec, "w")
        ctx.sample_rate = self._rate
        ctx.layout = self._layout
        ctx.format = "s16"
        if self._bit_rate is not None:
            ctx.bit_rate = self._bit_rate
        if self._options:
            ctx.options = self._options
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        want = self._frame_samples * self._channels
        if len(pcm) != want:
            raise CodecError(
                f"{self._codec} encodes frames of {want} int16 values "
                f"({self._frame_samples} samples x {self._channels} channels), got {len(pcm)}"
            )
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout=self._layout
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += self._frame_samples
        try:
            packets = self._ctx.encode(frame)
        except av.FFmpegError as exc:
            raise CodecError(f"{self._codec} encoder failed: {exc}") from exc
        if len(packets) == 1:
            return bytes(packets[0])
        return b"".join(bytes(p) for p in packets)


class PyAVDecoder:
    """One payload in, packed s16 PCM out."""

    def __init__(self, codec: str, rate: int, channels: int) -> None:
        self._codec = codec
        self._rate = rate
        self._channels = channels
        self._ctx: Any = None
        self.reset()

    def reset(self) -> None:
        ctx: Any = av.CodecContext.create(self._codec, "r")
        ctx.sample_rate = self._rate
        ctx.layout = _LAYOUTS[self._channels]
        ctx.format = "s16"
        ctx.open()
        self._ctx = ctx

    def decode(self, payload: bytes) -> NDArray[np.int16]:
        if not payload:
            raise CodecError(f"{self._codec}: empty payload")
        try:
            frames = self._ctx.decode(av.Packet(payload))
        except av.FFmpegError as exc:
            raise CodecError(f"{self._codec} decoder rejected a payload: {exc}") from exc
        arrays = [self._packed_s16(f) for f in frames]
        if not arrays:
            return np.zeros(0, dtype=np.int16)
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def _packed_s16(self, frame: Any) -> NDArray[np.int16]:
        a: NDArray[Any] = frame.to_ndarray()
        name = frame.format.name
        if name == "s16":
            return a.reshape(-1)
        if name == "s16p":  # planar: (channels, samples) -> interleaved
            return np.ascontiguousarray(a.T).reshape(-1)
        if name in ("flt", "fltp"):
            f = a.T.reshape(-1) if name == "fltp" else a.reshape(-1)
            return np.clip(np.rint(f * 32768.0), -32768, 32767).astype(np.int16)
        raise CodecError(f"{self._codec} decoder produced unexpected sample format {name}")
