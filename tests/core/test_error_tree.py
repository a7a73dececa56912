"""Every exception rtbridge raises on purpose is in the one documented tree (bridge/errors.py):
a caller can catch ``RtbridgeError`` and knows it has them all."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bridge
from bridge.errors import RtbridgeError


def test_every_public_exception_in_bridge_is_an_rtbridge_error() -> None:
    outside = []
    for info in pkgutil.walk_packages(bridge.__path__, "bridge."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
                and not issubclass(obj, RtbridgeError)
            ):
                outside.append(f"{module.__name__}.{name}")
    assert outside == []
