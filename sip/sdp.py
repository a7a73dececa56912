"""SDP as typed values: parse and serialise session descriptions (RFC 8866, formerly RFC 4566).

Why this module exists: every call leg that rtbridge answers or places carries one SDP body,
and a body from the network must be read exactly or refused with the line it broke. This
module holds the wire values and nothing of what to answer (that is :mod:`sip.offer_answer`):

- :meth:`SessionDescription.parse` / ``str()`` / ``bytes()``: RFC 8866 section 5 (``v o s i u
  e p c b t r z k a m``), ``c=`` at session and media level (section 5.7), ``a=rtpmap``/
  ``fmtp``/``ptime``/``maxptime`` and the direction attributes (section 6), unknown attributes
  kept verbatim.
- One frozen value per line kind (:class:`Origin`, :class:`Connection`, :class:`Bandwidth`,
  :class:`Timing`, :class:`Attribute`, :class:`RtpMap`) and per ``m=`` section
  (:class:`MediaDescription`), with the RFC 3551 static payload types for ``codec()``.
- :class:`Direction`: the direction attributes and the arithmetic offer/answer needs
  (``reversed``, ``restrict``).

Malformed input raises :class:`SdpError`, naming the line; its ``status`` is 400.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from enum import StrEnum

from sip.errors import SipError

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
]

CRLF = "\r\n"
MAX_SDP_BYTES = 64 * 1024

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


class SdpError(SipError):
    """An SDP body is malformed (RFC 8866 section 5); ``line`` is its 1-based line number.

    ``status`` is the SIP response to send when the body came in a request (400, Bad Request).
    """

    status: int = 400

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"SDP line {line}: {message}" if line is not None else message)
        self.line = line


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
