"""The infrastructure peers a cluster runs on, started by the tests that need them: Redis 7
and PostgreSQL 15 from Debian, on 127.0.0.1, on free ports, in temporary directories, stopped
afterwards (see TESTING.md, "Infrastructure peers").

PostgreSQL refuses to run as root: when the tests run as root (CI, the dev machines), the
cluster is created and run as Debian's ``postgres`` system user (``runuser``), in a directory
that user owns; otherwise as the current user. Authentication is ``trust`` on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.peers import require_peer
from tests.support.servers import free_port

__all__ = [
    "PG_BIN",
    "Postgres",
    "new_database",
    "postgres",
    "postgres_server",
    "redis_server",
    "require_postgres",
    "require_redis",
]

#: where Debian keeps PostgreSQL's server programs (not on PATH)
PG_BIN = ("/usr/lib/postgresql/*/bin",)


def require_redis() -> str:
    return require_peer("redis-server")


def require_postgres() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    return Path(require_peer("initdb", also=PG_BIN)).resolve().parent


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """A Redis server of its own (on ``port``, default a free one); yields
    ``redis://127.0.0.1:PORT/0``."""
    binary = require_redis()
    tmp = Path(tempfile.mkdtemp(prefix="rtb-redis-"))
    port = port or free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
            "--protected-mode",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class Postgres:
    """A PostgreSQL cluster of the test's own, which the test may stop and start again (same
    port, same data: a server restart as an operator's maintenance makes one)."""

    def __init__(self, bindir: Path, tmp: Path, port: int, user: str | None) -> None:
        self.tmp, self.port = tmp, port
        data = tmp / "data"
        opts = f"-k {tmp} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        opts += " -c full_page_writes=off"
        self._ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-o", opts]
        name = user or os.environ.get("USER", "postgres")
        self.url = f"postgresql://{name}@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        cmd = _as_pg_user([*self._ctl, "-w", "start"])
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.tmp)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: connections are ended, as in a restart; ``immediate``: a crash."""
        cmd = _as_pg_user([*self._ctl, "-m", mode, "-w", "stop"])
        subprocess.run(cmd, capture_output=True, cwd=self.tmp)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster of its own, started; stopped and removed afterwards."""
    bindir = require_postgres()
    tmp = Path(tempfile.mkdtemp(prefix="rtb-pg-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    user = "postgres" if os.geteuid() == 0 else None
    init = [str(bindir / "initdb"), "-D", str(tmp / "data"), "-A", "trust", "-E", "UTF8"]
    init += ["--no-sync", "-U", user or os.environ.get("USER", "postgres")]
    subprocess.run(_as_pg_user(init), check=True, capture_output=True, cwd=tmp)
    server = Postgres(bindir, tmp, free_port(), user)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster of its own; yields ``postgresql://postgres@127.0.0.1:PORT/postgres``
    (the tests make a database each with :func:`new_database`)."""
    with postgres() as server:
        yield server.url


def new_database(url: str, name: str) -> str:
    """A fresh, empty database ``name`` on the server at ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[arg-type]
        db.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return url.rsplit("/", 1)[0] + "/" + name


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")
