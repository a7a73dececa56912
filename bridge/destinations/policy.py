"""A profile's destination policy: allow or refuse one target, with the reason.

:meth:`DestinationPolicy.check` is pure (no clock, no counters, no logging): it parses the
target (:func:`~bridge.destinations.targets.parse_target`), refuses URI parameters no rule
allows, finds the first rule whose fields all match, and refuses international numbers whose
prefix is not listed. The caps and the security log are the runtime's part
(:mod:`bridge.destinations.guard`). Every answer is a :class:`Verdict` whose ``reason`` is
precise enough to put in an error message, a tool's output or a security event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from bridge.destinations.rules import DestinationRule, DestinationSettings
from bridge.destinations.targets import Target, TargetError, parse_target
from sip.uri import SipUri

__all__ = ["DestinationPolicy", "Purpose", "Verdict", "VerdictCode"]

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}


class Purpose(StrEnum):
    DIAL = "dial"  # an outbound call placed by rtbridge (POST /v1/calls, rtbridge call)
    TRANSFER = "transfer"  # a REFER that sends the caller elsewhere (tool, DTMF, API)

    @property
    def setting(self) -> str:
        return "dial_targets" if self is Purpose.DIAL else "transfer_targets"


class VerdictCode(StrEnum):
    ALLOWED = "allowed"
    MALFORMED = "target_malformed"  # can never be allowed (CR/LF, '?', not a URI, ...)
    NOT_ALLOWED = "target_not_allowed"  # no rule matches
    INTERNATIONAL = "international_not_allowed"
    CAP_REACHED = "cap_reached"  # the profile's per-minute or per-day cap


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed or refused, and why. ``target`` is the parsed target re-serialised (what is
    sent when allowed), None when the text could not be parsed."""

    allowed: bool
    code: VerdictCode
    reason: str
    target: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    purpose: Purpose
    rules: tuple[DestinationRule, ...]
    settings: DestinationSettings

    def check(self, text: str) -> Verdict:
        try:
            target = parse_target(text)
        except TargetError as exc:
            return Verdict(False, VerdictCode.MALFORMED, f"{_quote(text)}: {exc}")
        shown = _quote(target.text)
        if not self.rules:
            return Verdict(
                False,
                VerdictCode.NOT_ALLOWED,
                f"{shown}: {self.purpose.setting} is empty, so every target is refused",
                target.text,
            )
        number = self._normalised(target.number)
        if number is not None and number.startswith("+") and len(number) > 16:
            return Verdict(
                False,
                VerdictCode.MALFORMED,
                f"{shown}: an international number has at most 15 digits (E.164)",
                target.text,
            )
        allowed_params = {p for r in self.rules if r.scheme == target.scheme for p in r.params}
        for name in target.param_names:
            if name not in allowed_params:
                return Verdict(
                    False,
                    VerdictCode.NOT_ALLOWED,
                    f"{shown}: URI parameter ';{name}' is not allowed by {self.purpose.setting}",
                    target.text,
                )
        rule = next((r for r in self.rules if _matches(r, target, number)), None)
        if rule is None:
            listed = ", ".join(r.describe() for r in self.rules[:5])
            more = "" if len(self.rules) <= 5 else f" and {len(self.rules) - 5} more"
            return Verdict(
                False,
                VerdictCode.NOT_ALLOWED,
                f"{shown} matches no rule of {self.purpose.setting} ({listed}{more})",
                target.text,
            )
        s = self.settings
        if (
            number is not None
            and number.startswith("+")
            and not number.startswith(s.home)
            and not number.startswith(s.international)
        ):
            return Verdict(
                False,
                VerdictCode.INTERNATIONAL,
                f"{shown}: {number} is an international number (home: {', '.join(s.home)}); "
                "list its prefix in destinations.international to allow it",
                target.text,
            )
        return Verdict(True, VerdictCode.ALLOWED, f"allowed by {rule.describe()}", target.text)

    def _normalised(self, number: str | None) -> str | None:
        """International access codes dialled in national format become ``+``: ``00`` (ITU),
        and ``011`` where the home is in North America (+1)."""
        if number is None:
            return None
        if number.startswith("00"):
            return "+" + number[2:]
        if number.startswith("011") and "+1" in self.settings.home:
            return "+" + number[3:]
        return number


def _matches(rule: DestinationRule, target: Target, number: str | None) -> bool:
    if rule.scheme != target.scheme:
        return False
    if not set(target.param_names) <= set(rule.params):
        return False
    if rule.number is not None:
        if number is None or not number.startswith(rule.number):
            return False
        digits = len(number.lstrip("+"))
        if rule.min_digits is not None and digits < rule.min_digits:
            return False
        if rule.max_digits is not None and digits > rule.max_digits:
            return False
    uri = target.uri
    if not isinstance(uri, SipUri):
        return True  # tel: rules name only a number
    if rule.user is not None and (uri.user is None or not fnmatchcase(uri.user, rule.user)):
        return False
    host = uri.host.lower()
    if rule.host is not None and rule.host != "*" and host != rule.host:
        return False
    if rule.domain is not None and host != rule.domain and not host.endswith("." + rule.domain):
        return False
    if rule.port == "*":
        return True
    default = _DEFAULT_PORTS[uri.scheme]
    if rule.port is None:
        return uri.port is None or uri.port == default
    return (uri.port or default) == rule.port


def _quote(text: str) -> str:
    """The target as it may appear in a message: escaped, bounded."""
    shown = repr(text[:120])
    return shown if len(text) <= 120 else shown[:-1] + "…'"
