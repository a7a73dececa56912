"""SRTP and SRTCP protection of one call's media (RFC 3711, RFC 7714), by libsrtp.

Why this module exists: secure trunks (SDES keys, RFC 4568) need every RTP and RTCP packet
encrypted and authenticated. The cryptography is libsrtp's, through ``pylibsrtp`` (which aiortc
already brings): nothing here is home-made crypto. :class:`SrtpSession` holds the two
directions of one call: ``protect``/``protect_rtcp`` with our master key (any SSRC we send),
``unprotect``/``unprotect_rtcp`` with the peer's (any SSRC it sends; libsrtp keeps the replay
window and the rollover counter per SSRC). A packet that fails authentication or replay
checks raises :class:`SrtpError`, which the caller counts and drops.

Suites (the SDES names): ``AES_CM_128_HMAC_SHA1_80``, ``AES_CM_128_HMAC_SHA1_32``,
``AEAD_AES_128_GCM`` and ``AEAD_AES_256_GCM``. Keys are master key + salt as the SDP carries
them; they are never logged, and ``repr`` does not show them.
"""

from __future__ import annotations

import hmac

from pylibsrtp import Error as LibSrtpError
from pylibsrtp import Policy, Session

__all__ = ["PROFILES", "SrtpError", "SrtpSession"]

#: SDES suite name -> libsrtp profile.
PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class SrtpError(Exception):
    """A packet failed SRTP/SRTCP authentication or replay checks, or a key was unusable."""


def _policy(key: bytes, ssrc_type: int, profile: int) -> Policy:
    # the key is set after the profile: pylibsrtp checks its length against the profile the
    # policy has at that moment (the constructor sets the key first, against AES-CM's 30 bytes)
    policy = Policy(ssrc_type=ssrc_type, srtp_profile=profile)
    policy.key = key
    return policy


class SrtpSession:
    """Both directions of one call's SRTP (see the module docstring)."""

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = PROFILES.get(suite)
        if profile is None:
            raise SrtpError(f"unsupported SRTP suite {suite!r}")
        self.suite = suite
        self._keys = local_key + remote_key
        try:
            self._tx = Session(_policy(local_key, Policy.SSRC_ANY_OUTBOUND, profile))
            self._rx = Session(_policy(remote_key, Policy.SSRC_ANY_INBOUND, profile))
        except (LibSrtpError, ValueError, TypeError) as exc:
            raise SrtpError(f"cannot use the {suite} keys: {type(exc).__name__}") from None

    def __repr__(self) -> str:
        return f"SrtpSession({self.suite}, keys=[redacted])"

    def uses(self, suite: str, local_key: bytes, remote_key: bytes) -> bool:
        """Whether this session already runs with these keys (a re-offer that keeps them
        must not reset the replay windows and rollover counters)."""
        return suite == self.suite and hmac.compare_digest(self._keys, local_key + remote_key)

    def protect(self, rtp: bytes) -> bytes:
        return self._tx.protect(rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._tx.protect_rtcp(rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        try:
            return self._rx.unprotect(srtp)
        except LibSrtpError as exc:
            raise SrtpError(str(exc)) from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        try:
            return self._rx.unprotect_rtcp(srtcp)
        except LibSrtpError as exc:
            raise SrtpError(str(exc)) from None
