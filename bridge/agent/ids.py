"""Identifiers shaped like OpenAI's (``sess_…``, ``event_…``, ``item_…``, ``resp_…``).

Clients and the bridge sometimes check prefixes (a ``call_id`` starts with ``call_``, an item id
with ``item_``), so the local agent mints ids of the same shape: a prefix and a random
alphanumeric tail. A seeded :class:`random.Random` makes them reproducible in tests.
"""

from __future__ import annotations

import random
import string

__all__ = ["IdFactory"]

_ALPHABET = string.ascii_letters + string.digits


class IdFactory:
    """Mints ids; one per agent connection (ids only need to be unique per session)."""

    __slots__ = ("_rng",)

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def _tail(self, n: int) -> str:
        return "".join(self._rng.choice(_ALPHABET) for _ in range(n))

    def session(self) -> str:
        return "sess_" + self._tail(21)

    def event(self) -> str:
        return "event_" + self._tail(21)

    def item(self) -> str:
        return "item_" + self._tail(21)

    def response(self) -> str:
        return "resp_" + self._tail(21)

    def call(self) -> str:
        return "call_" + self._tail(16)

    def conversation(self) -> str:
        return "conv_" + self._tail(21)
