// rtbridge dashboard: the fleet view (the last hour, in 10-second buckets kept by the server:
// bridge/dashboard/fleet.py). The overview stream's snapshot brings the hour; each stats tick
// brings the buckets that changed. Charts redraw only when a bucket's numbers changed.
"use strict";

window.rtbFleet = (() => {
  const C = window.rtbCharts;
  const $ = (id) => document.getElementById(id);
  const HOUR = 3600;
  const MIN_SPAN = 300;
  // one colour per security event kind, in the order the server lists the kinds
  const PALETTE = ["#b3261e", "#c77c02", "#7d1a15", "#8e44ad", "#2a6fdb", "#e08e0b", "#556", "#d81b60", "#00897b", "#6d4c41"];

  const state = { buckets: new Map(), bucketS: 10, edges: [], kinds: [], sig: "", charts: null };

  function charts() {
    if (state.charts) return state.charts;
    state.charts = {
      active: C.lineChart($("chart-active"), {
        title: "Live calls (most at once per 10 s), last hour",
        color: "#2a6fdb",
        width: state.bucketS,
      }),
      success: C.lineChart($("chart-success"), {
        title: "Set-up success rate (%), last hour",
        color: "#1f8a4c",
        yMax: 100,
        yFmt: (v) => v.toFixed(0),
        width: state.bucketS,
      }),
      latency: C.histogram($("chart-latency"), {
        title: "Turn latency distribution, last hour",
        color: "#6a5acd",
        xFmt: (s) => (s < 1 ? Math.round(s * 1000) + "ms" : s + "s"),
      }),
      upstream: C.barChart($("chart-upstream"), {
        title: "Upstream errors per 10 s, last hour",
        colors: ["#b3261e"],
        width: state.bucketS,
      }),
      security: C.barChart($("chart-security"), {
        title: "Security events per 10 s by kind, last hour",
        colors: state.kinds.map((_, i) => PALETTE[i % PALETTE.length]),
        width: state.bucketS,
      }),
    };
    const legend = $("security-legend");
    legend.textContent = "";
    state.kinds.forEach((k, i) => {
      const item = document.createElement("span");
      item.className = "legend-item";
      item.dataset.kind = k;
      const sw = C.svgEl("svg", { width: 10, height: 10, class: "swatch" }, item);
      C.svgEl("rect", { width: 10, height: 10, fill: PALETTE[i % PALETTE.length] }, sw);
      item.appendChild(document.createTextNode(" " + k));
      item.hidden = true;
      legend.appendChild(item);
    });
    return state.charts;
  }

  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  function reset(fleet, now) {
    $("fleet").hidden = !fleet;
    state.buckets.clear();
    state.sig = "";
    if (!fleet) return;
    if (state.charts && String(state.kinds) !== String(fleet.security_kinds)) {
      // another rtbridge answered the reconnect: draw its charts afresh
      for (const id of ["chart-active", "chart-success", "chart-latency", "chart-upstream", "chart-security"]) {
        $(id).textContent = "";
      }
      state.charts = null;
    }
    state.bucketS = fleet.bucket_s;
    state.edges = fleet.edges;
    state.kinds = fleet.security_kinds;
    for (const b of fleet.buckets) state.buckets.set(b.t, b);
    draw(now);
  }

  function update(list, now) {
    if (!list) return;
    for (const b of list) state.buckets.set(b.t, b);
    draw(now);
  }

  function draw(now) {
    const horizon = now - HOUR;
    for (const t of state.buckets.keys()) if (t < horizon - state.bucketS) state.buckets.delete(t);
    const list = [...state.buckets.values()].sort((a, b) => a.t - b.t);
    const last = list[list.length - 1];
    // redraw when a number changed or a new bucket opened, not on every tick
    const sig = list.length + ":" + (last ? JSON.stringify(last) : "") + ":" + (list[0] ? list[0].t : "");
    if (sig === state.sig) return;
    state.sig = sig;
    const ch = charts();
    // the hour, or since the process started when that is shorter (at least 5 minutes), so a
    // young process's few buckets are wide enough to see
    const x1 = last ? last.t + state.bucketS : now;
    const x0 = Math.max(x1 - HOUR, Math.min(list.length ? list[0].t : x1, x1 - MIN_SPAN));

    ch.active.update(list.map((b) => ({ t: b.t, v: b.active })), x0, x1);
    setText("fleet-active", "peak " + Math.max(0, ...list.map((b) => b.active)));

    let answered = 0;
    let failed = 0;
    ch.success.update(
      list.map((b) => {
        answered += b.answered;
        failed += b.failed;
        const tries = b.answered + b.failed;
        return { t: b.t, v: tries ? (100 * b.answered) / tries : null };
      }),
      x0,
      x1,
    );
    const tries = answered + failed;
    setText(
      "fleet-success",
      tries ? ((100 * answered) / tries).toFixed(1) + " % of " + tries : "no data",
    );

    const counts = new Array(state.edges.length + 1).fill(0);
    for (const b of list) if (b.turns) b.turns.forEach((c, i) => (counts[i] += c));
    const p50 = C.quantile(counts, state.edges, 0.5);
    const p95 = C.quantile(counts, state.edges, 0.95);
    const ms = (q) => (q ? Math.round(q.value * 1000) + " ms" : "–");
    ch.latency.update(counts, state.edges, [
      { at: p50 ? p50.pos : null, label: "p50", cls: "p50" },
      { at: p95 ? p95.pos : null, label: "p95", cls: "p95" },
    ]);
    const turns = counts.reduce((s, v) => s + v, 0);
    setText("fleet-latency", turns ? `p50 ${ms(p50)} · p95 ${ms(p95)} · ${turns} turn${turns === 1 ? "" : "s"}` : "no data");

    let upstream = 0;
    ch.upstream.update(
      list.map((b) => {
        upstream += b.upstream_errors;
        return { t: b.t, values: [b.upstream_errors] };
      }),
      x0,
      x1,
    );
    setText("fleet-upstream", String(upstream));

    const seen = new Set();
    let security = 0;
    ch.security.update(
      list.map((b) => ({
        t: b.t,
        values: state.kinds.map((k) => {
          const n = b.security[k] || 0;
          if (n) seen.add(k);
          security += n;
          return n;
        }),
      })),
      x0,
      x1,
    );
    setText("fleet-security", String(security));
    for (const item of $("security-legend").children) item.hidden = !seen.has(item.dataset.kind);
  }

  return { reset, update };
})();
