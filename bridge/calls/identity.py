"""Who is calling and why, from an inbound INVITE, for the agent (issue 14 point 10).

Why this module exists: a carrier says who the caller is in ``P-Asserted-Identity`` (RFC 3325)
and, for a forwarded call, whose number was dialled in ``Diversion`` (RFC 5806); PBXs add
``X-`` headers (an account, a queue). The agent needs them: the profile's ``instructions``
may name them as ``{caller}``, ``{called}``, ``{asserted_identity}``, ``{diversion}`` and
``{x_account_id}`` (for ``X-Account-Id``, when the profile lists it in ``sip_headers``), and the
call's record keeps them (``extra.identity``). The webhook already carries every header.

These values come from the network: each is cut to :data:`MAX_VALUE` characters, control
characters and braces are removed, and only ``{name}`` placeholders of known names are
replaced (no ``str.format``: a template cannot reach attributes or other variables).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sip.errors import SipParseError
from sip.events import CallOffered
from sip.headers import NameAddr
from sip.uri import SipUri, TelUri

__all__ = ["MAX_VALUE", "identity", "render"]

MAX_VALUE = 120
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,40})\}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f{}]")


def _clean(value: str) -> str:
    return _UNSAFE.sub("", value).strip()[:MAX_VALUE]


def _who(value: str | None) -> str:
    """The user part of a name-addr (a number, usually), else the URI."""
    if not value:
        return ""
    first = value.split(",")[0]
    try:
        addr = NameAddr.parse(first)
    except (SipParseError, ValueError):  # something odd: its text
        inside = first.partition("<")[2].partition(">")[0] or first
        return _clean(inside.removeprefix("tel:").split(";")[0])
    return _clean(_user(addr.uri))


def _user(uri: SipUri | TelUri) -> str:
    """A SIP URI's user part (a number, usually), a tel: URI's number, else the URI."""
    if isinstance(uri, TelUri):
        return uri.number
    return uri.user or str(uri)


def _variable(header: str) -> str:
    return header.strip().lower().replace("-", "_")


def identity(offer: CallOffered, wanted: Iterable[str] = ()) -> dict[str, str]:
    """The template variables of an inbound call: ``caller``, ``called``,
    ``asserted_identity`` and ``diversion`` (empty when absent), and each header named in
    ``wanted`` (``X-Account-Id`` -> ``x_account_id``)."""
    headers: dict[str, str] = {}
    for name, value in offer.headers:
        headers.setdefault(name.lower(), value)
    out = {
        "caller": _clean(_user(offer.caller.uri)),
        "called": _who(f"<{offer.request_uri}>"),
        "asserted_identity": _who(headers.get("p-asserted-identity")),
        "diversion": _who(headers.get("diversion")),
    }
    for name in wanted:
        out[_variable(name)] = _clean(headers.get(name.lower(), ""))
    return out


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced; other braces stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
