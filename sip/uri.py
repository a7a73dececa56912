"""SIP and SIPS URIs (RFC 3261 §19.1, grammar in §25.1) and tel: URIs (RFC 3966 §3).

A :class:`SipUri` is a frozen value: ``SipUri.parse(text)`` and ``str(uri)``. Escaped characters
are kept as written (the transaction and dialog layers compare URIs as values, never decode
them). IPv6 references (``[::1]``) are kept with their brackets in ``host``. A :class:`TelUri`
is a telephone number (global ``+``-prefixed, or local with ``;phone-context=``) with its
parameters; :func:`parse_uri` takes any of the three schemes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from sip.errors import SipParseError

__all__ = [
    "Params",
    "SipUri",
    "TelUri",
    "format_params",
    "param_value",
    "parse_params",
    "parse_uri",
]

Params = tuple[tuple[str, str | None], ...]

_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_USER_BAD = re.compile(r"[\s<>\"@]")
# RFC 3966 §3: global-number-digits = "+" *phonedigit DIGIT *phonedigit; local numbers may also
# hold hex digits, "*" and "#"; visual separators are "-", ".", "(" and ")".
_GLOBAL_NUMBER = re.compile(r"^\+[0-9().\-]*[0-9][0-9().\-]*$")
_LOCAL_NUMBER = re.compile(r"^[0-9A-Fa-f*#().\-]*[0-9A-Fa-f*#][0-9A-Fa-f*#().\-]*$")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")


def parse_params(text: str, *, what: str) -> Params:
    """``;a=b;c`` (the leading ``;`` already removed) -> ``(("a", "b"), ("c", None))``.

    Quoted values keep their quotes (``"..."`` is a legal gen-value, §25.1).
    """
    out: list[tuple[str, str | None]] = []
    for part in _split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            raise SipParseError(f"empty parameter in {what}")
        name, eq, value = part.partition("=")
        name = name.strip()
        if not _TOKEN_RE.match(name):
            raise SipParseError(f"bad parameter name {name!r} in {what}")
        out.append((name, value.strip() if eq else None))
    return tuple(out)


def param_value(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` (case-insensitive; ``""`` for a flag), or None."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if ch == "\\" and quoted:
            escaped = True
            buf.append(ch)
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append("".join(buf))
    return parts


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user:password@host:port;uri-parameters?headers`` (§19.1.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Params = field(default=())
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise SipParseError(
                f"unsupported URI scheme in {text[:60]!r}",
                status=416,
                reason="Unsupported URI Scheme",
            )
        rest, _, hdrs = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            userinfo, hostpart = "", rest
        hostport, semi, ptext = hostpart.partition(";")
        params = parse_params(ptext, what="URI") if semi else ()
        user: str | None = None
        password: str | None = None
        if at:
            user, pc, pw = userinfo.partition(":")
            password = pw if pc else None
            if not user or _USER_BAD.search(userinfo):
                raise SipParseError(f"bad user part in URI {text[:60]!r}")
        m = _HOST_RE.match(hostport)
        if not m:
            raise SipParseError(f"bad host in URI {text[:60]!r}")
        port = int(m.group(2)) if m.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise SipParseError(f"bad port in URI {text[:60]!r}")
        headers: list[tuple[str, str]] = []
        if hdrs:
            for item in hdrs.split("&"):
                k, eq, v = item.partition("=")
                if not k or not eq:
                    raise SipParseError(f"bad URI header {item!r}")
                headers.append((k, v))
        return cls(
            host=m.group(1),
            user=user,
            password=password,
            port=port,
            scheme=scheme,
            params=params,
            headers=tuple(headers),
        )

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def param(self, name: str) -> str | None:
        """The value of a URI parameter (``""`` for a flag such as ``;lr``), or None."""
        return param_value(self.params, name)

    @property
    def transport(self) -> str:
        """``udp``/``tcp``/``tls`` from ``;transport=`` (sips implies tls, §19.1.2)."""
        t = self.param("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def with_params(self, **params: str | None) -> SipUri:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return replace(self, params=kept + tuple(params.items()))

    def without_headers(self) -> SipUri:
        return replace(self, headers=())


@dataclass(frozen=True, slots=True)
class TelUri:
    """``tel:+1-201-555-0123;ext=1234`` (RFC 3966 §3). ``number`` is kept as written;
    :attr:`digits` drops the visual separators. A local number needs ``;phone-context=``."""

    number: str
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> TelUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() != "tel":
            raise SipParseError(
                f"not a tel: URI {text[:60]!r}", status=416, reason="Unsupported URI Scheme"
            )
        if "?" in rest or "@" in rest:
            raise SipParseError(f"'?' and '@' are not part of a tel: URI {text[:60]!r}")
        number, semi, ptext = rest.partition(";")
        params = parse_params(ptext, what="tel: URI") if semi else ()
        if _GLOBAL_NUMBER.match(number):
            return cls(number=number, params=params)
        if not _LOCAL_NUMBER.match(number):
            raise SipParseError(f"bad telephone number in {text[:60]!r}")
        if not any(k.lower() == "phone-context" and v for k, v in params):
            raise SipParseError(f"a local number needs ;phone-context= in {text[:60]!r}")
        return cls(number=number, params=params)

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    @property
    def digits(self) -> str:
        """The number without visual separators (``+12015550123``)."""
        return self.number.translate(_VISUAL_SEPARATORS)

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)


def parse_uri(text: str) -> SipUri | TelUri:
    """A ``sip:``, ``sips:`` or ``tel:`` URI; any other scheme is a 416 parse error."""
    if text.strip()[:4].lower() == "tel:":
        return TelUri.parse(text)
    return SipUri.parse(text)
