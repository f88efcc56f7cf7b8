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
    $("private").checked = !!doc.private;
    if (doc.uplink) $("uplink-state").textContent = "uplink: " + doc.uplink.state + (doc.uplink.error ? " (" + doc.uplink.error + ")" : "");
    const peak = doc.audio ? doc.audio.peak_dbfs : -100;
    $("level").style.width = Math.max(0, Math.min(100, (peak + 60) / 60 * 100)) + "%";
    $("level-text").textContent = doc.audio ? Math.round(peak) + " dBFS" : "";
  }

  $("uplink-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { url: $("uplink-url").value.trim(), enabled: $("uplink-on").checked };
    if ($("uplink-token").value) body.token = $("uplink-token").value;
    try { show(await api("PATCH", "/api/uplink", body)); $("error").textContent = ""; }
    catch (err) { $("error").textContent = err.message; }
  });
  $("private").addEventListener("change", async () => {
    try { show(await api("PATCH", "/api/broadcast", { private: $("private").checked })); }
    catch (e) { $("error").textContent = e.message; }
  });
  $("comments-on").addEventListener("change", async () => {
    try { show(await api("PATCH", "/api/broadcast", { comments_enabled: $("comments-on").checked })); }
    catch (e) { $("error").textContent = e.message; }
  });

  // --- the comment stream, with remove and block; text goes in as text ---
  function addComment(c) {
    const li = document.createElement("li");
    li.dataset.id = c.id;
    if (c.broadcaster) li.className = "broadcaster";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = c.name;
    const text = document.createElement("span");
    text.textContent = c.text;
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "remove"; remove.textContent = "remove";
    remove.addEventListener("click", () => api("DELETE", "/api/comments/" + encodeURIComponent(c.id)).catch((e) => { $("error").textContent = e.message; }));
    li.append(who, text, remove);
    if (!c.broadcaster) {
      const block = document.createElement("button");
      block.type = "button"; block.className = "remove"; block.textContent = "block";
      block.addEventListener("click", () => api("POST", "/api/blocks", { viewer: c.viewer }).catch((e) => { $("error").textContent = e.message; }));
      li.append(block);
    }
    $("comments").append(li);
    $("comments").scrollTop = $("comments").scrollHeight;
  }
  let ws = null;
  function connectEvents() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/api/live/ws?t=" + encodeURIComponent(token));
    ws.onopen = () => $("comments").replaceChildren();
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.type === "comment") addComment(e);
      else if (e.type === "comment_removed") {
        for (const li of $("comments").querySelectorAll("li")) if (li.dataset.id === e.id) li.remove();
      } else if (e.type === "comments_enabled") $("comments-on").checked = !!e.enabled;
      else if (e.type === "error") $("error").textContent = e.error;
    };
    ws.onclose = () => { if (token) setTimeout(connectEvents, 2000); };
  }
  $("comment-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("comment").value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "comment", text }));
    $("comment").value = "";
  });

  // --- replays: watch, keep past the retention, delete ---
  async function loadReplays() {
    const list = await api("GET", "/api/replays");
    $("replays").replaceChildren(...list.map((r) => {
      const tr = document.createElement("tr");
      const title = document.createElement("td");
      const a = document.createElement("a");
      a.href = "/replays/" + encodeURIComponent(r.id);
      a.target = "_blank";
      a.textContent = (r.title || "Untitled") + (r.private ? " (private)" : "") + (r.recording ? " (recording)" : "");
      title.append(a);
      const start = document.createElement("td");
      start.textContent = new Date(r.start).getUTCFullYear() < 2000 ? "date unknown" : new Date(r.start).toLocaleString();
      const len = document.createElement("td");
      len.textContent = Math.round(r.duration_s) + " s, " + (r.size_bytes / 1e6).toFixed(1) + " MB";
      const actions = document.createElement("td");
      const keep = document.createElement("button");
      keep.type = "button"; keep.textContent = r.keep ? "kept (undo)" : "keep";
      keep.addEventListener("click", async () => {
        try { await api("PATCH", "/api/replays/" + encodeURIComponent(r.id), { keep: !r.keep }); loadReplays(); }
        catch (e) { $("error").textContent = e.message; }
      });
      const del = document.createElement("button");
      del.type = "button"; del.textContent = "delete"; del.disabled = r.recording;
      del.addEventListener("click", async () => {
        if (!confirm("Delete this replay?")) return;
        try { await api("DELETE", "/api/replays/" + encodeURIComponent(r.id)); loadReplays(); }
        catch (e) { $("error").textContent = e.message; }
      });
      actions.append(keep, del);
      tr.append(title, start, len, actions);
      return tr;
    }));
  }

  // --- invites: a link per person, with a QR code to show on a phone ---
  async function loadInvites() {
    const list = await api("GET", "/api/invites");
    $("invites").replaceChildren(...list.filter((i) => !i.revoked).map((inv) => {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = inv.name || "(no name)";
      const exp = document.createElement("td");
      exp.textContent = new Date(inv.expires).toLocaleString();
      const actions = document.createElement("td");
      const qr = document.createElement("button");
      qr.type = "button"; qr.textContent = "QR";
      qr.addEventListener("click", () => showQR(inv));
      const copy = document.createElement("button");
      copy.type = "button"; copy.textContent = "copy link";
      copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(inv.url));
      const revoke = document.createElement("button");
      revoke.type = "button"; revoke.textContent = "revoke";
      revoke.addEventListener("click", async () => {
        try { await api("DELETE", "/api/invites/" + encodeURIComponent(inv.id)); loadInvites(); }
        catch (e) { $("error").textContent = e.message; }
      });
      actions.append(qr, copy, revoke);
      tr.append(name, exp, actions);
      return tr;
    }));
  }
  async function showQR(inv) {
    const resp = await fetch("/api/invites/" + encodeURIComponent(inv.id) + "/qr", { headers: { Authorization: "Bearer " + token } });
    if (!resp.ok) return;
    const old = $("qr").src;
    $("qr").src = URL.createObjectURL(await resp.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("qr-link").textContent = $("qr-link").href = inv.url;
    $("qr-box").hidden = false;
  }
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("invite-name").value.trim() };
    if ($("invite-ttl").value.trim()) body.ttl = $("invite-ttl").value.trim();
    try {
      const inv = await api("POST", "/api/invites", body);
      $("invite-name").value = "";
      await loadInvites();
      showQR(inv);
    } catch (err) { $("error").textContent = err.message; }
  });

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
    if (!ws) connectEvents();
    loadInvites().catch(() => {});
    loadReplays().catch(() => {});
  }

  setInterval(() => { if (token) refresh(); }, 2000);
  setInterval(() => { if (token) loadReplays().catch(() => {}); }, 10000);
  if (token) start(); else $("login").hidden = false;
})();
