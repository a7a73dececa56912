// Drives Debian's Chromium with playwright-core for rtbridge's browser-call tests.
// Usage: node driver.cjs '<json config>'; prints one JSON result line on stdout.
// config: {chromium, wav, pageUrl, mode: "sdk" | "demo", screenshot, sdk: {...}}
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${cfg.wav}`,
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    page.on("console", (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
    page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
    await page.goto(cfg.pageUrl);
    let result;
    if (cfg.mode === "sdk") {
      result = await page.evaluate((c) => window.runSdk(c), cfg.sdk);
    } else {
      await page.click("#talk");
      await page.waitForFunction(
        () => {
          const s = window.rtbridgeDemo && window.rtbridgeDemo.stats;
          return s && (s.remoteLevel || 0) > 0.01 && document.querySelector("#transcript .agent");
        },
        null,
        { timeout: 45000, polling: 100 },
      );
      await page.waitForTimeout(500);
      result = await page.evaluate(() => ({
        callId: window.rtbridgeDemo.callId,
        remoteLevel: window.rtbridgeDemo.stats.remoteLevel,
        events: window.rtbridgeDemo.stats.events,
        transcript: document.querySelector("#transcript").innerText,
        eventLog: document.querySelector("#events").innerText,
        status: document.querySelector("#status").innerText,
      }));
    }
    if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
    if (cfg.mode === "demo") {
      await page.click("#talk"); // hang up from the page
      await page.waitForTimeout(300);
    }
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  process.stderr.write(`driver failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
