"""Inbound call policy from the trunk settings (issue 4 §4, issue 12; RFC 3261 §22.1, §26.3.2.2).

A new INVITE is offered only when a trunk admits it: its source address is in the trunk's
allowlist (or is the trunk's host), and, for a trunk with ``inbound_digest``, the request
carries digest credentials the trunk's verifier accepts (else 401 with a fresh challenge,
``stale=true`` when only the nonce was old). Every trunk that may admit the source is tried,
digest-only trunks (no allowlist: any source) included; their challenges go out one realm
each. With no trunk configured, only loopback may call: an exposed default must not let
strangers reach paid agents. Everything else gets 403.

Besides the verdict on a request, a policy answers two questions about a bare address, which
the core asks before it parses anything (issue 12): :meth:`Policy.admits` (could any trunk
take a request from there? If not, the source is a stranger, answered statelessly) and
:meth:`Policy.exempt` (is it a trunk's own address, exempt from the per-source rates and call
caps?). Both are cached per address: they are asked for every message.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sip.auth import DigestVerifier, VerifyOutcome
from sip.message import Request
from sip.settings import SipSettings, TrunkSettings
from sip.transaction import Peer

__all__ = [
    "Allow",
    "Deny",
    "LoopbackOnly",
    "Policy",
    "TrunkPolicy",
    "loopback_only",
    "make_policy",
]

#: Addresses whose answers :class:`TrunkPolicy` keeps (a flood of spoofed sources evicts).
_CACHED_HOSTS = 4096


@dataclass(frozen=True, slots=True)
class Allow:
    """Policy verdict: offer the call (``trunk`` names the trunk it came in on, if any, and
    ``max_calls`` that trunk's cap on concurrent calls)."""

    trunk: str | None = None
    max_calls: int | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Policy verdict: answer with ``status`` (403, or 401/407 with a challenge header).
    ``failure`` says why credentials the request carried were refused (a wrong digest; None
    for a first challenge or a stale nonce): the core counts it against the source."""

    status: int = 403
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    failure: str | None = None


class Policy(Protocol):
    """Who may call (see the module docstring)."""

    def __call__(self, request: Request, peer: Peer, now: float) -> Allow | Deny: ...

    def admits(self, host: str) -> bool:
        """Whether some trunk may take a request from ``host`` (before any credentials)."""
        ...

    def exempt(self, host: str) -> bool:
        """Whether ``host`` is a trunk's own address: exempt from per-source rates and caps."""
        ...


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "[::1]")


class LoopbackOnly:
    """The default with no trunk configured: only 127.0.0.0/8 and ::1 may call (issue 4 §4);
    loopback is then this machine's own traffic, exempt from the per-source limits."""

    def __call__(self, request: Request, peer: Peer, now: float) -> Allow | Deny:
        if _is_loopback(peer.host):
            return Allow()
        return Deny(403, "Forbidden (no trunk configured for this address)")

    def admits(self, host: str) -> bool:
        return _is_loopback(host)

    def exempt(self, host: str) -> bool:
        return _is_loopback(host)


loopback_only = LoopbackOnly()


def _lookup(user: str | None, password: str | None) -> Callable[[str], str | None]:
    def passwords(name: str) -> str | None:
        return password if name == user else None

    return passwords


class TrunkPolicy:
    """Callable policy over the configured trunks (see the module docstring)."""

    def __init__(self, trunks: list[TrunkSettings], environ: Mapping[str, str] | None = None):
        self.trunks = trunks
        self.verifiers: dict[str, DigestVerifier] = {}
        secret = secrets.token_bytes(32)  # one nonce secret: a nonce is good for its realm
        for t in trunks:
            if t.inbound_digest:
                user, password = t.username, t.password(environ)
                self.verifiers[t.name] = DigestVerifier(
                    realm=t.realm or "rtbridge",
                    passwords=_lookup(user, password),
                    secret=secret,
                )
        self._digest_only = [t for t in trunks if t.inbound_digest and not t.inbound_allow]
        self._hosts: OrderedDict[str, list[TrunkSettings]] = OrderedDict()

    def _candidates(self, host: str) -> list[TrunkSettings]:
        """The trunks that may admit ``host``: those whose allowlist names it, else the
        digest-only ones (cached per address)."""
        found = self._hosts.get(host)
        if found is not None:
            self._hosts.move_to_end(host)
            return found
        found = [t for t in self.trunks if t.allows(host)] or self._digest_only
        self._hosts[host] = found
        if len(self._hosts) > _CACHED_HOSTS:
            self._hosts.popitem(last=False)
        return found

    def admits(self, host: str) -> bool:
        return bool(self._candidates(host))

    def exempt(self, host: str) -> bool:
        candidates = self._candidates(host)
        return bool(candidates) and candidates is not self._digest_only

    def __call__(self, request: Request, peer: Peer, now: float) -> Allow | Deny:
        candidates = self._candidates(peer.host)
        if not candidates:
            return Deny(403, "Forbidden (source address not allowed)")
        for t in candidates:
            if t.name not in self.verifiers:
                return Allow(t.name, t.max_calls)
        stale = False
        wrong: list[str] = []
        for value in request.headers.get_all("Authorization"):
            for t in candidates:
                result = self.verifiers[t.name].verify(
                    value, request.method, now, uri=str(request.uri)
                )
                if result.ok:
                    return Allow(t.name, t.max_calls)
                if result.outcome is VerifyOutcome.STALE:
                    stale = True
                else:
                    user = f" for user {result.username!r}" if result.username else ""
                    wrong.append(f"{result.reason}{user}")
        realms: dict[str, DigestVerifier] = {}
        for t in candidates:
            verifier = self.verifiers[t.name]
            realms.setdefault(verifier.realm, verifier)
        headers = tuple(
            ("WWW-Authenticate", str(c))
            for verifier in realms.values()
            for c in verifier.challenges(now, stale=stale)
        )
        failure = None
        if wrong and not stale:  # the reason from the trunk the credentials were meant for
            failure = next((w for w in wrong if not w.startswith("realm ")), wrong[0])
        return Deny(401, None, headers, failure)


def make_policy(settings: SipSettings, environ: Mapping[str, str] | None = None) -> Policy:
    """Loopback only without trunks; else the trunks' allowlists and digest checks."""
    if not settings.trunks:
        return loopback_only
    return TrunkPolicy(settings.trunks, environ)
