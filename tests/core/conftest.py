"""The call store's tests run each behaviour on both backends: SQLite (the embedded default)
and PostgreSQL (a server of the module's own, a fresh database per test)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Postgres, new_database, postgres

_DBS = itertools.count()


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of the module's own (a test may stop and start it again)."""
    with postgres() as server:
        yield server


@pytest.fixture
def pg_database(pg: Postgres) -> str:
    """A fresh, empty database on :func:`pg`; its URL."""
    return new_database(pg.url, f"records_{next(_DBS)}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.peer("postgresql"))])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's records live: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "calls.db"
    url: str = request.getfixturevalue("pg_database")
    return url
