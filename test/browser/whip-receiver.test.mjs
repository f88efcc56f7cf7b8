// Headless Chromium as the media server: an independent receiver of the box's
// WHIP uplink (issue 11). The test runs a small WHIP endpoint: it hands the
// box's offer to a page (whip-receiver.html) through playwright-core and
// returns the page's answer, so Chromium's WebRTC stack, not pion, receives,
// decodes and sends the congestion feedback (TWCC, NACK, PLI, receiver
// reports) that most media servers send.
//
// run.sh builds and starts onaird (no uplink configured) and sets ONAIR_URL,
// ONAIR_TOKEN, ONAIR_ARTIFACTS and CHROMIUM (see lib.mjs). The test points the
// box at its endpoint with PATCH /api/uplink, goes live, and at the end stops
// and turns the uplink off again, also when a step fails.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";
import { audioPeak, api, artifacts, baseURL, chromiumArgs, executablePath, stepTimeoutMs } from "./lib.mjs";

const width = 1280; // video.width and video.height of run.sh's config
const height = 720;
const uplinkToken = "whip-test-" + Math.random().toString(36).slice(2);

// waitFor polls fn until it returns something truthy, or fails with what.
async function waitFor(what, fn, timeoutMs = stepTimeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) assert.fail(`waiting for ${what}: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metric(name) {
  const resp = await fetch(baseURL + "/metrics", { signal: AbortSignal.timeout(stepTimeoutMs) });
  const text = await resp.text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}

// What the page's video element and peer connection report.
async function received(page) {
  return page.evaluate(async () => {
    const video = document.getElementById("video");
    const q = video.getVideoPlaybackQuality();
    const out = {
      width: video.videoWidth, height: video.videoHeight, frames: q.totalVideoFrames,
      connection: window.onairPC ? window.onairPC.connectionState : "none",
      video: null, audio: null,
    };
    if (!window.onairPC) return out;
    const stats = await window.onairPC.getStats();
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      const codec = s.codecId && stats.get(s.codecId) ? stats.get(s.codecId).mimeType : "";
      if (s.kind === "video") {
        out.video = { codec, framesDecoded: s.framesDecoded || 0, keyFramesDecoded: s.keyFramesDecoded || 0,
          packetsLost: s.packetsLost || 0, nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
          freezeCount: s.freezeCount || 0 };
      } else {
        out.audio = { codec, packets: s.packetsReceived || 0 };
      }
    });
    return out;
  });
}


describe("Chromium receives the box's WHIP uplink", () => {
  let browser;
  let page;
  let server;
  let endpoint;
  let broken = false;
  const posts = []; // {auth, contentType, at}
  const deletes = [];
  const pageErrors = [];
  let liveAt = 0;

  // A step that fails skips the rest: they depend on it (unless it says it
  // is independent).
  function step(name, fn, { independent = false } = {}) {
    it(name, { timeout: 4 * stepTimeoutMs }, async (t) => {
      if (broken) {
        t.skip("an earlier step failed");
        return;
      }
      try {
        await fn(t);
      } catch (err) {
        broken = !independent;
        if (page && !page.isClosed()) {
          await mkdir(artifacts, { recursive: true });
          const file = path.join(artifacts, "whip-receiver-failure.png");
          if (await page.screenshot({ path: file }).then(() => true, () => false)) {
            console.log(`# failed step's page: ${file}`);
          }
        }
        throw err;
      }
    });
  }

  // The WHIP endpoint (RFC 9725): POST offer -> 201 + answer + Location,
  // DELETE of that Location ends the session. It also serves the page.
  async function handle(req, res) {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/receiver.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(await readFile(path.join(import.meta.dirname, "whip-receiver.html")));
      return;
    }
    if (req.method === "POST" && url.pathname === "/whip") {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const offer = Buffer.concat(chunks).toString();
      posts.push({ auth: req.headers.authorization, contentType: req.headers["content-type"], at: Date.now() });
      if (req.headers.authorization !== `Bearer ${uplinkToken}`) {
        res.writeHead(401).end("bad token");
        return;
      }
      const answer = await page.evaluate((o) => window.answerOffer(o), offer);
      posts[posts.length - 1].answeredAt = Date.now();
      res.writeHead(201, { "Content-Type": "application/sdp", Location: `/whip/${posts.length}` });
      res.end(answer);
      return;
    }
    if (req.method === "DELETE" && url.pathname.startsWith("/whip/")) {
      deletes.push(url.pathname);
      await page.evaluate(() => window.closeSession()).catch(() => {});
      res.writeHead(200).end();
      return;
    }
    res.writeHead(404).end();
  }

  before(async () => {
    server = http.createServer((req, res) => {
      handle(req, res).catch((err) => {
        console.log(`# endpoint: ${req.method} ${req.url}: ${err.message}`);
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err.message));
      });
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${server.address().port}`;
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs, timeout: 30_000 });
    page = await browser.newPage();
    page.setDefaultTimeout(stepTimeoutMs);
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(endpoint + "/receiver.html");
  });

  after(async () => {
    // Back to how run.sh started the box: idle, no uplink. Also after a
    // failed step, so that the other browser tests find it so.
    await api("DELETE", "/api/live").catch((err) => console.log(`# restore: stop: ${err.message}`));
    await api("PATCH", "/api/uplink", { url: "", token: "", enabled: false })
      .catch((err) => console.log(`# restore: uplink off: ${err.message}`));
    if (browser) await browser.close().catch(() => {});
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  step("the box is idle with no uplink", async () => {
    const st = await api("GET", "/api/status");
    assert.equal(st.state, "idle", "run.sh starts the box idle");
    assert.equal(st.uplink.state, "off");
  });

  step("PATCH /api/uplink points the box at the test's endpoint", async () => {
    const st = await api("PATCH", "/api/uplink", { url: endpoint + "/whip", token: uplinkToken, enabled: true });
    assert.equal(st.uplink.state, "off", "nothing is sent while idle");
    assert.equal(posts.length, 0, "no offer before going live");
  });

  step("going live sends an offer; Chromium answers and the uplink is up", async () => {
    liveAt = Date.now();
    await api("POST", "/api/live", { title: "WHIP to Chromium" });
    await waitFor("the box's offer", () => posts.length > 0);
    assert.equal(posts[0].auth, `Bearer ${uplinkToken}`, "the bearer token");
    assert.equal(posts[0].contentType, "application/sdp");
    await waitFor("Chromium's peer connection connected", async () => (await received(page)).connection === "connected");
    console.log(`# live -> offer ${posts[0].at - liveAt} ms, -> Chromium's answer ${posts[0].answeredAt - liveAt} ms, ` +
      `-> connected ${Date.now() - liveAt} ms`);
  });

  step("Chromium's video element decodes moving pictures", async () => {
    const first = await waitFor("the first decoded picture", async () => {
      const r = await received(page);
      return r.frames > 0 && r.width > 0 ? r : null;
    });
    console.log(`# live -> first picture decoded by Chromium within ${Date.now() - liveAt} ms`);
    assert.equal(first.width, width);
    assert.equal(first.height, height);
    await page.waitForTimeout(2000);
    const later = await received(page);
    const fps = (later.frames - first.frames) / 2;
    console.log(`# Chromium: ${fps} pictures/s decoded; inbound video ${JSON.stringify(later.video)}`);
    assert.ok(fps >= 15, `only ${fps} pictures per second decoded (the box sends 30)`);
    assert.match(later.video.codec, /H264/i);
    assert.ok(later.video.keyFramesDecoded >= 1, "no keyframe decoded");
    assert.equal(later.connection, "connected");
  });

  step("Chromium's audio has energy", async () => {
    const r = await received(page);
    assert.match(r.audio ? r.audio.codec : "", /opus/i, "an Opus track arrives");
    const a = await audioPeak(page, 1500);
    console.log(`# audio: ${a.tracks} track, peak ${a.peak.toFixed(3)} (the tone is at -18 dBFS, 0.126)`);
    assert.equal(a.tracks, 1);
    assert.ok(a.peak > 0.02, `audio peak ${a.peak}: silence`);
  });

  step("Chromium's congestion feedback reaches the box's controller", async () => {
    // TWCC from Chromium drives pion's GCC estimate on the box.
    const estimate = await waitFor("an uplink estimate from Chromium's feedback", async () => {
      const v = await metric("onair_uplink_estimate_kbps");
      return v > 0 ? v : null;
    });
    const bitrate = await metric("onair_uplink_bitrate_kbps");
    console.log(`# uplink: estimate ${estimate} kbps from Chromium's feedback, chosen bitrate ${bitrate} kbps`);
    assert.ok(bitrate > 0);
  });

  // Its own step, which does not skip the others when it fails: what the
  // crew and the operator see of an uplink that Chromium shows working.
  step("GET /api/status and /metrics show the uplink up", async () => {
    let seen = null;
    await waitFor("uplink state up in /api/status", async () => {
      seen = (await api("GET", "/api/status")).uplink;
      return seen.state === "up";
    }, 3000).catch((err) => assert.fail(`${err.message}; uplink ${JSON.stringify(seen)} while Chromium decodes it`));
    assert.equal(seen.error, "");
    assert.equal(await metric("onair_uplink_up"), 1, "onair_uplink_up");
  }, { independent: true });

  step("stopping ends the session with a DELETE", async () => {
    await api("DELETE", "/api/live");
    await waitFor("the DELETE of the session", () => deletes.length > 0);
    assert.equal(deletes[0], "/whip/1");
    await waitFor("onair_uplink_bitrate_kbps 0 (off)", async () => (await metric("onair_uplink_bitrate_kbps")) === 0);
    const st = await api("GET", "/api/status");
    assert.equal(st.uplink.state, "off");
    assert.deepEqual(pageErrors, [], "errors on the receiver page");
  });
});
