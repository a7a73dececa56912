"""The package as users install it: the wheel, into a clean virtual environment, without extras
(what ``deploy/Dockerfile`` does with ``pip install .``), then ``rtbridge serve`` and
``/healthz``. Every runtime import must be a declared dependency: a module only the ``dev`` extra
brings (``httpx`` once was) fails here, where CI's ``.[dev]`` install never noticed.

pip takes what it needs from the indexes this machine is configured with. About a minute; it
runs under ``make test`` (marker ``packaging``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.procs import run_rtbridge
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.packaging


def _run(*cmd: str | Path, timeout: float = 600) -> str:
    res = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    output = f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert res.returncode == 0, f"{cmd}: rc={res.returncode}\n{output}"
    return res.stdout


async def test_the_wheel_installs_without_extras_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    (wheel,) = dist.glob("rtbridge-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel)
    # what only the dev extra brings is not there
    probe = "import importlib.util as u; print([m for m in ('pytest', 'openai') if u.find_spec(m)])"
    assert _run(python, "-c", probe).strip() == "[]"
    # every product module imports in the clean environment
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for pkg in ("bridge", "sip", "media")
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__main__.py"
    )
    script = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    _run(python, "-c", script, *(m.removesuffix(".__init__") for m in modules))
    env = {
        "RTBRIDGE_API_KEY": "rtb_packaging_test",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
    }
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)))
    async with (
        run_rtbridge(*args, env=env, executable=str(venv / "bin" / "rtbridge")) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        r = await client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
