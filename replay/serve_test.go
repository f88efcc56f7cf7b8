package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mediaMux routes like the web server does.
func mediaMux(l *Library) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/replays/{id}/media", func(w http.ResponseWriter, r *http.Request) {
		l.ServeMedia(w, r, r.PathValue("id"))
	})
	return mux
}

func get(h http.Handler, method, target, rangeHeader string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func wantJSONError(t *testing.T, rec *httptest.ResponseRecorder, code int) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d (%s)", rec.Code, code, rec.Body)
	}
	var body struct{ Error string }
	if rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == "" {
		t.Fatalf("error body %q (%s)", rec.Body, rec.Header().Get("Content-Type"))
	}
}

func TestServeFinishedReplay(t *testing.T) {
	dir := t.TempDir()
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	record(t, l, "r1", firstSeconds(testMedia(t), 3*time.Second))
	file, err := os.ReadFile(filepath.Join(dir, "r1.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(file))
	h := mediaMux(l)
	const url = "/api/replays/r1/media"

	rec := get(h, "GET", url, "")
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), file) || rec.Header().Get("Content-Type") != "video/mp4" ||
		rec.Header().Get("Accept-Ranges") != "bytes" {
		t.Fatalf("full GET: %d, %d bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
	}
	for _, c := range []struct {
		header     string
		start, end int64 // inclusive
	}{
		{"bytes=0-99", 0, 99},
		{"bytes=1000-", 1000, size - 1},
		{"bytes=-500", size - 500, size - 1},
		{fmt.Sprintf("bytes=%d-%d", size-10, size+1000), size - 10, size - 1},
		{" bytes=5-5", -1, -1}, // not "bytes=" first: malformed
	} {
		rec := get(h, "GET", url, c.header)
		if c.start < 0 {
			wantJSONError(t, rec, http.StatusRequestedRangeNotSatisfiable)
			continue
		}
		want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size)
		if rec.Code != 206 || rec.Header().Get("Content-Range") != want || !bytes.Equal(rec.Body.Bytes(), file[c.start:c.end+1]) {
			t.Errorf("%q: %d %q, %d bytes; want 206 %q", c.header, rec.Code, rec.Header().Get("Content-Range"), rec.Body.Len(), want)
		}
	}
	// Several ranges: multipart.
	rec = get(h, "GET", url, "bytes=0-9,20-29")
	if rec.Code != 206 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("two ranges: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, bad := range []string{
		fmt.Sprintf("bytes=%d-", size), "bytes=99999999-", "bytes=abc", "bytes=5-1", "bytes=-", "items=0-1", "bytes=-0", "bytes=+1-2", "bytes=,",
	} {
		rec := get(h, "GET", url, bad)
		wantJSONError(t, rec, http.StatusRequestedRangeNotSatisfiable)
		if cr := rec.Header().Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%q: Content-Range %q", bad, cr)
		}
	}
	rec = get(h, "HEAD", url, "")
	if rec.Code != 200 || rec.Header().Get("Content-Length") != fmt.Sprint(size) || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d %v", rec.Code, rec.Header())
	}
	wantJSONError(t, get(h, "POST", url, ""), http.StatusMethodNotAllowed)

	// Whatever reaches ServeMedia as an id, only a plain name can match.
	os.WriteFile(filepath.Join(dir, "x.mp4"), []byte("not listed"), 0o644)
	for _, id := range []string{"../x", "..", ".", "%2e%2e", "r1/../r1", "a/b", "a%2Fb", "r1.mp4", ".clock", "", "unknown", "R1", "r1 ", "-r1", strings.Repeat("a", 65), "r1\x00"} {
		rec := httptest.NewRecorder()
		l.ServeMedia(rec, httptest.NewRequest("GET", url, nil), id)
		wantJSONError(t, rec, http.StatusNotFound)
	}
	for _, target := range []string{"/api/replays/%2e%2e/media", "/api/replays/..%2Fr1/media", "/api/replays/r1%2F..%2Fx/media", "/api/replays/%2E/media", "/api/replays/r1%00/media", "/api/replays/unknown/media"} {
		wantJSONError(t, get(h, "GET", target, ""), http.StatusNotFound)
	}
}

// A replay being recorded: ranges within what is committed are served with
// an unknown complete length, ranges past it get 416, and a request from
// the start streams the file as it grows until the recording ends.
func TestServeGrowingReplay(t *testing.T) {
	all := firstSeconds(testMedia(t), 8*time.Second)
	dir := t.TempDir()
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	src := newChanSource()
	recorded := make(chan error, 1)
	go func() { recorded <- l.Record(context.Background(), Meta{BroadcastID: "g"}, src) }()
	defer src.close()
	i := 0
	feedUntil := func(d time.Duration) {
		for ; i < len(all) && all[i].Capture < all[0].Capture+d; i++ {
			src.feed(t, all[i])
		}
	}
	feedUntil(3 * time.Second)
	waitFor(t, l, "2 s on disk", func() bool { in, _ := l.Get("g"); return in.DurationS >= 2 })
	in, _ := l.Get("g")
	committed := in.SizeBytes
	h := mediaMux(l)
	const url = "/api/replays/g/media"

	rec := get(h, "GET", url, "bytes=0-99")
	file, _ := os.ReadFile(filepath.Join(dir, "g.mp4"))
	if rec.Code != 206 || rec.Header().Get("Content-Range") != "bytes 0-99/*" || !bytes.Equal(rec.Body.Bytes(), file[:100]) {
		t.Fatalf("range of a growing replay: %d %q", rec.Code, rec.Header().Get("Content-Range"))
	}
	rec = get(h, "GET", url, fmt.Sprintf("bytes=%d-", committed-10))
	if rec.Code != 206 || rec.Header().Get("Content-Range") != fmt.Sprintf("bytes %d-%d/*", committed-10, committed-1) || rec.Body.Len() != 10 {
		t.Fatalf("open range near the end: %d %q %d bytes", rec.Code, rec.Header().Get("Content-Range"), rec.Body.Len())
	}
	rec = get(h, "GET", url, fmt.Sprintf("bytes=%d-", committed))
	wantJSONError(t, rec, http.StatusRequestedRangeNotSatisfiable)
	if rec.Header().Get("Content-Range") != fmt.Sprintf("bytes */%d", committed) {
		t.Fatalf("416 Content-Range %q", rec.Header().Get("Content-Range"))
	}
	if err := l.Delete("g"); err != ErrRecording {
		t.Fatalf("deleting the replay being recorded: %v", err)
	}

	// A <video> asks for "bytes=0-": it gets the stream.
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+url, nil)
	req.Header.Set("Range", "bytes=0-")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != -1 || resp.Header.Get("Accept-Ranges") != "none" {
		t.Fatalf("stream: %d, length %d, %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	head := make([]byte, committed)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// The stream goes on with what is recorded next, and ends with the
	// recording.
	feedUntil(8 * time.Second)
	src.close()
	if err := <-recorded; err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := append(head, rest...)
	final, _ := os.ReadFile(filepath.Join(dir, "g.mp4"))
	lay, err := scan(bytes.NewReader(final), int64(len(final)))
	if err != nil {
		t.Fatal(err)
	}
	// Byte for byte the final file, except where mehd and the index went
	// after those bytes had been sent (free boxes then).
	mask := func(b []byte) []byte {
		b = bytes.Clone(b)
		clear(b[lay.mehdAt : lay.mehdAt+mehdSize])
		clear(b[lay.moovEnd:lay.regionEnd])
		return b
	}
	if len(got) != len(final) || !bytes.Equal(mask(got), mask(final)) {
		t.Fatalf("streamed %d bytes, file has %d", len(got), len(final))
	}
	stream := filepath.Join(t.TempDir(), "stream.mp4")
	os.WriteFile(stream, got, 0o644)
	if msg := ffmpegDecode(t, stream); msg != "" {
		t.Fatalf("ffmpeg on what was streamed: %s", msg)
	}
	// Now finished: a plain file with ranges.
	rec = get(h, "GET", url, "bytes=0-0")
	if rec.Code != 206 || rec.Header().Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", len(final)) {
		t.Fatalf("after the recording: %d %q", rec.Code, rec.Header().Get("Content-Range"))
	}
}

func TestDeleteAndUpdate(t *testing.T) {
	dir := t.TempDir()
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	clip := firstSeconds(testMedia(t), time.Second)
	record(t, l, "d", clip)
	title, private := "Renamed", true
	l.Update("d", &title, &private)
	l.Update("nobody", &title, nil)
	if in, _ := l.Get("d"); in.Title != "Renamed" || !in.Private {
		t.Fatalf("after update: %+v", in)
	}
	if side, _ := readSidecar(filepath.Join(dir, "d.json")); side.Title != "Renamed" || !side.Private {
		t.Fatalf("sidecar after update: %+v", side)
	}
	if err := l.Delete("nope"); err != ErrNotFound {
		t.Fatalf("delete unknown: %v", err)
	}
	if err := l.Delete("d"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Get("d"); ok {
		t.Fatal("still listed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if err := l.Delete("d"); err != ErrNotFound {
		t.Fatalf("delete twice: %v", err)
	}
	if st := (*Library)(nil).Status(); st.State != StateOff {
		t.Fatalf("nil library: %+v", st)
	}
}
