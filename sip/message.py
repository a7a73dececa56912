"""SIP requests and responses as typed values (RFC 3261 §7, §20; framing §18.3).

``parse_message(data)`` turns one datagram (or one framed stream message) into a
:class:`Request` or :class:`Response`, validating the mandatory headers of §8.1.1 so that the
typed accessors (``call_id``, ``cseq``, ``vias``, ...) never fail later. ``bytes(message)``
serialises, always writing Content-Length (mandatory on streams, §20.14). :class:`StreamFramer`
cuts a TCP/TLS byte stream into messages using Content-Length and skips RFC 5626 CRLF
keep-alives. Every failure is a :class:`~sip.errors.SipParseError` with a 4xx to answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sip.errors import LocalProtocolError, SipParseError
from sip.headers import CSeq, Headers, NameAddr, Via
from sip.uri import SipUri

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_SIZE",
    "Message",
    "Request",
    "Response",
    "StreamFramer",
    "parse_message",
    "reason_phrase",
]

MAX_MESSAGE_SIZE = 65_535  # one UDP datagram; also the cap for a framed stream message
MAX_HEADERS = 128
MAX_BODY = 32_768
_METHOD_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS_RE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
_REQUEST_RE = re.compile(r"^(\S+) (\S+) SIP/2\.0$")
_HNAME_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_LINE_BREAKING = re.compile(r"[\r\n\x00]")

_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028 §6
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    502: "Bad Gateway",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 default reason phrase for ``status``."""
    return _REASONS.get(status, "Unknown")


@dataclass(slots=True, eq=False)
class _Base:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.headers.get_all("Via")
        if not vias:
            raise SipParseError("missing Via")
        return Via.parse(vias[0])

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.headers.get("CSeq") or "")

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def contact(self) -> NameAddr | None:
        value = self.headers.get("Contact")
        if value is None or value.strip() == "*":
            return None
        contact = NameAddr.parse(value)
        _ = contact.sip_uri  # raises for a URI we could not send to
        return contact

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (``application/sdp``)."""
        value = self.headers.get("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    def _serialise(self, start: str) -> bytes:
        lines = [start]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines)
        breaks = len(lines) - 1  # the separators we put in; any other CR/LF was handed to us
        if head.count("\n") != breaks or head.count("\r") != breaks or "\x00" in head:
            _refuse_line_break(lines)
        return (head + "\r\n\r\n").encode("utf-8") + self.body


def _refuse_line_break(lines: list[str]) -> None:
    """Defence in depth against header injection (a target with CR/LF that slipped past the
    caller's checks would add headers, or a second message): name the line, send nothing."""
    for i, line in enumerate(lines):
        if _LINE_BREAKING.search(line):
            where = "the start line" if i == 0 else f"header {line.partition(':')[0]!r}"
            raise LocalProtocolError(f"CR, LF or NUL in {where}: {line[:80]!r}")
    raise LocalProtocolError("CR, LF or NUL between header fields")


@dataclass(slots=True, eq=False)
class Request(_Base):
    """A SIP request: ``METHOD uri SIP/2.0`` (§7.1)."""

    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=lambda: SipUri(host="invalid"))

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


@dataclass(slots=True, eq=False)
class Response(_Base):
    """A SIP response: ``SIP/2.0 status reason`` (§7.2)."""

    status: int = 200
    reason: str = "OK"

    def __bytes__(self) -> bytes:
        return self._serialise(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


Message = Request | Response


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8 (byte {exc.start})") from None


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = data.find(b"\n\n")  # tolerate bare LF line ends (§7.5 robustness)
        sep = 2
    if end < 0:
        raise SipParseError("no blank line after the headers (truncated message?)")
    head = _decode(data[:end]).replace("\r\n", "\n")
    if "\r" in head or "\x00" in head:  # §25.1: CR only in CRLF; a bare one would be echoed
        raise SipParseError("bare CR or NUL in the header section")
    lines: list[str] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):  # folded continuation line (§7.3.1)
            if len(lines) < 2:
                raise SipParseError("continuation line before the first header")
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines, data[end + sep :]


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message. On a stream transport Content-Length is mandatory."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(
            f"message of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE}",
            status=513,
            reason="Message Too Large",
        )
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    lines, body = _split_head(data)
    start = lines[0]
    headers = Headers()
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError(f"more than {MAX_HEADERS} header fields")
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HNAME_RE.match(name):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        headers.add(name, value.strip())
    clen = headers.get("Content-Length")
    if clen is not None:
        if not clen.isdigit() or len(clen) > 9:
            raise SipParseError(f"bad Content-Length {clen[:20]!r}")
        n = int(clen)
        if n > len(body):
            raise SipParseError(f"body shorter than Content-Length ({len(body)} < {n})")
        body = body[:n]  # §18.3: bytes past Content-Length in a datagram are discarded
    elif stream:
        raise SipParseError("missing Content-Length on a stream transport")
    if len(body) > MAX_BODY:
        raise SipParseError(
            f"body of {len(body)} bytes exceeds {MAX_BODY}",
            status=413,
            reason="Request Entity Too Large",
        )
    m = _STATUS_RE.match(start)
    msg: Request | Response
    if m:
        msg = Response(headers=headers, body=body, status=int(m.group(1)), reason=m.group(2))
    else:
        r = _REQUEST_RE.match(start)
        if not r:
            raise SipParseError(f"bad start line {start[:60]!r}")
        if not _METHOD_RE.match(r.group(1)):
            raise SipParseError(f"bad method {r.group(1)[:20]!r}")
        msg = Request(headers=headers, body=body, method=r.group(1), uri=SipUri.parse(r.group(2)))
    _validate(msg)
    return msg


def _validate(msg: Request | Response) -> None:
    """§8.1.1 / §8.2: the headers every message must carry, checked once at parse time."""
    h = msg.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if h.get(name) is None:
            raise SipParseError(f"missing {name} header", reason=f"Missing {name} Header")
    if len(h.get_all("Call-ID")) != 1 or not (h.get("Call-ID") or "").strip():
        raise SipParseError("Call-ID must appear once and not be empty")
    for v in h.get_all("Via"):
        Via.parse(v)
    if not msg.top_via.branch and msg.top_via.param("branch") is not None:
        raise SipParseError("empty Via branch")
    cseq = msg.cseq
    for name in ("From", "To"):
        try:
            NameAddr.parse(h.get(name) or "")
        except SipParseError as exc:
            raise SipParseError(f"bad {name} header: {exc}", reason=f"Bad {name} Header") from None
    # where requests will be sent: SIP or SIPS URIs only (tel: is for From and To)
    for c in h.get_all("Contact"):
        if c.strip() != "*":
            _ = NameAddr.parse(c).sip_uri
    for name in ("Route", "Record-Route"):
        for v in h.get_all(name):
            _ = NameAddr.parse(v).sip_uri
    mf = h.get("Max-Forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise SipParseError(f"bad Max-Forwards {mf[:10]!r}")
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipParseError(
            f"CSeq method {cseq.method} does not match {msg.method}", reason="CSeq Method Mismatch"
        )


class StreamFramer:
    """Cut a TCP/TLS byte stream into SIP messages by Content-Length (§18.3).

    ``feed(data)`` returns the complete messages (as bytes) now available; leftover bytes wait
    for the next call. A header section over the size limit or a missing/bad Content-Length
    raises :class:`SipParseError`, after which the connection should be closed.

    Linear in its input: the search for the blank line resumes where the last one stopped,
    and once a header section is read the message's length is known, so a message sent one
    byte at a time costs no more than one sent at once.
    """

    def __init__(self, *, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size
        self._scanned = 0  # leading bytes of _buf known to hold no blank line
        self._need: int | None = None  # the current message's length, once its head is read

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._need is None:
                while self._buf[:2] == b"\r\n":  # RFC 5626 §3.5.1 keep-alive CRLFs
                    del self._buf[:2]
                    self._scanned = max(0, self._scanned - 2)
                end = self._buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
                if end < 0:
                    self._scanned = len(self._buf)
                    if len(self._buf) > self._max:
                        raise SipParseError(
                            "header section exceeds the size limit",
                            status=513,
                            reason="Message Too Large",
                        )
                    return out
                total = end + 4 + _content_length(bytes(self._buf[:end]))
                if total > self._max:
                    raise SipParseError(
                        f"message of {total} bytes exceeds {self._max}",
                        status=513,
                        reason="Message Too Large",
                    )
                self._need = total
            if len(self._buf) < self._need:
                return out
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None
            self._scanned = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _content_length(head: bytes) -> int:
    for raw in head.split(b"\r\n")[1:]:
        name, colon, value = raw.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            v = value.strip()
            if not v.isdigit() or len(v) > 9:
                raise SipParseError(f"bad Content-Length {v[:20]!r}")
            return int(v)
    raise SipParseError("missing Content-Length on a stream transport")
