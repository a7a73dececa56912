"""The conversation the local agent keeps per connection: ordered items plus their audio.

Items are the GA item objects sent on the wire; audio is kept next to them (not inside the
item) in its wire format, so ``conversation.item.truncate`` can check ``audio_end_ms`` against
the item's real duration and cut the audio, and the parrot can replay a user's utterance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.agent.audio import Pcm
from bridge.realtime.formats import AudioFormat

__all__ = ["Conversation", "StoredItem"]


@dataclass(slots=True, eq=False)
class StoredItem:
    """One conversation item. ``audio`` is wire bytes in ``fmt`` (assistant output) and
    ``pcm`` is 24 kHz PCM (user input); either may be empty."""

    item: dict[str, Any]
    fmt: AudioFormat = AudioFormat.PCM16
    audio: bytearray = field(default_factory=bytearray)
    pcm: Pcm = field(default_factory=lambda: np.zeros(0, dtype=np.int16))

    @property
    def id(self) -> str:
        return str(self.item["id"])

    @property
    def audio_ms(self) -> int:
        """Duration of the item's audio, whichever form it has."""
        if self.audio:
            return self.fmt.duration_ms(len(self.audio))
        return len(self.pcm) * 1000 // 24000


class Conversation:
    """Ordered items with O(1) lookup by id."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._items: dict[str, StoredItem] = {}

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[StoredItem]:
        return (self._items[i] for i in self._order)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> StoredItem | None:
        return self._items.get(item_id)

    @property
    def last_id(self) -> str | None:
        return self._order[-1] if self._order else None

    def add(self, stored: StoredItem, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (``"root"`` = first; None = at the end).

        Returns the id of the item now before it (None at the start). Raises ``KeyError`` if
        ``previous_item_id`` is unknown and ``ValueError`` if the id is already used.
        """
        if stored.id in self._items:
            raise ValueError(stored.id)
        if previous_item_id is None:
            index = len(self._order)
        elif previous_item_id == "root":
            index = 0
        else:
            index = self._order.index(previous_item_id) + 1 if previous_item_id in self else -1
            if index < 0:
                raise KeyError(previous_item_id)
        self._order.insert(index, stored.id)
        self._items[stored.id] = stored
        return self._order[index - 1] if index > 0 else None

    def delete(self, item_id: str) -> StoredItem:
        """Remove an item; raises ``KeyError`` if unknown."""
        stored = self._items.pop(item_id)
        self._order.remove(item_id)
        return stored
