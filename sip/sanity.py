"""What a SIP message must pass before it is parsed, and answers built without parsing it.

Why this module exists: parsing is the expensive part of receiving a message. Every Via of a
request is parsed, copied and stamped before any access check can run, so a 58 KB datagram of
Via values costs tens of milliseconds of the one event loop that paces every call's audio
(issue 12). Kamailio's ``sanity`` module and its stateless replies are the model:

* :func:`check` bounds a message with a few byte scans in C: its size (RFC 3261 §18.1.1 and
  §18.3 let a server refuse what it cannot take), the size of its header section, its header
  lines and its Via values (counted, not parsed). A message over a bound is dropped unparsed.
* :func:`peek` reads only the start line and the five fields a response copies (§8.2.6.2:
  Via, From, To, Call-ID, CSeq), and :func:`reply` answers from them: the stateless UAS
  behaviour of §8.2.7, with no transaction and so no retransmission. The core uses it for
  requests it refuses before parsing them (a stranger's, a malformed one).

Nothing here allocates more than the header section's lines, and nothing raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip.dialog import new_tag
from sip.errors import SipParseError
from sip.headers import Headers, NameAddr, Via
from sip.message import Response

__all__ = ["Bounds", "Peek", "check", "method", "peek", "reply"]

#: The fields a response copies from its request (RFC 3261 §8.2.6.2), by every spelling.
_COPIED = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


@dataclass(frozen=True, slots=True)
class Bounds:
    """The limits :func:`check` enforces (``SipLimits`` carries them in the settings)."""

    max_message: int = 65_535
    max_header: int = 16_384
    max_headers: int = 128
    max_vias: int = 16


def _head_end(data: bytes, limit: int) -> int:
    """Where the header section ends (the blank line), searched within ``limit`` bytes; -1
    when there is none there."""
    end = data.find(b"\r\n\r\n", 0, limit + 4)
    if end < 0:
        end = data.find(b"\n\n", 0, limit + 2)
    return end


def check(data: bytes, bounds: Bounds) -> str | None:
    """Why ``data`` must be dropped unparsed (None: it may be parsed). Costs a few scans in C
    and, for the Via count, one split of at most ``max_headers`` lines."""
    size = len(data)
    if size > bounds.max_message:
        return f"message of {size} bytes (limit {bounds.max_message})"
    end = _head_end(data, bounds.max_header)
    if end < 0:
        if size > bounds.max_header:
            return f"header section over {bounds.max_header} bytes"
        end = size  # truncated: the parser says so, and it is small
    lines = data.count(b"\n", 0, end)
    if lines > bounds.max_headers:
        return f"{lines} header lines (limit {bounds.max_headers})"
    vias = 0
    in_via = False
    for line in data[:end].split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the line before (§7.3.1)
            if in_via:
                vias += line.count(b",")
            continue
        name = line[:4].split(b":", 1)[0].strip().lower()
        in_via = name in (b"via", b"v") and b":" in line[:5]
        if in_via:
            vias += 1 + line.count(b",")
    if vias > bounds.max_vias:
        return f"{vias} Via values (limit {bounds.max_vias})"
    return None


def method(data: bytes) -> bytes:
    """The start line's first word (a request's method; ``SIP/2.0`` for a response)."""
    start = data.lstrip(b"\r\n")[:32]
    return start.split(b" ", 1)[0]


@dataclass(frozen=True, slots=True)
class Peek:
    """A request seen without parsing it: its method and the fields a response copies, as
    received (canonical names, in wire order)."""

    method: str
    fields: tuple[tuple[str, str], ...]

    def value(self, name: str) -> str | None:
        for k, v in self.fields:
            if k == name:
                return v
        return None

    @property
    def call_id(self) -> str:
        return self.value("Call-ID") or ""


def peek(data: bytes) -> Peek | None:
    """The request in ``data`` as a :class:`Peek`; None for a response or a start line that is
    not a request's (``METHOD uri SIP/2.0``) or a header section that is not UTF-8."""
    data = data.lstrip(b"\r\n")
    end = _head_end(data, len(data))
    try:
        head = data[: end if end >= 0 else len(data)].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = head.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[0].isalpha():
        return None
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canonical = _COPIED.get(name.strip().lower())
        if colon and canonical is not None:
            fields.append((canonical, value.strip()))
    return Peek(parts[0].upper(), tuple(fields))


def reply(
    request: Peek, status: int, reason: str, extra: tuple[tuple[str, str], ...] = ()
) -> Response | None:
    """A stateless response to ``request`` (RFC 3261 §8.2.6-8.2.7): its Via, From, To (with a
    tag of ours), Call-ID and CSeq copied, then ``extra``. None when a copied field is missing
    or the Via is unreadable (then nothing can be answered); a To that cannot be read (what
    may be the reason for the answer) is copied as sent, with our tag added."""
    names = {k for k, _ in request.fields}
    if not all(n in names for n in _REQUIRED):
        return None
    try:
        Via.parse((request.value("Via") or "").split(",", 1)[0])
    except SipParseError:
        return None
    to_text = request.value("To") or ""
    try:
        to = NameAddr.parse(to_text)
        to_value = to_text if to.tag is not None else str(to.with_tag(new_tag()))
    except SipParseError:
        to_value = to_text if ";tag=" in to_text.lower() else f"{to_text};tag={new_tag()}"
    headers = Headers()
    for k, v in request.fields:
        headers.add(k, to_value if k == "To" else v)
    for k, v in extra:
        headers.add(k, v)
    return Response(status=status, reason=reason, headers=headers)
