"""Inbound call policy from the trunk settings (issue 4 §4; RFC 3261 §22.1, §26.3.2.2).

A new INVITE is offered only when a trunk admits it: its source address is in the trunk's
allowlist (or is the trunk's host), and, for a trunk with ``inbound_digest``, the request
carries digest credentials the trunk's verifier accepts (else 401 with a fresh challenge,
``stale=true`` when only the nonce was old). With no trunk configured, only loopback may call:
an exposed default must not let strangers reach paid agents. Everything else gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sip.auth import DigestVerifier, VerifyOutcome
from sip.message import Request
from sip.settings import SipSettings, TrunkSettings
from sip.transaction import Peer

__all__ = ["Allow", "Deny", "Policy", "TrunkPolicy", "loopback_only", "make_policy"]


@dataclass(frozen=True, slots=True)
class Allow:
    """Policy verdict: offer the call (``trunk`` names the trunk it came in on, if any)."""

    trunk: str | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Policy verdict: answer with ``status`` (403, or 401/407 with a challenge header)."""

    status: int = 403
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


Policy = Callable[[Request, Peer, float], Allow | Deny]


def loopback_only(request: Request, peer: Peer, now: float) -> Allow | Deny:
    """The default with no trunk configured: only 127.0.0.0/8 and ::1 may call (issue 4 §4)."""
    if peer.host.startswith("127.") or peer.host in ("::1", "[::1]"):
        return Allow()
    return Deny(403, "Forbidden (no trunk configured for this address)")


def _lookup(user: str | None, password: str | None) -> Callable[[str], str | None]:
    def passwords(name: str) -> str | None:
        return password if name == user else None

    return passwords


class TrunkPolicy:
    """Callable policy over the configured trunks (see the module docstring)."""

    def __init__(self, trunks: list[TrunkSettings], environ: Mapping[str, str] | None = None):
        self.trunks = trunks
        self.verifiers: dict[str, DigestVerifier] = {}
        for t in trunks:
            if t.inbound_digest:
                user, password = t.username, t.password(environ)
                self.verifiers[t.name] = DigestVerifier(
                    realm=t.realm or "rtbridge",
                    passwords=_lookup(user, password),
                )

    def __call__(self, request: Request, peer: Peer, now: float) -> Allow | Deny:
        digest_only = [t for t in self.trunks if t.inbound_digest and not t.inbound_allow]
        for t in self.trunks:
            if t.allows(peer.host):
                return self._check_digest(t, request, now)
        for t in digest_only:
            return self._check_digest(t, request, now)
        return Deny(403, "Forbidden (source address not allowed)")

    def _check_digest(self, trunk: TrunkSettings, request: Request, now: float) -> Allow | Deny:
        verifier = self.verifiers.get(trunk.name)
        if verifier is None:
            return Allow(trunk.name)
        stale = False
        for value in request.headers.get_all("Authorization"):
            result = verifier.verify(value, request.method, now, uri=str(request.uri))
            if result.ok:
                return Allow(trunk.name)
            stale = stale or result.outcome is VerifyOutcome.STALE
        challenges = verifier.challenges(now, stale=stale)
        return Deny(401, None, tuple(("WWW-Authenticate", str(c)) for c in challenges))


def make_policy(settings: SipSettings, environ: Mapping[str, str] | None = None) -> Policy:
    """Loopback only without trunks; else the trunks' allowlists and digest checks."""
    if not settings.trunks:
        return loopback_only
    return TrunkPolicy(settings.trunks, environ)
