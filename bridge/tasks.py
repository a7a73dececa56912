"""Stopping asyncio tasks.

``task.cancel()`` then ``with suppress(CancelledError): await task`` has a flaw: if the code
doing it is itself cancelled while it waits, that cancellation is swallowed too and it goes
on as if nothing happened (a shutdown that never ends). :func:`cancel_and_wait` waits with
:func:`asyncio.wait` instead, which lets the caller's own cancellation through and never
raises what the task raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(
    *tasks: asyncio.Future[Any] | None, timeout: float | None = None
) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` (``None`` is skipped) and wait until they have finished, at most
    ``timeout`` seconds; the ones still running then (a task that ignores its cancellation).
    What a task raised is retrieved, never raised here."""
    pending = {t for t in tasks if t is not None}
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    done, left = await asyncio.wait(pending, timeout=timeout)
    for task in done:
        if not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()
    return left
