"""The recording writer: owner-only WAV files written by its thread, a header that is right
while the file grows, and a full queue that drops (counted) instead of waiting."""

from __future__ import annotations

import stat
import wave
from pathlib import Path

import numpy as np

from bridge.recording.writer import RecordingFile, RecordingWriter, read_wav_info


def test_blocks_make_a_0600_wav_that_reads_back(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec")
    handle = writer.create("call_1", 8000, 2)
    samples = (np.arange(8000 * 2 * 3) % 2000 - 1000).astype("<i2")
    for chunk in np.split(samples, 12):
        assert handle.write(chunk.tobytes())
    writer.flush()
    # while the call goes on the file already reads (its length wins over a stale header)
    info = read_wav_info(handle.path)
    assert (info.rate, info.channels, info.seconds) == (8000, 2, 3.0)
    handle.close()
    writer.stop()
    assert stat.S_IMODE(handle.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(handle.path.parent.stat().st_mode) == 0o700
    with wave.open(str(handle.path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 2, 2)
        got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(got, samples)


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec", queue_blocks=2)  # thread not started
    handle = RecordingFile(writer, tmp_path / "rec" / "x.wav", 8000, 1)
    results = [handle.write(b"\0\0" * 160) for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert handle.dropped_blocks == 3 and writer.dropped_blocks == 3


def test_a_planted_file_is_not_overwritten(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec")
    handle = writer.create("call_2", 8000, 1)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    handle.path.symlink_to(target)
    handle.write(b"\1\0" * 160)
    writer.flush()
    writer.stop()
    assert target.read_bytes() == b"keep"
    assert writer.errors == 1
