"""Load the JSON fixtures under ``fixtures/<dialect>/<client|server>/<type>[@variant].json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load(dialect: str, side: str) -> list[Any]:
    """``pytest.param(event, id=<file stem>)`` for every fixture of one dialect and side."""
    out = []
    for path in sorted((FIXTURES / dialect / side).glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        out.append(pytest.param(event, id=path.stem))
    return out


def names(dialect: str, side: str) -> set[str]:
    """The event types the fixtures of one dialect and side cover."""
    return {p.values[0]["type"] for p in load(dialect, side)}
