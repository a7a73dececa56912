"""Test signals and measurements: a speech-like voiced signal and normalised correlation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from media import g711

__all__ = ["best_correlation", "best_lag", "loud_frames", "ulaw_file", "voiced_signal", "write_wav"]


def voiced_signal(
    seconds: float = 1.2, rate: int = 24000, f0: float = 140.0, seed: int = 1
) -> NDArray[np.int16]:
    """A harmonic-rich, pitch-gliding pulse train with a syllabic envelope (speech-like).

    Unlike a steady tone it has a unique alignment, so correlation proves fidelity.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, np.pi)) ** 2
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    y = x * env * ramp
    y = y / np.max(np.abs(y)) * 12000
    return y.astype(np.int16)


def best_lag(
    sent: NDArray[np.int16], got: NDArray[np.int16], *, before: int = 0
) -> tuple[float, int]:
    """Max normalised cross-correlation of ``sent`` within ``got`` (0..1) and the sample offset
    where it is; with ``before``, ``sent`` may also start up to that many samples before
    ``got`` does (a negative offset)."""
    a = sent.astype(np.float64)
    b = np.concatenate([np.zeros(before), got.astype(np.float64)])
    if len(b) < len(a):
        b = np.concatenate([b, np.zeros(len(a) - len(b))])
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: len(b) - len(a) + 1]
    energy_a = np.sqrt(np.sum(a * a))
    csum = np.concatenate([[0.0], np.cumsum(b * b)])
    window = np.sqrt(np.maximum(csum[len(a) :] - csum[: len(b) - len(a) + 1], 1e-9))
    score = corr / (energy_a * window)
    lag = int(np.argmax(score))
    return float(score[lag]), lag - before


def best_correlation(sent: NDArray[np.int16], got: NDArray[np.int16]) -> float:
    """Max normalised cross-correlation of ``sent`` within ``got`` over all lags (0..1)."""
    return best_lag(sent, got)[0]


def loud_frames(pcm: NDArray[np.int16], frame: int, threshold: float = 300.0) -> NDArray[np.bool_]:
    """Per ``frame`` samples: whether its RMS is above ``threshold`` (voice, not silence)."""
    n = len(pcm) // frame
    frames = pcm[: n * frame].astype(np.float64).reshape(n, frame)
    return np.sqrt(np.mean(frames * frames, axis=1)) > threshold


def ulaw_file(path: Path, *segments: tuple[str, float]) -> Path:
    """A raw u-law file (what SIPp streams) of ("voice"|"silence", seconds) segments, 8 kHz."""
    parts = []
    for n, (kind, seconds) in enumerate(segments):
        if kind == "voice":
            parts.append(voiced_signal(seconds, rate=8000, seed=n + 1))
        else:
            parts.append(np.zeros(int(seconds * 8000), dtype=np.int16))
    path.write_bytes(g711.ulaw_encode(np.concatenate(parts)))
    return path


def write_wav(path: Path, pcm: NDArray[np.int16], rate: int) -> Path:
    """A 16-bit WAV file of ``pcm``: one channel, or one column per channel."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype=np.int16).tobytes())
    return path
