// Headless Chromium on the audience features of the viewer page: two viewers
// talk, hearts float, comments go off, markup stays text, and a private
// broadcast shows nothing without an invite but plays with one.
//
// Run through run.sh (same environment as viewer.test.mjs). The daemon is
// left as found: public, comments on, idle.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";
import { api, artifacts, baseURL, chromiumArgs, executablePath, stepTimeoutMs, token } from "./lib.mjs";

// audience.comment_interval of run.sh's config is the default 2 s.
const commentIntervalMs = 2_100;

const hostile = [
  "<script>window.pwned = 1; alert('script')</script>",
  "<img src=x onerror=\"window.pwned = 2; alert('img')\">",
  "javascript:alert('url') <a href=\"javascript:alert(4)\">link</a>",
];

const commentTexts = () => [...document.querySelectorAll("#comments li .text")].map((e) => e.textContent);
const frames = () => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames;

describe("audience in headless Chromium", () => {
  let browser;
  const dialogs = [];
  const pageErrors = [];
  let broken = false;
  const pages = {};

  function step(name, fn) {
    it(name, { timeout: 4 * stepTimeoutMs }, async (t) => {
      if (broken) return t.skip("an earlier step failed");
      try {
        await fn(t);
      } catch (err) {
        broken = true;
        await mkdir(artifacts, { recursive: true });
        for (const [who, p] of Object.entries(pages)) {
          if (!p.isClosed()) await p.screenshot({ path: path.join(artifacts, `audience-failure-${who}.png`) }).catch(() => {});
        }
        throw err;
      }
    });
  }

  // Each viewer is a browser context of its own: its own storage, so its own
  // viewer id, as two people on two phones.
  async function viewer(name, url = "/") {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
    });
    context.setDefaultTimeout(stepTimeoutMs);
    const page = await context.newPage();
    page.on("dialog", (d) => { dialogs.push(`${name}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
    page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
    await page.goto(baseURL + url);
    pages[name] = page;
    return page;
  }

  async function say(page, name, text) {
    if ((await page.inputValue("#name")) !== name) await page.fill("#name", name);
    await page.fill("#comment", text);
    await page.click("#send");
  }

  before(async () => {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: chromiumArgs,
    });
    await api("PATCH", "/api/broadcast", { private: false, comments_enabled: true, title: "Audience test" });
    await api("POST", "/api/live", {});
  });

  after(async () => {
    await api("PATCH", "/api/broadcast", { private: false, comments_enabled: true }).catch(() => {});
    await api("DELETE", "/api/live").catch(() => {});
    if (browser) await browser.close().catch(() => {});
  });

  step("two viewers exchange comments", async () => {
    const ann = await viewer("ann");
    const bob = await viewer("bob");
    await ann.waitForFunction(() => window.onairState && window.onairState.state === "live");
    await bob.waitForFunction(() => window.onairState && window.onairState.state === "live");
    await say(ann, "Ann", "hello from Ann");
    await say(bob, "Bob", "hi Ann, Bob here");
    for (const p of [ann, bob]) {
      await p.waitForFunction(() => {
        const t = [...document.querySelectorAll("#comments li .text")].map((e) => e.textContent);
        return t.includes("hello from Ann") && t.includes("hi Ann, Bob here");
      });
    }
    const names = await ann.evaluate(() => [...document.querySelectorAll("#comments li .who")].map((e) => e.textContent));
    assert.deepEqual(names.slice(-2), ["Ann", "Bob"]);
  });

  step("markup in comments stays text: no dialog, no element, no script run", async () => {
    const { ann, bob } = pages;
    await ann.waitForTimeout(commentIntervalMs);
    await say(ann, "Ann", hostile[0]);
    await say(bob, "<b>Bob</b>", hostile[1]);
    await ann.waitForTimeout(commentIntervalMs);
    await say(ann, "Ann", hostile[2]);
    for (const p of [ann, bob]) {
      await p.waitForFunction((want) => {
        const t = [...document.querySelectorAll("#comments li .text")].map((e) => e.textContent);
        return want.every((w) => t.includes(w));
      }, hostile);
      const injected = await p.evaluate(() => ({
        elements: document.querySelectorAll("#comments img, #comments script, #comments a, #comments b").length,
        pwned: window.pwned || 0,
        name: [...document.querySelectorAll("#comments li .who")].map((e) => e.textContent).includes("<b>Bob</b>"),
      }));
      assert.deepEqual(injected, { elements: 0, pwned: 0, name: true });
    }
    assert.deepEqual(dialogs, []);
  });

  step("commenting too fast shows how long to wait", async () => {
    const { bob } = pages;
    await say(bob, "Bob", "one more");
    await say(bob, "Bob", "and another one");
    await bob.waitForFunction(() => /wait \d+ s/.test(document.getElementById("chat-note").textContent));
  });

  step("a heart floats up on every screen", async () => {
    const { ann, bob } = pages;
    await bob.click("#heart");
    await ann.waitForFunction(() => document.querySelectorAll("#hearts span").length > 0);
    await bob.waitForFunction(() => document.querySelectorAll("#hearts span").length > 0);
  });

  step("phone-sized screenshot with comments", async () => {
    await mkdir(artifacts, { recursive: true });
    const file = path.join(artifacts, "viewer-comments-phone.png");
    await pages.ann.screenshot({ path: file });
    console.log(`# screenshot: ${file}`);
  });

  step("comments off: viewers see it and cannot post", async () => {
    const { ann } = pages;
    await api("PATCH", "/api/broadcast", { comments_enabled: false });
    await ann.waitForFunction(() => document.getElementById("chat-note").textContent.includes("Comments are off"));
    assert.equal(await ann.isDisabled("#comment"), true);
    await api("PATCH", "/api/broadcast", { comments_enabled: true });
    await ann.waitForFunction(() => !document.getElementById("comment").disabled);
  });

  step("private: no token shows 'private' and no video; an invite plays", async () => {
    await api("PATCH", "/api/broadcast", { private: true });
    const { ann } = pages;
    // A page that was watching loses the picture and says why.
    await ann.waitForFunction(() => window.onairState && window.onairState.admitted === false);
    const stranger = await viewer("stranger");
    await stranger.waitForFunction(() => window.onairState && window.onairState.admitted === false);
    assert.match(await stranger.textContent("#overlay-text"), /private/i);
    await stranger.waitForTimeout(1500);
    assert.equal(await stranger.evaluate(frames), 0, "an uninvited page decoded video");
    assert.equal(await stranger.evaluate(() => document.querySelectorAll("#comments li").length), 0);
    assert.equal(await stranger.evaluate(() => document.getElementById("title").textContent), "");

    const invite = await api("POST", "/api/invites", { name: "Guest", ttl: "1h" });
    const guestURL = new URL(invite.url);
    const guest = await viewer("guest", guestURL.pathname + guestURL.search);
    await guest.waitForFunction(() => window.onairState && window.onairState.admitted && window.onairState.state === "live");
    await guest.waitForFunction(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames > 5);
    assert.equal(await guest.textContent("#title"), "Audience test");
    await api("PATCH", "/api/broadcast", { private: false });
  });

  step("console: signs in, shows the comment stream, makes an invite with a QR code, removes a comment", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(stepTimeoutMs);
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`console: ${err.message}`));
    page.on("dialog", (d) => d.accept().catch(() => {}));
    pages.console = page;
    await page.goto(baseURL + "/console");
    await page.fill("#token", token);
    await page.click("#login button");
    await page.waitForFunction(() => document.querySelectorAll("#comments li").length > 0);
    const texts = await page.evaluate(() => [...document.querySelectorAll("#comments li")].map((li) => li.textContent));
    assert.ok(texts.some((t) => t.includes("hello from Ann")), "the console does not show the viewers' comments");
    await page.fill("#invite-name", "Console guest");
    await page.click("#invite-form button");
    await page.waitForFunction(() => !document.getElementById("qr-box").hidden && document.getElementById("qr").naturalWidth > 0);
    assert.match(await page.textContent("#qr-link"), /\/\?t=/);
    // Remove Ann's first comment from the console: it goes for the viewers too.
    const { bob } = pages;
    await page.evaluate(() => {
      const li = [...document.querySelectorAll("#comments li")].find((l) => l.textContent.includes("hello from Ann"));
      li.querySelector("button.remove").click();
    });
    await bob.waitForFunction(() => ![...document.querySelectorAll("#comments li .text")].some((e) => e.textContent === "hello from Ann"));
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, "console.png"), fullPage: true });
  });

  step("no script errors on any page", async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
  });
});
