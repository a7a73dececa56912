"""One call's recording: the mixer on the call's frame clock, its file, pause and resume.

:class:`CallRecording` is what a call holds while it records. The call hands it the caller's
frames as the caller path delivers them and the agent's frames as the agent path emits them
(:mod:`media.recording` lays both on the frame clock); on each of the call's ticks the block that
became final goes to the process's :class:`~bridge.recording.writer.RecordingWriter`, off the
event loop. Pause and resume (``POST /v1/calls/{id}/recording/pause`` and ``/resume``: a card
number being read out) record silence in between, keep the timeline, and are call events
(``recording.paused`` / ``recording.resumed`` with ``at_s``, seconds into the recording).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.recording.writer import RecordingFile
from media.playout import Frame
from media.recording import RecordingMixer

__all__ = ["CallRecording"]


class CallRecording:
    def __init__(
        self,
        call_id: str,
        mixer: RecordingMixer,
        file: RecordingFile,
        *,
        log_event: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.call_id = call_id
        self.mixer = mixer
        self.file = file
        self._log = log_event
        self._at = 0.0  # the latest tick's deadline
        self._dropped_logged = 0

    @property
    def paused(self) -> bool:
        return self.mixer.paused

    def status(self) -> dict[str, Any]:
        """The call's ``recording`` in the API."""
        return {
            "mode": self.mixer.mode.value,
            "format": "wav",
            "sample_rate": self.mixer.rate,
            "url": f"/v1/calls/{self.call_id}/recording",
            "paused": self.mixer.paused,
        }

    def stats(self) -> dict[str, int]:
        stats = self.mixer.stats
        return {
            "recording_dropped_blocks": self.file.dropped_blocks,
            "recording_dropped_frames": stats.frames_dropped,
            "recording_late_frames": stats.frames_late,
        }

    # -- media in --------------------------------------------------------------------------

    def caller_frame(self, frame: bytes | None, end_at: float) -> None:
        self.mixer.caller_frame(frame, end_at)

    def agent_frames(self, frames: list[Frame]) -> None:
        self.mixer.agent_frames(frames)

    def on_tick(self, deadline: float) -> None:
        self._at = deadline
        block = self.mixer.tick(deadline)
        if block is not None and not self.file.write(block):
            self._note_drops()

    # -- control ---------------------------------------------------------------------------

    def pause(self, paused: bool) -> bool:
        """Pause (True) or resume (False); False: it already was."""
        if self.mixer.paused == paused:
            return False
        self.mixer.pause(paused)
        origin = self.mixer.origin
        at_s = 0.0 if origin is None else round(self._at - origin, 3)
        self._log("recording.paused" if paused else "recording.resumed", {"at_s": at_s})
        return True

    def close(self) -> None:
        """The call ended: what is left goes to the file, which is then finalised."""
        block = self.mixer.flush()
        if block is not None and not self.file.write(block):
            self._note_drops()
        self.file.close()
        if self.file.dropped_blocks:
            self._log("recording.dropped", {"blocks": self.file.dropped_blocks})

    def _note_drops(self) -> None:
        # the first drop is logged at once; the total when the call ends
        if self._dropped_logged == 0:
            self._dropped_logged = 1
            self._log("recording.dropped", {"blocks": 1, "why": "the disk is not keeping up"})
