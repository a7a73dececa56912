"""SIP settings: the ``[sip]`` section of rtbridge's one config file (issue 4 §4, §7).

Bind address and advertised address are separate (behind NAT the Contact/Via/SDP address is
the public one). Trunks carry their policy: an inbound IP allowlist (CIDRs) and/or a digest
challenge, and outbound credentials whose password is read from the environment variable the
config names (``password_env``), never from the file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["SipSettings", "SipTimers", "TrunkSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SipTimers(_Section):
    """RFC 3261 §17.1.1.1 base timers, seconds."""

    t1: float = Field(default=0.5, gt=0, le=10)
    t2: float = Field(default=4.0, gt=0, le=60)
    t4: float = Field(default=5.0, gt=0, le=60)


class TrunkSettings(_Section):
    """A SIP provider or PBX rtbridge exchanges calls with."""

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
    trunks: list[TrunkSettings] = Field(default_factory=list)
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA"])

    @model_validator(mode="after")
    def _tls(self) -> SipSettings:
        if self.tls_port is not None and not (self.tls_cert and self.tls_key):
            raise ValueError("tls_port needs tls_cert and tls_key")
        return self

    @property
    def advertised(self) -> str:
        """The address put in Via, Contact and SDP (the bind address unless configured)."""
        if self.advertised_host:
            return self.advertised_host
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::") else self.bind_host

    def trunk(self, name: str) -> TrunkSettings:
        for t in self.trunks:
            if t.name == name:
                return t
        raise KeyError(f"no SIP trunk named {name!r}")
