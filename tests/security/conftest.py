"""The in-process call stack of the call tests (``stack``; ``stack_options`` to configure it),
for the loopback attack tests."""

from tests.calls.conftest import stack, stack_options

__all__ = ["stack", "stack_options"]
