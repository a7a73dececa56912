"""numpy's BLAS stays on one thread in rtbridge's processes: on two it spun a core's worth of
CPU waiting between the small products of per-frame resampling."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = (
    "import {first}, numpy, os; a = numpy.ones((600, 600)); a @ a; "
    "print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])"
)


def _threads(first: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(first=first)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS has one thread anyway")
@pytest.mark.parametrize("first", ["bridge", "media"])
def test_a_large_product_runs_on_the_calling_thread_only(first: str) -> None:
    assert _threads(first) == (1, "1")


def test_the_operators_own_setting_is_kept() -> None:
    assert _threads("bridge", OPENBLAS_NUM_THREADS="2")[1] == "2"
