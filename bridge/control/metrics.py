"""Prometheus ``/metrics``: every series is ``rtbridge_*``.

Two sources. Lifecycle events (``manager.lifecycle``) drive the counters of call setups,
setup failures by reason, ended calls by reason, setup latency and upstream errors. Live
values (active calls by leg, media counters, jitter; the barge-in and per-turn latencies not yet
observed) are read from the calls at scrape time
by a custom collector, and a call's final media counters are folded into running totals when
it ends, so the ``*_total`` series never go backwards as calls come and go. The security
event log's counts by kind (``rtbridge_security_events_total{kind}``) are read at scrape time,
and so is the frame ticker's lateness histogram (``rtbridge_tick_lateness_seconds``: how late
the shared 20 ms clock woke, the pacing of every call's outgoing audio).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bridge.calls.end import UPSTREAM_FAILURES
from bridge.calls.live import LiveCall
from bridge.calls.manager import CallManager
from bridge.calls.ticker import LATENESS_BUCKETS_MS
from bridge.records import RecordsHealth
from sip.keepalive import TrunkHealth

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: media counters summed over calls: (stats keys (SIP, WebRTC), series name, help)
_MEDIA_COUNTERS = (
    (("rtp_in", "frames_in"), "rtbridge_frames_in", "Media frames received from callers."),
    (("rtp_out", "audio_packets_out"), "rtbridge_frames_out", "Media frames sent to callers."),
    (("late",), "rtbridge_late_frames", "Caller frames that arrived too late and were dropped."),
    (("frames_concealed",), "rtbridge_concealed_frames", "Lost caller frames concealed."),
    (("lost",), "rtbridge_lost_frames", "Caller frames never received."),
    (
        ("frames_dropped_upstream",),
        "rtbridge_upstream_dropped_frames",
        "Caller frames dropped because the agent upstream stalled.",
    ),
)


def _num(stats: dict[str, Any], *keys: str) -> float:
    """The first of ``keys`` the stats hold, as a number (0 when none)."""
    for key in keys:
        v = stats.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return 0.0


@dataclass
class _Tracked:
    leg: str
    direction: str
    offered_at: float
    call: LiveCall | None = None
    barge_ins_seen: int = 0
    turns_seen: int = 0


@dataclass
class _Totals:
    media: dict[str, float] = field(default_factory=dict)
    sideband_dropped: float = 0.0
    reconnects: float = 0.0


class Metrics:
    """The registry behind ``/metrics`` and what feeds it."""

    def __init__(
        self,
        manager: CallManager,
        *,
        webhooks: Any = None,
        security: Any = None,
        trunks: Callable[[], Mapping[str, TrunkHealth]] | None = None,
    ) -> None:
        self.manager = manager
        #: the SIP trunks' keepalive states (sip.keepalive), read at each scrape
        self.trunks = trunks
        self._wall = manager.clock.wall
        self.webhooks = webhooks
        self.security = security  # bridge.security.SecurityLog: events counted by kind
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.setups = Counter(
            "rtbridge_call_setups", "Calls answered (set up).", ["leg", "direction"], registry=r
        )
        self.failures = Counter(
            "rtbridge_call_setup_failures",
            "Calls that ended before they were answered, by reason.",
            ["reason"],
            registry=r,
        )
        self.ended = Counter(
            "rtbridge_calls_ended", "Calls that ended, by reason.", ["reason"], registry=r
        )
        self.setup_latency = Histogram(
            "rtbridge_call_setup_latency_seconds",
            "From INVITE (or originate) to answered.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.barge_in = Histogram(
            "rtbridge_barge_in_latency_seconds",
            "From the caller's speech start to the agent's audio stopping.",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
            registry=r,
        )
        turn_buckets = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 5)
        self.turn_latency = Histogram(
            "rtbridge_turn_latency_seconds",
            "From the caller's end of speech to the agent's first audio frame sent, per turn.",
            buckets=turn_buckets,
            registry=r,
        )
        self.upstream_first_audio = Histogram(
            "rtbridge_upstream_first_audio_seconds",
            "From the caller's end of speech to the upstream's first audio delta, per turn.",
            buckets=turn_buckets,
            registry=r,
        )
        self.upstream_errors = Counter(
            "rtbridge_upstream_errors",
            "Agent upstream failures (unavailable at setup, lost or expired mid-call).",
            ["reason"],
            registry=r,
        )
        self.stream_dropped = 0  # lifecycle events slow /v1/events clients missed
        self._tracked: dict[str, _Tracked] = {}
        self._totals = _Totals()
        r.register(_LiveCollector(self))

    # -- lifecycle ----------------------------------------------------------------------

    def on_lifecycle(self, event: Mapping[str, Any]) -> None:
        kind, call_id = event.get("type"), str(event.get("call_id", ""))
        if kind == "call.offered":
            self._tracked[call_id] = _Tracked(
                str(event.get("leg", "sip")), str(event.get("direction", "inbound")), self._wall()
            )
        elif kind == "call.answered":
            t = self._tracked.get(call_id)
            call = self.manager.calls.get(call_id)
            if t is None:
                leg = call.leg if call is not None else "webrtc"
                t = self._tracked[call_id] = _Tracked(
                    leg, "inbound", float(event.get("at", self._wall()))
                )
            t.call = call
            self.setups.labels(t.leg, t.direction).inc()
            self.setup_latency.observe(
                max(0.0, float(event.get("at", self._wall())) - t.offered_at)
            )
        elif kind == "call.ended":
            reason = str(event.get("reason") or "unknown")
            self.ended.labels(reason).inc()
            if reason in UPSTREAM_FAILURES:
                self.upstream_errors.labels(reason).inc()
            t = self._tracked.pop(call_id, None)
            if t is None or t.call is None:
                self.failures.labels(reason).inc()
            else:
                self._fold(t)

    def _fold(self, t: _Tracked) -> None:
        """A call ended: its final counters join the totals."""
        if t.call is None:
            return
        self._barge_ins(t)
        self._turns(t)
        try:
            stats = t.call.stats()
        except Exception:
            return
        for keys, name, _help in _MEDIA_COUNTERS:
            self._totals.media[name] = self._totals.media.get(name, 0.0) + _num(stats, *keys)
        self._totals.reconnects += _num(stats, "upstream_reconnects")
        self._totals.sideband_dropped += float(t.call.events.dropped)

    def _barge_ins(self, t: _Tracked) -> None:
        if t.call is None:
            return
        total, latest = t.call.barge_in_latencies_ms()
        fresh = min(total - t.barge_ins_seen, len(latest))
        for ms in latest[len(latest) - fresh :] if fresh > 0 else ():
            self.barge_in.observe(ms / 1000.0)
        t.barge_ins_seen = total

    def _turns(self, t: _Tracked) -> None:
        if t.call is None:
            return
        total, latest = t.call.turn_latencies()
        fresh = min(total - t.turns_seen, len(latest))
        for turn in latest[len(latest) - fresh :] if fresh > 0 else ():
            self.turn_latency.observe(turn.total_s)
            self.upstream_first_audio.observe(turn.upstream_s)
        t.turns_seen = total

    def _live(self) -> Iterator[tuple[LiveCall, _Tracked]]:
        for call_id, call in list(self.manager.calls.items()):
            t = self._tracked.get(call_id)
            if t is None:  # adopted calls (WebRTC) that never announced themselves
                t = self._tracked[call_id] = _Tracked(call.leg, "inbound", self._wall(), call)
            elif t.call is None:
                t.call = call
            yield call, t
        for call_id, t in list(self._tracked.items()):  # gone without a call.ended event
            if t.call is not None and call_id not in self.manager.calls:
                self._fold(t)
                del self._tracked[call_id]

    def render(self) -> bytes:
        # latencies measured since the last scrape join their histograms before these are
        # rendered (the live collector runs after them)
        for _call, t in self._live():
            self._barge_ins(t)
            self._turns(t)
        return generate_latest(self.registry)


def _tick_lateness(manager: CallManager) -> HistogramMetricFamily:
    stats = manager.ticker.stats
    cumulative, buckets = 0, []
    for bound, count in zip((*LATENESS_BUCKETS_MS, None), stats.lateness_counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound is None else repr(bound / 1000.0), float(cumulative)))
    return HistogramMetricFamily(
        "rtbridge_tick_lateness_seconds",
        "How late the shared 20 ms frame ticker woke (the pacing of outgoing call audio).",
        buckets=buckets,
        sum_value=stats.lateness_sum_ms / 1000.0,
    )


def _records(health: RecordsHealth) -> Iterator[Metric]:
    """The call records store: whether its database takes writes, and what waits for it."""
    up = GaugeMetricFamily(
        "rtbridge_records_up", "1 while the call records database takes writes, 0 in an outage."
    )
    up.add_metric([], 1.0 if health.up else 0.0)
    yield up
    backlog = GaugeMetricFamily(
        "rtbridge_records_backlog", "Call record statements waiting for the database."
    )
    backlog.add_metric([], float(health.backlog))
    yield backlog
    dropped = CounterMetricFamily(
        "rtbridge_records_dropped",
        "Call record statements dropped: the backlog was full in a long outage.",
    )
    dropped.add_metric([], float(health.dropped))
    yield dropped
    failed = CounterMetricFamily(
        "rtbridge_records_failed", "Call record statements the database refused (skipped)."
    )
    failed.add_metric([], float(health.failed))
    yield failed


class _LiveCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        m = self.m
        live = list(m._live())
        active = GaugeMetricFamily("rtbridge_active_calls", "Live calls by leg.", labels=["leg"])
        counts = {"sip": 0, "webrtc": 0}
        media = dict.fromkeys((n for _k, n, _h in _MEDIA_COUNTERS), 0.0)
        jitters: list[float] = []
        dropped = m._totals.sideband_dropped + m.stream_dropped
        reconnects = m._totals.reconnects
        for call, t in live:
            counts[t.leg] = counts.get(t.leg, 0) + 1
            try:
                stats = call.stats()
            except Exception:
                continue
            for keys, name, _help in _MEDIA_COUNTERS:
                media[name] += _num(stats, *keys)
            if "jitter_ms" in stats:
                jitters.append(_num(stats, "jitter_ms"))
            reconnects += _num(stats, "upstream_reconnects")
            dropped += float(call.events.dropped)
        for leg, n in sorted(counts.items()):
            active.add_metric([leg], n)
        yield active
        setting_up = GaugeMetricFamily(
            "rtbridge_calls_setting_up", "Calls being set up (ringing, dialing)."
        )
        setting_up.add_metric([], float(getattr(m.manager, "_setting_up", 0)))
        yield setting_up
        draining = GaugeMetricFamily("rtbridge_draining", "1 while draining (SIGTERM).")
        draining.add_metric([], 1.0 if m.manager.draining else 0.0)
        yield draining
        for _keys, name, help_ in _MEDIA_COUNTERS:
            c = CounterMetricFamily(name, help_)
            c.add_metric([], m._totals.media.get(name, 0.0) + media[name])
            yield c
        jitter = GaugeMetricFamily(
            "rtbridge_jitter_seconds",
            "Interarrival jitter of caller audio over live calls (RFC 3550).",
            labels=["stat"],
        )
        jitter.add_metric(["max"], max(jitters) / 1000.0 if jitters else 0.0)
        jitter.add_metric(["mean"], sum(jitters) / len(jitters) / 1000.0 if jitters else 0.0)
        yield jitter
        sb = CounterMetricFamily(
            "rtbridge_sideband_dropped_events",
            "Events observers (sideband, dashboards) were too slow to take.",
        )
        sb.add_metric([], dropped)
        yield sb
        yield _tick_lateness(m.manager)
        rc = CounterMetricFamily(
            "rtbridge_upstream_reconnects", "Agent upstream sessions re-established mid-call."
        )
        rc.add_metric([], reconnects)
        yield rc
        yield from _records(m.manager.store.health())
        rec = CounterMetricFamily(
            "rtbridge_recording_dropped_blocks",
            "Recording blocks dropped because the disk did not keep up (each ~250 ms).",
        )
        rec.add_metric([], m.manager.recordings.dropped_blocks)
        yield rec
        wh = getattr(m.webhooks, "stats", None)
        if wh is not None:
            c = CounterMetricFamily(
                "rtbridge_webhooks", "realtime.call.incoming deliveries.", labels=["result"]
            )
            c.add_metric(["delivered"], wh.delivered)
            c.add_metric(["failed"], wh.failed)
            c.add_metric(["fallback"], wh.fallbacks)
            yield c
        if m.trunks is not None:
            up = GaugeMetricFamily(
                "rtbridge_sip_trunk_up",
                "1 while a trunk answers its OPTIONS keepalive (or is unchecked), 0 when down.",
                labels=["trunk"],
            )
            for name, health in sorted(m.trunks().items()):
                up.add_metric([name], 1.0 if health.up else 0.0)
            yield up
        if m.security is not None:
            c = CounterMetricFamily(
                "rtbridge_security_events",
                "Security events (refusals and attacks caught), by kind.",
                labels=["kind"],
            )
            for kind, n in sorted(m.security.counts.items()):
                c.add_metric([kind], n)
            yield c
