"""The process's destination guard: a profile's policy, its caps, and the security log.

Every place that dials or transfers asks :class:`Destinations` (the control plane's originate,
transfer and refer routes, ``rtbridge call``, call control's ``transfer_call`` tool and DTMF
transfer action). It applies the profile's pure policy, then its caps (counted per profile name
and purpose, on an injected monotonic clock), and records every refusal as a security event:
``destination-refused`` (malformed, not allowed, international) or ``rate-limited`` (a cap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from bridge.destinations.caps import RateCap
from bridge.destinations.policy import DestinationPolicy, Purpose, Verdict, VerdictCode
from bridge.security import SecurityKind, SecurityLog

__all__ = ["CallTransfers", "Destinations", "HasDestinationPolicy"]


class HasDestinationPolicy(Protocol):
    """What the guard needs of a profile (:class:`bridge.config.AgentProfile`)."""

    def destination_policy(self, purpose: Purpose) -> DestinationPolicy: ...


class Destinations:
    def __init__(
        self, security: SecurityLog, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.security = security
        self._clock = clock
        self._caps: dict[tuple[str, Purpose], RateCap] = {}

    def check(
        self,
        purpose: Purpose,
        profile_name: str,
        profile: HasDestinationPolicy,
        target: str,
        *,
        source: str | None,
        call_id: str | None = None,
    ) -> Verdict:
        """Allow (and count against the caps) or refuse (and record) one target."""
        policy = profile.destination_policy(purpose)
        verdict = policy.check(target)
        if verdict:
            cap = self._cap(purpose, profile_name, policy)
            broken = cap.take(self._clock())
            if broken is not None:
                verdict = Verdict(
                    False,
                    VerdictCode.CAP_REACHED,
                    f"profile {profile_name!r} reached its cap of {broken} "
                    f"{'outbound calls' if purpose is Purpose.DIAL else 'transfers'}",
                    verdict.target,
                )
        if not verdict:
            kind = (
                SecurityKind.RATE_LIMITED
                if verdict.code is VerdictCode.CAP_REACHED
                else SecurityKind.DESTINATION_REFUSED
            )
            self.security.record(
                kind,
                source=source,
                detail=f"{purpose.value} refused (profile {profile_name!r}): {verdict.reason}",
                call_id=call_id,
            )
        return verdict

    def _cap(self, purpose: Purpose, profile_name: str, policy: DestinationPolicy) -> RateCap:
        key = (profile_name, purpose)
        cap = self._caps.get(key)
        s = policy.settings
        limits = (
            (s.dials_per_minute, s.dials_per_day)
            if purpose is Purpose.DIAL
            else (s.transfers_per_minute, s.transfers_per_day)
        )
        if cap is None or (cap.per_minute, cap.per_day) != limits:
            cap = self._caps[key] = RateCap(*limits)
        return cap

    def for_call(
        self,
        call_id: str,
        profile_name: str,
        profile: HasDestinationPolicy,
        *,
        source: str = "agent",
    ) -> CallTransfers:
        """The transfer check of one call (what call control asks)."""
        return CallTransfers(self, call_id, profile_name, profile, source)


class CallTransfers:
    """One call's transfer check: the guard bound to the call's id and profile."""

    __slots__ = ("_call_id", "_guard", "_profile", "_profile_name", "_source")

    def __init__(
        self,
        guard: Destinations,
        call_id: str,
        profile_name: str,
        profile: HasDestinationPolicy,
        source: str,
    ) -> None:
        self._guard = guard
        self._call_id = call_id
        self._profile_name = profile_name
        self._profile = profile
        self._source = source

    def check(self, target: str) -> Verdict:
        return self._guard.check(
            Purpose.TRANSFER,
            self._profile_name,
            self._profile,
            target,
            source=self._source,
            call_id=self._call_id,
        )
