"""Starting the real ``rtbridge`` command in a subprocess, as a user would, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.cluster.supervisor import term_with_parent

__all__ = ["RTBRIDGE", "Rtbridge", "run_rtbridge", "start_rtbridge"]

RTBRIDGE = str(Path(sys.executable).with_name("rtbridge"))
_LISTEN = re.compile(rb"listening on (\S+)")


@dataclass
class Rtbridge:
    """A running ``rtbridge`` process: where it listens, and the process itself."""

    url: str
    proc: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def run_rtbridge(
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
    executable: str = RTBRIDGE,
) -> AsyncIterator[str]:
    """Run ``rtbridge ARGS`` until it prints ``listening on URL``; yield that URL.

    stderr is collected and shown if the process fails to start. The process gets SIGTERM
    on exit and must stop by itself. ``executable``: another installation's ``rtbridge``.
    """
    async with start_rtbridge(
        *args, env=env, ready_timeout=ready_timeout, executable=executable
    ) as rt:
        yield rt.url


@contextlib.asynccontextmanager
async def start_rtbridge(
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
    executable: str = RTBRIDGE,
) -> AsyncIterator[Rtbridge]:
    """Like :func:`run_rtbridge`, yielding the process too (a test may kill it)."""
    full_env = {**os.environ, **(env or {})}
    # its own process group: whatever it starts (workers, Kamailio) can be stopped with it
    proc = await asyncio.create_subprocess_exec(
        executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        start_new_session=True,
        preexec_fn=term_with_parent,  # and SIGTERM if pytest dies
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []

    async def drain_stderr() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(4096):
            stderr_chunks.append(chunk)

    def stderr_tail() -> str:
        return b"".join(stderr_chunks).decode(errors="replace")[-6000:]

    err_task = asyncio.create_task(drain_stderr())
    url = None
    try:
        async with asyncio.timeout(ready_timeout):
            while line := await proc.stdout.readline():
                if m := _LISTEN.search(line):
                    url = m.group(1).decode()
                    break
    except TimeoutError:
        pass
    if url is None:
        await _stop(proc, err_task, signal.SIGKILL)
        raise RuntimeError(
            f"rtbridge {' '.join(args)} did not start (exit {proc.returncode}):\n" + stderr_tail()
        )
    out_task = asyncio.create_task(proc.stdout.read())
    failed = False
    try:
        yield Rtbridge(url, proc)
    except BaseException:
        failed = True
        raise
    finally:
        stragglers = await _stop(proc, err_task, signal.SIGTERM)
        out_task.cancel()
        if failed:  # pytest shows a failed test's stdout: what rtbridge said
            print(f"--- rtbridge {' '.join(args)}: stderr (tail) ---\n{stderr_tail()}")
    if stragglers:
        raise AssertionError(
            f"rtbridge exited but {stragglers} (what it started) kept running: killed\n"
            + stderr_tail()
        )


async def _stop(proc: asyncio.subprocess.Process, err_task: asyncio.Task[None], sig: int) -> str:
    """Stop ``proc`` (``sig``, SIGKILL after 15 s) and wait, boundedly, for everything it
    started to let go of its stderr; kill the process group if something does not.
    What was still running then, or ``""``."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            # bounded too: on 3.11 wait() also waits for the pipes, which children may hold
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
    try:
        # children get SIGTERM when it dies (PR_SET_PDEATHSIG) and may drain a while
        await asyncio.wait_for(asyncio.shield(err_task), 20)
        return ""
    except TimeoutError:
        left = _group_members(proc.pid)
        if left:  # only then is the group id surely still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(err_task, 5)
        err_task.cancel()
        return ", ".join(left) or "a process that held its stderr"


def _group_members(pgid: int) -> list[str]:
    """``pid (command)`` of the processes in process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name, rest = text.split(" (", 1)[1].rsplit(")", 1)
            if int(rest.split()[2]) == pgid:
                out.append(f"{stat.parent.name} ({name})")
    return out
