//go:build cgo

package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/config"
	"github.com/onair/onair/internal/whepclient"
)

// replays lists what a request with token (may be "") sees.
func (r *running) replays(t *testing.T, token string) []map[string]any {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	code, body := r.call(t, http.MethodGet, "/api/replays", "", h)
	if code != 200 {
		t.Fatalf("GET /api/replays: %d %s", code, body)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// get fetches path with optional headers and returns the status and body.
func (r *running) get(t *testing.T, path string, header map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// probe returns the codecs ffprobe finds in an MP4 and its duration, after
// checking that ffmpeg decodes it without a single error.
func probe(t *testing.T, mp4 []byte) (codecs string, duration float64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replay.mp4")
	if err := os.WriteFile(path, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("ffmpeg decode errors: %v\n%s", err, out)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	json.Unmarshal(out, &p)
	var names []string
	for _, s := range p.Streams {
		names = append(names, s.CodecName)
	}
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return strings.Join(names, ","), d
}

func TestReplayRecordedListedServed(t *testing.T) {
	r := start(t, nil)
	defer r.stop()
	r.goLive(t)
	waitFor(t, "recording", func() bool { return r.d.Status().Recording.State == "recording" })
	if list := r.replays(t, ""); len(list) != 1 || list[0]["recording"] != true {
		t.Fatalf("while live: %v", list)
	}
	time.Sleep(3 * time.Second)
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitFor(t, "the replay finished", func() bool {
		list := r.replays(t, "")
		return len(list) == 1 && list[0]["recording"] == false
	})
	info := r.replays(t, "")[0]
	id := info["id"].(string)
	if info["title"] != "Test" || info["private"] != false || info["size_bytes"].(float64) <= 0 {
		t.Fatalf("replay %v", info)
	}

	code, mp4, h := r.get(t, "/api/replays/"+id+"/media", nil)
	if code != 200 || h.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("media: %d, Accept-Ranges %q", code, h.Get("Accept-Ranges"))
	}
	codecs, d := probe(t, mp4)
	if codecs != "h264,opus" && codecs != "opus,h264" {
		t.Fatalf("streams %q, want h264 and opus", codecs)
	}
	if got := info["duration_s"].(float64); d < 2.5 || d > 4.5 || got < 2.5 || got > 4.5 {
		t.Fatalf("duration: ffprobe %.2f s, listed %.2f s; went live for about 3 s", d, got)
	}
	code, part, h := r.get(t, "/api/replays/"+id+"/media", map[string]string{"Range": "bytes=100-199"})
	if code != 206 || len(part) != 100 || string(part) != string(mp4[100:200]) || !strings.HasPrefix(h.Get("Content-Range"), "bytes 100-199/") {
		t.Fatalf("range: %d, %d bytes, Content-Range %q", code, len(part), h.Get("Content-Range"))
	}
	for _, c := range []struct {
		path   string
		range_ string
		want   int
	}{
		{"/api/replays/" + id + "/media", "bytes=999999999-", 416},
		{"/api/replays/" + id + "/media", "bytes=junk", 416},
		{"/api/replays/nope/media", "", 404},
		{"/api/replays/..%2F..%2Fadmin-token/media", "", 404},
		{"/api/replays/%2e%2e/media", "", 404},
		{"/api/replays/" + url.PathEscape(id+"/../x") + "/media", "", 404},
	} {
		h := map[string]string{}
		if c.range_ != "" {
			h["Range"] = c.range_
		}
		if code, body, _ := r.get(t, c.path, h); code != c.want {
			t.Fatalf("GET %s (Range %q): %d %s, want %d", c.path, c.range_, code, body, c.want)
		}
	}
	// The replay page, its script written in (web serves pages whole).
	if code, body, _ := r.get(t, "/replays/"+id, nil); code != 200 || !strings.Contains(string(body), `"/api/replays/" + encodeURIComponent(id)`) {
		t.Fatalf("replay page: %d\n%.300s", code, body)
	}

	// Keep, then delete: over HTTP and over MQTT's entry point.
	if code, body := r.admin(t, http.MethodPatch, "/api/replays/"+id, `{"keep":true}`); code != 200 || !strings.Contains(body, `"keep":true`) {
		t.Fatalf("keep: %d %s", code, body)
	}
	if code, _ := r.call(t, http.MethodDelete, "/api/replays/"+id, "", nil); code != 401 {
		t.Fatalf("delete without the admin token: %d", code)
	}
	if err := (controller{r.d}).ReplayDelete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := r.get(t, "/api/replays/"+id+"/media", nil); code != 404 {
		t.Fatalf("deleted replay's media: %d", code)
	}
	if code, _ := r.admin(t, http.MethodDelete, "/api/replays/"+id, ""); code != 404 {
		t.Fatalf("deleting twice: %d", code)
	}
	if !strings.Contains(string(must(r.call(t, http.MethodGet, "/metrics", "", nil))), "onair_recording_bytes_total") {
		t.Fatal("no onair_recording_bytes_total in /metrics")
	}
}

func must(_ int, body string) string { return body }

func TestPrivateReplayNeedsItsInvite(t *testing.T) {
	r := start(t, nil)
	defer r.stop()
	code, body := r.admin(t, http.MethodPost, "/api/invites", `{"name":"guest"}`)
	if code != 201 {
		t.Fatalf("invite: %d %s", code, body)
	}
	var inv struct{ URL string }
	json.Unmarshal([]byte(body), &inv)
	u, _ := url.Parse(inv.URL)
	guest := u.Query().Get("t")
	if code, body := r.admin(t, http.MethodPost, "/api/live", `{"private":true,"title":"Board meeting"}`); code != 200 {
		t.Fatalf("private live: %d %s", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitFor(t, "the replay", func() bool { l := r.replays(t, r.token); return len(l) == 1 && l[0]["recording"] == false })
	// A public broadcast after it gets its own invite-less replay; the old invite does not open it.
	r.admin(t, http.MethodPatch, "/api/broadcast", `{"private":false}`)
	r.goLive(t)
	time.Sleep(1500 * time.Millisecond)
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitFor(t, "two replays", func() bool { return len(r.replays(t, r.token)) == 2 })

	all := r.replays(t, r.token)
	var private string
	for _, info := range all {
		if info["private"] == true {
			private = info["id"].(string)
		}
	}
	if private == "" {
		t.Fatalf("no private replay in %v", all)
	}
	if l := r.replays(t, ""); len(l) != 1 || l[0]["private"] != false {
		t.Fatalf("without a token the list shows %v", l)
	}
	if l := r.replays(t, guest); len(l) != 2 {
		t.Fatalf("with the invite the list shows %d replays, want 2", len(l))
	}
	media := "/api/replays/" + private + "/media"
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"none", "", 401},
		{"garbage", "garbage", 403},
		{"invite", guest, 200},
		{"admin", r.token, 200},
	} {
		h := map[string]string{}
		if c.token != "" {
			h["Authorization"] = "Bearer " + c.token
		}
		if code, _, _ := r.get(t, media, h); code != c.want {
			t.Fatalf("private replay with %s token: %d, want %d", c.name, code, c.want)
		}
	}
	// <video src> cannot send headers: ?t= works as well.
	if code, _, _ := r.get(t, media+"?t="+url.QueryEscape(guest), nil); code != 200 {
		t.Fatalf("private replay with ?t=: %d", code)
	}
}

// TestDiskFullNeverStopsTheBroadcast: with less free space than
// replay.min_free_mb, recording pauses and says so, and a viewer keeps
// receiving the live broadcast.
func TestDiskFullNeverStopsTheBroadcast(t *testing.T) {
	r := start(t, func(c *config.Config) { c.Replay.MinFreeMB = 1 << 30 }) // a petabyte: never there
	defer r.stop()
	viewer, err := whepclient.Dial(context.Background(), r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	r.goLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := viewer.WaitVideoFrames(ctx, 60); err != nil {
		t.Fatalf("viewer while the disk is full: %v", err)
	}
	st := r.d.Status().Recording
	if st.State != "paused" || st.Error == "" {
		t.Fatalf("recording %+v with a full disk, want paused with a reason", st)
	}
	if r.d.Status().State != "live" {
		t.Fatal("the broadcast did not stay live")
	}
	if _, m := r.call(t, http.MethodGet, "/metrics", "", nil); !strings.Contains(m, `onair_recording_state{state="paused"} 1`) {
		t.Fatalf("metrics do not say paused:\n%s", grepLines(m, "onair_recording"))
	}
	// MQTT's status is the same document.
	if doc := r.d.Status(); doc.Recording.State != "paused" {
		t.Fatalf("status document recording %+v", doc.Recording)
	}
}

// TestRealDiskFillsUp records onto a real, small file system (a 24 MB tmpfs;
// this needs root, which make test has): an older replay goes first, then
// recording pauses, and the viewer never notices.
func TestRealDiskFillsUp(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the fake free-space tests in replay/ cover the logic")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "onair-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	r := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Video.TestPattern = "noise" // real bits at the configured rate
		c.Video.BitrateKbps = 40000   // 5 MB/s: the tmpfs fills in seconds
		c.Replay.MinFreeMB = 4
	})
	defer r.stop()
	// An older replay, then the broadcast that fills the disk.
	r.goLive(t)
	time.Sleep(1500 * time.Millisecond)
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitFor(t, "the first replay", func() bool { l := r.replays(t, ""); return len(l) == 1 && l[0]["recording"] == false })
	first := r.replays(t, "")[0]["id"].(string)

	viewer, err := whepclient.Dial(context.Background(), r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	r.goLive(t)
	waitFor(t, "recording paused for disk space", func() bool { return r.d.Status().Recording.State == "paused" })
	for _, info := range r.replays(t, "") {
		if info["id"] == first {
			t.Fatalf("the older replay %s was not deleted to make room", first)
		}
	}
	// Pictures keep coming (how many depends on the machine's load, not on
	// the recorder: that comparison is bench/recording.sh's).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := viewer.Stats().VideoFrames
	if err := viewer.WaitVideoFrames(ctx, before+30); err != nil {
		t.Fatalf("the viewer stopped getting frames while the disk was full: %v", err)
	}
	if st := r.d.Status(); st.State != "live" || st.Recording.Error == "" {
		t.Fatalf("state %s, recording %+v", st.State, st.Recording)
	}
}
