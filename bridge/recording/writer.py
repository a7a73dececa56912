"""Recording files written off the event loop: one writer thread, a bounded queue, WAV on disk.

Why this module exists: a call's recording grows by a block a few times a second (the mixer's
:data:`~media.recording.BLOCK_FRAMES`); writing it from the event loop would make every call's
audio wait on the disk. The calls hand blocks to :class:`RecordingWriter`, whose one thread
writes them, in order, for every call of the process. The queue is bounded
(:data:`QUEUE_BLOCKS`): when the disk cannot keep up, a block that finds the queue full is
dropped and counted (``dropped_blocks``, per file and in total; the call's event log and
``rtbridge_recording_dropped_blocks_total`` say so), never waited for and never lost silently.

Files are WAV (RIFF, PCM 16-bit little-endian) in the recordings directory, created new
(``O_EXCL``, no following a planted symlink) and 0600: they hold what callers said. The header's
sizes are rewritten at least every :data:`HEADER_EVERY_S` and on close, so a process killed
mid-call (``kill -9``, a crash) leaves a file that plays up to its last second; the next reader
that opens an unfinished file sees consistent sizes (:func:`read_wav_info` also trusts the file's
length over a stale header).
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bridge.private_files import FILE_MODE, private_dir

__all__ = [
    "HEADER_EVERY_S",
    "QUEUE_BLOCKS",
    "RecordingFile",
    "RecordingWriter",
    "WavInfo",
    "read_wav_info",
    "wav_header",
]

log = logging.getLogger(__name__)

#: Blocks waiting for the disk, all calls together (about 250 ms each: 500 calls get 8 s).
QUEUE_BLOCKS: Final = 4096
#: The header's sizes are brought up to date at least this often while a file grows.
HEADER_EVERY_S: Final = 1.0
WAV_HEADER_BYTES: Final = 44


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """The canonical 44-byte header of a PCM16 WAV file holding ``data_bytes`` of samples."""
    block_align = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block_align,
        block_align,
        16,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True, slots=True)
class WavInfo:
    rate: int
    channels: int
    data_bytes: int

    @property
    def seconds(self) -> float:
        return self.data_bytes / (self.rate * self.channels * 2)


def read_wav_info(path: Path) -> WavInfo:
    """Rate, channels and sample bytes of a recording; the file's length wins over a header
    not yet brought up to date (a file still growing, or left by a killed process)."""
    with path.open("rb") as fh:
        head = fh.read(WAV_HEADER_BYTES)
        size = os.fstat(fh.fileno()).st_size
    if len(head) < WAV_HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError(f"{path.name} is not a WAV file")
    channels, rate = struct.unpack_from("<HI", head, 22)
    block = channels * 2
    data = (size - WAV_HEADER_BYTES) // block * block
    return WavInfo(rate, channels, data)


class RecordingFile:
    """One recording being written; a handle the call holds. Its methods only queue."""

    def __init__(self, writer: RecordingWriter, path: Path, rate: int, channels: int) -> None:
        self.path = path
        self.rate = rate
        self.channels = channels
        self.dropped_blocks = 0
        self.closed = False
        self._writer = writer

    def write(self, block: bytes) -> bool:
        """Queue a block of samples; False: the queue was full and it was dropped (counted)."""
        if self.closed or not block:
            return not self.closed
        if self._writer.submit(self, block):
            return True
        self.dropped_blocks += 1
        return False

    def close(self) -> None:
        """No more blocks: the header is finalised once what is queued is written."""
        if not self.closed:
            self.closed = True
            self._writer.submit(self, None, force=True)


class _Open:
    __slots__ = ("data_bytes", "fd", "handle", "header_at")

    def __init__(self, fd: int, handle: RecordingFile) -> None:
        self.fd = fd
        self.handle = handle
        self.data_bytes = 0
        self.header_at = 0.0


#: What the thread is handed: a block (bytes) or a close (None) for a file, or a flush marker.
_Item = tuple[RecordingFile, bytes | None] | threading.Event | None


class RecordingWriter:
    """The process's one recording writer thread (start with :meth:`start`)."""

    def __init__(self, directory: Path, *, queue_blocks: int = QUEUE_BLOCKS) -> None:
        self.directory = directory
        self._queue: queue.Queue[_Item] = queue.Queue(queue_blocks)
        self._open: dict[int, _Open] = {}
        self._thread: threading.Thread | None = None
        self.dropped_blocks = 0
        self.written_bytes = 0
        self.errors = 0

    def start(self) -> None:
        if self._thread is None:
            private_dir(self.directory)
            self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
            self._thread.start()

    def path_for(self, call_id: str) -> Path:
        return self.directory / f"{call_id}.wav"

    def create(self, call_id: str, rate: int, channels: int) -> RecordingFile:
        """A new recording file for the call (created by the thread, 0600); the thread and
        the directory come with the first one."""
        self.start()
        return RecordingFile(self, self.path_for(call_id), rate, channels)

    def submit(self, handle: RecordingFile, block: bytes | None, *, force: bool = False) -> bool:
        """Queue a block (None: the file's close). A close waits for room (the thread is
        draining); a block finding the queue full is dropped and counted."""
        if force:
            self._queue.put((handle, block))
            return True
        try:
            self._queue.put_nowait((handle, block))
        except queue.Full:
            self.dropped_blocks += 1
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Block until what is queued so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError("the recording writer did not flush in time")

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, finalise every open file, end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                for key in list(self._open):
                    self._finish(key)
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            handle, block = item
            try:
                self._apply(handle, block)
            except OSError as exc:
                self.errors += 1
                log.error("recording %s: %s", handle.path.name, exc)

    def _apply(self, handle: RecordingFile, block: bytes | None) -> None:
        key = id(handle)
        entry = self._open.get(key)
        if entry is None:
            if block is None:
                return
            fd = os.open(
                handle.path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
            )
            os.fchmod(fd, FILE_MODE)  # whatever the umask took away, not more
            os.write(fd, wav_header(handle.rate, handle.channels, 0))
            entry = self._open[key] = _Open(fd, handle)
        if block is None:
            self._finish(key)
            return
        os.write(entry.fd, block)
        entry.data_bytes += len(block)
        self.written_bytes += len(block)
        now = time.monotonic()
        if now - entry.header_at >= HEADER_EVERY_S:
            os.pwrite(entry.fd, wav_header(handle.rate, handle.channels, entry.data_bytes), 0)
            entry.header_at = now

    def _finish(self, key: int) -> None:
        entry = self._open.pop(key)
        handle = entry.handle
        try:
            os.pwrite(entry.fd, wav_header(handle.rate, handle.channels, entry.data_bytes), 0)
        finally:
            os.close(entry.fd)
