"""The input audio buffer: decoded 24 kHz PCM addressed by absolute sample position.

Positions count samples since the session's first ``input_audio_buffer.append``, the same clock
the VAD's ``audio_start_ms``/``audio_end_ms`` use (1 ms = 24 samples), so a detected turn is
cut out with :meth:`StreamBuffer.slice` and older audio is dropped with
:meth:`StreamBuffer.discard_before` (the buffer keeps only what a turn may still need).
"""

from __future__ import annotations

import numpy as np

from bridge.agent.audio import Pcm

__all__ = ["SAMPLES_PER_MS", "StreamBuffer"]

SAMPLES_PER_MS = 24


class StreamBuffer:
    """Samples ``[start, end)`` of the input stream."""

    __slots__ = ("_chunks", "end", "start")

    def __init__(self) -> None:
        self._chunks: list[Pcm] = []
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def append(self, pcm: Pcm) -> None:
        if len(pcm):
            self._chunks.append(pcm)
            self.end += len(pcm)

    def _joined(self) -> Pcm:
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    def slice(self, a: int, b: int) -> Pcm:
        """A copy of samples ``[a, b)``, clipped to what is held."""
        a = min(max(a, self.start), self.end)
        b = min(max(b, a), self.end)
        return self._joined()[a - self.start : b - self.start].copy()

    def discard_before(self, pos: int) -> None:
        """Forget samples before ``pos`` (clipped to ``[start, end]``)."""
        pos = min(max(pos, self.start), self.end)
        if pos == self.start:
            return
        data = self._joined()[pos - self.start :]
        self._chunks = [data] if len(data) else []
        self.start = pos
