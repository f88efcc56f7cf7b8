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

  const params = new URLSearchParams(location.search);
  const token = params.get("t") || "";
  const viewerId = (() => {
    try {
      let id = localStorage.getItem("onair.viewer");
      if (!id) {
        id = crypto.getRandomValues(new Uint32Array(4)).join("-");
        localStorage.setItem("onair.viewer", id);
      }
      return id;
    } catch (e) { return "anonymous"; }
  })();

  let state = "connecting";
  let wasLive = false;

  function show(text) {
    overlayText.textContent = text;
    overlay.hidden = false;
  }

  function render() {
    overlay.dataset.state = state;
    badge.hidden = state !== "live";
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
        break;
      case "error":
        show("The broadcast has a problem. It will resume here by itself.");
        break;
      default:
        show("Connecting…");
    }
    updateUnmute();
    window.onairState = { state, wasLive }; // for tests and curious people
  }

  // --- event socket, reconnects when the box restarts ---
  let wsDelay = 500;
  function connectEvents() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = token ? "?t=" + encodeURIComponent(token) : "";
    const ws = new WebSocket(proto + "//" + location.host + "/api/live/ws" + q);
    ws.onopen = () => {
      wsDelay = 500;
      ws.send(JSON.stringify({ type: "hello", name: "", viewer: viewerId }));
    };
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.type === "state") {
        if (e.state === "live") wasLive = true;
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
    pc = new RTCPeerConnection();
    window.onairPC = pc; // for tests: its getStats() shows what arrives
    const mine = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      mark("track-" + e.track.kind);
      stream.addTrack(e.track);
      video.srcObject = stream;
      video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (mine !== pc) return;
      if (pc.connectionState === "connected") { mark("connected"); marking = false; }
      if (pc.connectionState === "failed" || pc.connectionState === "closed") retryMedia();
    };
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      mark("offer");
      await gathered(pc);
      mark("gathered");
      const headers = { "Content-Type": "application/sdp", "X-Viewer-Id": viewerId };
      if (token) headers.Authorization = "Bearer " + token;
      const resp = await fetch("/api/whep", { method: "POST", headers, body: pc.localDescription.sdp });
      if (resp.status !== 201) throw new Error("WHEP " + resp.status);
      session = resp.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
      mark("answer");
      whepDelay = 500;
    } catch (err) {
      marking = false;
      retryMedia();
    }
  }

  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000); // host candidates are enough on a LAN
    });
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
