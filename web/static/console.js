// OnAir console: go live, stop, title and the full status, with the admin
// token kept in this browser after the first sign-in.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let token = localStorage.getItem("onair.admin") || "";
  let current = null;

  async function api(method, path, body) {
    const resp = await fetch(path, {
      method,
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    if (resp.status === 401 || resp.status === 403) { signOut(); throw new Error(data.error || "sign in again"); }
    if (!resp.ok) throw new Error(data.error || "HTTP " + resp.status);
    return data;
  }

  function show(doc) {
    current = doc;
    $("state").textContent = doc.state + (doc.viewers ? " · " + doc.viewers + " viewers" : "");
    const live = doc.state === "live";
    $("live").textContent = live ? "Stop" : "Go live";
    $("live").classList.toggle("live", live);
    $("status").textContent = JSON.stringify(doc, null, 2);
    if (document.activeElement !== $("title")) $("title").value = doc.title || "";
  }

  async function refresh() {
    try { show(await api("GET", "/api/status")); $("error").textContent = ""; }
    catch (e) { $("error").textContent = e.message; }
  }

  function signOut() {
    localStorage.removeItem("onair.admin");
    token = "";
    $("controls").hidden = true;
    $("login").hidden = false;
  }

  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    localStorage.setItem("onair.admin", token);
    start();
  });
  $("signout").addEventListener("click", signOut);
  $("live").addEventListener("click", async () => {
    $("live").disabled = true;
    try {
      show(current && current.state === "live" ? await api("DELETE", "/api/live") : await api("POST", "/api/live", {}));
      $("error").textContent = "";
    } catch (e) { $("error").textContent = e.message; }
    $("live").disabled = false;
  });
  $("title-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { show(await api("PATCH", "/api/broadcast", { title: $("title").value })); }
    catch (err) { $("error").textContent = err.message; }
  });

  // The preview plays what the camera sees, idle or live: WHEP with the
  // admin token and ?preview=1. Nothing else leaves the box while idle.
  let previewPC = null;
  async function startPreview() {
    if (previewPC) return;
    const pc = new RTCPeerConnection();
    previewPC = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (e) => {
      const v = $("preview");
      if (!v.srcObject) v.srcObject = new MediaStream();
      v.srcObject.addTrack(e.track);
      v.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        previewPC = null;
        $("preview").srcObject = null;
        setTimeout(() => { if (token) startPreview(); }, 3000);
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
        setTimeout(resolve, 2000);
      });
      const resp = await fetch("/api/whep?preview=1", {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: "Bearer " + token },
        body: pc.localDescription.sdp,
      });
      if (resp.status !== 201) throw new Error("preview: HTTP " + resp.status);
      await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    } catch (e) {
      pc.close();
      previewPC = null;
    }
  }

  function start() {
    startPreview();
    $("login").hidden = true;
    $("controls").hidden = false;
    $("link").textContent = $("link").href = location.origin + "/";
    refresh();
  }

  setInterval(() => { if (token) refresh(); }, 2000);
  if (token) start(); else $("login").hidden = false;
})();
