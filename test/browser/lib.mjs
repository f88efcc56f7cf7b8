// What every browser test shares: the environment run.sh sets, the admin
// API, and how Chromium is started (Debian's, never a downloaded one).
import assert from "node:assert/strict";
import path from "node:path";

export function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this test through test/browser/run.sh`);
  return v;
}

export const baseURL = requireEnv("ONAIR_URL").replace(/\/$/, "");
export const token = requireEnv("ONAIR_TOKEN");
export const artifacts = process.env.ONAIR_ARTIFACTS || path.resolve(import.meta.dirname, "../../test-artifacts");
export const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

// Seconds, not minutes: every wait is for something that takes well under a
// second on a healthy box, so a long wait is a failure to report.
export const stepTimeoutMs = 15_000;

// The flags of the issue: headless, no sandbox (root in CI), no GPU, no QUIC,
// nothing phoning home; and autoplay so that muted video starts by itself.
export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];

// api calls the daemon's HTTP API with the admin token and returns the JSON.
export async function api(method, urlPath, body) {
  const resp = await fetch(baseURL + urlPath, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(stepTimeoutMs),
  });
  const text = await resp.text();
  assert.ok(resp.ok, `${method} ${urlPath}: HTTP ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Peak of the page's received audio over ms, through a Web Audio analyser:
// what a viewer would hear, muted element or not (getStats reports a muted
// element as silence).
export async function audioPeak(page, ms) {
  return page.evaluate(async (ms) => {
    const video = document.getElementById("video");
    const tracks = video.srcObject ? video.srcObject.getAudioTracks() : [];
    if (tracks.length === 0) return { tracks: 0, peak: 0 };
    const ac = new AudioContext();
    try {
      await ac.resume();
      const analyser = ac.createAnalyser();
      ac.createMediaStreamSource(new MediaStream(tracks)).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      let peak = 0;
      const end = performance.now() + ms;
      while (performance.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        analyser.getFloatTimeDomainData(buf);
        for (const x of buf) peak = Math.max(peak, Math.abs(x));
      }
      return { tracks: tracks.length, peak };
    } finally {
      await ac.close();
    }
  }, ms);
}
