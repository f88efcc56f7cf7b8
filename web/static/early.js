// OnAir viewer, first part: read in the page's head, before its body, it
// starts the WHEP exchange at once (the picture's path is the long one);
// viewer.js, at the end of the body, takes the connection over. Plain JS.
"use strict";
window.onairEarly = (() => {
  const token = new URLSearchParams(location.search).get("t") || "";
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

  // newConnection makes a receive-only connection for video and audio.
  function newConnection() {
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    return pc;
  }

  // sendOffer posts pc's offer to the box and resolves to its response.
  // The offer goes at once, without waiting for ICE gathering (150-200 ms
  // in Chromium): the box answers with its own candidates, this browser
  // checks them, and the box learns this end's address from those checks
  // (peer-reflexive), so the offer needs none of this end's candidates.
  async function sendOffer(pc) {
    await pc.setLocalDescription(await pc.createOffer());
    if (performance.mark) performance.mark("onair:offer");
    const headers = { "Content-Type": "application/sdp", "X-Viewer-Id": viewerId };
    if (token) headers.Authorization = "Bearer " + token;
    return fetch("/api/whep", { method: "POST", headers, body: pc.localDescription.sdp });
  }

  const early = { token, viewerId, newConnection, sendOffer, pc: null, response: null };
  try {
    if (performance.mark) performance.mark("onair:start");
    early.pc = newConnection();
    early.response = sendOffer(early.pc);
    early.response.catch(() => {}); // viewer.js sees the failure when it takes over
  } catch (e) {
    early.pc = null; // no WebRTC here: viewer.js tries again and says so
    early.response = null;
  }
  return early;
})();
