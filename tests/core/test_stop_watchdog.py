"""A process told to stop always does: ``rtbridge serve``'s stop watchdog ends a stop that
waits for what never comes (exit status 70), after naming each task still running and where
it waits. Run in a child process (the watchdog ends the process it is in)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys
    from bridge.serve import StopWatchdog

    async def never_ends():
        await asyncio.Event().wait()  # a shutdown step waiting for what never comes

    async def main():
        watchdog = StopWatchdog()
        watchdog.start(asyncio.get_running_loop())
        asyncio.create_task(never_ends(), name="stuck-step")
        watchdog.arm(float(sys.argv[1]))
        watchdog.arm(3600)  # a later deadline never replaces an earlier one
        await asyncio.sleep(30)
        print("not stopped")

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
    """
)


def test_a_stop_that_never_finishes_ends_the_process_naming_what_it_waited_for() -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHILD, "0.5"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 70, (run.returncode, run.stdout, run.stderr)
    assert "not stopped" not in run.stdout
    assert "the stop did not finish in time" in run.stderr, run.stderr
    # the stuck task, and its await chain: never_ends, then the Event's wait
    assert "stuck-step at never_ends " in run.stderr, run.stderr
    assert " > wait " in run.stderr and "asyncio/locks.py" in run.stderr, run.stderr
