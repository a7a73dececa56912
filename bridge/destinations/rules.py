"""Destination rules: which parsed targets a profile may dial or transfer to, as settings.

A rule matches fields of a parsed target (:mod:`bridge.destinations.targets`), never its text:

* ``scheme``: ``sip``, ``sips`` or ``tel``;
* the user part: ``user`` (exact, or a shell pattern matched against the parsed user only), or
  ``number``: the user (sip) or number (tel) is a phone number starting with this prefix
  (``"+1555"``; ``"+"`` is any international-format number), with ``min_digits`` /
  ``max_digits`` bounds on its length;
* ``host`` (exact, case-insensitive; ``"*"`` any host) or ``domain`` (that domain or any
  subdomain);
* ``port``: a number, ``"*"`` any port, or unset: none named (or the scheme's default);
* ``params``: the URI parameters the target may carry (none unless listed; ``maddr`` would
  send the request elsewhere).

In TOML a rule is an inline table; the old string patterns still work where they mean one thing
(:meth:`DestinationRule.from_pattern`): ``sip:*@pbx.acme.example``, ``sip:+1555*@carrier``,
``tel:+1555*``, ``sip:desk@*.acme.example``, ``sip:*@127.0.0.1:*``. Anything else
(``127.0.0.1*``, a ``*`` inside a host, ``;`` or ``?`` in a pattern) is a configuration error at
start-up, with the rule to write instead.

:class:`DestinationSettings` holds the rest of a profile's destination policy: which country
codes are home (numbers elsewhere are international and refused unless their prefix is
listed) and the caps on outbound calls and transfers per minute and per day.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DestinationRule", "DestinationSettings"]

_NUMBER_PREFIX = re.compile(r"^\+?[0-9]*$")
_DIGITS_STAR = re.compile(r"^(\+?[0-9]*)\*$")
_EXACT_NUMBER = re.compile(r"^\+?[0-9]+$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")
_USER_GLOB = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$")


class DestinationRule(BaseModel):
    """One allowed kind of target (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["sip", "sips", "tel"] = "sip"
    user: str | None = Field(default=None, min_length=1, max_length=128)
    number: str | None = Field(default=None, max_length=16)
    min_digits: int | None = Field(default=None, ge=1, le=15)
    max_digits: int | None = Field(default=None, ge=1, le=15)
    host: str | None = Field(default=None, min_length=1, max_length=253)
    domain: str | None = Field(default=None, min_length=1, max_length=253)
    port: int | Literal["*"] | None = None
    params: tuple[str, ...] = ()

    @field_validator("number")
    @classmethod
    def _number(cls, v: str | None) -> str | None:
        if v is not None and not _NUMBER_PREFIX.match(v):
            raise ValueError(f"number {v!r} must be digits, optionally after '+' (a prefix)")
        return v

    @field_validator("host", "domain")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None or v == "*":
            return v
        if not _HOST.match(v):
            raise ValueError(f"{v!r} is not a host name or address")
        return v.lower()

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and not _USER_GLOB.match(v):
            raise ValueError(f"user {v!r} has characters a SIP user part cannot hold")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not 0 < v < 65536:
            raise ValueError(f"port {v} is out of range")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p.lower() for p in v)

    @model_validator(mode="after")
    def _consistent(self) -> DestinationRule:
        if self.user is not None and self.number is not None:
            raise ValueError("a rule names either user or number, not both")
        if self.host is not None and self.domain is not None:
            raise ValueError("a rule names either host or domain, not both")
        if self.domain == "*":
            raise ValueError("domain must name a domain; use host = '*' for any host")
        if (self.min_digits or self.max_digits) and self.number is None:
            raise ValueError("min_digits/max_digits bound a number: set number too ('+' for any)")
        if self.min_digits and self.max_digits and self.min_digits > self.max_digits:
            raise ValueError("min_digits is larger than max_digits")
        if self.scheme == "tel":
            if self.user or self.host or self.domain or self.port is not None:
                raise ValueError("a tel: rule has no user, host, domain or port; use number")
        elif self.host is None and self.domain is None:
            raise ValueError(f"a {self.scheme}: rule needs host (or '*') or domain")
        return self

    @classmethod
    def from_pattern(cls, pattern: str) -> DestinationRule:
        """The rule an old string pattern meant, where it meant one thing; else ValueError
        saying what to write instead."""
        scheme, colon, rest = pattern.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips", "tel"):
            raise ValueError(f"pattern {pattern!r} must start with sip:, sips: or tel:")
        if any(c in rest for c in ";?") or any(c.isspace() or ord(c) < 32 for c in rest):
            raise ValueError(
                f"pattern {pattern!r} holds URI parameters, headers or spaces, which a string "
                "pattern cannot express safely: write a rule table, e.g. "
                '{scheme = "sip", host = "pbx.example.com", params = ["user"]}'
            )
        if scheme == "tel":
            return cls(scheme="tel", **_number_fields(rest, pattern))
        userpart, at, hostport = rest.rpartition("@")
        if not at:
            userpart, hostport = "", rest
        if "@" in userpart:
            raise ValueError(f"pattern {pattern!r} has more than one '@'")
        fields: dict[str, object] = {"scheme": scheme}
        if at:
            if not userpart:
                raise ValueError(f"pattern {pattern!r} has an empty user part")
            if userpart != "*":
                if _DIGITS_STAR.match(userpart) or _EXACT_NUMBER.match(userpart):
                    fields.update(_number_fields(userpart, pattern))
                else:
                    fields["user"] = userpart
        fields.update(_host_fields(hostport, pattern))
        try:
            return cls.model_validate(fields)
        except ValueError as exc:
            raise ValueError(f"pattern {pattern!r}: {exc}") from None

    def describe(self) -> str:
        """A short text for messages, in the old pattern syntax where it fits
        (``sip:+1555*@pbx.acme.example``, ``tel:+44*[10..12 digits]``)."""
        number = f"{self.number}*" if self.number is not None else "*"
        if self.min_digits or self.max_digits:
            number += f"[{self.min_digits or 1}..{self.max_digits or 15} digits]"
        if self.scheme == "tel":
            return f"tel:{number}"
        who = self.user or number
        where = self.host or f"*.{self.domain}"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{who}@{where}{port}"


def _number_fields(text: str, pattern: str) -> dict[str, object]:
    """``+1555*`` (a prefix), ``+15550100`` (exactly that number) or ``*`` (any number)."""
    if text == "*":
        return {}
    m = _DIGITS_STAR.match(text)
    if m:
        return {"number": m.group(1)}
    if _EXACT_NUMBER.match(text):
        n = len(text.lstrip("+"))
        return {"number": text, "min_digits": n, "max_digits": n}
    raise ValueError(
        f"pattern {pattern!r}: a number pattern is digits with one trailing '*' "
        "('+1555*'); for anything else write a rule table"
    )


def _host_fields(hostport: str, pattern: str) -> dict[str, object]:
    """``host``, ``host:5070``, ``host:*``, ``*``, ``*.domain``; nothing else with ``*``."""
    if hostport.startswith("["):  # an IPv6 reference: [addr] or [addr]:port
        close = hostport.find("]") + 1
        host, rest = hostport[:close], hostport[close:]
    else:
        host, sep, port_text = hostport.partition(":")
        rest = sep + port_text
    if not host or (rest and not rest.startswith(":")):
        raise ValueError(f"pattern {pattern!r}: cannot read its host and port")
    port = rest[1:] if rest else None
    out: dict[str, object] = {}
    if host == "*":  # the old pattern's '*' took the port too
        out["host"] = "*"
        out["port"] = "*"
    elif host.startswith("*.") and "*" not in host[2:]:
        out["domain"] = host[2:]
    elif "*" in host:
        raise ValueError(
            f"pattern {pattern!r} is ambiguous: '*' in a host may match other hosts, ports or "
            "parameters; use host = '...' (exact), domain = '...' (and its subdomains) and "
            "port = N or '*'"
        )
    else:
        out["host"] = host
    if port is not None:
        if port == "*":
            out["port"] = "*"
        elif port.isdigit():
            out["port"] = int(port)
        else:
            raise ValueError(f"pattern {pattern!r}: the port must be a number or '*'")
    return out


class DestinationSettings(BaseModel):
    """A profile's numbering plan and caps (``[profiles.NAME.destinations]``).

    ``home``: country codes whose numbers are national; a number in international format
    elsewhere (``+44...``, or dialled as ``00...``/``011...``) is refused unless it starts with
    one of ``international``. Caps count targets allowed per minute and per (rolling) day;
    none means no cap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: tuple[str, ...] = ("+1",)
    international: tuple[str, ...] = ()
    dials_per_minute: int | None = Field(default=30, ge=1)
    dials_per_day: int | None = Field(default=2000, ge=1)
    transfers_per_minute: int | None = Field(default=30, ge=1)
    transfers_per_day: int | None = Field(default=2000, ge=1)

    @field_validator("home", "international")
    @classmethod
    def _prefixes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not re.match(r"^\+[0-9]{1,15}$", p):
                raise ValueError(f"{p!r} must be '+' and digits (an E.164 prefix)")
        return v
