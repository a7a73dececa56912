// rtbridge dashboard: one call's timeline, on one time axis (seconds since the answer).
//
// Drawn from the call's stored event log (the call stream's "log", then "logged" while it
// lasts), so a live call and an ended one look the same:
//   Caller   input_audio_buffer.speech_started -> speech_stopped (the upstream's VAD)
//   Agent    output_audio_buffer.started -> stopped | cleared, per response (what was played)
//   Events   barge-ins (output_audio_buffer.cleared), DTMF, tool calls, transfers, errors
//   Turns    turn.latency: end of the caller's speech -> first agent audio on the wire, split
//            into the upstream's share and rtbridge's
// A recording (GET /v1/calls/{id} -> recording.url) plays in an <audio> element whose
// playhead moves on the timeline; a click on the timeline seeks there. The recording's time 0
// is the call's origin on its frame clock: where the turns say it is (a turn.latency entry
// logged at ts names its speech end on that clock, speech_end_s, and lasted total_s before ts),
// else the answer.
"use strict";

window.rtbTimeline = (() => {
  const C = window.rtbCharts;
  const $ = (id) => document.getElementById(id);
  const W = 600;
  const LANES = [
    ["caller", "Caller", 14],
    ["agent", "Agent", 40],
    ["events", "Events", 66],
    ["turns", "Turns", 92],
  ];
  const LANE_H = 16;
  const LEFT = 52;
  const RIGHT = 10;
  const H = 128;
  const TRANSFER_KINDS = new Set(["refer", "transfer", "refer.progress", "transfer.refused", "transfer.failed"]);

  let model = null;
  let pending = false;

  function open(id, view) {
    model = {
      id,
      t0: (view && (view.answered_at || view.offered_at)) || null,
      end: null,
      now: null,
      entries: [],
      keys: new Set(),
      detail: null,
    };
    $("timeline-svg").textContent = "";
    setDetail(null);
    schedule();
  }

  function close() {
    model = null;
    const audio = $("recording");
    audio.pause();
    audio.removeAttribute("src");
    audio.hidden = true;
  }

  function add(entries) {
    if (!model) return;
    for (const e of entries) {
      const key = e.seq !== undefined ? "s" + e.seq : e.kind + e.ts;
      if (model.keys.has(key)) continue;
      model.keys.add(key);
      model.entries.push(e);
      if (model.t0 === null || (e.kind === "answered" && e.ts < model.t0)) model.t0 = e.ts;
    }
    schedule();
  }

  function tick(now) {
    if (!model || model.end !== null) return;
    model.now = now;
    schedule();
  }

  function ended(rec) {
    if (!model) return;
    if (rec && rec.answered_at) model.t0 = rec.answered_at;
    model.end = (rec && rec.ended_at) || model.now;
    schedule();
  }

  function setDetail(detail) {
    const audio = $("recording");
    const rec = detail && detail.recording;
    if (model) model.detail = detail;
    if (rec && rec.url) {
      // a live call's file is still being written (it may not exist yet): nothing is fetched
      // until the player is started; an ended call's is complete and loads its length
      const ended = detail.state === "ended";
      audio.preload = ended ? "metadata" : "none";
      if (audio.getAttribute("src") !== rec.url) audio.src = rec.url;
      else if (ended && audio.readyState === 0 && audio.paused) audio.load(); // the call just ended
      audio.hidden = false;
      setText("recording-info", `recording: ${rec.mode || ""} ${rec.format || ""} ${rec.sample_rate ? rec.sample_rate + " Hz" : ""}${rec.paused ? " (paused)" : ""}`);
    } else {
      audio.pause();
      audio.removeAttribute("src");
      audio.hidden = true;
      setText("recording-info", detail ? "no recording" : "");
    }
    schedule();
  }

  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }

  // what the log says, as segments and marks in seconds since t0
  function build() {
    const t0 = model.t0 || 0;
    const entries = [...model.entries].sort((a, b) => a.ts - b.ts || (a.seq || 0) - (b.seq || 0));
    const last = entries.length ? entries[entries.length - 1].ts : t0;
    const end = model.end || model.now || last;
    const caller = [];
    const agent = [];
    const marks = [];
    const turns = [];
    const origins = []; // where each turn puts the recording's time 0 (s since t0)
    let speaking = null;
    const playing = new Map(); // response id -> start
    for (const e of entries) {
      const t = e.ts - t0;
      const d = e.data || {};
      switch (e.kind) {
        case "input_audio_buffer.speech_started":
          if (speaking === null) speaking = t;
          break;
        case "input_audio_buffer.speech_stopped":
          if (speaking !== null) caller.push({ a: speaking, b: t, label: d.item_id || "" });
          speaking = null;
          break;
        case "output_audio_buffer.started":
          playing.set(d.response_id || "", t);
          break;
        case "output_audio_buffer.stopped": {
          const rid = d.response_id || "";
          if (playing.has(rid)) agent.push({ a: playing.get(rid), b: t, label: rid, cut: false });
          playing.delete(rid);
          break;
        }
        case "output_audio_buffer.cleared":
          for (const [rid, a] of playing) agent.push({ a, b: t, label: rid, cut: true });
          playing.clear();
          marks.push({ t, kind: "barge-in", label: "barge-in", text: JSON.stringify(d) });
          break;
        case "dtmf":
          marks.push({ t, kind: "dtmf", label: String(d.digit || "?"), text: "DTMF " + (d.digit || "") });
          break;
        case "tool_call":
          marks.push({ t, kind: "tool", label: d.name || "tool", text: "tool call " + (d.name || "") + " " + JSON.stringify(d.arguments || {}) });
          break;
        case "turn.latency":
          if (typeof d.total_s === "number") {
            turns.push({ t, total: d.total_s, up: d.upstream_s, bridge: d.bridge_s });
            if (typeof d.speech_end_s === "number") origins.push(t - d.total_s - d.speech_end_s);
          }
          break;
        case "error":
          marks.push({ t, kind: "error", label: "error", text: d.message || JSON.stringify(d) });
          break;
        default:
          if (TRANSFER_KINDS.has(e.kind)) {
            marks.push({ t, kind: "transfer", label: e.kind === "refer.progress" ? String(d.status || "") : "transfer", text: e.kind + " " + JSON.stringify(d) });
          }
      }
    }
    if (speaking !== null) caller.push({ a: speaking, b: end - t0, label: "", open: true });
    for (const [rid, a] of playing) agent.push({ a, b: end - t0, label: rid, cut: false, open: true });
    origins.sort((a, b) => a - b);
    const origin = origins.length ? origins[Math.floor(origins.length / 2)] : 0;
    return { span: Math.max(1, end - t0), caller, agent, marks, turns, origin };
  }

  function draw() {
    const svg = $("timeline-svg");
    if (!model) return;
    const m = build();
    svg.textContent = "";
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const x = (t) => LEFT + (Math.max(0, t) / m.span) * (W - LEFT - RIGHT);
    const lane = Object.fromEntries(LANES.map(([k, , y]) => [k, y]));
    for (const [, label, y] of LANES) {
      C.svgEl("text", { x: 4, y: y + 11, class: "lane-label" }, svg).textContent = label;
      C.svgEl("line", { x1: LEFT, x2: W - RIGHT, y1: y + LANE_H + 3, y2: y + LANE_H + 3, class: "gridline" }, svg);
    }
    // time axis
    const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => m.span / s <= 10) || 900;
    for (let t = 0; t <= m.span; t += step) {
      C.svgEl("line", { x1: x(t), x2: x(t), y1: 8, y2: H - 14, class: "gridline v" }, svg);
      C.svgEl("text", { x: x(t), y: H - 3, "text-anchor": "middle", class: "tick" }, svg).textContent =
        t >= 60 ? Math.floor(t / 60) + ":" + String(t % 60).padStart(2, "0") : t + "s";
    }
    const seg = (s, y, cls, tip) => {
      const r = C.svgEl("rect", { x: x(s.a), y, width: Math.max(1.5, x(s.b) - x(s.a)), height: LANE_H, rx: 2, class: cls }, svg);
      C.svgEl("title", {}, r).textContent = tip;
    };
    for (const s of m.caller) seg(s, lane.caller, "seg caller" + (s.open ? " open" : ""), `caller speaking ${s.a.toFixed(2)}–${s.b.toFixed(2)} s`);
    for (const s of m.agent) seg(s, lane.agent, "seg agent" + (s.cut ? " cut" : "") + (s.open ? " open" : ""), `agent ${s.label} ${s.a.toFixed(2)}–${s.b.toFixed(2)} s${s.cut ? " (cut by a barge-in)" : ""}`);
    for (const k of m.marks) {
      const X = x(k.t);
      const g = C.svgEl("g", { class: "mark-ev " + k.kind }, svg);
      if (k.kind === "barge-in") {
        C.svgEl("line", { x1: X, x2: X, y1: lane.caller, y2: lane.events + LANE_H, class: "barge" }, g);
      }
      C.svgEl("path", { d: `M${X},${lane.events}l5,8l-5,8l-5,-8z`, class: "diamond" }, g);
      C.svgEl("text", { x: X + 6, y: lane.events + 12, class: "ev-label" }, g).textContent = k.label;
      C.svgEl("title", {}, g).textContent = `${k.t.toFixed(2)} s: ${k.text}`;
    }
    for (const tr of m.turns) {
      const up = typeof tr.up === "number" ? tr.up : tr.total;
      const a = tr.t - tr.total;
      const g = C.svgEl("g", { class: "turn" }, svg);
      C.svgEl("rect", { x: x(a), y: lane.turns, width: Math.max(1, x(a + up) - x(a)), height: LANE_H, class: "turn-up" }, g);
      C.svgEl("rect", { x: x(a + up), y: lane.turns, width: Math.max(1, x(tr.t) - x(a + up)), height: LANE_H, class: "turn-bridge" }, g);
      C.svgEl("text", { x: x(tr.t) + 3, y: lane.turns + 12, class: "ev-label" }, g).textContent = Math.round(tr.total * 1000) + " ms";
      C.svgEl("title", {}, g).textContent = `turn ${Math.round(tr.total * 1000)} ms: upstream ${Math.round(up * 1000)} ms, rtbridge ${typeof tr.bridge === "number" ? Math.round(tr.bridge * 1000) : "?"} ms`;
    }
    if (!m.turns.length) {
      C.svgEl("text", { x: LEFT + 4, y: lane.turns + 12, class: "no-data" }, svg).textContent = "no data";
    }
    const head = C.svgEl("line", { x1: LEFT, x2: LEFT, y1: 6, y2: H - 14, class: "playhead", id: "playhead" }, svg);
    head.setAttribute("visibility", "hidden");
    model.x = x;
    model.span = m.span;
    model.origin = m.origin;
    playhead();
    turnSummary(m.turns);
  }

  function turnSummary(turns) {
    const d = model.detail && model.detail.turn_latency;
    let text = "turn latency: no data";
    if (d && d.count) text = `turn latency p50 ${Math.round(d.p50 * 1000)} ms · p95 ${Math.round(d.p95 * 1000)} ms · ${d.count} turn${d.count === 1 ? "" : "s"}`;
    else if (turns.length) {
      const s = turns.map((t) => t.total).sort((a, b) => a - b);
      const q = (p) => s[Math.max(0, Math.ceil(p * s.length) - 1)]; // nearest rank
      text = `turn latency p50 ${Math.round(q(0.5) * 1000)} ms · p95 ${Math.round(q(0.95) * 1000)} ms · ${s.length} turn${s.length === 1 ? "" : "s"}`;
    }
    setText("turn-summary", text);
  }

  function playhead() {
    const head = $("playhead");
    const audio = $("recording");
    if (!head || !model || !model.x || audio.hidden) return;
    const X = model.x(model.origin + (audio.currentTime || 0));
    head.setAttribute("x1", X);
    head.setAttribute("x2", X);
    head.setAttribute("visibility", "visible");
  }

  function follow() {
    playhead();
    if (!$("recording").paused) requestAnimationFrame(follow);
  }

  $("recording").addEventListener("timeupdate", playhead);
  $("recording").addEventListener("play", () => requestAnimationFrame(follow));
  $("recording").addEventListener("loadedmetadata", playhead);
  $("timeline-svg").addEventListener("click", (e) => {
    const audio = $("recording");
    if (!model || !model.span || audio.hidden) return;
    const svg = e.currentTarget;
    const box = svg.getBoundingClientRect();
    const X = ((e.clientX - box.left) / box.width) * W;
    const t = ((X - LEFT) / (W - LEFT - RIGHT)) * model.span - model.origin;
    if (t >= 0) {
      audio.currentTime = t;
      playhead();
    }
  });

  return { open, close, add, tick, ended, setDetail };
})();
