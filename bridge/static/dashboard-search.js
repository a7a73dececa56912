// rtbridge dashboard: search ended calls (GET /v1/calls/search: number, profile, end reason,
// date; newest first, a page at a time with the server's cursor). A row opens the call's view.
"use strict";

window.rtbSearch = (() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 25;
  const state = { params: null, cursors: [null], page: 0, next: null };

  function party(uri) {
    const m = /^(?:sips?:|tel:)?([^@;>]+)/.exec(String(uri || "").replace(/^.*</, ""));
    return m ? m[1] : String(uri || "");
  }
  function when(epoch) {
    if (!epoch) return "";
    const d = new Date(epoch * 1000);
    return d.toLocaleDateString() + " " + d.toLocaleTimeString([], { hour12: false });
  }
  function dayStart(value) {
    // <input type=date> gives YYYY-MM-DD: the start of that day, the browser's time zone
    return value ? new Date(value + "T00:00:00").getTime() / 1000 : null;
  }

  function params() {
    const p = new URLSearchParams();
    const set = (k, v) => {
      if (v !== null && v !== undefined && String(v).trim() !== "") p.set(k, String(v).trim());
    };
    set("number", $("search-number").value);
    set("profile", $("search-profile").value);
    set("end_reason", $("search-reason").value);
    set("since", dayStart($("search-from").value));
    const to = dayStart($("search-to").value);
    set("until", to === null ? null : to + 86400); // the whole "to" day
    p.set("limit", String(PAGE));
    return p;
  }

  async function load() {
    const p = new URLSearchParams(state.params);
    const cursor = state.cursors[state.page];
    if (cursor) p.set("cursor", cursor);
    $("search-status").textContent = "searching…";
    let data;
    try {
      const r = await fetch("/v1/calls/search?" + p.toString(), { credentials: "same-origin", cache: "no-store" });
      data = await r.json();
      if (!r.ok) throw new Error((data.error && data.error.message) || r.status + " " + r.statusText);
    } catch (e) {
      $("search-status").textContent = "search failed: " + e.message;
      return;
    }
    state.next = data.next_cursor;
    render(data.data);
  }

  function render(rows) {
    const body = $("search-body");
    body.textContent = "";
    for (const rec of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = rec.id;
      const dur = rec.answered_at && rec.ended_at ? Math.round(rec.ended_at - rec.answered_at) + " s" : "";
      for (const [text, cls] of [
        [when(rec.offered_at), ""],
        [party(rec.from), "from"],
        [party(rec.to), ""],
        [rec.profile || "", ""],
        [dur, ""],
        [rec.end_reason || "", "reason"],
        [rec.leg || "", ""],
      ]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tr.title = rec.id;
      body.appendChild(tr);
    }
    const first = state.page * PAGE + (rows.length ? 1 : 0);
    $("search-status").textContent = rows.length
      ? `calls ${first}–${state.page * PAGE + rows.length}` + (state.next ? "" : " (last page)")
      : "no ended call matches";
    $("search-newer").disabled = state.page === 0;
    $("search-older").disabled = !state.next;
  }

  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.params = params().toString();
    state.cursors = [null];
    state.page = 0;
    load();
  });
  $("search-older").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.page += 1;
    load();
  });
  $("search-newer").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    load();
  });
  $("search-body").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr && window.rtbridgeDashboard.select) window.rtbridgeDashboard.select(tr.dataset.id);
  });

  return { state };
})();
