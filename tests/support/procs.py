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
    proc = await asyncio.create_subprocess_exec(
        executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_chunks: list[bytes] = []

    async def drain_stderr() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(4096):
            stderr_chunks.append(chunk)

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
        proc.kill()
        await proc.wait()
        await err_task
        raise RuntimeError(
            f"rtbridge {' '.join(args)} did not start (exit {proc.returncode}):\n"
            + b"".join(stderr_chunks).decode(errors="replace")[-3000:]
        )
    out_task = asyncio.create_task(proc.stdout.read())
    try:
        yield Rtbridge(url, proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        out_task.cancel()
        await err_task
