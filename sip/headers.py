"""SIP header fields as typed values (RFC 3261 §7.3, §20; Via ``rport`` from RFC 3581).

:class:`Headers` keeps fields in wire order under their canonical names (compact forms such as
``v`` and ``i`` are expanded, §7.3.3); lookups are case-insensitive. Comma-separated list headers
(§7.3.1) are split outside quotes and angle brackets; the credential headers, whose values
themselves contain commas, never are. :class:`NameAddr`, :class:`Via` and :class:`CSeq` parse and
serialise the structured values the core needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from sip.errors import SipParseError
from sip.uri import Params, SipUri, TelUri, format_params, parse_params, parse_uri

__all__ = [
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "split_commas",
]

COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "y": "Identity",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
}
_CANON = {
    n.lower(): n
    for n in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Subject",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
        "Refer-To",
        "Referred-By",
        "Event",
        "Allow-Events",
        "Subscription-State",
        "Session-Expires",
        "Min-SE",
        "RSeq",
        "RAck",
        "Reason",
        "P-Asserted-Identity",
    )
}
# List headers whose grammar allows no element at all (§25.1: ``Supported:`` with nothing after
# it is what baresip sends); every other list header needs at least one.
MAY_BE_EMPTY = frozenset({"Allow", "Supported", "Accept", "Accept-Encoding", "Accept-Language"})
# Headers whose grammar allows "a, b" to mean two values (§7.3.1); the auth headers do not.
LIST_HEADERS = frozenset(
    {
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
        "Content-Language",
        "In-Reply-To",
        "Warning",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "Reply-To",
        "P-Asserted-Identity",
        "Reason",
    }
)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")


def canonical_name(name: str) -> str:
    """``v`` -> ``Via``, ``call-id`` -> ``Call-ID``; unknown names are title-cased per word."""
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    if low in _CANON:
        return _CANON[low]
    return "-".join(p[:1].upper() + p[1:] for p in low.split("-"))


def split_commas(value: str) -> list[str]:
    """Split a list header value at commas outside quotes and ``<...>`` (§7.3.1)."""
    if "," not in value and '"' not in value:  # the common case: one plain element
        if value.count("<") != value.count(">"):
            raise SipParseError(f"unbalanced quotes or brackets in {value[:60]!r}")
        stripped = value.strip()
        if not stripped:
            raise SipParseError(f"empty element in list {value[:60]!r}")
        return [stripped]
    parts: list[str] = []
    buf: list[str] = []
    quoted = angle = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"' and not angle:
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch == "," and not quoted and not angle:
            parts.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    if quoted or angle:
        raise SipParseError(f"unbalanced quotes or brackets in {value[:60]!r}")
    parts.append("".join(buf).strip())
    if any(not p for p in parts):
        raise SipParseError(f"empty element in list {value[:60]!r}")
    return parts


class Headers:
    """An ordered, case-insensitive multimap of header fields (canonical names, raw values)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == canonical_name(name) for k, _ in self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (the first element when it is a list header)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value, list headers split at commas, in wire order."""
        cname = canonical_name(name)
        out: list[str] = []
        for k, v in self._items:
            if k != cname:
                continue
            if cname in MAY_BE_EMPTY and not v.strip():
                continue
            out.extend(split_commas(v) if cname in LIST_HEADERS else [v.strip()])
        return out

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one (at the first one's position)."""
        cname = canonical_name(name)
        idx = next((i for i, (k, _) in enumerate(self._items) if k == cname), None)
        self.remove(cname)
        if idx is None:
            self._items.append((cname, value))
        else:
            self._items.insert(idx, (cname, value))

    def remove(self, name: str) -> None:
        cname = canonical_name(name)
        self._items = [(k, v) for k, v in self._items if k != cname]

    def replace_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every ``name`` field by one field per value (order kept, first position)."""
        cname = canonical_name(name)
        idx = next((i for i, (k, _) in enumerate(self._items) if k == cname), len(self._items))
        self.remove(cname)
        idx = min(idx, len(self._items))
        self._items[idx:idx] = [(cname, v) for v in values]


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or ``uri;params`` (§20.10, §25.1 name-addr / addr-spec).

    In the addr-spec form, parameters after the URI are header parameters, not URI ones.
    """

    uri: SipUri | TelUri
    display_name: str | None = None
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            head, _, rest = text.partition("<")
            uri_text, close, tail = rest.partition(">")
            if not close:
                raise SipParseError(f"missing '>' in {text[:60]!r}")
            display = head.strip() or None
            if display and display.startswith('"'):
                if len(display) < 2 or not display.endswith('"'):
                    raise SipParseError(f"bad display name in {text[:60]!r}")
                display = display[1:-1]
            tail = tail.strip()
            params: Params = ()
            if tail:
                if not tail.startswith(";"):
                    raise SipParseError(f"junk after '>' in {text[:60]!r}")
                params = parse_params(tail[1:], what="name-addr")
            return cls(uri=parse_uri(uri_text), display_name=display, params=params)
        uri_text, semi, ptext = text.partition(";")
        if "?" in uri_text or "," in uri_text:
            raise SipParseError(f"addr-spec with '?' or ',' needs <>: {text[:60]!r}")
        params = parse_params(ptext, what="addr-spec") if semi else ()
        return cls(uri=parse_uri(uri_text), params=params)

    def __str__(self) -> str:
        disp = f'"{self.display_name}" ' if self.display_name else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.params:
            if k.lower() == lname:
                return "" if v is None else v
        return None

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def sip_uri(self) -> SipUri:
        """The URI where only a SIP URI will do (a Contact, a Route, a dialog's target); a
        ``tel:`` URI is fine in From and To (RFC 3261 §20.20, §20.39), not there."""
        if isinstance(self.uri, SipUri):
            return self.uri
        raise SipParseError(
            f"not a SIP URI: {str(self.uri)[:60]!r}", status=416, reason="Unsupported URI Scheme"
        )

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != "tag")
        return replace(self, params=(*kept, ("tag", tag)))


@dataclass(frozen=True, slots=True)
class Via:
    """``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...`` (§20.42, RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> Via:
        proto, _, rest = text.strip().partition(" ")
        parts = [p.strip() for p in proto.split("/")]
        if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0" or not parts[2]:
            raise SipParseError(f"bad Via protocol {proto[:40]!r}")
        sent_by, semi, ptext = rest.strip().partition(";")
        sent_by = sent_by.strip()
        host, port = _split_hostport(sent_by)
        params = parse_params(ptext, what="Via") if semi else ()
        return cls(transport=parts[2].upper(), host=host, port=port, params=params)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.params:
            if k.lower() == lname:
                return "" if v is None else v
        return None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        default = 5061 if self.transport == "TLS" else 5060
        return (self.host.lower(), self.port or default)

    def with_param(self, name: str, value: str | None) -> Via:
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return replace(self, params=(*kept, (name, value)))


def _split_hostport(text: str) -> tuple[str, int | None]:
    m = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?:\s*:\s*(\d{1,5}))?$", text)
    if not m:
        raise SipParseError(f"bad host:port {text[:60]!r}")
    port = int(m.group(2)) if m.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError(f"bad port in {text[:60]!r}")
    return m.group(1), port


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (§20.16): sequence number below 2**31 and a method token."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN_RE.match(parts[1]):
            raise SipParseError(f"bad CSeq {text[:40]!r}")
        seq = int(parts[0])
        if seq >= 2**31:
            raise SipParseError(f"CSeq number too large: {parts[0][:20]}")
        return cls(seq=seq, method=parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
