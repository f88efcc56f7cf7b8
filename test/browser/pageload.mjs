// Times fresh loads of the viewer page on a live box, in one headless
// Chromium with a phone's screen (as viewer.test.mjs): page load -> first
// decoded frame, with resource timing and the page's own marks for each load.
// A bench tool (bench/pageload.sh starts the daemon), not a test.
//
//   ONAIR_URL=... ONAIR_TOKEN=... node pageload.mjs [loads]
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { api, baseURL, chromiumArgs, executablePath, stepTimeoutMs } from "./lib.mjs";

const loads = Number(process.argv[2] || 9);

// In the page before its scripts: tells node the first presented frame's
// time through a binding, so that nothing is evaluated in the page while it
// connects (Playwright's waitForFunction injects its own script).
function recordFirstFrame() {
  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("video").requestVideoFrameCallback((now) => window.onairFirstFrameSeen(now));
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "onair-pageload-"));
const context = await chromium.launchPersistentContext(dir, {
  executablePath, args: chromiumArgs, headless: true,
  viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
});
const shown = new Map();
await context.exposeBinding("onairFirstFrameSeen", ({ page }, ms) => shown.get(page)?.(ms));
await context.addInitScript(recordFirstFrame);
await api("POST", "/api/live");
await new Promise((r) => setTimeout(r, 1500));

const runs = [];
try {
  for (let i = 0; i < loads; i++) {
    const page = await context.newPage();
    const first = new Promise((resolve) => shown.set(page, resolve));
    await page.goto(baseURL + "/", { waitUntil: "commit" });
    let timer;
    const ms = await Promise.race([first, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("no first frame")), stepTimeoutMs);
    })]).finally(() => clearTimeout(timer));
    const r = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const steps = { html: nav.responseEnd, interactive: nav.domInteractive };
      for (const e of performance.getEntriesByType("resource")) steps[e.name.replace(/^.*\//, "")] = e.responseEnd;
      for (const m of performance.getEntriesByType("mark")) {
        const name = m.name.slice(6);
        if (m.name.startsWith("onair:") && !(name in steps)) steps[name] = m.startTime;
      }
      return steps;
    });
    await page.close();
    runs.push(ms);
    const line = Object.entries(r).sort((a, b) => a[1] - b[1]).map(([k, v]) => `${k} ${Math.round(v)}`).join(", ");
    console.log(`load ${i + 1}: first frame ${Math.round(ms)} ms (${line})`);
  }
} finally {
  await api("DELETE", "/api/live").catch(() => {});
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
const s = [...runs].sort((a, b) => a - b);
const later = runs.slice(1).sort((a, b) => a - b);
console.log(`page load -> first decoded frame: first load ${Math.round(runs[0])} ms; ` +
  `later loads median ${Math.round(later[(later.length - 1) >> 1])} ms, best ${Math.round(later[0])}, worst ${Math.round(later[later.length - 1])} ` +
  `(${runs.length} loads; all: median ${Math.round(s[(s.length - 1) >> 1])} ms; load average ${os.loadavg()[0].toFixed(1)})`);
