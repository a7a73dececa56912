"""A min-heap of deadlines for the sans-IO cores (RFC 3261 §17 timers at scale).

Transactions and calls keep their own named timers (``timers: dict[str, float]``); each time
one is started it is also pushed here. Entries are never removed when a timer is cancelled:
they are dropped lazily when they reach the top and the owner no longer holds that deadline.
``next_deadline`` and ``pop_due`` are therefore O(log n) per timer instead of a scan of every
live transaction, which keeps the per-message cost flat with thousands of lingering
transactions (timers J, K, L and M keep them for up to 32 s).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TimerHeap"]

T = TypeVar("T")


class TimerHeap(Generic[T]):
    """Deadlines of owners of type ``T``; ``valid(owner, when)`` says if an entry still holds."""

    def __init__(self, valid: Callable[[T, float], bool]) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._valid = valid

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, owner: T) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), owner))

    def next_deadline(self) -> float | None:
        while self._heap:
            when, _, owner = self._heap[0]
            if self._valid(owner, when):
                return when
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float) -> list[T]:
        """The owners with a valid deadline ``<= now``, each once, earliest first."""
        due: list[T] = []
        seen: set[int] = set()
        while self._heap and self._heap[0][0] <= now:
            when, _, owner = heapq.heappop(self._heap)
            if self._valid(owner, when) and id(owner) not in seen:
                seen.add(id(owner))
                due.append(owner)
        return due
