// Drives the ops dashboard in Debian's headless Chromium (playwright-core, never a downloaded
// browser) for tests/dashboard/test_dashboard_browser.py.
//
// argv[2] is a JSON config: {url, key, peers, artifacts, expect, timeoutMs}. The script talks to
// the Python test in lines on stdout ("STEP name {json}") and waits for "go" lines on stdin where
// the test has work to do (starting SIPp). Screenshots go to config.artifacts.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(path.join(cfg.peers, "package.json"));
const { chromium } = require("playwright-core");

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function step(name, data) {
  process.stdout.write(`STEP ${name} ${JSON.stringify(data ?? {})}\n`);
}

const stdin = createInterface({ input: process.stdin });
const lines = [];
let waiter = null;
stdin.on("line", (line) => {
  if (waiter) {
    const w = waiter;
    waiter = null;
    w(line);
  } else lines.push(line);
});
function nextLine() {
  if (lines.length) return Promise.resolve(lines.shift());
  return new Promise((resolve) => (waiter = resolve));
}

const liveRows = (page) => page.locator("#calls-body tr").count();

async function main() {
  // playwright gives the browser a fresh empty profile directory of its own
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: FLAGS });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push("console: " + m.text());
    });
    const shot = (name) => page.screenshot({ path: path.join(cfg.artifacts, name), fullPage: true });

    // 1. not logged in: the login form, with no way to put the key in a URL
    const first = await page.goto(cfg.url + "/dashboard");
    const loginStatus = first.status();
    await page.locator("#login").waitFor();
    await shot("01-login.png");
    // a wrong key is refused
    await page.fill("#key", "not-the-key");
    await Promise.all([page.waitForLoadState("load"), page.click("#login-button")]);
    const refused = await page.locator(".error").textContent();
    await page.fill("#key", cfg.key);
    await Promise.all([page.waitForURL(cfg.url + "/dashboard"), page.click("#login-button")]);
    await page.locator("#conn.live").waitFor({ timeout: 10000 });
    const cookies = await page.context().cookies();
    // from here on, a reload would reset this marker: the page must update in place
    await page.evaluate(() => (window.__sameDocument = true));
    errors.length = 0; // the 401s of the login steps above were expected
    await shot("02-logged-in.png");
    step("ready", {
      loginStatus,
      refused,
      url: page.url(),
      cookies: cookies.map((c) => ({ name: c.name, value: c.value, httpOnly: c.httpOnly, sameSite: c.sameSite })),
    });

    await nextLine(); // the test started SIPp (or stopped rtbridge)
    const modes = { transfer, reconnect, fleet: fleetView, timeline };
    if (modes[cfg.mode]) {
      await modes[cfg.mode](page, shot, errors);
      return;
    }

    // 2. watch the calls appear
    let peak = 0;
    const deadline = Date.now() + cfg.timeoutMs;
    while (Date.now() < deadline) {
      peak = Math.max(peak, await liveRows(page));
      if (peak >= cfg.expect) break;
      await page.waitForTimeout(100);
    }
    if (peak < cfg.expect) {
      await shot("03-live-calls.png");
      step("peak", { peak, counter: await page.locator("#active-count").textContent(), sample: null });
      return;
    }
    // let a stats tick fill jitter/loss and the meters
    await page.waitForTimeout(1200);
    const counter = await page.locator("#active-count").textContent();
    const sample = await page.locator("#calls-body tr").first().evaluate((tr) => ({
      id: tr.dataset.id,
      cells: [...tr.cells].map((td) => td.textContent),
    }));
    await shot("03-live-calls.png");
    // the filter box narrows the table to one call, and clearing it shows them all again
    await page.fill("#filter", sample.id.slice(5, 17));
    const filtered = await page.locator("#calls-body tr:not([hidden])").count();
    const filterCount = await page.locator("#filter-count").textContent();
    await page.fill("#filter", "");
    const unfiltered = await page.locator("#calls-body tr:not([hidden])").count();
    step("peak", { peak, counter, sample, filtered, filterCount, unfiltered });

    // 3. open one call's detail, then hang it up with the row's button
    const row = page.locator("#calls-body tr").nth(Math.floor(cfg.expect / 2));
    const id = await row.getAttribute("data-id");
    await row.locator("td.from").click();
    await page.locator("#detail:not([hidden])").waitFor();
    await page.locator("#events div").first().waitFor({ timeout: 10000 });
    // the agent's greeting, from the call's log or live
    await page.locator("#transcript p.agent").first().waitFor({ timeout: 10000 });
    const transcript = await page.locator("#transcript").textContent();
    await shot("04-call-detail.png");
    await row.locator("button.hangup").click();
    const selector = `#calls-body tr[data-id="${id}"]`;
    await page.waitForSelector(selector, { state: "detached", timeout: 10000 });
    const recent = page.locator(`#recent-body tr[data-id="${id}"] td.reason`);
    await recent.waitFor({ timeout: 10000 });
    const shownReason = await recent.textContent();
    await page.locator("#detail-state.ended").waitFor({ timeout: 10000 });
    const detailState = await page.locator("#detail-state").textContent();
    await shot("05-hung-up.png");
    const liveAfterHangup = await liveRows(page);
    step("hungup", { id, shownReason, detailState, liveAfterHangup, transcript });

    // 4. the rest end by themselves (SIPp's BYE after its pause): watch them disappear
    await page.waitForFunction(() => document.querySelectorAll("#calls-body tr").length === 0, null, {
      timeout: cfg.timeoutMs,
      polling: 200,
    });
    await page.waitForTimeout(300);
    await shot("06-all-ended.png");
    const end = await page.evaluate(() => ({
      sameDocument: window.__sameDocument === true,
      snapshots: window.rtbridgeDashboard.snapshots,
      ended: Number(document.getElementById("ended-count").textContent),
      recentRows: document.querySelectorAll("#recent-body tr").length,
      reasons: [...document.querySelectorAll("#recent-body td.reason")].map((td) => td.textContent),
      noCallsShown: !document.getElementById("no-calls").hidden,
      statsTicks: window.rtbridgeDashboard.statsTicks,
      statsMsMean: window.rtbridgeDashboard.statsMsTotal / Math.max(1, window.rtbridgeDashboard.statsTicks),
      statsMsMax: window.rtbridgeDashboard.statsMsMax,
    }));
    step("done", { ...end, errors });
  } catch (e) {
    step("error", { message: String(e && e.stack ? e.stack : e), errors });
    process.exitCode = 1;
  } finally {
    await browser.close();
    stdin.close();
  }
}

// One call: a refused transfer target, then an allowed one, from the call's panel.
async function transfer(page, shot, errors) {
  const row = page.locator("#calls-body tr:not(.offered)").first();
  await row.waitFor({ timeout: 20000 });
  const id = await row.getAttribute("data-id");
  await row.locator("td.from").click();
  await page.locator("#detail:not([hidden])").waitFor();
  await page.fill("#transfer-target", "sip:evil@192.0.2.1");
  await page.click("#transfer-button");
  await page.waitForFunction(() => document.getElementById("notice").textContent.includes("failed"), null, {
    timeout: 10000,
  });
  const refusedNotice = await page.locator("#notice").textContent();
  // the refusal is a security event: the panel lists it, live
  const alert = page.locator("#security-body tr.kind-destination-refused").first();
  await alert.waitFor({ timeout: 10000 });
  const securityRow = await alert.textContent();
  await shot("03-transfer-refused.png");
  errors.length = 0; // the browser logs the refusal's 403 as a console error
  await page.fill("#transfer-target", "sip:desk@127.0.0.1");
  await page.click("#transfer-button");
  await page.waitForSelector(`#calls-body tr[data-id="${id}"]`, { state: "detached", timeout: 20000 });
  const recent = page.locator(`#recent-body tr[data-id="${id}"] td.reason`);
  await recent.waitFor({ timeout: 10000 });
  const shownReason = await recent.textContent();
  await page.locator("#detail-state.ended").waitFor({ timeout: 10000 });
  const detailState = await page.locator("#detail-state").textContent();
  const notice = await page.locator("#notice").textContent();
  // the REFER and SIPp's NOTIFY, from the call's log, in the events pane
  await page.waitForFunction(() => document.getElementById("events").textContent.includes("refer.progress"), null, {
    timeout: 10000,
  });
  const events = await page.locator("#events").textContent();
  await shot("04-transferred.png");
  step("transferred", { id, refusedNotice, securityRow, shownReason, detailState, notice, events, errors });
}

// rtbridge stopped (the test said so): the page must notice, then come back by itself.
async function reconnect(page, shot, errors) {
  const connState = () => page.locator("#conn").textContent();
  await page.waitForFunction(() => !document.getElementById("conn").classList.contains("live"), null, {
    timeout: 15000,
  });
  await shot("03-dropped.png");
  step("dropped", { state: await connState() });
  await nextLine(); // rtbridge is back
  await page.waitForFunction(
    () => document.getElementById("conn").classList.contains("live") && window.rtbridgeDashboard.snapshots >= 2,
    null,
    { timeout: 30000 },
  );
  await shot("04-reconnected.png");
  const end = await page.evaluate(() => ({
    sameDocument: window.__sameDocument === true,
    snapshots: window.rtbridgeDashboard.snapshots,
  }));
  step("reconnected", { ...end, state: await connState(), errors });
}

// What the fleet view shows (its headline numbers and whether each chart drew something).
function fleetState(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const drawn = (sel) => {
      const p = document.querySelector(sel);
      return p ? (p.getAttribute("d") || "").length : 0;
    };
    return {
      shown: !document.getElementById("fleet").hidden,
      active: text("fleet-active"),
      success: text("fleet-success"),
      latency: text("fleet-latency"),
      upstream: text("fleet-upstream"),
      security: text("fleet-security"),
      activeLine: drawn("#chart-active path.line"),
      successLine: drawn("#chart-success path.line"),
      securityBars: [...document.querySelectorAll("#chart-security path.bars")].reduce(
        (n, p) => n + (p.getAttribute("d") || "").length,
        0,
      ),
      latencyNoData: getComputedStyle(document.querySelector("#chart-latency .no-data")).visibility,
      legend: [...document.querySelectorAll("#security-legend .legend-item:not([hidden])")].map((e) => e.dataset.kind),
    };
  });
}

// The fleet view with 50 live calls, then the page's stats ticks timed with 500.
async function fleetView(page, shot, errors) {
  const waitRows = async (n, timeout) => {
    await page.waitForFunction((n) => document.querySelectorAll("#calls-body tr:not(.offered)").length >= n, n, {
      timeout,
      polling: 200,
    });
  };
  await waitRows(cfg.expect, 40000);
  // the server samples the live calls once a second; the chart follows on the next tick
  await page.waitForFunction((n) => document.getElementById("fleet-active").textContent === "peak " + n, cfg.expect, {
    timeout: 10000,
  });
  await page.waitForTimeout(700);
  await shot("03-fleet-50.png");
  await page.screenshot({ path: path.join(cfg.artifacts, "03-fleet-50-view.png") });
  step("fleet50", { fleet: await fleetState(page), rows: await liveRows(page) });

  await nextLine(); // the test started the others
  await waitRows(cfg.many, 120000);
  await page.evaluate(() => {
    const s = window.rtbridgeDashboard;
    s.statsTicks = 0;
    s.statsMsTotal = 0;
    s.statsMsMax = 0;
  });
  await page.waitForFunction(() => window.rtbridgeDashboard.statsTicks >= 20, null, { timeout: 30000 });
  const rows = await liveRows(page);
  const fleet = await fleetState(page);
  await page.screenshot({ path: path.join(cfg.artifacts, "04-fleet-500-view.png") });
  await shot("04-fleet-500.png");
  const timing = await page.evaluate(() => {
    const s = window.rtbridgeDashboard;
    return { statsTicks: s.statsTicks, statsMsMean: s.statsMsTotal / Math.max(1, s.statsTicks), statsMsMax: s.statsMsMax };
  });
  // a click still answers at once: the live table filters
  const t0 = Date.now();
  await page.fill("#filter", "no-such-call");
  await page.waitForFunction(() => document.getElementById("filter-count").textContent === "0 shown", null, { timeout: 10000 });
  const filterMs = Date.now() - t0;
  await page.fill("#filter", "");
  step("fleet500", { ...timing, filterMs, rows, fleet, errors });
}

// One call's timeline: the caller's speech, the agent's playback cut by a barge-in, a tool
// call, a digit; then the recording player (the test serves the call's detail and its WAV).
async function timeline(page, shot, errors) {
  const row = page.locator("#calls-body tr:not(.offered)").first();
  await row.waitFor({ timeout: 20000 });
  const id = await row.getAttribute("data-id");
  await row.locator("td.from").click();
  await page.locator("#detail:not([hidden])").waitFor();
  const svg = page.locator("#timeline-svg");
  // a live call: the marks appear as the call logs them
  await svg.locator(".mark-ev.barge-in").first().waitFor({ timeout: 30000 });
  await svg.locator(".mark-ev.tool").first().waitFor({ timeout: 30000 });
  await svg.locator(".mark-ev.dtmf").first().waitFor({ timeout: 30000 });
  await page.locator("#detail-state.ended").waitFor({ timeout: 30000 });
  await page.waitForTimeout(300);
  const drawn = await page.evaluate(() => {
    const svg = document.getElementById("timeline-svg");
    const all = (sel) => [...svg.querySelectorAll(sel)];
    const box = (el) => ({ x: Number(el.getAttribute("x")), w: Number(el.getAttribute("width")) });
    const markX = (el) => Number(el.querySelector("path").getAttribute("d").slice(1).split(",")[0]);
    return {
      caller: all("rect.seg.caller").map(box),
      agent: all("rect.seg.agent").map(box),
      cut: all("rect.seg.agent.cut").map(box),
      bargeIns: all(".mark-ev.barge-in").map(markX),
      tools: all(".mark-ev.tool").map((g) => g.querySelector("text").textContent),
      toolX: all(".mark-ev.tool").map(markX),
      dtmf: all(".mark-ev.dtmf").map((g) => g.querySelector("text").textContent),
      turnsNoData: !!svg.querySelector("text.no-data"),
      summary: document.getElementById("turn-summary").textContent,
      recordingHidden: document.getElementById("recording").hidden,
      recordingInfo: document.getElementById("recording-info").textContent,
    };
  });
  await shot("03-timeline.png");
  await page.locator("#timeline-box").screenshot({ path: path.join(cfg.artifacts, "04-timeline-only.png") });
  step("timeline", { id, drawn, errors });

  // the recording player: reopen the call (ended: its recording complete)
  await nextLine();
  await page.click("#detail-close");
  await page.locator(`#recent-body tr[data-id="${id}"]`).click();
  const audio = page.locator("#recording:not([hidden])");
  await audio.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("recording").readyState >= 1, null, { timeout: 10000 });
  const duration = await page.evaluate(() => document.getElementById("recording").duration);
  // a click on the timeline seeks the recording there and moves the playhead with it
  const box = await page.locator("#timeline-svg").boundingBox();
  await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await page.waitForTimeout(200);
  const seek = await page.evaluate(() => {
    const head = document.getElementById("playhead");
    return {
      currentTime: document.getElementById("recording").currentTime,
      headX: Number(head.getAttribute("x1")),
      visible: head.getAttribute("visibility"),
    };
  });
  await page.evaluate(() => document.getElementById("recording").play());
  await page.waitForFunction((t) => document.getElementById("recording").currentTime > t + 0.3, seek.currentTime, {
    timeout: 10000,
  });
  const played = await page.evaluate(() => ({
    currentTime: document.getElementById("recording").currentTime,
    headX: Number(document.getElementById("playhead").getAttribute("x1")),
  }));
  await page.evaluate(() => document.getElementById("recording").pause());
  await shot("05-recording-player.png");
  await page.locator("#timeline-box").screenshot({ path: path.join(cfg.artifacts, "06-recording-player-only.png") });
  const info = await page.locator("#recording-info").textContent();
  step("recording", { duration, seek, played, info, errors });

  // the ended call, found by the search form (by its end reason and the caller's name), and
  // a search that matches nothing says so
  await page.fill("#search-number", "sipp");
  await page.fill("#search-reason", "remote-bye");
  await page.click("#search-button");
  await page.locator(`#search-body tr[data-id="${id}"]`).waitFor({ timeout: 10000 });
  const found = await page.locator("#search-body tr").count();
  const status = await page.locator("#search-status").textContent();
  await page.locator(`#search-body tr[data-id="${id}"] td.from`).click();
  await page.locator("#timeline-svg .mark-ev.barge-in").first().waitFor({ timeout: 10000 });
  await shot("07-search.png");
  await page.fill("#search-number", "+1 555 0199");
  await page.click("#search-button");
  await page.waitForFunction(() => document.getElementById("search-status").textContent === "no ended call matches", null, {
    timeout: 10000,
  });
  step("search", { found, status, errors });

  // the turn lane: the call's own turns, a bar each
  await page.waitForFunction(() => document.querySelectorAll("#timeline-svg g.turn").length >= 1, null, { timeout: 5000 });
  const turns = await page.evaluate(() => ({
    labels: [...document.querySelectorAll("#timeline-svg g.turn text")].map((t) => t.textContent),
    summary: document.getElementById("turn-summary").textContent,
  }));
  await page.locator("#timeline-box").screenshot({ path: path.join(cfg.artifacts, "08-timeline-turns.png") });
  step("turns", { ...turns, errors });
}

main();
