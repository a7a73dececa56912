"""A dial or transfer target, parsed before any rule looks at it.

Allowlists used to be shell patterns on raw strings: ``sip:*@pbx.acme.example`` accepted
``sip:x@evil.example?h=@pbx.acme.example`` (whose host is ``evil.example``) and targets holding
CR/LF, which put a second ``Contact`` into our REFER. Here a target is first refused outright if
it carries anything no policy may allow (line breaks and other control characters, escaped
ones too, whitespace, non-ASCII text, URI headers, a password), then parsed with rtbridge's own
URI parser (:func:`sip.uri.parse_uri`: ``sip:``, ``sips:``, ``tel:``), and rules match the
parsed fields only. Each refusal names exactly what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from bridge.errors import RtbridgeError
from sip.errors import SipParseError
from sip.uri import SipUri, TelUri, parse_uri

__all__ = ["MAX_TARGET", "Target", "TargetError", "parse_target"]

MAX_TARGET = 256
_ESCAPED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_PHONE_USER = re.compile(r"^\+?[0-9().\-]*[0-9][0-9().\-]*$")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")


class TargetError(RtbridgeError, ValueError):
    """The target can never be allowed; the message says why (a ``ValueError`` too, for the
    settings' validators)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target. ``number`` is the phone number it names, separators removed
    (``+15551234567``, or national digits such as ``5551234``), when its user part (sip) or
    its number (tel) is one; otherwise None."""

    uri: SipUri | TelUri
    number: str | None

    @property
    def scheme(self) -> str:
        return self.uri.scheme

    @property
    def text(self) -> str:
        """The target as rtbridge will send it (re-serialised from the parsed value)."""
        return str(self.uri)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(k.lower() for k, _ in self.uri.params)


def parse_target(text: str) -> Target:
    """Parse ``text`` or raise :class:`TargetError` naming the problem."""
    if len(text) > MAX_TARGET:
        raise TargetError(f"the target is longer than {MAX_TARGET} characters")
    for ch in text:
        if ch in "\r\n":
            raise TargetError("the target contains CR/LF (header injection)")
        if ord(ch) < 32 or ord(ch) == 127:
            raise TargetError(f"the target contains a control character (U+{ord(ch):04X})")
        if ch.isspace():
            raise TargetError("the target contains whitespace")
        if ord(ch) > 127:
            raise TargetError("the target contains non-ASCII characters (escape them)")
    m = _ESCAPED_CONTROL.search(text)
    if m:
        raise TargetError(f"the target contains an escaped control character ({m.group(0)})")
    if "?" in text:
        raise TargetError("the target carries URI headers ('?...'), which are never allowed")
    try:
        uri = parse_uri(text)
    except SipParseError as exc:
        raise TargetError(f"the target is not a valid sip:, sips: or tel: URI ({exc})") from None
    if isinstance(uri, TelUri):
        return Target(uri, uri.digits)
    if uri.password is not None:
        raise TargetError("the target carries a password")
    # the number the far end dials: RFC 3261 §19.1.4 makes an escaped user part equal to the
    # unescaped one (sip:%2B44...@ is sip:+44...@), so the rules judge it unescaped
    user = unquote(uri.user) if uri.user else uri.user
    number = user.translate(_VISUAL_SEPARATORS) if user and _PHONE_USER.match(user) else None
    return Target(uri, number)
