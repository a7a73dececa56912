"""SIP settings: the ``[sip]`` section of rtbridge's one config file (issue 4 §4, §7).

Bind address and advertised address are separate (behind NAT the Contact/Via/SDP address is
the public one). Trunks carry their policy: an inbound IP allowlist (CIDRs) and/or a digest
challenge, a cap on their concurrent calls, and outbound credentials whose password is read
from the environment variable the config names (``password_env``), never from the file.

``[sip.limits]`` (:class:`SipLimits`) holds the defences a SIP port on the open Internet needs
(issue 12), all on by default: bounds checked before a message is parsed, stateless answers
to strangers, per-source rates with a temporary block, per-source call caps, and the TCP/TLS
connection limits.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["SessionTimerSettings", "SipLimits", "SipSettings", "SipTimers", "TrunkSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SipTimers(_Section):
    """RFC 3261 §17.1.1.1 base timers, seconds."""

    t1: float = Field(default=0.5, gt=0, le=10)
    t2: float = Field(default=4.0, gt=0, le=60)
    t4: float = Field(default=5.0, gt=0, le=60)


class SessionTimerSettings(_Section):
    """Session timers (RFC 4028): the interval we ask for and accept, the smallest we take
    (a smaller one gets 422), and who refreshes when we choose."""

    enabled: bool = True
    session_expires: int = Field(default=1800, ge=90, le=86400)
    min_se: int = Field(default=90, ge=90, le=86400)
    refresher: Literal["uac", "uas"] = "uac"

    @model_validator(mode="after")
    def _order(self) -> SessionTimerSettings:
        if self.min_se > self.session_expires:
            raise ValueError("min_se must not exceed session_expires")
        return self


class TrunkSettings(_Section):
    """A SIP provider or PBX rtbridge exchanges calls with.

    ``media_encryption`` (None: ``[sip] media_encryption``): ``off`` (plain RTP; an SRTP
    offer gets 488), ``optional`` (SRTP when the peer offers or accepts SDES keys; our offers
    carry keys in ``RTP/AVP``) or ``required`` (a plain offer gets 488; our offers are
    ``RTP/SAVP``). ``options_interval_s``: send OPTIONS this often and mark the trunk down
    when it stops answering (None: no keepalive). ``ring_timeout_s``: an outbound call not
    answered by then is cancelled (``no-answer``). ``delayed_offer``: our INVITEs carry no
    SDP (the callee offers in its 2xx). ``caller_id`` (E.164, ``+14155550100``),
    ``asserted_identity`` (P-Asserted-Identity) and ``diversion`` (a URI: the number the call
    is forwarded for) go on outbound INVITEs. ``session_timers``: the trunk's own RFC 4028
    settings for its calls both ways (a carrier that mishandles them: ``enabled = false``).
    """

    name: str
    host: str
    port: int = Field(default=5060, ge=1, le=65535)
    transport: str = "udp"
    username: str | None = None
    password_env: str | None = None
    realm: str | None = None
    inbound_allow: list[str] = Field(default_factory=list)
    inbound_digest: bool = False
    register_enabled: bool = False
    register_expires: int = Field(default=600, ge=60, le=86400)
    #: concurrent inbound calls this trunk may hold (None: only ``calls.max_calls`` applies)
    max_calls: int | None = Field(default=None, ge=1)
    media_encryption: Literal["off", "optional", "required"] | None = None
    options_interval_s: float | None = Field(default=None, ge=1, le=3600)
    #: resolve ``host`` by NAPTR and SRV (RFC 3263) and fail over across its targets (on a
    #: timeout, a transport error or 503); ``port`` is then the SRV record's
    srv: bool = False
    ring_timeout_s: float = Field(default=60.0, gt=0, le=600)
    delayed_offer: bool = False
    caller_id: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{1,14}$")
    asserted_identity: str | None = None
    diversion: str | None = None
    #: this trunk's session timers (RFC 4028; None: ``[sip.session_timers]``, which also gives
    #: the keys this one does not set)
    session_timers: SessionTimerSettings | None = None

    @field_validator("asserted_identity", "diversion")
    @classmethod
    def _sip_uri(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sip:", "sips:", "tel:")):
            raise ValueError("must be a sip:, sips: or tel: URI")
        if v is not None and any(ch in v for ch in "\r\n<>\"'"):
            raise ValueError("must be a bare URI (no angle brackets, quotes or line breaks)")
        return v

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str) -> str:
        if v.lower() not in ("udp", "tcp", "tls"):
            raise ValueError("transport must be udp, tcp or tls")
        return v.lower()

    @field_validator("inbound_allow")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)
        return v

    @model_validator(mode="after")
    def _needs_credentials(self) -> TrunkSettings:
        if (self.register_enabled or self.inbound_digest) and not (
            self.username and self.password_env
        ):
            raise ValueError("register and inbound_digest need username and password_env")
        return self

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The trunk password, read from the environment variable ``password_env`` names."""
        if not self.password_env:
            return None
        return (environ if environ is not None else os.environ).get(self.password_env)

    def allows(self, address: str) -> bool:
        """Whether ``address`` is in the inbound allowlist (or is the trunk host itself)."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if address == self.host:
            return True
        return any(ip in ipaddress.ip_network(c, strict=False) for c in self.inbound_allow)


class SipLimits(_Section):
    """What a SIP port on the open Internet needs (issue 12), on by default.

    *Before parsing* (RFC 3261 §18.3 lets a server drop what it cannot take): a datagram or
    framed message over ``max_message_bytes``, a header section over ``max_header_bytes``,
    more than ``max_headers`` header lines or ``max_vias`` Via values is dropped unparsed.

    *Strangers*: a request from a source that no trunk's policy can admit gets one stateless
    403 (``stranger_reply = "drop"``: nothing at all), with no transaction and no retransmission.

    *Per source* (a sliding token bucket each, ``*_per_s`` refill, ``*_burst`` capacity):
    INVITE, REGISTER, OPTIONS and every other message, and ``auth_failures`` wrong digests per
    ``auth_window_s``. A source over any of them is blocked for ``block_s``: everything it sends
    is dropped unanswered. ``max_calls_per_source`` caps the concurrent calls of one address.
    Sources a trunk's allowlist names (its ``inbound_allow`` or its ``host``) are exempt: a
    carrier sends all its calls from a few addresses. With no trunk configured, loopback is.

    *TCP/TLS*: at most ``max_connections`` accepted connections, ``max_connections_per_source``
    from one address (a trunk's addresses under neither; at the total cap a new connection
    takes the place of the one idle longest that no call uses); a message must be complete
    ``message_deadline_s`` after its first byte (a new connection must send its first
    message, a TLS handshake finish, within it too); a
    connection that no call uses is closed after ``idle_timeout_s`` without traffic; a peer
    that leaves more than ``write_high_water`` bytes unread is disconnected.
    """

    max_message_bytes: int = Field(default=65_535, ge=1024, le=65_535)
    max_header_bytes: int = Field(default=16_384, ge=512, le=65_535)
    max_headers: int = Field(default=128, ge=8, le=128)
    max_vias: int = Field(default=16, ge=1, le=70)
    stranger_reply: Literal["reply", "drop"] = "reply"
    invite_per_s: float = Field(default=10.0, gt=0)
    invite_burst: int = Field(default=30, ge=1)
    register_per_s: float = Field(default=5.0, gt=0)
    register_burst: int = Field(default=10, ge=1)
    options_per_s: float = Field(default=5.0, gt=0)
    options_burst: int = Field(default=10, ge=1)
    messages_per_s: float = Field(default=100.0, gt=0)
    messages_burst: int = Field(default=200, ge=1)
    auth_failures: int = Field(default=10, ge=1)
    auth_window_s: float = Field(default=60.0, gt=0)
    block_s: float = Field(default=60.0, gt=0)
    max_tracked_sources: int = Field(default=16_384, ge=64)
    max_calls_per_source: int = Field(default=20, ge=1)
    max_connections: int = Field(default=512, ge=1)
    max_connections_per_source: int = Field(default=8, ge=1)
    message_deadline_s: float = Field(default=10.0, gt=0)
    idle_timeout_s: float = Field(default=120.0, gt=0)
    write_high_water: int = Field(default=256 * 1024, ge=4096)


class SipSettings(_Section):
    """The SIP listener, its transports, timers, trunks and codec preferences."""

    bind_host: str = "127.0.0.1"
    advertised_host: str | None = None
    udp_port: int | None = Field(default=5060, ge=0, le=65535)
    tcp_port: int | None = Field(default=5060, ge=0, le=65535)
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca_file: Path | None = None  # extra CAs to trust for outbound TLS (default: system)
    tls_verify: bool = True  # verify the peer's certificate on outbound TLS
    user_agent: str = "rtbridge"
    timers: SipTimers = Field(default_factory=SipTimers)
    session_timers: SessionTimerSettings = Field(default_factory=SessionTimerSettings)
    trunks: list[TrunkSettings] = Field(default_factory=list)
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA"])
    #: SRTP (SDES) for calls with no trunk or a trunk that does not say: accept what the
    #: caller offers, offer keys best-effort
    media_encryption: Literal["off", "optional", "required"] = "optional"
    limits: SipLimits = Field(default_factory=SipLimits)
    #: DNS servers for trunk hosts (``host`` or ``host:port``; empty: the system's)
    dns_servers: list[str] = Field(default_factory=list)
    #: an outbound call to a URI (no trunk) ringing longer is CANCELled: no-answer (a trunk
    #: has its own ``ring_timeout_s``)
    ring_timeout_s: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _tls(self) -> SipSettings:
        if self.tls_port is not None and not (self.tls_cert and self.tls_key):
            raise ValueError("tls_port needs tls_cert and tls_key")
        return self

    @model_validator(mode="after")
    def _trunk_session_timers(self) -> SipSettings:
        """A trunk's ``session_timers`` keys it does not set are ``[sip.session_timers]``'s."""
        for trunk in self.trunks:
            own = trunk.session_timers
            if own is not None and own.model_fields_set != set(SessionTimerSettings.model_fields):
                merged = {**self.session_timers.model_dump(), **own.model_dump(exclude_unset=True)}
                trunk.session_timers = SessionTimerSettings.model_validate(merged)
        return self

    @property
    def advertised(self) -> str:
        """The address put in Via, Contact and SDP (the bind address unless configured)."""
        if self.advertised_host:
            return self.advertised_host
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::") else self.bind_host

    def encryption_for(self, trunk: str | None) -> str:
        """The media encryption of a call on ``trunk`` (None: no trunk)."""
        if trunk is not None:
            chosen = self.trunk(trunk).media_encryption
            if chosen is not None:
                return chosen
        return self.media_encryption

    def trunk(self, name: str) -> TrunkSettings:
        for t in self.trunks:
            if t.name == name:
                return t
        raise KeyError(f"no SIP trunk named {name!r}")
