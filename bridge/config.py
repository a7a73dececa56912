"""rtbridge's one settings model and its one TOML config file.

Every part of rtbridge reads its settings from :class:`Settings`. Sections are plain pydantic
models; later parts (trunks, routes, agent profiles, webhooks) add their own section here rather
than inventing a config of their own.

Precedence, lowest first: built-in defaults < the TOML file (``--config FILE`` or
``$RTBRIDGE_CONFIG``) < environment variables ``RTBRIDGE_<SECTION>__<FIELD>`` (for example
``RTBRIDGE_SERVER__HTTP_PORT=8080``) < command-line flags.

Secrets are never stored in the file: an upstream names the *environment variable* that holds
its API key (``api_key_env``). ``RTBRIDGE_API_KEY`` is the server key for the relay and the
control plane.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.destinations import (
    DestinationPolicy,
    DestinationRule,
    DestinationSettings,
    Purpose,
    Verdict,
)
from bridge.errors import ConfigError
from media.recording import RecordingMode
from media.tones import RingbackTone
from sip.settings import SipSettings

__all__ = [
    "AgentProfile",
    "AgentSettings",
    "CallSettings",
    "ClusterSettings",
    "Dialect",
    "DtmfPolicy",
    "EarlyMedia",
    "Route",
    "ServerSettings",
    "SessionFormat",
    "Settings",
    "UpstreamAuth",
    "UpstreamSettings",
    "WebRtcSettings",
    "WebhookSettings",
    "default_data_dir",
    "load_settings",
]

ENV_PREFIX = "RTBRIDGE_"
ENV_NESTED = "__"


class Dialect(StrEnum):
    """The Realtime dialect an upstream speaks (rtbridge's own clients always speak GA)."""

    GA = "ga"
    BETA = "beta"
    XAI = "xai"
    AZURE = "azure"
    GEMINI = "gemini"
    GPT_LIVE = "gpt-live"


class UpstreamAuth(StrEnum):
    """How an upstream key is presented (never in a log: see ``bridge.logs``).

    ``bearer``: ``Authorization: Bearer <key>`` (OpenAI, xAI, GPT-Live, Azure with an Entra
    token); ``api-key``: Azure's ``api-key`` header; ``goog-header``: ``x-goog-api-key`` (the
    Google SDK's way); ``query``: ``?key=`` in the URL (the Gemini Live WebSocket guide's way;
    the URL rtbridge logs never carries it).
    """

    BEARER = "bearer"
    API_KEY = "api-key"
    GOOG_HEADER = "goog-header"
    QUERY = "query"


#: The auth style each dialect uses when ``UpstreamSettings.auth`` is not set.
DEFAULT_AUTH: dict[Dialect, UpstreamAuth] = {
    Dialect.GA: UpstreamAuth.BEARER,
    Dialect.BETA: UpstreamAuth.BEARER,
    Dialect.XAI: UpstreamAuth.BEARER,
    Dialect.AZURE: UpstreamAuth.API_KEY,
    Dialect.GEMINI: UpstreamAuth.QUERY,
    Dialect.GPT_LIVE: UpstreamAuth.BEARER,
}


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rtbridge"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Section):
    """The HTTP/WebSocket front (relay, control plane, dashboard) and process-wide paths.

    Web-facing defaults: request bodies are capped per kind (``max_*_bytes``: 413 before the
    body is read whole); dashboard logins last ``session_ttl_s``; ``allowed_origins`` adds
    origins (``https://ops.example``) that may drive cookie-authenticated routes besides the
    server's own (behind a reverse proxy that rewrites Host); ``docs``: serve Swagger UI at
    ``/docs`` (off: it loads scripts from a CDN onto the cookie-authenticated origin);
    ``metrics_auth = "key"``: ``/metrics`` needs the server key or the key in
    ``metrics_key_env`` (a scrape-only key for Prometheus). ``event_loop``: the standard
    library's loop (``asyncio``, the default), uvloop when it is installed (``auto``), or always
    (``uvloop``): :mod:`bridge.event_loop` says why asyncio is the default.
    """

    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    sip_port: int | None = Field(default=None, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "info"
    log_json: bool = False
    max_sdp_bytes: int = Field(default=64 * 1024, ge=1024)
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_multipart_bytes: int = Field(default=1024 * 1024 + 64 * 1024, ge=1024)
    max_form_bytes: int = Field(default=16 * 1024, ge=1024)
    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    allowed_origins: list[str] = Field(default_factory=list)
    docs: bool = False
    metrics_auth: Literal["none", "key"] = "none"
    metrics_key_env: str | None = None
    event_loop: Literal["auto", "uvloop", "asyncio"] = "asyncio"
    #: the HTTP port's guard (:mod:`bridge.http_server`): a request head must arrive within
    #: this; connections open at once in all, and from one address (loopback: total only)
    http_head_timeout_s: float = Field(default=10.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)
    http_max_connections_per_source: int = Field(default=64, ge=1)
    #: reverse proxies (and cluster nodes) by IP address: their X-Forwarded-For names the
    #: client, and their connections count toward the total cap only
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, v: list[str]) -> list[str]:
        for address in v:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return v

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return [o.lower() for o in v]

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key (--tls-cert/--tls-key) go together")
        return self


class UpstreamSettings(_Section):
    """Where Realtime sessions go. ``url = ""`` means: run the local agent in-process.

    ``model`` is the model (Azure: the deployment name; Gemini: ``models/...`` may be left
    out). ``auth`` defaults to the dialect's own style (:data:`DEFAULT_AUTH`).
    ``delegation_model`` is GPT-Live only: the Responses model that runs the session's
    function tools (GPT-Live delegates tools to a Responses backend).
    """

    url: str = ""
    dialect: Dialect = Dialect.GA
    model: str = "gpt-realtime"
    api_key_env: str | None = None
    auth: UpstreamAuth | None = None
    delegation_model: str = "gpt-5.5"
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    send_queue: int = Field(default=256, ge=1)

    @field_validator("url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if v and not v.startswith(("ws://", "wss://")):
            raise ValueError("upstream url must start with ws:// or wss://")
        return v

    @property
    def auth_style(self) -> UpstreamAuth:
        return self.auth if self.auth is not None else DEFAULT_AUTH[self.dialect]

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The upstream key, read from the environment variable this upstream names."""
        if not self.api_key_env:
            return None
        return (environ if environ is not None else os.environ).get(self.api_key_env)


class AgentSettings(_Section):
    """The local reference agent (``rtbridge agent``, or in-process under ``serve``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    dialect: Dialect = Dialect.GA
    formats: list[str] = Field(default_factory=lambda: ["pcm16", "g711_ulaw", "g711_alaw"])
    api_key_env: str | None = None
    tool_after_turns: int | None = Field(default=None, ge=1)
    tool_name: str | None = None
    tool_arguments: str = "{}"
    #: end every session after this long, the way the dialect ends sessions (Gemini:
    #: ``goAway`` ``go_away_notice_s`` before the close; GA/beta/xAI/Azure: an ``error``
    #: ``session_expired``; GPT-Live: ``session.closed`` reason ``expired``); None: never
    session_max_s: float | None = Field(default=None, gt=0)
    go_away_notice_s: float = Field(default=1.0, ge=0)
    #: hold each response's first audio delta back this long (an upstream's think time: the
    #: turn-latency tests and benchmarks)
    first_audio_delay_ms: int = Field(default=0, ge=0, le=60000)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        allowed = {"pcm16", "g711_ulaw", "g711_alaw"}
        bad = [f for f in v if f not in allowed]
        if bad or not v:
            raise ValueError(f"formats must be a non-empty subset of {sorted(allowed)}; got {v}")
        return v


class SessionFormat(StrEnum):
    """The agent session's audio format. ``auto``: G.711 pass-through when the upstream takes
    the trunk's codec (no resampling at all), else PCM16 24 kHz (transcoding)."""

    AUTO = "auto"
    PCM16 = "pcm16"
    G711_ULAW = "g711_ulaw"
    G711_ALAW = "g711_alaw"


class EarlyMedia(StrEnum):
    """What an inbound SIP caller hears before the 200 (RFC 3960 early media, 183 + SDP).

    ``off``: 180 Ringing, then 200 once the agent is ready. ``greeting``: 183 with our SDP,
    the agent (and its greeting) starts, 200 ``early_media_s`` seconds later. ``ringback``:
    183 with our SDP at once and the profile's ``ringback_tone`` until the agent session is
    open, then 200 (a delayed-offer INVITE gets 180: there is no answer to send before the
    200). The booleans of older config files still load: ``true`` is ``greeting``, ``false``
    is ``off``."""

    OFF = "off"
    GREETING = "greeting"
    RINGBACK = "ringback"

    @classmethod
    def _missing_(cls, value: object) -> EarlyMedia | None:
        # the setting was a boolean before ringback (in TOML, or as text from the environment)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if isinstance(value, bool):
            return cls.GREETING if value else cls.OFF
        return None


class DtmfPolicy(_Section):
    """What a caller's keypad digits do (the call-control issue acts on ``mode``/``actions``).

    ``message``: each digit goes to the agent as a user message; ``collect``: digits are
    gathered until ``terminator`` or ``timeout_ms`` and sent as one message; ``off``: only
    logged. ``actions`` maps a digit to ``hangup``, ``mute`` or ``transfer:<target>``.
    A caller gets ``max_per_s`` digits a second (``burst`` at once; a person presses a few a
    second): digits beyond are dropped and counted, so a flood costs nothing downstream.
    """

    mode: str = Field(default="message", pattern="^(message|collect|off)$")
    terminator: str = "#"
    timeout_ms: int = Field(default=3000, ge=100)
    actions: dict[str, str] = Field(default_factory=dict)
    max_per_s: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)


class AgentProfile(_Section):
    """Who answers a call and how: upstream, model, instructions, voice, tools, limits."""

    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    instructions: str | None = None
    voice: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    session_format: SessionFormat = SessionFormat.AUTO
    greeting: str | None = None
    #: SIP early media (RFC 3960), :class:`EarlyMedia`: ``greeting`` plays the agent's greeting
    #: before the 200 (sent ``early_media_s`` seconds after the 183), ``ringback`` plays
    #: ``ringback_tone`` while the agent connects
    early_media: EarlyMedia = EarlyMedia.OFF
    early_media_s: float = Field(default=3.0, ge=0, le=60)
    ringback_tone: RingbackTone = RingbackTone.US
    #: inbound SIP headers offered to the agent as ``instructions`` variables (``X-Account-Id``
    #: -> ``{x_account_id}``; ``{caller}``, ``{called}``, ``{asserted_identity}`` and
    #: ``{diversion}`` always are) and kept in the call's record
    sip_headers: list[str] = Field(default_factory=list)
    dtmf: DtmfPolicy = Field(default_factory=DtmfPolicy)
    max_duration_s: float = Field(default=3600.0, gt=0)
    telephony_tools: bool = False
    hangup_grace_ms: int = Field(default=500, ge=0, le=10000)
    downstream_delay_ms: int = Field(default=0, ge=0, le=1000)
    tool_timeout_s: float = Field(default=10.0, gt=0)
    #: where this profile may send callers (REFER) and place calls: rules on parsed targets
    #: (:mod:`bridge.destinations.rules`); unambiguous old string patterns are read as rules
    transfer_targets: list[DestinationRule] = Field(default_factory=list)
    dial_targets: list[DestinationRule] = Field(default_factory=list)
    destinations: DestinationSettings = Field(default_factory=DestinationSettings)
    #: call recording: ``off``, ``stereo`` (caller left, agent as heard right) or ``mixed``
    record: RecordingMode = RecordingMode.OFF
    #: said by the agent before anything else when the call is recorded (consent)
    record_announcement: str | None = None

    @field_validator("transfer_targets", "dial_targets", mode="before")
    @classmethod
    def _patterns(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        return [DestinationRule.from_pattern(p) if isinstance(p, str) else p for p in v]

    @field_validator("sip_headers")
    @classmethod
    def _header_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,63}", name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in ("authorization", "proxy-authorization"):
                raise ValueError(f"{name} carries credentials: it is never offered")
        return v

    def destination_policy(self, purpose: Purpose) -> DestinationPolicy:
        rules = self.dial_targets if purpose is Purpose.DIAL else self.transfer_targets
        return DestinationPolicy(purpose, tuple(rules), self.destinations)

    def may_transfer_to(self, target: str) -> Verdict:
        """The policy's verdict alone (no caps, no security event: see
        :class:`bridge.destinations.guard.Destinations`)."""
        return self.destination_policy(Purpose.TRANSFER).check(target)

    def may_dial(self, target: str) -> Verdict:
        return self.destination_policy(Purpose.DIAL).check(target)


class Route(_Section):
    """Maps inbound calls to an agent profile; the first route that matches wins.

    ``trunk`` is a trunk name; ``to``/``from_`` are shell-style patterns on the called and
    calling URI (``sip:support@*``, ``*+1555*``). A field left empty matches anything.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = ""
    trunk: str | None = None
    to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    profile: str = "default"
    #: when the ``realtime.call.incoming`` webhook fails or times out: a profile name,
    #: ``reject`` (603) or ``reject:<status>``; None: this route's ``profile``
    fallback: str | None = None
    #: the calls of this route record so (None: as their profile says)
    record: RecordingMode | None = None

    def matches(self, *, trunk: str | None, to_uri: str, from_uri: str) -> bool:
        from fnmatch import fnmatchcase

        return (
            (self.trunk is None or self.trunk == trunk)
            and (self.to is None or fnmatchcase(to_uri, self.to))
            and (self.from_ is None or fnmatchcase(from_uri, self.from_))
        )


class CallSettings(_Section):
    """Limits and media sockets for calls (SIP and WebRTC).

    Media on the open Internet (issue 12): RTP from an address the SDP did not name is
    accepted after ``rtp_probation_packets`` consecutive in-sequence packets, and never once a
    source is learned; a call on hold ends after ``max_hold_s``; a hostname in an SDP ``c=``
    line is resolved once at negotiation (``sdp_hostnames = "resolve"``, within
    ``sdp_resolve_timeout_s``, else 488) or refused with 488 (``"refuse"``). ``rtp_host`` may
    be a name: it is resolved once, at start (an error then if it does not resolve). Call records
    are kept ``records_retention_days`` and pruned in the background.
    """

    max_calls: int = Field(default=500, ge=1)
    rtp_host: str = "127.0.0.1"
    rtp_advertise: str | None = None  # address put in SDP (a public address behind NAT)
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=30000, ge=1025, le=65535)
    rtp_timeout_s: float = Field(default=30.0, gt=0)
    rtcp_interval_s: float = Field(default=5.0, gt=0)
    upstream_reconnect_window_s: float = Field(default=5.0, ge=0)
    session_ready_timeout_s: float = Field(default=10.0, gt=0)
    retry_after_s: int = Field(default=30, ge=1)
    drain_timeout_s: float = Field(default=300.0, ge=0)  # SIGTERM: live calls may finish
    records_db: Path | None = None  # default: <server.data_dir>/calls.db
    #: shared records: ``postgresql://user@host:5432/db`` (the password from ``PGPASSWORD``
    #: or ``~/.pgpass``, never the file); empty: SQLite at ``records_db``
    records_url: str = ""
    records_retention_days: float = Field(default=30.0, gt=0)  # recordings too
    recordings_dir: Path | None = None  # default: <server.data_dir>/recordings
    rtp_probation_packets: int = Field(default=4, ge=1, le=50)
    max_hold_s: float = Field(default=600.0, gt=0)
    sdp_hostnames: Literal["resolve", "refuse"] = "resolve"
    sdp_resolve_timeout_s: float = Field(default=2.0, gt=0)

    @field_validator("records_url")
    @classmethod
    def _pg_url(cls, v: str) -> str:
        if v and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("records_url must be a postgresql:// URL (or empty for SQLite)")
        return v

    @model_validator(mode="after")
    def _range(self) -> CallSettings:
        if self.rtp_port_max - self.rtp_port_min < 2:
            raise ValueError("rtp_port_min..rtp_port_max must hold at least one even/odd pair")
        return self


class WebRtcSettings(_Section):
    """Browser calls (``POST /v1/realtime/calls``): which profile answers them, the ICE host
    addresses offered (``--ice-host``; empty: every non-loopback interface), STUN servers
    (none by default), and how long a call may take to connect. ``demo``: serve the demo page
    at ``/`` (it asks for the server key unless the visitor is on loopback)."""

    profile: str = "default"
    ice_hosts: list[str] = Field(default_factory=list)
    stun_servers: list[str] = Field(default_factory=list)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    demo: bool = True
    #: browser calls (being set up or up) one address, and one ``ek_`` key, may hold at once
    max_calls_per_source: int = Field(default=10, ge=1)
    max_calls_per_key: int = Field(default=3, ge=1)


class WebhookSettings(_Section):
    """``realtime.call.incoming`` webhooks (OpenAI's call API): when ``url`` is set, every
    inbound SIP call is offered to the application there (180 Ringing meanwhile), which answers
    with ``POST /v1/realtime/calls/{id}/accept|reject|refer|hangup``. The signing secret is read
    from the environment variable ``secret_env`` (``whsec_<base64>`` or raw text). No decision
    within ``timeout_s`` (delivery) + ``decision_timeout_s``: the route's ``fallback``."""

    url: str = ""
    secret_env: str = "RTBRIDGE_WEBHOOK_SECRET"
    timeout_s: float = Field(default=5.0, gt=0)
    decision_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        return v

    def secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        return (environ if environ is not None else os.environ).get(self.secret_env) or None


class ClusterSettings(_Section):
    """Every core and every machine (issue 17).

    ``workers``: how many worker processes ``rtbridge serve`` runs under one supervisor (0:
    one per core; unset: one process, as without a cluster; ``--workers``). Worker ``i``
    listens for SIP on ``worker_sip_port_min + i``, serves its internal control port
    ``worker_http_port_min + i`` on ``worker_host`` and takes its share of
    ``calls.rtp_port_min..rtp_port_max``; all of them also serve the public HTTP port.
    ``kamailio``: put Kamailio (its ``dispatcher``) in front on ``server.sip_port`` when it is
    installed (``rtbridge kamailio-config`` prints its configuration).

    ``redis_url``: the cluster registry (live calls with a TTL heartbeat, a command channel
    per node): any node's control plane, sideband and dashboard reach every call. A node is
    ``node_name`` (default: host name and worker number) and is reached by the others at
    ``advertise_host`` (default: ``worker_host``, or ``server.host``): ``control_url`` (default
    ``http(s)://<advertise_host>:<server.http_port>``; a worker's internal control port) is
    where another node carries a sideband to (``GET /v1/realtime?call_id=``). Every node
    shares the server key.
    """

    workers: int | None = Field(default=None, ge=0, le=256)
    worker_host: str = "127.0.0.1"
    worker_sip_port_min: int = Field(default=5070, ge=1, le=65535)
    worker_http_port_min: int = Field(default=8090, ge=1, le=65535)
    kamailio: bool = False
    kamailio_binary: str = "kamailio"
    #: Kamailio's dispatcher: OPTIONS probe period, and how long an INVITE waits for a first
    #: answer from a worker before the next one is tried
    probe_interval_s: int = Field(default=2, ge=1)
    failover_timeout_ms: int = Field(default=1500, ge=100)
    redis_url: str = ""
    node_name: str = ""
    advertise_host: str = ""
    control_url: str = ""
    heartbeat_s: float = Field(default=1.0, gt=0)
    #: a node (and its calls) not heard of for this long is gone
    ttl_s: float = Field(default=3.0, gt=0)
    command_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("control_url")
    @classmethod
    def _control_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("control_url must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return v

    @model_validator(mode="after")
    def _ttl(self) -> ClusterSettings:
        if self.ttl_s < 2 * self.heartbeat_s:
            raise ValueError("ttl_s must be at least twice heartbeat_s")
        return self


def _default_profiles() -> dict[str, AgentProfile]:
    return {"default": AgentProfile()}


class Settings(_Section):
    """All of rtbridge's settings. One instance is built at start-up and passed down."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    calls: CallSettings = Field(default_factory=CallSettings)
    profiles: dict[str, AgentProfile] = Field(default_factory=_default_profiles)
    routes: list[Route] = Field(default_factory=list)
    sip: SipSettings = Field(default_factory=SipSettings)
    webrtc: WebRtcSettings = Field(default_factory=WebRtcSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @model_validator(mode="after")
    def _routes_name_profiles(self) -> Settings:
        if "default" not in self.profiles:
            self.profiles["default"] = AgentProfile()
        self._profiles_inherit_upstream()
        for i, route in enumerate(self.routes):
            if route.profile not in self.profiles:
                raise ValueError(f"routes[{i}] names unknown profile {route.profile!r}")
            fb = route.fallback
            if fb is not None and not fb.startswith("reject") and fb not in self.profiles:
                raise ValueError(f"routes[{i}].fallback names unknown profile {fb!r}")
        return self

    def _profiles_inherit_upstream(self) -> None:
        """A profile that names no upstream ``url`` of its own uses ``[upstream]`` (``serve
        --upstream``), with the upstream settings it does set (``model``, ``api_key_env``, ...)
        over the shared ones; one that sets ``url`` (``""``: the local agent) keeps its own
        upstream whole, never another provider's key or dialect."""
        shared = self.upstream
        if not shared.url:
            return
        for name, profile in self.profiles.items():
            own = profile.upstream
            if "url" in own.model_fields_set:
                continue
            if "dialect" in own.model_fields_set and own.dialect is not shared.dialect:
                raise ValueError(
                    f"profiles.{name}.upstream sets dialect {own.dialect.value!r} but no url: "
                    f"it would speak {own.dialect.value} (and send its key) to [upstream]'s "
                    f"{shared.dialect.value} url; give the profile its own url"
                )
            update = {field: getattr(own, field) for field in own.model_fields_set}
            upstream = shared.model_copy(update=update)
            self.profiles[name] = profile.model_copy(update={"upstream": upstream})

    def matching_route(self, *, trunk: str | None, to_uri: str, from_uri: str) -> Route | None:
        """The first route matching an inbound call (None: the ``default`` profile)."""
        for route in self.routes:
            if route.matches(trunk=trunk, to_uri=to_uri, from_uri=from_uri):
                return route
        return None

    def route(self, *, trunk: str | None, to_uri: str, from_uri: str) -> tuple[str, AgentProfile]:
        """The profile for an inbound call: the first matching route, else ``default``."""
        for route in self.routes:
            if route.matches(trunk=trunk, to_uri=to_uri, from_uri=from_uri):
                profile = self.profiles[route.profile]
                if route.record is not None and route.record is not profile.record:
                    profile = profile.model_copy(update={"record": route.record})
                return route.profile, profile
        return "default", self.profiles["default"]

    @property
    def records_path(self) -> Path:
        return self.calls.records_db or self.server.data_dir / "calls.db"

    @property
    def records_target(self) -> Path | str:
        """Where the call records are: the PostgreSQL URL, else the SQLite file."""
        return self.calls.records_url or self.records_path

    @property
    def recordings_path(self) -> Path:
        return self.calls.recordings_dir or self.server.data_dir / "recordings"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``RTBRIDGE_SECTION__FIELD=value`` -> ``{"section": {"field": value}}`` (values as text;
    pydantic converts them; JSON lists/objects are accepted for list and dict fields)."""
    import json

    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or ENV_NESTED not in key:
            continue
        path = key[len(ENV_PREFIX) :].lower().split(ENV_NESTED)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        parsed: Any = value
        if value[:1] in "[{":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value
        node[path[-1]] = parsed
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_settings(
    path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, the TOML file, the environment and overrides.

    Raises :class:`ConfigError` naming the file and the offending field.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("RTBRIDGE_CONFIG"):
        path = env["RTBRIDGE_CONFIG"]
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    _merge(data, _env_overrides(env))
    if overrides:
        _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings ({source}): {problems}") from exc
