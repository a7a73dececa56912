"""Stopping asyncio tasks.

``task.cancel()`` then ``with suppress(CancelledError): await task`` has a flaw: if the code
doing it is itself cancelled while it waits, that cancellation is swallowed too and it goes
on as if nothing happened (a shutdown that never ends). :func:`cancel_and_wait` waits with
:func:`asyncio.wait` instead, which lets the caller's own cancellation through, and never
raises what the task raised: an error the caller did not expect is logged with its traceback
(it is a bug somewhere, and a stop path is the wrong place to raise it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_and_wait"]

log = logging.getLogger(__name__)


async def cancel_and_wait(
    *tasks: asyncio.Future[Any] | None,
    timeout: float | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` (``None`` is skipped) and wait until they have finished, at most
    ``timeout`` seconds; the ones still running then (a task that ignores its cancellation).
    What a task raised is retrieved, not raised: logged unless it is one of ``expected``."""
    pending = {t for t in tasks if t is not None}
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    done, left = await asyncio.wait(pending, timeout=timeout)
    for task in done:
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, expected):
            log.warning("%r ended with an error as it was stopped", task, exc_info=exc)
    return left
