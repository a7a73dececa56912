"""Inbound call policy from the trunk settings (issue 4 §4; RFC 3261 §22.1, §26.3.2.2).

A new INVITE is offered only when a trunk admits it: its source address is in the trunk's
allowlist (or is the trunk's host), and, for a trunk with ``inbound_digest``, the request
carries digest credentials the trunk's verifier accepts (else 401 with a fresh challenge,
``stale=true`` when only the nonce was old). With no trunk configured, only loopback may call:
an exposed default must not let strangers reach paid agents. Everything else gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sip.auth import DigestVerifier, VerifyOutcome
from sip.message import Request
from sip.settings import SipSettings, TrunkSettings
from sip.transaction import Peer
from sip.ua import Allow, Deny, Policy, loopback_only

__all__ = ["TrunkPolicy", "make_policy"]


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
