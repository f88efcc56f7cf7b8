// Headless Chromium plays the OnAir viewer page against a running onaird.
//
// run.sh builds and starts the daemon and sets:
//   ONAIR_URL        base URL of the daemon, e.g. http://127.0.0.1:41234
//   ONAIR_TOKEN      its admin token (go live / stop / title through the API)
//   ONAIR_ARTIFACTS  directory for the phone-sized screenshot
//   CHROMIUM         browser binary (default /usr/bin/chromium, Debian's)
//
// One scenario, step by step, in the order a viewer lives it: the page is
// opened while the box is idle, the crew goes live, stops and goes live again.
// A step that fails skips the rest, so the first failure is the one to read.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { audioPeak, api, artifacts, baseURL, chromiumArgs, executablePath, stepTimeoutMs, token } from "./lib.mjs";


const width = 1280; // video.width and video.height of run.sh's config
const height = 720;
const waitingText = "Waiting for the broadcast to start";
const endedText = "The broadcast has ended";
const hostileTitle = "<img src=x onerror=alert(1)>";
const loads = 5; // fresh page loads timed to first frame (odd: the median is one of them)


async function screenshot(page, name) {
  await mkdir(artifacts, { recursive: true });
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file });
  console.log(`# screenshot: ${file}`);
}

// What the test reads from the page in one round trip.
function snapshot() {
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  return {
    state: window.onairState ? window.onairState.state : null,
    overlayVisible: !overlay.hidden && getComputedStyle(overlay).display !== "none",
    overlayText: document.getElementById("overlay-text").textContent,
    badgeVisible: !document.getElementById("badge").hidden,
    unmuteVisible: !document.getElementById("unmute").hidden,
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    frames: q ? q.totalVideoFrames : -1,
    dropped: q ? q.droppedVideoFrames : -1,
    paused: video.paused,
  };
}

// Counts decoded frames over a second: the picture moves, not just its size.
async function framesIn(page, ms) {
  const first = await page.evaluate(snapshot);
  await page.waitForTimeout(ms);
  const second = await page.evaluate(snapshot);
  return { first, second, decoded: second.frames - first.frames };
}

// Audio as the page's RTCPeerConnection reports it. Chromium measures the
// level after the element's volume, so a muted <video> reports silence here.
async function audioStats(page) {
  return page.evaluate(async () => {
    const pc = window.onairPC;
    if (!pc) return null;
    const out = { packets: 0, energy: 0, level: 0, codec: "" };
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.packets = s.packetsReceived || 0;
        out.energy = s.totalAudioEnergy || 0;
        out.level = s.audioLevel || 0;
        if (s.codecId && stats.get(s.codecId)) out.codec = stats.get(s.codecId).mimeType;
      }
    });
    return out;
  });
}


// Installed before any page script runs: records when the first video frame is
// presented, on the page's own clock (performance.now() counts from the start
// of navigation), with requestVideoFrameCallback or, without it, by polling
// the decoded frame counter; and tells the test through onairFirstFrameSeen
// when the test has exposed it (the timed loads), so that the test waits
// without evaluating anything in the page: waitForFunction would inject
// Playwright's own script while the page connects (measured: 60-100 ms of the
// page's main thread, and of its first picture).
function recordFirstFrame() {
  window.onairFirstFrame = null;
  const seen = (ms, how) => {
    window.onairFirstFrame = { ms, how };
    if (typeof window.onairFirstFrameSeen === "function") window.onairFirstFrameSeen().catch(() => {});
  };
  document.addEventListener("DOMContentLoaded", () => {
    const video = document.getElementById("video");
    if (!video) return;
    if ("requestVideoFrameCallback" in video) {
      video.requestVideoFrameCallback((now) => seen(now, "requestVideoFrameCallback"));
      return;
    }
    const poll = () => {
      if (video.getVideoPlaybackQuality().totalVideoFrames > 0) {
        seen(performance.now(), "totalVideoFrames");
      } else {
        requestAnimationFrame(poll);
      }
    };
    requestAnimationFrame(poll);
  });
}

describe("viewer page in headless Chromium", () => {
  let context;
  let page;
  let userDataDir;
  const pageErrors = [];
  const consoleErrors = [];
  const dialogs = [];
  let broken = false;

  // A step that fails marks the scenario broken: the steps after it depend on
  // it and are skipped instead of failing for the same reason.
  function step(name, fn) {
    it(name, { timeout: 4 * stepTimeoutMs }, async (t) => {
      if (broken) {
        t.skip("an earlier step failed");
        return;
      }
      try {
        await fn(t);
      } catch (err) {
        broken = true;
        if (page && !page.isClosed()) {
          const file = path.join(artifacts, "viewer-failure.png");
          await mkdir(artifacts, { recursive: true });
          if (await page.screenshot({ path: file }).then(() => true, () => false)) {
            console.log(`# failed step's page: ${file}`);
          }
        }
        throw err;
      }
    });
  }

  before(async () => {
    userDataDir = await mkdtemp(path.join(tmpdir(), "onair-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: chromiumArgs,
      // A phone: what most viewers hold when they open the link.
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      timeout: 30_000,
    });
    context.setDefaultTimeout(stepTimeoutMs);
    await context.addInitScript(recordFirstFrame);
    page = context.pages()[0] || (await context.newPage());
    watch(page);
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  function watch(p) {
    p.on("pageerror", (err) => pageErrors.push(`${p.url()}: ${err.message}`));
    p.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(`${m.location().url || p.url()}: ${m.text()}`);
    });
    p.on("dialog", (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
  }

  step("idle box: the page shows the waiting screen", async () => {
    const status = await api("GET", "/api/status");
    assert.equal(status.state, "idle", "the box must be idle when the test starts");
    await page.goto(baseURL + "/");
    await page.waitForFunction(() => window.onairState && window.onairState.state === "idle");
    const s = await page.evaluate(snapshot);
    assert.ok(s.overlayVisible, "overlay hidden while idle");
    assert.match(s.overlayText, new RegExp(waitingText));
    assert.equal(s.badgeVisible, false, "LIVE badge shown while idle");
    assert.equal(s.unmuteVisible, false, "Tap for sound shown while there is nothing to hear");
    await screenshot(page, "viewer-waiting.png");
    // Survives only as long as the page is not reloaded (checked at the end).
    await page.evaluate(() => { window.onairSamePage = true; });
  });

  step("a title with markup shows as text, creates no element", async () => {
    await api("PATCH", "/api/broadcast", { title: hostileTitle });
    await page.waitForFunction((t) => document.getElementById("title").textContent === t, hostileTitle);
    const r = await page.evaluate(() => ({
      children: document.getElementById("title").children.length,
      images: document.getElementsByTagName("img").length,
      documentTitle: document.title,
    }));
    assert.equal(r.children, 0, "the title created elements");
    assert.equal(r.images, 0, "an <img> was created from the title");
    assert.ok(r.documentTitle.includes(hostileTitle), `document.title is ${JSON.stringify(r.documentTitle)}`);
    assert.deepEqual(dialogs, [], "a dialog was opened");
  });

  step(`go live: the video decodes ${width}x${height} frames and the overlay goes`, async () => {
    await api("POST", "/api/live");
    await page.waitForFunction(() => window.onairState && window.onairState.state === "live");
    await page.waitForFunction(
      ([w, h]) => {
        const v = document.getElementById("video");
        return v.videoWidth === w && v.videoHeight === h && v.getVideoPlaybackQuality().totalVideoFrames > 0;
      },
      [width, height],
    );
    const { first, second, decoded } = await framesIn(page, 1000);
    console.log(`# live: ${second.videoWidth}x${second.videoHeight}, ${decoded} frames decoded in 1 s, ` +
      `${second.dropped} dropped in all`);
    assert.ok(decoded >= 10, `frames do not advance: ${first.frames} -> ${second.frames} in 1 s`);
    assert.equal(second.overlayVisible, false, "overlay still covers the live video");
    assert.ok(second.badgeVisible, "no LIVE badge while live");
    assert.equal(second.paused, false, "video element is paused");
  });

  step("phone-sized screenshot of the live page", async () => {
    await screenshot(page, "viewer-live.png");
  });

  step("audio arrives above silence; Tap for sound unmutes it", async () => {
    // -40 dBFS: the test tone is at -18 dBFS, decoded silence is 0.
    const { tracks, peak } = await audioPeak(page, 1000);
    const dbfs = peak > 0 ? (20 * Math.log10(peak)).toFixed(1) : "-inf";
    console.log(`# audio: ${tracks} track(s), decoded peak ${peak.toFixed(3)} (${dbfs} dBFS) through an analyser`);
    assert.equal(tracks, 1, "no audio track on the video element");
    assert.ok(peak > 0.01, `decoded audio is silent: peak ${peak}`);

    const unmute = page.locator("#unmute");
    await unmute.waitFor({ state: "visible" });
    await unmute.tap();
    await page.waitForFunction(() => !document.getElementById("video").muted);
    assert.equal(await unmute.isVisible(), false, "Tap for sound still shown after the tap");
    let a = null;
    const deadline = Date.now() + stepTimeoutMs;
    while (Date.now() < deadline) {
      a = await audioStats(page);
      if (a && a.packets > 0 && (a.energy > 0 || a.level > 0)) break;
      await page.waitForTimeout(200);
    }
    assert.ok(a, "window.onairPC is missing");
    console.log(`# audio: ${a.codec}, ${a.packets} packets, inbound-rtp totalAudioEnergy ${a.energy.toFixed(4)}, ` +
      `audioLevel ${a.level.toFixed(3)}`);
    assert.ok(a.packets > 0, "no audio RTP packets received");
    assert.ok(a.energy > 0 || a.level > 0, "inbound-rtp stats report silence after unmuting");
  });

  step("stop: the page shows the ended screen", async () => {
    await api("DELETE", "/api/live");
    await page.waitForFunction(() => window.onairState && window.onairState.state === "idle");
    const s = await page.evaluate(snapshot);
    assert.ok(s.overlayVisible, "overlay hidden after the stop");
    assert.match(s.overlayText, new RegExp(endedText));
    assert.equal(s.badgeVisible, false, "LIVE badge shown after the stop");
    assert.equal(s.unmuteVisible, false, "Tap for sound shown after the stop");
    await screenshot(page, "viewer-ended.png");
  });

  step("second go-live plays again without a reload", async () => {
    const before = await page.evaluate(snapshot);
    await api("POST", "/api/live");
    await page.waitForFunction(() => window.onairState && window.onairState.state === "live");
    await page.waitForFunction(
      (n) => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > n + 5,
      before.frames,
    );
    const { first, second, decoded } = await framesIn(page, 1000);
    console.log(`# live again: ${second.videoWidth}x${second.videoHeight}, ${decoded} frames decoded in 1 s`);
    assert.ok(decoded >= 10, `frames do not advance: ${first.frames} -> ${second.frames} in 1 s`);
    assert.equal(second.videoWidth, width);
    assert.equal(second.videoHeight, height);
    assert.equal(second.overlayVisible, false, "overlay still covers the live video");
    assert.ok(await page.evaluate(() => window.onairSamePage === true), "the page was reloaded");
  });

  step("page load -> first decoded frame while live (printed)", async () => {
    // The scenario's page is done: closed, so it does not decode video on the
    // same CPU while fresh pages are timed one after the other.
    await page.close();
    const shown = new Map(); // page -> resolve, called by the page at its first frame
    await context.exposeBinding("onairFirstFrameSeen", ({ page: p }) => shown.get(p)?.());
    const runs = [];
    for (let i = 0; i < loads; i++) {
      const fresh = await context.newPage();
      watch(fresh);
      try {
        const firstFrame = new Promise((resolve) => shown.set(fresh, resolve));
        await fresh.goto(baseURL + "/", { waitUntil: "commit" });
        let timer;
        try {
          await Promise.race([firstFrame, new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no first frame within ${stepTimeoutMs} ms`)), stepTimeoutMs);
          })]);
        } finally {
          clearTimeout(timer);
        }
        runs.push(await fresh.evaluate(() => {
          const nav = performance.getEntriesByType("navigation")[0];
          const whep = performance.getEntriesByType("resource").find((e) => e.name.endsWith("/api/whep"));
          const marks = {};
          for (const m of performance.getEntriesByType("mark")) {
            const name = m.name.slice(6);
            if (m.name.startsWith("onair:") && !(name in marks)) marks[name] = m.startTime; // the first of each
          }
          return {
            firstFrame: window.onairFirstFrame.ms,
            how: window.onairFirstFrame.how,
            html: nav ? nav.responseEnd : NaN,
            domContentLoaded: nav ? nav.domContentLoadedEventEnd : NaN,
            whepAnswered: whep ? whep.responseEnd : NaN,
            marks,
          };
        }));
      } finally {
        await fresh.close();
      }
    }
    const ms = (v) => `${Math.round(v)} ms`;
    for (const r of runs) {
      // Each step's time since navigation start; the viewer's own marks show
      // the offer (sent without waiting for ICE gathering) apart from the
      // WHEP round trip, and when the browser had its first own candidate.
      const steps = [["html", r.html], ["DOMContentLoaded", r.domContentLoaded],
        ...["start", "offer"].map((k) => [k, r.marks[k]]), ["WHEP answered", r.whepAnswered],
        ...["answer-received", "answer", "candidate", "connected"].map((k) => [k, r.marks[k]])];
      console.log(`# page load -> first decoded frame: ${ms(r.firstFrame)} (${r.how}; ` +
        steps.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${ms(v)}`).join(", ") + ")");
    }
    const sorted = runs.map((r) => r.firstFrame).sort((a, b) => a - b);
    console.log(`# page load -> first decoded frame, median of ${runs.length}: ` +
      `${ms(sorted[(sorted.length - 1) / 2])}, best ${ms(sorted[0])} (goal: under 600 ms)`);
    await api("DELETE", "/api/live");
  });

  step("no script errors, console errors or dialogs on any page", async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(dialogs, []);
  });
});
