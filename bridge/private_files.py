"""Owner-only files and directories for what rtbridge keeps at rest.

The data directory holds the server key, the call records (transcripts, phone numbers, DTMF
digits such as PINs) and the dashboard sessions. Whatever the key source and whatever the
process umask, the directory is 0700 and its files 0600: :func:`private_dir` and
:func:`private_file` make them so (and tighten ones that exist), :func:`create_exclusive`
creates a new file that must not exist yet (no following a planted symlink, no race with
another process), :func:`write_private` replaces a file atomically, and :func:`loose_mode`
says whether a file can be read by anyone but its owner.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["create_exclusive", "loose_mode", "private_dir", "private_file", "write_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or tighten it to 0700 if we own it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) != DIR_MODE and st.st_uid == os.getuid():
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if missing; tighten it to 0600 if it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE))
    if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
        os.chmod(path, FILE_MODE)
    return path


def create_exclusive(path: Path, text: str) -> None:
    """Write a new 0600 file; raises :class:`FileExistsError` if anything is there already."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, FILE_MODE)  # whatever the umask took away, not more


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``text``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    create_exclusive(tmp, text)
    os.replace(tmp, path)


def loose_mode(path: Path) -> int | None:
    """The file's mode if group or others may read or write it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o077 else None
