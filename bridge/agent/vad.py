"""An energy-based voice activity detector that honours Realtime ``turn_detection`` settings.

The local agent has no speech model, so both ``server_vad`` and ``semantic_vad`` are served by
this detector. It is sans-IO: :meth:`EnergyVad.process` takes 24 kHz PCM and returns the events
that audio caused, stamped in milliseconds of *audio* since the session's first append (the
clock OpenAI's ``audio_start_ms`` / ``audio_end_ms`` use). No wall clock is read.

Mapping of the settings:

- ``threshold`` (0..1) maps linearly to a frame RMS level: ``-70 dBFS + 60 dB * threshold``
  (the default 0.5 is -40 dBFS, well below speech and well above line silence).
- Speech starts after ``START_FRAMES`` consecutive loud 10 ms frames; ``audio_start_ms`` is the
  first loud frame minus ``prefix_padding_ms`` (clamped at 0), as OpenAI reports it.
- Speech stops after ``silence_duration_ms`` of quiet frames; ``audio_end_ms`` includes that
  silence, as OpenAI reports it.
- ``semantic_vad`` eagerness picks the silence duration (low 800, medium/auto 500, high 250 ms).
- ``idle_timeout_ms``: once armed (the agent arms it when a response has finished playing,
  counting its audio duration), that much audio without speech gives a ``timeout`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["START_FRAMES", "EnergyVad", "VadConfig", "VadEvent", "VadEventKind"]

RATE = 24000
FRAME = RATE // 100  # 10 ms
START_FRAMES = 3

_EAGERNESS_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 250}


@dataclass(frozen=True, slots=True)
class VadConfig:
    """The subset of a ``turn_detection`` object the detector uses."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200
    idle_timeout_ms: int | None = None

    @property
    def level_dbfs(self) -> float:
        return -70.0 + 60.0 * min(1.0, max(0.0, self.threshold))

    @classmethod
    def from_turn_detection(cls, td: dict[str, Any]) -> VadConfig:
        if td.get("type") == "semantic_vad":
            eagerness = str(td.get("eagerness") or "auto")
            return cls(silence_duration_ms=_EAGERNESS_SILENCE_MS.get(eagerness, 500))
        default = cls()

        def pick(key: str, fallback: float) -> float:
            value = td.get(key)
            return fallback if value is None else float(value)

        idle = td.get("idle_timeout_ms")
        return cls(
            threshold=pick("threshold", default.threshold),
            prefix_padding_ms=int(pick("prefix_padding_ms", default.prefix_padding_ms)),
            silence_duration_ms=int(pick("silence_duration_ms", default.silence_duration_ms)),
            idle_timeout_ms=int(idle) if idle else None,
        )


class VadEventKind(Enum):
    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class VadEvent:
    """``start_ms``/``end_ms`` are audio milliseconds since the stream began.

    SPEECH_STARTED carries ``start_ms`` (with prefix padding); SPEECH_STOPPED carries both
    (``end_ms`` includes the trailing silence); TIMEOUT carries the idle span.
    """

    kind: VadEventKind
    start_ms: int
    end_ms: int


class EnergyVad:
    """Frame-energy speech detector over a 24 kHz stream; accepts any chunk size."""

    def __init__(self, config: VadConfig) -> None:
        self.config = config
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = 0  # 10 ms frames consumed since the stream began
        self._loud_run = 0
        self._quiet_run = 0
        self._in_speech = False
        self._speech_start_ms = 0
        self._idle_from_ms: int | None = None

    @property
    def position_ms(self) -> int:
        """Audio consumed so far (whole frames), in ms."""
        return self._frames * 10

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reconfigure(self, config: VadConfig) -> None:
        """New settings take effect from the next frame; a turn in progress continues."""
        self.config = config
        if config.idle_timeout_ms is None:
            self._idle_from_ms = None

    def arm_idle(self, from_ms: int) -> None:
        """Start the idle timer at ``from_ms`` (may lie in the future: playback still running)."""
        if self.config.idle_timeout_ms is not None:
            self._idle_from_ms = from_ms

    def disarm_idle(self) -> None:
        self._idle_from_ms = None

    def reset_turn(self) -> None:
        """Forget a turn in progress (``input_audio_buffer.clear``/``commit``)."""
        self._in_speech = False
        self._loud_run = 0
        self._quiet_run = 0

    def process(self, pcm: npt.NDArray[np.int16]) -> list[VadEvent]:
        """Consume audio; return the events it caused, in order."""
        data = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        n_frames = len(data) // FRAME
        events: list[VadEvent] = []
        if n_frames:
            frames = data[: n_frames * FRAME].astype(np.float64).reshape(n_frames, FRAME)
            rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
            with np.errstate(divide="ignore"):
                level = 20.0 * np.log10(np.maximum(rms, 1e-10))
            loud = level >= self.config.level_dbfs
            for is_loud in loud:
                self._frame(bool(is_loud), events)
        self._pending = data[n_frames * FRAME :].copy()
        return events

    def _frame(self, loud: bool, events: list[VadEvent]) -> None:
        self._frames += 1
        now_ms = self._frames * 10
        cfg = self.config
        if loud:
            self._loud_run += 1
            self._quiet_run = 0
        else:
            self._quiet_run += 1
            self._loud_run = 0
        if not self._in_speech:
            if self._loud_run >= START_FRAMES:
                self._in_speech = True
                self._idle_from_ms = None
                onset_ms = now_ms - self._loud_run * 10
                self._speech_start_ms = max(0, onset_ms - cfg.prefix_padding_ms)
                events.append(VadEvent(VadEventKind.SPEECH_STARTED, self._speech_start_ms, 0))
            elif (
                self._idle_from_ms is not None
                and cfg.idle_timeout_ms is not None
                and now_ms - self._idle_from_ms >= cfg.idle_timeout_ms
            ):
                start = max(0, self._idle_from_ms)
                self._idle_from_ms = None
                events.append(VadEvent(VadEventKind.TIMEOUT, start, now_ms))
        elif self._quiet_run * 10 >= max(10, cfg.silence_duration_ms):
            self._in_speech = False
            events.append(VadEvent(VadEventKind.SPEECH_STOPPED, self._speech_start_ms, now_ms))
