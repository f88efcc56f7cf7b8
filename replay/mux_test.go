package replay

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onair/onair/media"
)

// muxFile writes samples straight through the muxer (no library) and
// finalizes the file, the way the recorder does.
func muxFile(t testing.TB, path string, samples []media.Sample) {
	t.Helper()
	muxFileUnfinished(t, path, samples, true)
}

// muxFileUnfinished writes the fragments as a recording does and leaves
// the file as a crash would (finish false) or finalizes it.
func muxFileUnfinished(t testing.TB, path string, samples []media.Sample, finish bool) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := newMuxer()
	var end int64
	write := func(next time.Duration, hasNext bool) {
		out, frag, _ := m.cut(next, hasNext)
		if out == nil {
			return
		}
		if _, err := f.WriteAt(out, end); err != nil {
			t.Fatal(err)
		}
		end += int64(len(out))
		m.written(&frag)
	}
	for _, s := range samples {
		if m.needCut(s) {
			write(s.Capture, s.Kind == media.Video)
		}
		m.add(s)
	}
	write(0, false)
	if !finish {
		return
	}
	lay, err := scan(f, end)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if err := finalize(f, &lay); err != nil {
		t.Fatalf("finalize: %v", err)
	}
}

func TestMuxerOutputPlays(t *testing.T) {
	samples := testMedia(t)
	path := filepath.Join(t.TempDir(), "m.mp4")
	muxFile(t, path, samples)
	p := ffprobe(t, path)
	if len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" || p.Streams[1].CodecName != "opus" {
		t.Fatalf("streams: %+v", p.Streams)
	}
	if p.Streams[0].Width != 320 || p.Streams[0].Height != 240 || p.Streams[1].Channels != 1 {
		t.Fatalf("streams: %+v", p.Streams)
	}
	if d := parseSeconds(t, p.Format.Duration); math.Abs(d-mediaSeconds) > 0.1 {
		t.Fatalf("duration %v, want %d", d, mediaSeconds)
	}
	if msg := ffmpegDecode(t, path); msg != "" {
		t.Fatalf("ffmpeg: %s", msg)
	}
}
