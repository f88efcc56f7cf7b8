// Headless Chromium plays a replay: the crew goes live for a few seconds and
// stops, the viewer page offers the replay, the replay page plays it from
// /api/replays/{id}/media, seeks to the middle, and frames decode there.
//
// Run through run.sh (same environment as viewer.test.mjs).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { api, baseURL, chromiumArgs, executablePath, stepTimeoutMs } from "./lib.mjs";


describe("replay in headless Chromium", () => {
  let browser;
  let page;
  let replay;
  const errors = [];
  let broken = false;

  function step(name, fn) {
    it(name, { timeout: 4 * stepTimeoutMs }, async (t) => {
      if (broken) return t.skip("an earlier step failed");
      try { await fn(t); } catch (err) { broken = true; throw err; }
    });
  }

  before(async () => {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: chromiumArgs,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    context.setDefaultTimeout(stepTimeoutMs);
    page = await context.newPage();
    page.on("pageerror", (err) => errors.push(err.message));
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
  });

  step("a broadcast of about 8 s is recorded and listed", async () => {
    await api("PATCH", "/api/broadcast", { private: false, title: "Replay test" });
    await api("POST", "/api/live", {});
    await new Promise((r) => setTimeout(r, 8000));
    await api("DELETE", "/api/live");
    const deadline = Date.now() + stepTimeoutMs;
    for (;;) {
      const list = await (await fetch(baseURL + "/api/replays")).json();
      replay = list.find((r) => r.title === "Replay test" && !r.recording);
      if (replay) break;
      assert.ok(Date.now() < deadline, "the replay did not finish: " + JSON.stringify(list));
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(replay.duration_s > 6 && replay.duration_s < 10, `duration ${replay.duration_s} s`);
  });

  step("the idle viewer page offers the replay", async () => {
    await page.goto(baseURL + "/");
    await page.waitForFunction(() => !document.getElementById("replay-offer").hidden);
    const href = await page.getAttribute("#replay-link", "href");
    assert.equal(href, "/replays/" + encodeURIComponent(replay.id));
  });

  step("the replay page plays from the start, seeks to the middle, and decodes there", async () => {
    await page.click("#replay-link");
    await page.waitForFunction(() => window.onairReplay && window.onairReplay.found);
    await page.waitForFunction(() => document.getElementById("video").readyState >= 2);
    const meta = await page.evaluate(() => {
      const v = document.getElementById("video");
      return { duration: v.duration, width: v.videoWidth, height: v.videoHeight };
    });
    assert.ok(Math.abs(meta.duration - replay.duration_s) < 1.5, `duration ${meta.duration} vs listed ${replay.duration_s}`);
    assert.deepEqual([meta.width, meta.height], [1280, 720]);
    const middle = meta.duration / 2;
    const seeked = await page.evaluate(async (to) => {
      const v = document.getElementById("video");
      v.muted = true;
      await new Promise((resolve) => { v.addEventListener("seeked", resolve, { once: true }); v.currentTime = to; });
      const before = v.getVideoPlaybackQuality().totalVideoFrames;
      await v.play();
      await new Promise((r) => setTimeout(r, 1500));
      return { at: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames - before, error: v.error && v.error.message };
    }, middle);
    assert.equal(seeked.error, null);
    assert.ok(seeked.at > middle + 0.5 && seeked.at < middle + 3, `played from ${middle} to ${seeked.at}`);
    assert.ok(seeked.frames >= 15, `${seeked.frames} frames decoded in 1.5 s after the seek`);
    console.log(`# replay ${replay.duration_s} s: seeked to ${middle.toFixed(1)} s, ${seeked.frames} frames in 1.5 s`);
  });

  step("no script errors", async () => {
    assert.deepEqual(errors, []);
  });
});
