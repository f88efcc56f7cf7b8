// OnAir replay page: plays one recorded broadcast from /api/replays/{id}/media
// (fMP4 with range requests, so the browser seeks anywhere). The invite
// token of a private broadcast opens its replay too.
"use strict";

(async () => {
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const overlayText = document.getElementById("overlay-text");
  const titleEl = document.getElementById("title");
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const token = new URLSearchParams(location.search).get("t") || "";
  const q = token ? "?t=" + encodeURIComponent(token) : "";
  document.getElementById("live-link").href = "/" + q;

  function show(text) {
    overlayText.textContent = text;
    overlay.hidden = false;
  }

  let info = null;
  try {
    const resp = await fetch("/api/replays", { headers: token ? { Authorization: "Bearer " + token } : {} });
    if (resp.ok) info = (await resp.json()).find((r) => r.id === id) || null;
  } catch (e) {}
  if (!info) {
    show("This replay is not here: it may have been deleted after 24 hours, or it is private (open your invite link).");
    window.onairReplay = { found: false };
    return;
  }
  titleEl.textContent = info.title || "Untitled broadcast";
  document.title = (info.title || "Replay") + " · OnAir";
  video.src = "/api/replays/" + encodeURIComponent(id) + "/media" + q;
  video.addEventListener("error", () => show("This replay cannot be played here."));
  window.onairReplay = { found: true, info };
})();
