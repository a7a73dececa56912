"""Benchmarks behind ``rtbridge bench NAME``.

Each module ``bridge/bench/<name>.py`` is one benchmark: it defines
``run(settings: Settings, args: argparse.Namespace) -> dict[str, object]`` and returns the
figures as a JSON-ready dict. Modules are discovered by name (no registry to mutate);
benchmarks are never run by the test command.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any

from bridge.config import Settings

__all__ = ["available_benchmarks", "run_benchmark"]


def available_benchmarks() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def run_benchmark(name: str, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    module = importlib.import_module(f"{__name__}.{name}")
    result: dict[str, Any] = module.run(settings, args)
    return result
