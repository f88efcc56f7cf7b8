// OnAir viewer: plays the box's broadcast over WHEP and follows its state
// over the event socket. Plain JS, no build step.
"use strict";

(() => {
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const overlayText = document.getElementById("overlay-text");
  const titleEl = document.getElementById("title");
  const viewersEl = document.getElementById("viewers");
  const badge = document.getElementById("badge");
  const unmute = document.getElementById("unmute");
  const chat = document.getElementById("chat");
  const commentsEl = document.getElementById("comments");
  const chatNote = document.getElementById("chat-note");
  const form = document.getElementById("comment-form");
  const nameInput = document.getElementById("name");
  const commentInput = document.getElementById("comment");
  const heartsEl = document.getElementById("hearts");
  const replayOffer = document.getElementById("replay-offer");
  const replayLink = document.getElementById("replay-link");
  const replayList = document.getElementById("replay-list");

  const early = window.onairEarly; // early.js, in the head: who this is, and the first connection
  const token = early.token;
  const viewerId = early.viewerId;

  let state = "connecting";
  let wasLive = false;
  let isPrivate = false;
  let admitted = true;
  let commentsOn = true;
  let ws = null;

  function show(text) {
    overlayText.textContent = text;
    overlay.hidden = false;
  }

  function render() {
    overlay.dataset.state = state;
    badge.hidden = state !== "live" || !admitted;
    chat.hidden = !admitted || state === "connecting";
    replayOffer.hidden = true;
    if (!admitted) {
      show(token ? "This invite does not open this broadcast (it may have expired or been withdrawn)."
        : "This broadcast is private. Open the invite link you were sent.");
      updateUnmute();
      window.onairState = { state, wasLive, private: isPrivate, admitted };
      return;
    }
    switch (state) {
      case "live":
        overlay.hidden = true;
        break;
      case "going_live":
        show("Starting…");
        break;
      case "idle":
      case "stopping":
        show(wasLive ? "The broadcast has ended. Thanks for watching." : "Waiting for the broadcast to start…");
        offerReplays();
        break;
      case "error":
        show("The broadcast has a problem. It will resume here by itself.");
        break;
      default:
        show("Connecting…");
    }
    updateUnmute();
    window.onairState = { state, wasLive, private: isPrivate, admitted }; // for tests and curious people
  }

  // --- comments and hearts; every text goes in with textContent, never as HTML ---
  function addComment(c) {
    const li = document.createElement("li");
    li.dataset.id = c.id;
    if (c.broadcaster) li.className = "broadcaster";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = c.name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = c.text;
    li.append(who, text);
    const atBottom = commentsEl.scrollHeight - commentsEl.scrollTop - commentsEl.clientHeight < 40;
    commentsEl.append(li);
    while (commentsEl.children.length > 200) commentsEl.firstElementChild.remove();
    if (atBottom) commentsEl.scrollTop = commentsEl.scrollHeight;
  }
  function note(text) {
    chatNote.textContent = text;
    chatNote.hidden = !text;
  }
  function renderComments() {
    commentInput.disabled = !commentsOn;
    commentInput.placeholder = commentsOn ? "say something" : "comments are off";
    if (!commentsOn) note("Comments are off.");
    else if (chatNote.textContent === "Comments are off.") note("");
  }
  const heartSVG = document.querySelector("#heart svg");
  function floatHeart() {
    if (heartsEl.childElementCount > 30) return; // a storm of hearts stays light
    const h = document.createElement("span");
    h.append(heartSVG.cloneNode(true));
    h.style.left = Math.round(Math.random() * 20) + "px";
    h.style.setProperty("--drift", Math.round(Math.random() * 60 - 40) + "px");
    h.addEventListener("animationend", () => h.remove());
    heartsEl.append(h);
  }
  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }
  try { nameInput.value = localStorage.getItem("onair.name") || ""; } catch (e) {}
  nameInput.addEventListener("change", () => {
    try { localStorage.setItem("onair.name", nameInput.value.trim()); } catch (e) {}
    send({ type: "hello", name: nameInput.value.trim(), viewer: viewerId });
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = commentInput.value.trim();
    if (!text) return;
    if (!nameInput.value.trim()) { note("Pick a name first."); nameInput.focus(); return; }
    send({ type: "hello", name: nameInput.value.trim(), viewer: viewerId });
    send({ type: "comment", text });
    commentInput.value = "";
  });
  document.getElementById("heart").addEventListener("click", () => {
    send({ type: "heart" }); // the box echoes it to everyone, this page included
  });
  let noteTimer = 0;
  function refused(e) {
    let text = e.error || "refused";
    if (e.code === "rate_limited" && e.retry_after_s) text = "Slow down: wait " + Math.ceil(e.retry_after_s) + " s.";
    note(text);
    clearTimeout(noteTimer);
    noteTimer = setTimeout(() => { if (chatNote.textContent === text) renderComments(), note(commentsOn ? "" : "Comments are off."); }, 4000);
  }

  // --- replays on the waiting and ended screens ---
  async function offerReplays() {
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const resp = await fetch("/api/replays", { headers });
      if (!resp.ok) return;
      const list = await resp.json();
      if (!Array.isArray(list) || list.length === 0 || state === "live") return;
      const open = (r) => "/replays/" + encodeURIComponent(r.id) + (token ? "?t=" + encodeURIComponent(token) : "");
      const done = list.filter((r) => !r.recording);
      if (done.length === 0) return;
      replayLink.href = open(done[0]);
      replayList.replaceChildren(...done.slice(1, 6).map((r) => {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = open(r);
        a.textContent = (r.title || "Untitled") + " · " + new Date(r.start).toLocaleString();
        li.append(a);
        return li;
      }));
      replayOffer.hidden = state === "live" || !admitted;
    } catch (e) {}
  }

  // --- event socket, reconnects when the box restarts ---
  let wsDelay = 500;
  function connectEvents() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = token ? "?t=" + encodeURIComponent(token) : "";
    ws = new WebSocket(proto + "//" + location.host + "/api/live/ws" + q);
    ws.onopen = () => {
      wsDelay = 500;
      commentsEl.replaceChildren(); // the server sends the recent history again
      send({ type: "hello", name: nameInput.value.trim(), viewer: viewerId });
    };
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.type === "state") {
        if (e.state === "live" && e.admitted) wasLive = true;
        const wasAdmitted = admitted;
        isPrivate = !!e.private;
        admitted = e.admitted !== false;
        if (!admitted) { commentsEl.replaceChildren(); video.srcObject = null; }
        if (admitted && !wasAdmitted) retryMedia();
        state = e.state;
        render();
        if (state === "live") {
          video.play().catch(() => {});
        }
      } else if (e.type === "title") {
        titleEl.textContent = e.title || "";
        document.title = e.title ? e.title + " · OnAir" : "OnAir";
      } else if (e.type === "viewers") {
        viewersEl.textContent = String(e.viewers);
      } else if (e.type === "comment") {
        addComment(e);
      } else if (e.type === "reset") {
        commentsEl.replaceChildren(); // a new broadcast starts with an empty chat
      } else if (e.type === "comment_removed") {
        for (const li of commentsEl.querySelectorAll("li")) if (li.dataset.id === e.id) li.remove();
      } else if (e.type === "comments_enabled") {
        commentsOn = !!e.enabled;
        renderComments();
      } else if (e.type === "heart") {
        floatHeart();
      } else if (e.type === "error") {
        refused(e);
      }
    };
    ws.onclose = () => {
      state = "connecting";
      render();
      setTimeout(connectEvents, wsDelay);
      wsDelay = Math.min(wsDelay * 2, 5000);
    };
  }

  // --- WHEP: connect once, stay connected; media flows whenever live ---
  let pc = null;
  let session = null;
  let whepDelay = 500;
  // The first connection's steps as performance marks ("onair:offer", ...):
  // where the time from page load to picture goes (read by test/browser).
  let marking = true;
  function mark(name) {
    if (marking && performance.mark) performance.mark("onair:" + name);
  }
  async function connectMedia() {
    if (pc) { try { pc.close(); } catch (e) {} }
    let response = null;
    if (early.pc) {
      // The first connection, started in the head while the page was read.
      pc = early.pc;
      response = early.response;
      early.pc = early.response = null;
    } else {
      mark("start");
      pc = early.newConnection();
    }
    window.onairPC = pc; // for tests: its getStats() shows what arrives
    const mine = pc;
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      mark("track-" + e.track.kind);
      stream.addTrack(e.track);
      video.srcObject = stream;
      video.play().catch(() => {});
    };
    // Host candidates: a browser's first gathering enumerates its network
    // (several hundred ms in a fresh Chromium); checks start after it.
    pc.onicecandidate = (e) => { if (e.candidate && mine === pc) mark("candidate"); };
    pc.onconnectionstatechange = () => {
      if (mine !== pc) return;
      if (pc.connectionState === "connected") { mark("connected"); marking = false; }
      if (pc.connectionState === "failed" || pc.connectionState === "closed") retryMedia();
    };
    try {
      const resp = await (response || early.sendOffer(pc));
      if (resp.status === 401 || resp.status === 403) {
        // Private: the event socket says so; try again only when admitted.
        admitted = false;
        pc.close();
        video.srcObject = null;
        render();
        marking = false;
        return;
      }
      if (resp.status !== 201) throw new Error("WHEP " + resp.status);
      session = resp.headers.get("Location");
      const answer = await resp.text();
      mark("answer-received");
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      mark("answer");
      whepDelay = 500;
    } catch (err) {
      marking = false;
      retryMedia();
    }
  }

  let retrying = false;
  function retryMedia() {
    if (retrying) return;
    retrying = true;
    setTimeout(() => { retrying = false; connectMedia(); }, whepDelay);
    whepDelay = Math.min(whepDelay * 2, 5000);
  }

  window.addEventListener("pagehide", () => {
    if (session) navigator.sendBeacon && fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
  });

  // --- sound: browsers play muted video by themselves, sound needs a tap ---
  // Offered only while live: on the waiting and ended screens there is nothing to hear.
  function updateUnmute() { unmute.hidden = !(video.muted && state === "live"); }
  unmute.addEventListener("click", () => {
    video.muted = false;
    video.play().catch(() => {});
    updateUnmute();
  });
  video.addEventListener("volumechange", updateUnmute);
  updateUnmute();

  render();
  connectEvents();
  connectMedia();
})();
