"""SDP offer/answer: what rtbridge offers, how it answers, and what a negotiation settled
(RFC 3264, with RFC 4733 telephone-event and RFC 7587 Opus).

Why this module exists: softphones are picky about the answer (RFC 3264 section 6): it must
keep the offer's m-lines in order, reject unwanted ones with port 0, and list exactly one audio
codec plus telephone-event (several codecs make many softphones re-INVITE). The SDP values
themselves are :mod:`sip.sdp`; this module decides with them:

- :func:`negotiate`: the answerer side of RFC 3264 sections 6 and 6.1 (codec choice by a
  configured preference list, telephone-event per RFC 4733 section 7.1.1, ptime mirrored, the
  direction table of section 6.1, rejected streams with port 0).
- :func:`make_offer` / :func:`parse_answer`: the offerer side (RFC 3264 sections 5 and 7).
- :func:`read_answer`: what an answer *we* sent settled (a delayed offer's answer in our ACK,
  our answer to a re-offer), so the owner reads every settled stream the same way.
- SRTP keys by SDES (RFC 4568): ``RTP/SAVP`` offers and answers with ``a=crypto``, best-effort
  SRTP (``RTP/AVP`` with ``a=crypto``, as baresip's ``mediaenc=srtp`` and Asterisk send it), and a
  trunk's :class:`~sip.sdes.Encryption` policy; the keys settled are in ``Negotiated.srtp``.
- :class:`MediaPrefs`: what the SIP core answers offers with by itself (re-INVITE, UPDATE, the
  2xx of a delayed-offer INVITE): the codec preferences and the encryption policy.
- :class:`LocalSession`: our ``o=`` line across a dialog; the version increases only when the
  description changes (RFC 3264 section 8, RFC 8866 section 5.2).
- :func:`is_hold`, :func:`remote_endpoint` and :func:`rtcp_endpoint`: hold detection (RFC 3264
  section 8.4, including the old ``c=0.0.0.0`` form) and the addresses the SDP names for RTP
  and RTCP (RFC 3605, RFC 5761). Behind NAT the calls code latches RTP to the address packets
  really come from; this module only says what the SDP says. The address we advertise is the
  caller's ``local_addr`` argument: the configured public address, not the bind address.

An offer or answer we cannot accept raises :class:`NegotiationError`, an
:class:`~sip.sdp.SdpError` whose ``status`` is 488 (RFC 3261 section 21.4.26).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sip.sdes import SUITES, CryptoAttribute, Encryption, new_key
from sip.sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
)

__all__ = [
    "CODEC_NAMES",
    "Answer",
    "Codec",
    "LocalSession",
    "MediaPrefs",
    "Negotiated",
    "NegotiationError",
    "RtpEndpoint",
    "SrtpKeys",
    "TelephoneEvent",
    "is_hold",
    "make_offer",
    "negotiate",
    "parse_answer",
    "read_answer",
    "remote_endpoint",
    "rtcp_endpoint",
]

PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
SECURE_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
SUPPORTED_PROTOS = PLAIN_PROTOS | SECURE_PROTOS
TELEPHONE_EVENT = "telephone-event"
TELEPHONE_EVENT_FMTP = "0-16"
DEFAULT_PTIME = 20

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


class NegotiationError(SdpError):
    """An offer or answer is well-formed but unacceptable (RFC 3264 sections 6 and 7).

    ``status`` is 488 (Not Acceptable Here) and ``warning`` the RFC 3261 section 20.43 warn-code:
    301 (incompatible network address), 304 (media type not available) or 305 (incompatible media
    format).
    """

    status = 488

    def __init__(self, message: str, *, warning: int = 305) -> None:
        super().__init__(message)
        self.warning = warning


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
class SrtpKeys:
    """The SRTP master keys a negotiation settled (RFC 4568): ``local`` protects what we send,
    ``remote`` unprotects what the peer sends. Never shown by ``repr``."""

    suite: str
    local: bytes = field(repr=False)
    remote: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"SrtpKeys(suite={self.suite!r}, keys=[redacted])"


@dataclass(frozen=True, slots=True)
class MediaPrefs:
    """How the SIP core answers an offer by itself (a re-INVITE or UPDATE offer, the offer in
    the 2xx of our delayed-offer INVITE): the codecs we accept in order, the encryption
    policy, and where our media is (``address``/``port``: only needed before we sent any SDP)."""

    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    encryption: Encryption = Encryption.OFF
    address: str = ""
    port: int = 0


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
    srtp: SrtpKeys | None = None


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
    encryption: Encryption = Encryption.OFF,
    keep_key: CryptoAttribute | None = None,
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
    - SRTP (RFC 4568): an ``RTP/SAVP(F)`` stream, or an ``RTP/AVP(F)`` one with ``a=crypto``
      (best effort), is answered with the offer's first usable crypto line: its tag and suite,
      our own fresh key (``keep_key``'s, our current line, when its suite is the same: a
      re-answer keeps the keys, RFC 4568 section 7.1.4). ``encryption`` decides what is
      acceptable: ``off`` (the default: the caller's media path must do SRTP before it asks
      for keys) refuses ``RTP/SAVP`` and answers best-effort offers in plain RTP;
      ``required`` refuses a stream without a usable crypto line.

    Raises :class:`NegotiationError` (488) when no stream can be accepted.
    """
    keys = _prefs(prefs)
    chosen: tuple[int, Codec] | None = None
    crypto: CryptoAttribute | None = None
    reasons: list[str] = []
    unusable_addresses: list[str] = []
    for index, media in enumerate(offer.media):
        if media.media != "audio" or media.port == 0:
            continue
        if media.proto not in SUPPORTED_PROTOS:
            reasons.append(f"m-line {index} uses unsupported transport {media.proto}")
            continue
        unusable = _unusable_address(offer, index)
        if unusable is not None:
            unusable_addresses.append(f"m-line {index}: {unusable}")
            continue
        try:
            crypto = _pick_crypto(media, encryption)
        except NegotiationError as exc:
            reasons.append(f"m-line {index}: {exc}")
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
        if not reasons:  # RFC 3261 §20.43 warn-code 301: incompatible network address
            raise NegotiationError(
                "no usable media address: " + "; ".join(unusable_addresses), warning=301
            )
        raise NegotiationError(
            "no acceptable audio stream: " + "; ".join(reasons + unusable_addresses)
        )

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
    srtp = None
    if crypto is not None:
        local = (
            keep_key.key
            if keep_key is not None and keep_key.suite == crypto.suite
            else new_key(crypto.suite)
        )
        srtp = SrtpKeys(crypto.suite, local, crypto.key)
        ours_line = CryptoAttribute(crypto.tag, crypto.suite, local)
        accepted = replace(
            accepted, attributes=(Attribute("crypto", str(ours_line)), *accepted.attributes)
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
        srtp=srtp,
    )
    return Answer(sdp, negotiated)


def _cryptos(media: MediaDescription) -> list[CryptoAttribute]:
    """The stream's ``a=crypto`` lines that parse (a malformed one is skipped, RFC 4568
    section 7.1.2: the answerer uses one it understands)."""
    found = []
    for attr in media.attributes:
        if attr.name == "crypto":
            try:
                found.append(CryptoAttribute.parse(attr.value or ""))
            except SdpError:
                continue
    return found


def _pick_crypto(media: MediaDescription, encryption: Encryption) -> CryptoAttribute | None:
    """The crypto line to answer ``media`` with (None: plain RTP), or NegotiationError."""
    secure = media.proto in SECURE_PROTOS
    if encryption is Encryption.OFF:
        if secure:
            raise NegotiationError(f"{media.proto} (SRTP) offered, media_encryption is off")
        return None
    usable = next((c for c in _cryptos(media) if c.usable), None)
    if usable is None and (secure or encryption is Encryption.REQUIRED):
        what = "no usable SDES crypto line" if secure else "plain RTP"
        raise NegotiationError(f"{what} offered ({', '.join(SUITES)} accepted, no MKI)")
    return usable


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
    encryption: Encryption = Encryption.OFF,
) -> SessionDescription:
    """An offer for an outbound call (RFC 3264 section 5): one audio m-line, codecs in order.

    Static codecs use their RFC 3551 PTs (PCMU 0, PCMA 8, G722 9), Opus uses 111; telephone-event
    is offered at 8000 Hz on PT 101 and, with Opus, also at 48000 Hz on PT 110. ``codec_fmtp``
    adds format parameters we want to receive, by codec name.

    With ``encryption`` ``required`` the stream is ``RTP/SAVP``; with ``optional`` it is
    ``RTP/AVP`` (best-effort SRTP: a peer without SRTP answers in plain RTP); either way one
    ``a=crypto`` line per suite of :data:`~sip.sdes.SUITES`, each with its own fresh key.
    """
    keys = _prefs(codecs)
    if not keys:
        raise ValueError("make_offer needs at least one codec")
    attrs: list[Attribute] = []
    if encryption is not Encryption.OFF:
        for tag, suite in enumerate(SUITES, start=1):
            attrs.append(Attribute("crypto", str(CryptoAttribute(tag, suite, new_key(suite)))))
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
            MediaDescription(
                "audio",
                port,
                "RTP/SAVP" if encryption is Encryption.REQUIRED else "RTP/AVP",
                tuple(formats),
                attributes=tuple(attrs),
            ),
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
        unusable = _unusable_address(answer, index, required=False)
        if unusable is not None:
            raise NegotiationError(f"answer m-line {index}: {unusable}", warning=301)
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
                srtp=_answered_keys(offer.media[index], media, local_offered=True),
            )
        raise NegotiationError(f"answer m-line {index} has no codec that we offered")
    raise NegotiationError("the answer rejected every audio stream", warning=304)


def _answered_keys(
    offered: MediaDescription, answered: MediaDescription, *, local_offered: bool
) -> SrtpKeys | None:
    """The keys of an answered stream: the answer's crypto line and the offer's line with the
    same tag and suite. Raises NegotiationError when an SRTP stream settles without them."""
    answer_lines = [c for c in _cryptos(answered) if c.usable]
    if not answer_lines:
        if answered.proto in SECURE_PROTOS:
            raise NegotiationError(f"the {answered.proto} answer has no usable crypto line")
        return None
    chosen = answer_lines[0]
    match = next(
        (c for c in _cryptos(offered) if c.tag == chosen.tag and c.suite == chosen.suite), None
    )
    if match is None or not match.usable:
        raise NegotiationError(f"the answer's crypto tag {chosen.tag} was not offered")
    if local_offered:
        return SrtpKeys(chosen.suite, match.key, chosen.key)
    return SrtpKeys(chosen.suite, chosen.key, match.key)


def read_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """What an answer *we* gave to the peer's ``offer`` settled (RFC 3264 section 6): the codec
    and payload type of our answer, the offer's address (where we send), the keys of both
    sides. The counterpart of :func:`parse_answer` for the answerer; raises
    :class:`NegotiationError` when the answer accepted no audio stream."""
    for index, media in enumerate(answer.media):
        if media.media != "audio" or media.port == 0 or index >= len(offer.media):
            continue
        pt = media.payload_types[0] if media.payload_types else None
        rtpmap = media.codec(pt) if pt is not None else None
        if rtpmap is None or pt is None:
            continue
        codec = Codec(
            rtpmap.encoding,
            pt,
            rtpmap.clock_rate,
            rtpmap.channels or 1,
            offer.media[index].fmtp(pt),
        )
        offered = offer.media[index]
        te = _offered_telephone_event(media, codec.clock_rate)
        return Negotiated(
            codec=codec,
            telephone_event=te,
            ptime=media.ptime or DEFAULT_PTIME,
            direction=answer.media_direction(index),
            remote=remote_endpoint(offer, index),
            media_index=index,
            maxptime=offered.maxptime,
            srtp=_answered_keys(offered, media, local_offered=False),
        )
    raise NegotiationError("the answer accepted no audio stream", warning=304)


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


def _unusable_address(sdp: SessionDescription, index: int, *, required: bool = True) -> str | None:
    """Why one m-line's connection address cannot take our media (None: it can). Every
    stream needs one (RFC 8866 §5.7); a multicast or broadcast group, or an address that is
    not of its stated type, would send a call's audio where nobody asked for it. ``0.0.0.0``
    is a hold; a hostname is for the caller of this to resolve or refuse. ``required``: a
    missing address is refused (an answer's is learned from its first packet, as before)."""
    conn = sdp.media_connection(index)
    if conn is None:
        return "no connection address (c=)" if required else None
    if conn.is_null:
        return None
    try:
        ip = ipaddress.ip_address(conn.address)
    except ValueError:
        return None
    if f"IP{ip.version}" != conn.addrtype.upper():
        return f"{conn.address} is not an {conn.addrtype} address"
    if ip.is_multicast or ip.is_unspecified or ip == _BROADCAST:
        return f"{conn.address} is a multicast, broadcast or unspecified address"
    return None


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


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
