"""Stopping tasks (bridge.tasks.cancel_and_wait): the stopper's own cancellation gets through,
a task that ignores its cancellation is reported, not waited for for ever, and what a task
raised is logged unless it was expected."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bridge.tasks import cancel_and_wait


async def _stubborn(stop: asyncio.Event) -> None:
    """Ignores cancellation (as code below a library sometimes does) until ``stop``."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()


async def test_a_stopper_that_is_cancelled_while_it_waits_is_cancelled() -> None:
    release = asyncio.Event()
    stubborn = asyncio.create_task(_stubborn(release))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(stubborn))
    await asyncio.sleep(0.01)
    stopper.cancel()  # with suppress(CancelledError) around the await, this was swallowed
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stopper, 5)  # the old pattern: no error, and no end
    release.set()
    await stubborn


async def test_a_task_that_ignores_its_cancellation_is_returned_after_the_timeout() -> None:
    release = asyncio.Event()
    stubborn = asyncio.create_task(_stubborn(release))
    quiet = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    left = await cancel_and_wait(stubborn, quiet, None, timeout=0.05)
    assert left == {stubborn}
    assert quiet.cancelled()
    release.set()
    await stubborn


async def test_errors_are_logged_unless_expected(caplog: pytest.LogCaptureFixture) -> None:
    async def fails(exc: BaseException) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise exc

    boom = asyncio.create_task(fails(ValueError("boom")), name="boom")
    closed = asyncio.create_task(fails(ConnectionResetError("closed")), name="closed")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="bridge.tasks"):
        assert await cancel_and_wait(boom, closed, expected=(ConnectionError,)) == set()
    logged = [r for r in caplog.records if r.name == "bridge.tasks"]
    assert len(logged) == 1 and "boom" in logged[0].getMessage(), logged
    assert isinstance(logged[0].exc_info[1], ValueError)  # type: ignore[index]
