"""SDES keys for SRTP: the SDP ``a=crypto`` attribute (RFC 4568) and the encryption policy.

Why this module exists: carriers' secure trunks (Twilio Secure Media, Telnyx, Bandwidth, Plivo)
and OpenAI's GPT-Live SIP exchange SRTP master keys in the SDP itself, one ``a=crypto`` line per
offered suite, over TLS signalling. This module holds the wire value and nothing of what to do
with it: :mod:`sip.offer_answer` picks a line and answers it, :mod:`media.srtp` protects packets.

- :class:`CryptoAttribute`: ``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime]``
  (RFC 4568 section 9.1). Suites: ``AES_CM_128_HMAC_SHA1_80`` and ``_32`` (section 6.2),
  ``AEAD_AES_128_GCM`` and ``AEAD_AES_256_GCM`` (RFC 7714 section 12). The AES-256 counter
  mode suites of RFC 6188 are not offered: libsrtp has them, but pylibsrtp exposes only the
  DTLS-SRTP profiles, which do not include them. A line with an MKI, several keys or a session
  parameter (``UNENCRYPTED_SRTP``, ``KDR``...) is one we do not accept (:meth:`usable`): no
  carrier we found needs them, and Twilio forbids MKI.
- :class:`Encryption`: a trunk's ``media_encryption`` (``off``, ``optional``, ``required``).
- :func:`redact`: an SDP or SIP message with every key replaced, for logs.

A key is a secret. :class:`CryptoAttribute` never shows it in ``repr``; only ``str()`` (the
SDP line to send) contains it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import secrets
from dataclasses import dataclass, field

from sip.sdp import SdpError

__all__ = [
    "SUITES",
    "CryptoAttribute",
    "Encryption",
    "new_key",
    "redact",
]

#: Suites we accept and offer, in our order of preference, with their master key + salt length.
SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}

_INLINE = re.compile(r"(inline:)[A-Za-z0-9+/=]+")


class Encryption(enum.StrEnum):
    """A trunk's media encryption: ``off`` (plain RTP only: an ``RTP/SAVP`` offer gets 488),
    ``optional`` (SRTP when the peer offers or accepts keys) or ``required`` (a plain offer
    gets 488; our offers are ``RTP/SAVP``)."""

    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


def new_key(suite: str) -> bytes:
    """A fresh master key + salt for ``suite`` from the OS's CSPRNG (RFC 4568 section 6.1)."""
    return secrets.token_bytes(SUITES[suite])


def redact(text: str) -> str:
    """``text`` (an SDP body or a whole SIP message) with every ``inline:`` key hidden."""
    return _INLINE.sub(r"\1[redacted]", text)


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto`` value (RFC 4568 section 9.1). ``key`` is the master key and salt."""

    tag: int
    suite: str
    key: bytes = field(repr=False)
    lifetime: str | None = None
    mki: str | None = None
    session_params: tuple[str, ...] = ()
    extra_keys: int = 0  # further ``;inline:`` key params (we never use them)

    def __repr__(self) -> str:
        return f"CryptoAttribute(tag={self.tag}, suite={self.suite!r}, key=[redacted])"

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse ``<tag> <suite> <key-params> [<session-params>]``; raises :class:`SdpError`
        (with no key in its message) when the line is malformed."""
        parts = value.split()
        if len(parts) < 3:
            raise SdpError("a=crypto needs '<tag> <crypto-suite> inline:<key>'")
        tag_text, suite, params = parts[0], parts[1], parts[2]
        if not (tag_text.isdigit() and tag_text.isascii() and len(tag_text) <= 9):
            raise SdpError(f"a=crypto tag must be a number, got {tag_text[:12]!r}")
        keys = params.split(";")
        first = keys[0]
        if not first.startswith("inline:"):
            raise SdpError("a=crypto key method must be 'inline:'")
        pieces = first[len("inline:") :].split("|")
        try:
            key = base64.b64decode(pieces[0], validate=True)
        except (binascii.Error, ValueError):
            raise SdpError("a=crypto key is not base64") from None
        lifetime = mki = None
        for piece in pieces[1:]:
            if ":" in piece:
                mki = piece
            else:
                lifetime = piece
        return cls(
            int(tag_text),
            suite,
            key,
            lifetime=lifetime,
            mki=mki,
            session_params=tuple(parts[3:]),
            extra_keys=len(keys) - 1,
        )

    @property
    def usable(self) -> bool:
        """A suite we support with the right key length, one key, no MKI, no session
        parameters (each would change how packets are protected in a way we do not do)."""
        length = SUITES.get(self.suite)
        return (
            length is not None
            and len(self.key) == length
            and self.mki is None
            and not self.session_params
            and not self.extra_keys
        )

    def __str__(self) -> str:
        inline = base64.b64encode(self.key).decode("ascii")
        tail = "".join(f"|{p}" for p in (self.lifetime, self.mki) if p is not None)
        params = "".join(f" {p}" for p in self.session_params)
        return f"{self.tag} {self.suite} inline:{inline}{tail}{params}"
