"""Locating SIP servers (RFC 3263): NAPTR and SRV records into an ordered list of targets.

Why this module exists: carriers publish their trunk hosts as NAPTR/SRV records with several
targets, and expect a caller to go to the next one when the first fails (RFC 3263 §4.3). This
module is the ordering, without any I/O: :mod:`sip.driver.dns` asks the DNS and hands the
records here; the SIP core sends a failed INVITE to the next target
(``SipCore.invite(alternates=...)``).

* §4.1: the NAPTR records of the domain whose service matches the trunk's transport
  (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``), flag ``s``, by order then preference, name the SRV
  records to look up; without any, the SRV name is the transport's prefix
  (``_sip._udp.``...) on the domain.
* §4.2 with RFC 2782: SRV targets by priority, and within one priority a weighted random
  order (weight 0 drawn only after the others, per RFC 2782's rule as a small chance); a
  single target ``.`` means the service is not offered there.
* :class:`TtlCache` keeps an answer for its smallest TTL (an injected clock).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "SERVICES",
    "SRV_PREFIX",
    "Naptr",
    "Srv",
    "TtlCache",
    "naptr_srv_names",
    "srv_order",
]

#: The NAPTR service of each SIP transport (RFC 3263 §4.1).
SERVICES = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
#: The SRV name prefix of each transport (RFC 3263 §4.1, last paragraph).
SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}


@dataclass(frozen=True, slots=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


def naptr_srv_names(records: list[Naptr], transport: str, domain: str) -> list[str]:
    """The SRV names to look up for ``transport`` (§4.1), best first."""
    service = SERVICES[transport].lower()
    chosen = sorted(
        (r for r in records if r.flags.lower() == "s" and r.service.lower() == service),
        key=lambda r: (r.order, r.preference),
    )
    names = [r.replacement.rstrip(".") for r in chosen if r.replacement.rstrip(".")]
    return names or [f"{SRV_PREFIX[transport]}.{domain.rstrip('.')}"]


def srv_order(records: list[Srv], rng: random.Random | None = None) -> list[Srv]:
    """RFC 2782's order: ascending priority; within a priority, repeatedly draw one record
    with a chance proportional to its weight (weight 0 records get a small one)."""
    rng = rng or random.SystemRandom()
    usable = [r for r in records if r.target.rstrip(".")]
    out: list[Srv] = []
    for priority in sorted({r.priority for r in usable}):
        group = [r for r in usable if r.priority == priority]
        while group:
            weights = [r.weight or 0.01 for r in group]
            pick = rng.choices(range(len(group)), weights=weights)[0]
            out.append(group.pop(pick))
    return out


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Answers kept until their TTL runs out (``now`` from the caller's clock)."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._max = max_entries

    def get(self, key: K, now: float) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= now:
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: K, value: V, ttl: float, now: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (now + ttl, value)
