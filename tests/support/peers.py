"""Finding the real peers tests drive (SIPp, baresip, Chromium, ...).

On a developer machine that lacks a peer, a test skips and says which peer is missing. With
``CI=true`` a missing peer fails the test instead: CI must never skip a peer test.
"""

from __future__ import annotations

import glob
import os
import shutil

import pytest

__all__ = ["in_ci", "require_peer"]

#: the test being set up or run (set by tests/conftest.py): a peer test must say so
current_item: pytest.Item | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_peer(binary: str, *, also: tuple[str, ...] = ()) -> str:
    """Return the peer's path; skip (developer machine) or fail (CI) when it is missing.

    ``also``: glob patterns of directories to look in besides ``PATH`` (Debian keeps
    PostgreSQL's server programs in ``/usr/lib/postgresql/<version>/bin``)."""
    item = current_item
    if item is not None and item.get_closest_marker("peer") is None:
        pytest.fail(
            f"{item.nodeid} drives the peer {binary!r} but is not marked "
            f"@pytest.mark.peer({binary!r}): the fast tier (make test-fast) must not need it"
        )
    path = shutil.which(binary)
    if path:
        return path
    for pattern in also:
        for directory in sorted(glob.glob(pattern), reverse=True):  # the newest version first
            found = shutil.which(binary, path=directory)
            if found:
                return found
    msg = f"peer {binary!r} is not installed (run `bash tests/peers/install.sh`)"
    if in_ci():
        pytest.fail(msg + " and CI=true forbids skipping peer tests")
    pytest.skip(msg)
