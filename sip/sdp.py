"""SDP as typed values (RFC 8866, formerly RFC 4566) and the RFC 3264 offer/answer rules we use.

Why this module exists: every call leg that rtbridge answers or places carries one SDP body, and
softphones are picky about the answer (RFC 3264 section 6): it must keep the offer's m-lines in
order, reject unwanted ones with port 0, and list exactly one audio codec plus telephone-event
(several codecs make many softphones re-INVITE). This module parses and serialises SDP, and
implements:

- :meth:`SessionDescription.parse` / ``str()``: RFC 8866 section 5 (``v o s i u e p c b t r z k a
  m``), ``c=`` at session and media level (section 5.7), ``a=rtpmap``/``fmtp``/``ptime``/
  ``maxptime`` and the direction attributes (section 6), unknown attributes kept verbatim.
- :func:`negotiate`: the answerer side of RFC 3264 sections 6 and 6.1 (codec choice by a
  configured preference list, telephone-event per RFC 4733 section 7.1.1, ptime mirrored, the
  direction table of section 6.1, rejected streams with port 0).
- :func:`make_offer` / :func:`parse_answer`: the offerer side (RFC 3264 sections 5 and 7).
- :class:`LocalSession`: our ``o=`` line across a dialog; the version increases only when the
  description changes (RFC 3264 section 8, RFC 8866 section 5.2).
- :func:`is_hold`, :func:`remote_endpoint` and :func:`rtcp_endpoint`: hold detection (RFC 3264
  section 8.4, including the old ``c=0.0.0.0`` form) and the addresses the SDP names for RTP
  and RTCP (RFC 3605, RFC 5761). Behind NAT the calls code latches RTP to the address packets
  really come from; this module only says what the SDP says. The address we advertise is the
  caller's ``local_addr`` argument: the configured public address, not the bind address.

Malformed input raises :class:`SdpError` (naming the line); an offer we cannot accept raises
:class:`NegotiationError`, whose ``status`` is 488 (RFC 3261 section 21.4.26).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sip.errors import SipError

__all__ = [
    "CODEC_NAMES",
    "STATIC_PAYLOAD_TYPES",
    "Answer",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "Direction",
    "LocalSession",
    "MediaDescription",
    "Negotiated",
    "NegotiationError",
    "Origin",
    "RtpEndpoint",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "TelephoneEvent",
    "Timing",
    "is_hold",
    "make_offer",
    "negotiate",
    "parse_answer",
    "remote_endpoint",
    "rtcp_endpoint",
]

CRLF = "\r\n"
MAX_SDP_BYTES = 64 * 1024
SUPPORTED_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
TELEPHONE_EVENT = "telephone-event"
TELEPHONE_EVENT_FMTP = "0-16"
DEFAULT_PTIME = 20

# RFC 3551 section 6, table 4: static audio payload types usable without a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

# The codecs we can offer or answer: name -> (static PT or None, rtpmap clock rate, channels).
# G.722's rtpmap rate is 8000 although it samples at 16 kHz (RFC 3551 section 4.5.2).
KNOWN_CODECS: dict[str, tuple[int | None, int, int]] = {
    "PCMU": (0, 8000, 1),
    "PCMA": (8, 8000, 1),
    "G722": (9, 8000, 1),
    "OPUS": (None, 48000, 2),
}
_OFFER_DYNAMIC_PT = {"OPUS": 111}
# The names a preference list may use (case-insensitive); settings validate against these.
CODEC_NAMES = ("PCMU", "PCMA", "G722", "opus")


class SdpError(SipError):
    """An SDP body is malformed (RFC 8866 section 5); ``line`` is its 1-based line number.

    ``status`` is the SIP response to send when the body came in a request (400, Bad Request).
    """

    status: int = 400

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"SDP line {line}: {message}" if line is not None else message)
        self.line = line


class NegotiationError(SdpError):
    """An offer or answer is well-formed but unacceptable (RFC 3264 sections 6 and 7).

    ``status`` is 488 (Not Acceptable Here) and ``warning`` the RFC 3261 section 20.43 warn-code:
    304 (media type not available) or 305 (incompatible media format).
    """

    status = 488

    def __init__(self, message: str, *, warning: int = 305) -> None:
        super().__init__(message)
        self.warning = warning


class Direction(StrEnum):
    """Media direction attributes (RFC 8866 sections 6.7.1-6.7.4)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other side (sendonly <-> recvonly)."""
        return _direction_of(sends=self.receives, receives=self.sends)

    def restrict(self, other: Direction) -> Direction:
        """Both directions at once: what remains allowed by ``self`` and ``other``."""
        return _direction_of(
            sends=self.sends and other.sends, receives=self.receives and other.receives
        )


def _direction_of(*, sends: bool, receives: bool) -> Direction:
    if sends and receives:
        return Direction.SENDRECV
    if sends:
        return Direction.SENDONLY
    if receives:
        return Direction.RECVONLY
    return Direction.INACTIVE


_DIRECTIONS = frozenset(d.value for d in Direction)


# --- line values -------------------------------------------------------------------------------


def _int(text: str, what: str, line: int | None, *, lo: int = 0, hi: int = 2**63 - 1) -> int:
    if not text.isdigit() or not text.isascii():
        raise SdpError(f"{what} must be a decimal number, got {text[:40]!r}", line=line)
    if len(text) > 20:
        raise SdpError(f"{what} has too many digits ({len(text)})", line=line)
    value = int(text)
    if not lo <= value <= hi:
        raise SdpError(f"{what} {value} is out of range {lo}..{hi}", line=line)
    return value


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (section 5.2)."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Origin:
        parts = value.split()
        if len(parts) != 6 or not all(parts):
            raise SdpError(f"o= needs 6 space-separated fields, got {value!r:.80}", line=line)
        return cls(
            parts[0],
            _int(parts[1], "o= sess-id", line),
            _int(parts[2], "o= sess-version", line),
            parts[3],
            parts[4],
            parts[5],
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (section 5.7).

    ``address`` is the host part; multicast ``/ttl`` and ``/count`` suffixes are kept in
    ``suffix`` (without the first slash) so the line round-trips.
    """

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    suffix: str | None = None

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Connection:
        parts = value.split()
        if len(parts) != 3 or not all(parts):
            raise SdpError(f"c= needs 3 space-separated fields, got {value!r:.80}", line=line)
        address, _, suffix = parts[2].partition("/")
        if not address:
            raise SdpError(f"c= has an empty address: {value!r:.80}", line=line)
        return cls(address, parts[1], parts[0], suffix or None)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4``/``IN IP6`` for a literal address (a host name is taken as IP4).

        A bracketed IPv6 reference as SIP writes it (``[::1]``) is written bare, as SDP wants.
        """
        bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
        try:
            version = ipaddress.ip_address(bare).version
        except ValueError:
            return cls(address, "IP4")
        return cls(bare, "IP6" if version == 6 else "IP4")

    @property
    def is_null(self) -> bool:
        """``0.0.0.0``: the RFC 2543 way to put a call on hold (RFC 3264 section 8.4)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        tail = f"/{self.suffix}" if self.suffix else ""
        return f"{self.nettype} {self.addrtype} {self.address}{tail}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (section 5.8)."""

    bwtype: str
    bandwidth: int

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Bandwidth:
        bwtype, sep, amount = value.partition(":")
        if not sep or not bwtype:
            raise SdpError(f"b= must be <bwtype>:<bandwidth>, got {value!r:.80}", line=line)
        return cls(bwtype, _int(amount, "b= bandwidth", line))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` lines (sections 5.9, 5.10); offers use ``t=0 0``."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Timing:
        parts = value.split()
        if len(parts) != 2:
            raise SdpError(f"t= needs 2 fields, got {value!r:.80}", line=line)
        return cls(_int(parts[0], "t= start", line), _int(parts[1], "t= stop", line))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` or ``a=<name>:<value>`` (section 5.13); unknown ones are kept verbatim."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str, line: int | None = None) -> Attribute:
        name, sep, value = text.partition(":")
        if not name or any(c in name for c in " \t"):
            raise SdpError(f"a= has an invalid attribute name in {text!r:.80}", line=line)
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`` (section 6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> RtpMap:
        pt, sep, rest = value.partition(" ")
        parts = rest.strip().split("/")
        if not sep or len(parts) not in (2, 3) or not parts[0]:
            raise SdpError(
                f"a=rtpmap must be '<pt> <name>/<rate>[/<ch>]': {value!r:.80}", line=line
            )
        return cls(
            _int(pt, "rtpmap payload type", line, hi=127),
            parts[0],
            _int(parts[1], "rtpmap clock rate", line, lo=1),
            _int(parts[2], "rtpmap channels", line, lo=1) if len(parts) == 3 else None,
        )

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


def _validate_attribute(attr: Attribute, line: int | None) -> None:
    """Check the syntax of the attributes this module interprets (section 6)."""
    if attr.name == "rtpmap":
        RtpMap.parse(attr.value or "", line)
    elif attr.name == "fmtp":
        if not (attr.value or "").split(" ", 1)[0]:
            raise SdpError(f"a=fmtp must be '<format> <params>': {attr.value!r:.80}", line=line)
    elif attr.name in ("ptime", "maxptime"):
        _ptime_value(attr, line)
    elif attr.name in _DIRECTIONS and attr.value is not None:
        raise SdpError(f"a={attr.name} takes no value", line=line)


def _ptime_value(attr: Attribute, line: int | None) -> int:
    # Some phones write "a=ptime:20.0"; RFC 8866 section 6.4 allows a decimal fraction.
    text = (attr.value or "").strip()
    whole, _, frac = text.partition(".")
    if frac and not (frac.isdigit() and frac.isascii()):
        raise SdpError(f"a={attr.name} must be a number of ms, got {attr.value!r:.80}", line=line)
    return _int(whole, f"a={attr.name}", line, lo=1, hi=100_000)


class _AttributeMixin:
    """Typed views of an attribute list (shared by session and media level)."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` (``""`` for a flag), or ``None`` when absent."""
        for attr in self.attributes:
            if attr.name == name:
                return attr.value if attr.value is not None else ""
        return None

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level, or ``None`` (section 6.7)."""
        for attr in self.attributes:
            if attr.name in _DIRECTIONS:
                return Direction(attr.name)
        return None


@dataclass(frozen=True, slots=True)
class MediaDescription(_AttributeMixin):
    """One ``m=`` section (section 5.14) with its ``i= c= b= k= a=`` lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    @classmethod
    def parse_m_line(cls, value: str, line: int | None = None) -> MediaDescription:
        parts = value.split()
        if len(parts) < 4 or not all(parts):
            raise SdpError(
                f"m= needs '<media> <port> <proto> <fmt> ...', got {value!r:.80}", line=line
            )
        port_text, _, count = parts[1].partition("/")
        return cls(
            media=parts[0],
            port=_int(port_text, "m= port", line, hi=65535),
            proto=parts[2],
            formats=tuple(parts[3:]),
            port_count=_int(count, "m= port count", line, lo=1) if count else None,
        )

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types (section 5.14); non-numeric formats are skipped."""
        if not self.is_rtp:
            return ()
        return tuple(
            int(f)
            for f in self.formats
            if len(f) <= 3 and f.isdigit() and f.isascii() and int(f) < 128
        )

    def rtpmaps(self) -> dict[int, RtpMap]:
        """``a=rtpmap`` lines by payload type (the first one wins on duplicates)."""
        maps: dict[int, RtpMap] = {}
        for attr in self.attributes:
            if attr.name == "rtpmap":
                rtpmap = RtpMap.parse(attr.value or "")
                maps.setdefault(rtpmap.payload_type, rtpmap)
        return maps

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters for a payload type (section 6.15), or ``None``."""
        prefix = f"{payload_type} "
        for attr in self.attributes:
            if attr.name == "fmtp" and attr.value and attr.value.startswith(prefix):
                return attr.value[len(prefix) :].strip()
        return None

    def codec(self, payload_type: int) -> RtpMap | None:
        """The encoding of a payload type: its rtpmap, else the RFC 3551 static assignment."""
        rtpmap = self.rtpmaps().get(payload_type)
        if rtpmap is not None:
            return rtpmap
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        if static is None:
            return None
        name, rate, channels = static
        return RtpMap(payload_type, name, rate, None if channels == 1 else channels)

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in ms (section 6.4), or ``None``."""
        return self._time("ptime")

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in ms (section 6.5), or ``None``."""
        return self._time("maxptime")

    def _time(self, name: str) -> int | None:
        for attr in self.attributes:
            if attr.name == name:
                return _ptime_value(attr, None)
        return None

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        out += [f"c={c}" for c in self.connections]
        out += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        return out

    def __str__(self) -> str:
        return CRLF.join(self.lines()) + CRLF


@dataclass(frozen=True, slots=True)
class SessionDescription(_AttributeMixin):
    """A whole SDP body (RFC 8866 section 5); ``str()`` gives it back with CRLF line ends."""

    origin: Origin
    session_name: str = "-"
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    timings: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    zone: str | None = None
    key: str | None = None

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raises :class:`SdpError` naming the first bad line.

        Lenient where real peers are sloppy: LF or CRLF line ends, trailing blank lines and
        whitespace, session-level lines out of the section 5 order. Strict where a guess would be
        wrong: ``v=0`` must come first, ``o=`` and ``s=`` are required, unknown type letters
        are rejected (section 5).
        """
        if isinstance(text, bytes):
            if len(text) > MAX_SDP_BYTES:
                raise SdpError(f"SDP body is larger than {MAX_SDP_BYTES} bytes")
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError(f"SDP is not UTF-8 (byte {exc.start})") from exc
        elif len(text) > MAX_SDP_BYTES:
            raise SdpError(f"SDP body is larger than {MAX_SDP_BYTES} characters")
        return _Parser(text).parse()

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails]
        out += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        for timing in self.timings:
            out.append(f"t={timing}")
            out += [f"r={r}" for r in timing.repeats]
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        for media in self.media:
            out += media.lines()
        return CRLF.join(out) + CRLF

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")

    def media_connection(self, index: int) -> Connection | None:
        """The connection for one m-line: its own ``c=``, else the session's (section 5.7)."""
        return self.media[index].connection or self.connection

    def media_direction(self, index: int) -> Direction:
        """The effective direction of one m-line: media, then session, else sendrecv."""
        return self.media[index].direction or self.direction or Direction.SENDRECV


class _Parser:
    """One pass over the lines of an SDP body (RFC 8866 section 5)."""

    _SESSION_SINGLE = frozenset({"s", "i", "u", "z", "k"})

    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").split("\n")
        while self.lines and not self.lines[-1].strip():
            self.lines.pop()

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise SdpError("SDP body is empty")
        session: dict[str, object] = {}
        seen: set[str] = set()
        emails: list[str] = []
        phones: list[str] = []
        bandwidths: list[Bandwidth] = []
        timings: list[Timing] = []
        attributes: list[Attribute] = []
        media: list[MediaDescription] = []
        current: dict[str, list[object]] | None = None
        head: MediaDescription | None = None

        def close_media() -> None:
            if head is not None and current is not None:
                media.append(_finish_media(head, current))

        for number, raw in enumerate(self.lines, start=1):
            line = raw.rstrip(" \t\r")
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise SdpError(f"expected '<type>=<value>', got {line[:40]!r}", line=number)
            kind, value = line[0], line[2:]
            if number == 1:
                if kind != "v":
                    raise SdpError("the first line must be v=", line=number)
                session["v"] = _int(value, "v=", number)
                if session["v"] != 0:
                    raise SdpError(f"unsupported SDP version {value!r:.80}", line=number)
                continue
            if kind == "v":
                raise SdpError("v= appears twice", line=number)
            if kind == "m":
                close_media()
                head = MediaDescription.parse_m_line(value, number)
                current = {"i": [], "c": [], "b": [], "k": [], "a": []}
                continue
            if current is not None:
                if kind not in current:
                    raise SdpError(f"'{kind}=' is not allowed inside a media section", line=number)
                current[kind].append(_parse_media_line(kind, value, number))
                continue
            if kind == "o" or kind in self._SESSION_SINGLE or kind == "c":
                if kind in seen:
                    raise SdpError(f"'{kind}=' appears twice at session level", line=number)
                seen.add(kind)
            if kind == "o":
                session["o"] = Origin.parse(value, number)
            elif kind == "c":
                session["c"] = Connection.parse(value, number)
            elif kind in self._SESSION_SINGLE:
                session[kind] = value
            elif kind == "e":
                emails.append(value)
            elif kind == "p":
                phones.append(value)
            elif kind == "b":
                bandwidths.append(Bandwidth.parse(value, number))
            elif kind == "t":
                timings.append(Timing.parse(value, number))
            elif kind == "r":
                if not timings:
                    raise SdpError("r= must follow a t= line", line=number)
                last = timings[-1]
                timings[-1] = replace(last, repeats=(*last.repeats, value))
            elif kind == "a":
                attr = Attribute.parse(value, number)
                _validate_attribute(attr, number)
                attributes.append(attr)
            else:
                raise SdpError(f"unknown SDP line type '{kind}='", line=number)
        close_media()
        origin = session.get("o")
        if not isinstance(origin, Origin):
            raise SdpError("the o= line is missing")
        name = session.get("s")
        if not isinstance(name, str):
            raise SdpError("the s= line is missing")
        conn = session.get("c")
        return SessionDescription(
            origin=origin,
            session_name=name,
            media=tuple(media),
            connection=conn if isinstance(conn, Connection) else None,
            timings=tuple(timings),
            attributes=tuple(attributes),
            information=_opt_str(session.get("i")),
            uri=_opt_str(session.get("u")),
            emails=tuple(emails),
            phones=tuple(phones),
            bandwidths=tuple(bandwidths),
            zone=_opt_str(session.get("z")),
            key=_opt_str(session.get("k")),
        )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _parse_media_line(kind: str, value: str, number: int) -> object:
    if kind == "c":
        return Connection.parse(value, number)
    if kind == "b":
        return Bandwidth.parse(value, number)
    if kind == "a":
        attr = Attribute.parse(value, number)
        _validate_attribute(attr, number)
        return attr
    return value


def _finish_media(head: MediaDescription, lines: dict[str, list[object]]) -> MediaDescription:
    info = [v for v in lines["i"] if isinstance(v, str)]
    keys = [v for v in lines["k"] if isinstance(v, str)]
    if len(info) > 1 or len(keys) > 1:
        raise SdpError(f"m={head.media} has more than one i= or k= line")
    return replace(
        head,
        information=info[0] if info else None,
        connections=tuple(v for v in lines["c"] if isinstance(v, Connection)),
        bandwidths=tuple(v for v in lines["b"] if isinstance(v, Bandwidth)),
        key=keys[0] if keys else None,
        attributes=tuple(v for v in lines["a"] if isinstance(v, Attribute)),
    )


# --- offer/answer (RFC 3264) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """The one audio codec a negotiation settled on, with the payload type to use on the wire.

    ``fmtp`` is the *peer's* format parameters for it (what the peer wants to receive, such as
    Opus ``stereo=1`` or ``maxplaybackrate``), for our encoder. ``channels`` is the rtpmap's:
    Opus is always written ``opus/48000/2`` (RFC 7587 section 7) whatever is actually sent.
    """

    name: str
    payload_type: int
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def key(self) -> str:
        """The preference-list name: ``PCMU``, ``PCMA``, ``G722``, ``OPUS``."""
        return self.name.upper()

    def rtpmap(self) -> RtpMap:
        return RtpMap(
            self.payload_type,
            self.name,
            self.clock_rate,
            self.channels if self.channels > 1 else None,
        )


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 events: the payload type, its clock rate and the ``fmtp`` event list."""

    payload_type: int
    clock_rate: int = 8000
    events: str = TELEPHONE_EVENT_FMTP


@dataclass(frozen=True, slots=True)
class RtpEndpoint:
    """Where the SDP says to send RTP (RTCP goes to ``port + 1`` unless ``a=rtcp`` says else)."""

    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one side must do after offer/answer for the audio stream.

    ``direction`` is *our* direction (``sendonly`` means we send and the peer does not);
    ``remote`` is the peer's RTP address, ``None`` while it is on hold with ``c=0.0.0.0``.
    """

    codec: Codec
    telephone_event: TelephoneEvent | None
    ptime: int
    direction: Direction
    remote: RtpEndpoint | None
    media_index: int
    maxptime: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of :func:`negotiate`: the answer SDP and the negotiated audio stream."""

    sdp: SessionDescription
    media: Negotiated

    def __str__(self) -> str:
        return str(self.sdp)


@dataclass(slots=True)
class LocalSession:
    """Our ``o=`` line across one dialog (RFC 3264 sections 5 and 8, RFC 8866 section 5.2).

    ``stamp`` gives each SDP we send the same session id; the version goes up by one whenever the
    body differs from the one sent before, and stays when we resend the same description (a
    re-answer to a session refresh must not look like a change). Use one per call leg, made
    with :meth:`create`, and pass it to every :func:`negotiate` and :func:`make_offer` of that
    leg: without one, ``o=`` is ``rtbridge 0 0`` and a changed re-answer would not show it.
    """

    address: str
    session_id: int
    version: int
    username: str = "rtbridge"
    _last: SessionDescription | None = field(default=None, repr=False)

    @classmethod
    def create(cls, address: str, username: str = "rtbridge") -> LocalSession:
        """A fresh session: random 62-bit id, version starting at the same value (section 5.2
        suggests an NTP timestamp; any unique number will do)."""
        number = secrets.randbits(62)
        return cls(address, number, number, username)

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        if self._last is not None:
            unchanged = replace(sdp, origin=self._last.origin) == self._last
            if unchanged:
                return self._last
            self.version += 1
        origin = Connection.for_address(self.address)
        stamped = replace(
            sdp,
            origin=Origin(
                self.username,
                self.session_id,
                self.version,
                "IN",
                origin.addrtype,
                origin.address,
            ),
        )
        self._last = stamped
        return stamped


def _prefs(prefs: Iterable[str]) -> list[str]:
    keys = []
    for name in prefs:
        key = name.upper().replace(".", "")
        if key not in KNOWN_CODECS:
            raise ValueError(f"unsupported codec {name!r}; choose from {', '.join(CODEC_NAMES)}")
        keys.append(key)
    return keys


def _offered_codecs(media: MediaDescription) -> dict[str, Codec]:
    """The offered codecs we know, by preference-list name; the first PT of each wins."""
    found: dict[str, Codec] = {}
    for pt in media.payload_types:
        rtpmap = media.codec(pt)
        if rtpmap is None:
            continue
        key = rtpmap.encoding.upper()
        known = KNOWN_CODECS.get(key)
        if known is None or rtpmap.clock_rate != known[1] or key in found:
            continue
        found[key] = Codec(
            rtpmap.encoding, pt, rtpmap.clock_rate, rtpmap.channels or 1, media.fmtp(pt)
        )
    return found


def _offered_telephone_event(media: MediaDescription, clock_rate: int) -> TelephoneEvent | None:
    """telephone-event at the codec's clock rate, else at 8000 (RFC 4733 section 7.1.1)."""
    candidates: dict[int, int] = {}
    for pt in media.payload_types:
        rtpmap = media.rtpmaps().get(pt)
        if rtpmap is not None and rtpmap.encoding.lower() == TELEPHONE_EVENT:
            candidates.setdefault(rtpmap.clock_rate, pt)
    for rate in (clock_rate, 8000):
        if rate in candidates:
            return TelephoneEvent(candidates[rate], rate)
    return None


def _reject(media: MediaDescription) -> MediaDescription:
    """A rejected stream in an answer: same media and proto, port 0 (RFC 3264 section 6)."""
    return MediaDescription(media.media, 0, media.proto, media.formats or ("0",))


def _audio_lines(
    codec: Codec,
    fmtp: str | None,
    te: TelephoneEvent | None,
    ptime: int,
    direction: Direction,
    maxptime: int | None,
) -> tuple[Attribute, ...]:
    attrs = [Attribute("rtpmap", str(codec.rtpmap()))]
    if fmtp:
        attrs.append(Attribute("fmtp", f"{codec.payload_type} {fmtp}"))
    if te is not None:
        attrs.append(Attribute("rtpmap", f"{te.payload_type} {TELEPHONE_EVENT}/{te.clock_rate}"))
        attrs.append(Attribute("fmtp", f"{te.payload_type} {te.events}"))
    attrs.append(Attribute("ptime", str(ptime)))
    if maxptime is not None:
        attrs.append(Attribute("maxptime", str(maxptime)))
    attrs.append(Attribute(direction.value))
    return tuple(attrs)


def _our_fmtp(codec_fmtp: Mapping[str, str] | None, key: str) -> str | None:
    if not codec_fmtp:
        return None
    return next((v for k, v in codec_fmtp.items() if k.upper() == key), None)


def negotiate(
    offer: SessionDescription,
    prefs: Sequence[str],
    local_addr: str,
    local_port: int,
    *,
    session: LocalSession | None = None,
    direction: Direction = Direction.SENDRECV,
    ptime: int = DEFAULT_PTIME,
    maxptime: int | None = None,
    telephone_event: bool = True,
    codec_fmtp: Mapping[str, str] | None = None,
    session_name: str = "rtbridge",
) -> Answer:
    """Answer an offer with one audio codec plus telephone-event (RFC 3264 sections 6, 6.1).

    - The first audio m-line over RTP/AVP(F) with a non-zero port and a codec from ``prefs`` is
      accepted; every other m-line is rejected with port 0, in the offer's order.
    - The codec is the first name in ``prefs`` that the offer has (payload type kept from the
      offer; static PTs 0, 8 and 9 need no rtpmap). telephone-event keeps the offer's PT and is
      answered with events ``0-16``.
    - ``ptime`` mirrors the offer's ``a=ptime``; our ``ptime`` argument is used when it has none.
    - Direction per section 6.1: sendonly -> recvonly, recvonly -> sendonly, inactive ->
      inactive (a hold), restricted further by ``direction`` (what we want).
    - ``local_addr`` is the address to advertise (the configured public one), ``local_port``
      our RTP port.
    - The offer's ``a=fmtp`` for the codec is not echoed: it says what the *offerer* wants to
      receive (RFC 3264 section 6.1, RFC 7587 section 7), and is returned in
      ``Answer.media.codec.fmtp`` for our encoder. ``codec_fmtp`` gives the parameters we want
      to receive, by codec name (``{"opus": "useinbandfec=1"}``); by default none, which for
      Opus means mono without in-band FEC.

    Raises :class:`NegotiationError` (488) when no stream can be accepted.
    """
    keys = _prefs(prefs)
    chosen: tuple[int, Codec] | None = None
    reasons: list[str] = []
    for index, media in enumerate(offer.media):
        if media.media != "audio" or media.port == 0:
            continue
        if media.proto not in SUPPORTED_PROTOS:
            reasons.append(f"m-line {index} uses unsupported transport {media.proto}")
            continue
        offered = _offered_codecs(media)
        codec = next((offered[k] for k in keys if k in offered), None)
        if codec is None:
            names = [rm.encoding for pt in media.payload_types if (rm := media.codec(pt))]
            reasons.append(
                f"m-line {index} offers {', '.join(names) or 'no known codec'}, "
                f"we accept {', '.join(prefs)}"
            )
            continue
        chosen = (index, codec)
        break
    if chosen is None:
        if not any(m.media == "audio" and m.port for m in offer.media):
            raise NegotiationError("the offer has no active audio stream", warning=304)
        raise NegotiationError("no common audio codec: " + "; ".join(reasons))

    index, codec = chosen
    offered_media = offer.media[index]
    te = _offered_telephone_event(offered_media, codec.clock_rate) if telephone_event else None
    ours = offer.media_direction(index).reversed().restrict(direction)
    answered_ptime = offered_media.ptime or ptime
    accepted = MediaDescription(
        "audio",
        local_port,
        offered_media.proto,
        tuple(
            str(pt)
            for pt in (codec.payload_type, te.payload_type if te else None)
            if pt is not None
        ),
        attributes=_audio_lines(
            codec, _our_fmtp(codec_fmtp, codec.key), te, answered_ptime, ours, maxptime
        ),
    )
    streams = tuple(accepted if i == index else _reject(m) for i, m in enumerate(offer.media))
    conn = Connection.for_address(local_addr)
    sdp = SessionDescription(
        origin=Origin("rtbridge", 0, 0, "IN", conn.addrtype, conn.address),
        session_name=session_name,
        connection=conn,
        media=streams,
    )
    sdp = session.stamp(sdp) if session is not None else sdp
    negotiated = Negotiated(
        codec=codec,
        telephone_event=te,
        ptime=answered_ptime,
        direction=ours,
        remote=remote_endpoint(offer, index),
        media_index=index,
        maxptime=offered_media.maxptime,
    )
    return Answer(sdp, negotiated)


def make_offer(
    addr: str,
    port: int,
    codecs: Sequence[str],
    *,
    session: LocalSession | None = None,
    direction: Direction = Direction.SENDRECV,
    ptime: int = DEFAULT_PTIME,
    telephone_event: bool = True,
    codec_fmtp: Mapping[str, str] | None = None,
    session_name: str = "rtbridge",
) -> SessionDescription:
    """An offer for an outbound call (RFC 3264 section 5): one audio m-line, codecs in order.

    Static codecs use their RFC 3551 PTs (PCMU 0, PCMA 8, G722 9), Opus uses 111; telephone-event
    is offered at 8000 Hz on PT 101 and, with Opus, also at 48000 Hz on PT 110. ``codec_fmtp``
    adds format parameters we want to receive, by codec name.
    """
    keys = _prefs(codecs)
    if not keys:
        raise ValueError("make_offer needs at least one codec")
    attrs: list[Attribute] = []
    formats: list[str] = []
    for key in dict.fromkeys(keys):
        static_pt, rate, channels = KNOWN_CODECS[key]
        pt = static_pt if static_pt is not None else _OFFER_DYNAMIC_PT[key]
        name = "opus" if key == "OPUS" else key
        formats.append(str(pt))
        attrs.append(
            Attribute("rtpmap", str(RtpMap(pt, name, rate, channels if channels > 1 else None)))
        )
        if fmtp := _our_fmtp(codec_fmtp, key):
            attrs.append(Attribute("fmtp", f"{pt} {fmtp}"))
    if telephone_event:
        rates = [(101, 8000)] + ([(110, 48000)] if "OPUS" in keys else [])
        for pt, rate in rates:
            formats.append(str(pt))
            attrs.append(Attribute("rtpmap", f"{pt} {TELEPHONE_EVENT}/{rate}"))
            attrs.append(Attribute("fmtp", f"{pt} {TELEPHONE_EVENT_FMTP}"))
    attrs.append(Attribute("ptime", str(ptime)))
    attrs.append(Attribute(direction.value))
    conn = Connection.for_address(addr)
    sdp = SessionDescription(
        origin=Origin("rtbridge", 0, 0, "IN", conn.addrtype, conn.address),
        session_name=session_name,
        connection=conn,
        media=(
            MediaDescription("audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attrs)),
        ),
    )
    return session.stamp(sdp) if session is not None else sdp


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Read the answer to our offer (RFC 3264 section 7) into what we must send and expect.

    Checks that the answer has as many m-lines as the offer with the same media types
    (section 6), and takes the first accepted audio stream. The codec is the first one in the
    answer that we offered (by name and rate), with the *answer's* payload type, which is what
    the answerer expects to receive. Raises :class:`NegotiationError` otherwise.
    """
    if len(answer.media) != len(offer.media):
        raise NegotiationError(
            f"the answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media != theirs.media:
            raise NegotiationError(
                f"answer m-line {index} is {theirs.media}, the offer's was {ours.media}"
            )
    for index, media in enumerate(answer.media):
        if media.media != "audio" or media.port == 0 or offer.media[index].port == 0:
            continue
        offered = _offered_codecs(offer.media[index])
        for pt in media.payload_types:
            rtpmap = media.codec(pt)
            if rtpmap is None or rtpmap.encoding.upper() not in offered:
                continue
            mine = offered[rtpmap.encoding.upper()]
            if mine.clock_rate != rtpmap.clock_rate:
                continue
            codec = Codec(
                rtpmap.encoding, pt, rtpmap.clock_rate, rtpmap.channels or 1, media.fmtp(pt)
            )
            te = _offered_telephone_event(media, codec.clock_rate)
            if te is not None:
                te = replace(te, events=media.fmtp(te.payload_type) or "0-15")
            return Negotiated(
                codec=codec,
                telephone_event=te,
                ptime=media.ptime or offer.media[index].ptime or DEFAULT_PTIME,
                direction=answer.media_direction(index).reversed(),
                remote=remote_endpoint(answer, index),
                media_index=index,
                maxptime=media.maxptime,
            )
        raise NegotiationError(f"answer m-line {index} has no codec that we offered")
    raise NegotiationError("the answer rejected every audio stream", warning=304)


def is_hold(sdp: SessionDescription, index: int | None = None) -> bool:
    """Whether the sender of ``sdp`` puts the stream on hold (RFC 3264 section 8.4).

    A hold is an offer whose stream is ``sendonly`` or ``inactive``, or the RFC 2543 form with
    connection address ``0.0.0.0``. ``index`` picks the m-line; by default the first audio one.
    """
    if index is None:
        index = next((i for i, m in enumerate(sdp.media) if m.media == "audio" and m.port), -1)
        if index < 0:
            return False
    conn = sdp.media_connection(index)
    if conn is not None and conn.is_null:
        return True
    return not sdp.media_direction(index).receives


def remote_endpoint(sdp: SessionDescription, index: int) -> RtpEndpoint | None:
    """The RTP address and port one m-line names (RFC 8866 sections 5.7 and 5.14).

    ``None`` for a rejected stream (port 0), a missing connection line or a ``0.0.0.0`` hold.
    """
    media = sdp.media[index]
    conn = sdp.media_connection(index)
    if media.port == 0 or conn is None or conn.is_null:
        return None
    return RtpEndpoint(conn.address, media.port)


def rtcp_endpoint(sdp: SessionDescription, index: int) -> RtpEndpoint | None:
    """Where the SDP says to send RTCP for one m-line.

    ``a=rtcp-mux`` (RFC 5761 section 5.1.3) means the RTP port; ``a=rtcp:<port> [IN IP4
    <addr>]`` (RFC 3605 section 2.1) names it; otherwise the RTP port plus one (RFC 3550
    section 11). ``None`` where :func:`remote_endpoint` is ``None``.
    """
    rtp = remote_endpoint(sdp, index)
    if rtp is None:
        return None
    media = sdp.media[index]
    if media.attribute("rtcp-mux") is not None:
        return rtp
    value = media.attribute("rtcp")
    if value:
        parts = value.split()
        if (
            len(parts[0]) <= 5
            and parts[0].isdigit()
            and parts[0].isascii()
            and 0 < int(parts[0]) < 65536
        ):
            address = parts[3] if len(parts) == 4 else rtp.address
            return RtpEndpoint(address, int(parts[0]))
    return RtpEndpoint(rtp.address, rtp.port + 1)
