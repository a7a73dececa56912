// rtbridge ops dashboard. Plain JS, no build step.
//
// One EventSource (/dashboard/api/stream) keeps the live-calls table: a snapshot on every
// (re)connect, then offered/answered/ended and a stats tick twice a second. The same stream
// feeds the security events panel (what rtbridge refused: wrong keys, refused targets, ...). Rows are created
// once and updated in place (text and a meter transform only when a value changed), so a
// hundred calls cost a few hundred small DOM writes a second. Clicking a row opens a second
// EventSource for that call's log and live events, drawn as a timeline (dashboard-timeline.js,
// with the recording player when GET /v1/calls/{id} names a recording). The stream's snapshot
// and ticks also carry the fleet's last hour (dashboard-fleet.js); ended calls are searched
// with dashboard-search.js. Hang-up and transfer POST to the control plane's
// /v1/calls/{id}/... routes; the login cookie authorises them (same origin).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const RECENT_MAX = 50;
  const ALERTS_MAX = 50;
  const EVENTS_MAX = 400;
  const METER_FLOOR_DB = -60;
  // logged kinds whose live server event the events pane already showed
  const SHOWN_LIVE = new Set([
    "tool_call",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
  ]);
  const fleet = window.rtbFleet;
  const timeline = window.rtbTimeline;

  const state = {
    rows: new Map(), // call id -> {tr, cells, view, last}
    recent: new Map(), // call id -> tr
    alerts: 0, // security events shown since the last snapshot
    skew: 0, // server clock - browser clock (s)
    es: null,
    retryMs: 1000,
    detail: null, // {id, es, items: Set}
    endedCount: 0,
    snapshots: 0,
    filter: "",
    statsTicks: 0, // how long applying a stats tick takes (ms), for tests and the curious
    statsMsMax: 0,
    statsMsTotal: 0,
  };
  window.rtbridgeDashboard = state; // for tests and the curious

  // -- small helpers -------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function party(uri) {
    if (!uri) return "";
    const m = /^(?:sips?:|tel:)?([^@;>]+)(?:@([^;>]+))?/.exec(String(uri).replace(/^.*</, ""));
    if (!m) return String(uri);
    return m[2] ? m[1] + "@" + m[2].replace(/:\d+$/, "") : m[1];
  }
  function shortId(id) {
    return String(id).replace(/^call_/, "").slice(0, 10);
  }
  function serverNow() {
    return Date.now() / 1000 + state.skew;
  }
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds)); // the clocks may disagree by a few ms
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + ss : m + ":" + ss;
  }
  function fmtTime(epoch) {
    if (!epoch) return "";
    return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
  }
  function notice(text) {
    setText($("notice"), text || "");
  }
  function setConn(kind) {
    const c = $("conn");
    c.className = "conn " + kind;
    setText(c, kind);
    document.body.classList.toggle("stale", kind !== "live"); // the numbers may be old
  }

  // -- the live table ------------------------------------------------------------------

  function meter() {
    const m = el("span", "meter na");
    m.appendChild(el("span"));
    return m;
  }
  function setMeter(m, db) {
    const na = db === null || db === undefined;
    const frac = na ? 0 : Math.max(0, Math.min(1, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
    const key = na ? "na" : frac.toFixed(2);
    if (m.dataset.v === key) return;
    m.dataset.v = key;
    m.classList.toggle("na", na);
    m.classList.toggle("hot", !na && db > -6);
    m.firstChild.style.transform = "scaleX(" + frac.toFixed(2) + ")";
    m.title = na ? "no level" : db.toFixed(1) + " dBFS";
  }

  function makeRow(view) {
    const tr = el("tr");
    tr.dataset.id = view.id;
    const cells = {};
    for (const name of ["id", "dir", "from", "to", "profile", "dur", "codec", "jitter", "loss"]) {
      cells[name] = tr.appendChild(el("td", name === "jitter" || name === "loss" || name === "dur" ? "num " + name : name));
    }
    cells.inCell = tr.appendChild(el("td", "lvl-in"));
    cells.levelIn = cells.inCell.appendChild(meter());
    cells.outCell = tr.appendChild(el("td", "lvl-out"));
    cells.levelOut = cells.outCell.appendChild(meter());
    const act = tr.appendChild(el("td", "act"));
    const btn = act.appendChild(el("button", "hangup danger", "Hang up"));
    btn.type = "button";
    btn.dataset.action = "hangup";
    cells.hangup = btn;
    const row = { tr, cells, view: {}, stats: null };
    fill(row, view);
    return row;
  }

  function fill(row, view) {
    Object.assign(row.view, Object.fromEntries(Object.entries(view).filter(([, v]) => v !== undefined)));
    const v = row.view;
    const c = row.cells;
    setText(c.id, shortId(v.id));
    c.id.title = v.id;
    setText(c.dir, v.direction === "outbound" ? "out" : v.direction === "inbound" ? "in" : v.direction || "");
    if (v.leg === "webrtc") setText(c.dir, c.dir.textContent + " web");
    setText(c.from, party(v.from));
    c.from.title = v.from || "";
    setText(c.to, party(v.to));
    c.to.title = v.to || "";
    setText(c.profile, (v.profile || "") + (v.node ? " @ " + v.node : ""));
    setText(c.codec, v.codec || "");
    row.tr.classList.toggle("offered", v.state !== "answered");
    row.tr.classList.toggle("hold", !!v.on_hold);
    row.haystack = [v.id, v.from, v.to, v.profile, v.node, v.codec, v.direction, v.leg].join(" ").toLowerCase();
    applyFilter(row);
    tickDuration(row);
  }

  function applyFilter(row) {
    const hide = !!state.filter && !row.haystack.includes(state.filter);
    if (row.tr.hidden !== hide) row.tr.hidden = hide;
  }

  function tickDuration(row) {
    const v = row.view;
    const since = v.answered_at || v.offered_at;
    setText(row.cells.dur, v.state === "answered" ? fmtDuration(serverNow() - since) : "ringing");
  }

  function applyStats(row, s) {
    if (!s) return;
    const c = row.cells;
    setText(c.jitter, s.jitter_ms === null || s.jitter_ms === undefined ? "–" : s.jitter_ms.toFixed(1) + " ms");
    setText(c.loss, s.loss_pct === null || s.loss_pct === undefined ? "–" : s.loss_pct.toFixed(1) + " %");
    setMeter(c.levelIn, s.level_in);
    setMeter(c.levelOut, s.level_out);
    if (!!s.on_hold !== !!row.view.on_hold) {
      row.view.on_hold = !!s.on_hold;
      row.tr.classList.toggle("hold", row.view.on_hold);
    }
  }

  function upsert(view) {
    let row = state.rows.get(view.id);
    if (row) {
      fill(row, view);
    } else {
      row = makeRow(view);
      state.rows.set(view.id, row);
      $("calls-body").appendChild(row.tr);
      if (state.detail && state.detail.id === view.id) row.tr.classList.add("selected");
    }
    if (view.stats) applyStats(row, view.stats);
    counts();
    return row;
  }

  function removeRow(id) {
    const row = state.rows.get(id);
    if (!row) return null;
    row.tr.remove();
    state.rows.delete(id);
    counts();
    return row;
  }

  function counts() {
    setText($("active-count"), String(state.rows.size));
    if (state.filter) {
      let shown = 0;
      for (const row of state.rows.values()) if (!row.tr.hidden) shown += 1;
      setText($("filter-count"), shown + " shown");
    } else setText($("filter-count"), "");
    setText($("ended-count"), String(state.endedCount));
    $("no-calls").hidden = state.rows.size > 0;
    document.body.dataset.live = String(state.rows.size);
  }

  // -- recent ended calls ----------------------------------------------------------------

  function addRecent(rec, atTop) {
    const old = state.recent.get(rec.id);
    if (old) old.remove();
    const tr = el("tr");
    tr.dataset.id = rec.id;
    const dur = rec.answered_at && rec.ended_at ? fmtDuration(rec.ended_at - rec.answered_at) : "";
    const cells = [
      fmtTime(rec.ended_at),
      shortId(rec.id),
      rec.direction === "outbound" ? "out" : rec.direction === "inbound" ? "in" : rec.direction || "",
      party(rec.from),
      party(rec.to),
      rec.profile || "",
      dur,
      rec.end_reason || "",
      rec.sip_status ? String(rec.sip_status) : "",
    ];
    cells.forEach((text, i) => {
      const td = tr.appendChild(el("td", i === 7 ? "reason" : "", text));
      if (i === 1) td.title = rec.id;
    });
    const body = $("recent-body");
    if (atTop) body.insertBefore(tr, body.firstChild);
    else body.appendChild(tr);
    state.recent.set(rec.id, tr);
    while (body.childNodes.length > RECENT_MAX) {
      const last = body.lastChild;
      state.recent.delete(last.dataset.id);
      last.remove();
    }
  }

  // -- security events ---------------------------------------------------------------

  function addAlert(ev, atTop) {
    const tr = el("tr", "kind-" + ev.kind);
    tr.dataset.seq = String(ev.seq);
    const cells = [fmtTime(ev.at), ev.kind, ev.source || "", ev.detail || "", ev.call_id ? shortId(ev.call_id) : ""];
    cells.forEach((text, i) => {
      const td = tr.appendChild(el("td", i === 1 ? "kind" : i === 3 ? "detail" : "", text));
      if (i === 3) td.title = ev.detail || "";
      if (i === 4 && ev.call_id) td.title = ev.call_id;
    });
    const body = $("security-body");
    if (atTop) body.insertBefore(tr, body.firstChild);
    else body.appendChild(tr);
    while (body.childNodes.length > ALERTS_MAX) body.lastChild.remove();
    $("no-alerts").hidden = true;
    $("security-count").textContent = body.childNodes.length + " shown";
  }

  function onSecurity(events) {
    for (const ev of events) addAlert(ev, true); // oldest first: the newest ends on top
  }

  // -- trunks (OPTIONS keepalive) -----------------------------------------------------

  function showTrunks(trunks) {
    if (!trunks) return;
    const list = $("trunks-list");
    list.textContent = "";
    for (const t of trunks) {
      const li = list.appendChild(el("li", "trunk trunk-" + t.state));
      li.appendChild(el("b", "", t.name));
      li.appendChild(el("span", "state", " " + t.state));
      li.appendChild(el("span", "muted", " " + (t.detail || "")));
    }
    $("trunks").hidden = trunks.length === 0;
  }

  // -- the overview stream -------------------------------------------------------------

  function onSnapshot(snap) {
    state.snapshots += 1;
    state.skew = snap.now - Date.now() / 1000;
    const live = new Set(snap.calls.map((c) => c.id));
    for (const id of [...state.rows.keys()]) if (!live.has(id)) removeRow(id);
    for (const view of snap.calls) upsert(view);
    const body = $("recent-body");
    body.textContent = "";
    state.recent.clear();
    for (const rec of snap.recent) addRecent(rec, false);
    $("security-body").textContent = "";
    $("no-alerts").hidden = false;
    $("security-count").textContent = "";
    for (const ev of snap.security || []) addAlert(ev, false); // newest first
    fleet.reset(snap.fleet, snap.now);
    showTrunks(snap.trunks);
    counts();
  }

  function onEnded(ev) {
    const row = removeRow(ev.id);
    const rec = Object.assign({}, row ? row.view : { id: ev.id }, ev);
    state.endedCount += 1;
    counts();
    addRecent(rec, true);
    if (state.detail && state.detail.id === ev.id) $("detail-hangup").disabled = true;
  }

  function onStats(msg) {
    const t0 = performance.now();
    state.skew = msg.now - Date.now() / 1000;
    for (const [id, s] of Object.entries(msg.calls)) {
      const row = state.rows.get(id);
      if (row) applyStats(row, s);
    }
    fleet.update(msg.fleet, msg.now);
    showTrunks(msg.trunks);
    timeline.tick(msg.now);
    const ms = performance.now() - t0;
    state.statsTicks += 1;
    state.statsMsTotal += ms;
    state.statsMsMax = Math.max(state.statsMsMax, ms);
  }

  function connect() {
    setConn(state.es ? "reconnecting" : "connecting");
    const es = new EventSource("/dashboard/api/stream");
    state.es = es;
    const on = (name, fn) => es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("snapshot", onSnapshot);
    on("offered", upsert);
    on("answered", upsert);
    on("ended", onEnded);
    on("stats", onStats);
    on("security", onSecurity);
    es.onopen = () => {
      state.retryMs = 1000;
      setConn("live");
    };
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) {
        setConn("reconnecting"); // the browser retries by itself
        return;
      }
      setConn("offline");
      es.close();
      setTimeout(recover, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 15000);
    };
  }

  // The stream closed for good (server restarted, or the cookie is no longer valid).
  async function recover() {
    try {
      const r = await fetch("/dashboard", { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) {
        location.reload(); // shows the login form
        return;
      }
    } catch (e) {
      // still down: try again later
    }
    connect();
  }

  setInterval(() => {
    for (const row of state.rows.values()) tickDuration(row);
  }, 1000);

  // -- actions ---------------------------------------------------------------------------

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    if (r.ok) return null;
    let message = r.status + " " + r.statusText;
    try {
      const data = await r.json();
      if (data && data.error && data.error.message) message = data.error.message;
      else if (data && data.detail) message = JSON.stringify(data.detail);
    } catch (e) {
      // not JSON
    }
    return message;
  }

  async function hangup(id, button) {
    if (button) button.disabled = true;
    const err = await post("/v1/calls/" + encodeURIComponent(id) + "/hangup");
    if (err) {
      if (button) button.disabled = false;
      notice("Hang up " + shortId(id) + " failed: " + err);
    } else {
      notice("");
    }
  }

  async function transfer(id, target) {
    const err = await post("/v1/calls/" + encodeURIComponent(id) + "/transfer", { target });
    notice(err ? "Transfer " + shortId(id) + " failed: " + err : "");
    if (!err) logLine({ type: "transfer requested", text: target, ts: serverNow() });
  }

  $("filter").addEventListener("input", (e) => {
    state.filter = e.target.value.trim().toLowerCase();
    for (const row of state.rows.values()) applyFilter(row);
    counts();
  });

  $("calls-body").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    const button = e.target.closest("button");
    if (button && button.dataset.action === "hangup") {
      e.stopPropagation();
      hangup(tr.dataset.id, button);
      return;
    }
    select(tr.dataset.id);
  });
  $("recent-body").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr) select(tr.dataset.id);
  });
  $("detail-close").addEventListener("click", () => select(null));
  $("detail-hangup").addEventListener("click", (e) => {
    if (state.detail) hangup(state.detail.id, e.currentTarget);
  });
  $("transfer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const target = $("transfer-target").value.trim();
    if (state.detail && target) transfer(state.detail.id, target);
  });

  // -- one call's detail ---------------------------------------------------------------

  function logLine(ev) {
    const box = $("events");
    const line = el("div");
    line.appendChild(el("span", "t", fmtTime(ev.ts) + " "));
    let text = ev.type || ev.kind;
    const extra = ev.text || ev.message || ev.event || ev.status || ev.name || ev.arguments || "";
    if (extra) text += "  " + (typeof extra === "string" ? extra : JSON.stringify(extra));
    else if (ev.data && Object.keys(ev.data).length) text += "  " + JSON.stringify(ev.data);
    line.appendChild(document.createTextNode(text));
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.appendChild(line);
    while (box.childNodes.length > EVENTS_MAX) box.firstChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function say(who, itemId, text) {
    const d = state.detail;
    if (!d || !text) return;
    const key = who + ":" + (itemId || text);
    if (d.items.has(key)) return;
    d.items.add(key);
    const box = $("transcript");
    const p = el("p", who);
    p.appendChild(el("b", "", who === "user" ? "Caller: " : "Agent: "));
    p.appendChild(document.createTextNode(text));
    box.appendChild(p);
    box.scrollTop = box.scrollHeight;
  }

  function showInfo(v) {
    setText($("detail-title"), "Call " + shortId(v.id));
    $("detail-title").title = v.id;
    const parts = [
      v.direction, v.leg, (v.from || "?") + " → " + (v.to || "?"), "profile " + (v.profile || "?"),
      v.codec ? "codec " + v.codec : "", v.session_format ? "agent " + v.session_format : "",
    ].filter(Boolean);
    setText($("detail-info"), parts.join(" · "));
  }

  function showCounters(stats) {
    const dl = $("counters");
    if (!stats || !stats.counters) return;
    dl.textContent = "";
    for (const [k, v] of Object.entries(stats.counters)) {
      dl.appendChild(el("dt", "", k));
      dl.appendChild(el("dd", "", v === null ? "–" : String(v)));
    }
  }

  async function loadDetail(id) {
    // the API's view of the call: its recording and turn latencies (when rtbridge has them)
    try {
      const r = await fetch("/v1/calls/" + encodeURIComponent(id), { credentials: "same-origin", cache: "no-store" });
      if (r.ok && state.detail && state.detail.id === id) timeline.setDetail(await r.json());
    } catch (e) {
      // the timeline still draws from the log
    }
  }

  function select(id) {
    const d = state.detail;
    if (d) {
      d.es.close();
      const old = state.rows.get(d.id);
      if (old) old.tr.classList.remove("selected");
      const oldRecent = state.recent.get(d.id);
      if (oldRecent) oldRecent.classList.remove("selected");
    }
    state.detail = null;
    $("detail").hidden = !id;
    if (!id) {
      timeline.close();
      return;
    }
    const row = state.rows.get(id);
    if (row) row.tr.classList.add("selected");
    const rec = state.recent.get(id);
    if (rec) rec.classList.add("selected");
    $("transcript").textContent = "";
    $("events").textContent = "";
    $("counters").textContent = "";
    $("detail-hangup").disabled = !row;
    $("transfer-button").disabled = !row;
    setText($("detail-state"), row ? "live" : "");
    $("detail-state").className = "";
    showInfo(row ? row.view : { id });
    timeline.open(id, row ? row.view : null);
    const es = new EventSource("/dashboard/api/calls/" + encodeURIComponent(id) + "/stream");
    state.detail = { id, es, items: new Set() };
    loadDetail(id);
    const on = (name, fn) => es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("info", (v) => {
      showInfo(v);
      showCounters(v.stats);
    });
    on("log", (entries) => {
      $("events").textContent = ""; // a reconnect replays the whole log
      for (const e of entries) {
        if (e.kind === "transcript.user") say("user", e.data.item_id, e.data.text);
        else if (e.kind === "transcript.agent") say("agent", e.data.item_id, e.data.text);
        logLine(e);
      }
      timeline.add(entries);
    });
    on("logged", (entries) => {
      for (const e of entries) if (!SHOWN_LIVE.has(e.kind)) logLine(e);
      timeline.add(entries);
    });
    on("event", (ev) => {
      if (ev.who) say(ev.who, ev.item_id, ev.text);
      logLine(ev);
    });
    on("stats", showCounters);
    on("dropped", (m) => logLine({ type: "(" + m.count + " events not shown: the page fell behind)", ts: serverNow() }));
    on("ended", (rec) => {
      es.close();
      if (rec.from !== undefined) showInfo(rec);
      timeline.ended(rec);
      loadDetail(id); // the recording is complete now
      const st = $("detail-state");
      setText(st, "ended" + (rec.end_reason ? ": " + rec.end_reason : ""));
      st.className = "ended";
      $("detail-hangup").disabled = true;
      $("transfer-button").disabled = true;
    });
    es.onerror = () => {
      // a live call's stream reconnects by itself; a 404 (unknown call) closes it
      if (es.readyState === EventSource.CLOSED) setText($("detail-state"), "unavailable");
    };
  }

  state.select = select; // the search results open calls too
  counts();
  connect();
})();
