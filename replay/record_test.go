package replay

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var broadcastStart = time.Date(2026, 5, 1, 18, 0, 0, 0, time.UTC)

func TestRecordThirtySecondsPlaysInFFmpeg(t *testing.T) {
	samples := firstSeconds(testMedia(t), 30*time.Second)
	dir := t.TempDir()
	clk := newFakeClock(broadcastStart)
	l := openLib(t, dir, clk, Options{})
	const id = "20260501T180000Z-0a1b2c3d"

	var during Info
	var duringStatus Status
	src := &sliceSource{samples: samples, before: func(i int) {
		if i == len(samples)/2 {
			// Let the writer catch up with the half fed so far.
			waitFor(t, l, "the first half on disk", func() bool {
				in, _ := l.Get(id)
				return in.DurationS > 13
			})
			during, _ = l.Get(id)
			duringStatus = l.Status()
		}
	}}
	if err := l.Record(context.Background(), Meta{BroadcastID: id, Title: "Keynote", Private: true, Start: broadcastStart}, src); err != nil {
		t.Fatal(err)
	}
	if !during.Recording || duringStatus.State != StateRecording || during.DurationS < 10 || during.SizeBytes == 0 {
		t.Errorf("half way: info %+v, status %+v", during, duringStatus)
	}

	path := filepath.Join(dir, id+".mp4")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	in, ok := l.Get(id)
	if !ok || in.Recording || in.Title != "Keynote" || !in.Private || in.Keep || !in.Start.Equal(broadcastStart) ||
		in.SizeBytes != st.Size() || math.Abs(in.DurationS-30) > 0.1 || in.BroadcastID != id {
		t.Errorf("info %+v (file %d bytes)", in, st.Size())
	}
	if s := l.Status(); s.State != StateIdle || s.Error != "" || s.BytesTotal == 0 || s.BytesTotal > uint64(st.Size()) {
		t.Errorf("status %+v", s)
	}

	p := ffprobe(t, path)
	if len(p.Streams) != 2 || p.Streams[0].CodecName != "h264" || p.Streams[1].CodecName != "opus" {
		t.Fatalf("streams %+v", p.Streams)
	}
	if d := parseSeconds(t, p.Format.Duration); math.Abs(d-30) > 1 {
		t.Errorf("ffprobe duration %.3f s, want 30 ± 1", d)
	}
	videoStart, audioStart := parseSeconds(t, p.Streams[0].StartTime), parseSeconds(t, p.Streams[1].StartTime)
	if math.Abs(videoStart-audioStart) > 0.040 {
		t.Errorf("video starts at %.3f s, audio at %.3f s: more than 40 ms apart", videoStart, audioStart)
	}
	if msg := ffmpegDecode(t, path); msg != "" {
		t.Errorf("ffmpeg decoding the replay: %s", msg)
	}
	if got := decodedVideoSeconds(t, path); math.Abs(got-30) > 0.1 {
		t.Errorf("ffmpeg decodes %.2f s of video, want 30", got)
	}
	// Seeking lands on the keyframe at or before the target (one every 2 s),
	// which needs the segment index.
	for _, target := range []float64{5, 17, 25, 29.5} {
		want := 2 * math.Floor(target/2)
		if got := firstFrameAfterSeek(t, path, target); math.Abs(got-want) > 0.001 {
			t.Errorf("seek to %v s: first frame at %v s, want %v", target, got, want)
		}
	}

	var side sidecar
	b, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &side); err != nil || !side.Finished || side.Title != "Keynote" || !side.StartTrusted || side.SizeBytes != st.Size() {
		t.Errorf("sidecar %s (%v)", b, err)
	}

	// Open again: listed as it was, nothing repaired.
	again := openLib(t, dir, clk, Options{})
	got, ok := again.Get(id)
	if !ok || got != in {
		t.Errorf("after reopening: %+v, want %+v", got, in)
	}
	if st2, _ := os.Stat(path); st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		t.Errorf("reopening changed the file")
	}
}

// firstFrameAfterSeek is the time of the first video frame ffprobe reads
// after seeking to target seconds.
func firstFrameAfterSeek(t testing.TB, path string, target float64) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v",
		"-read_intervals", strconv.FormatFloat(target, 'f', -1, 64)+"%+#1",
		"-show_entries", "frame=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe seek: %v", err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return -1
	}
	return parseSeconds(t, strings.TrimSuffix(line, ","))
}

func TestRecordWithoutAudioAndIDCollisions(t *testing.T) {
	var video = firstSeconds(testMedia(t), 3*time.Second)
	onlyVideo := video[:0:0]
	for _, s := range video {
		if s.Kind == 1 {
			onlyVideo = append(onlyVideo, s)
		}
	}
	dir := t.TempDir()
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	record(t, l, "b", onlyVideo)
	// The same broadcast id again, and one that is not a safe name: both
	// get ids of their own.
	if err := l.Record(context.Background(), Meta{BroadcastID: "b"}, &sliceSource{samples: video}); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(context.Background(), Meta{BroadcastID: "../etc"}, &sliceSource{samples: video}); err != nil {
		t.Fatal(err)
	}
	list := l.List()
	if len(list) != 3 || list[1].ID != "b-2" || list[2].ID != "b" || list[1].BroadcastID != "b" || list[0].BroadcastID != "../etc" || !validID(list[0].ID) {
		t.Fatalf("list %+v", list)
	}
	p := ffprobe(t, filepath.Join(dir, "b.mp4"))
	if len(p.Streams) != 1 || p.Streams[0].CodecName != "h264" {
		t.Fatalf("video-only replay: %+v", p.Streams)
	}
	for _, in := range list {
		if msg := ffmpegDecode(t, filepath.Join(dir, in.ID+".mp4")); msg != "" {
			t.Errorf("%s: %s", in.ID, msg)
		}
	}
	// A source that ends before the first keyframe leaves no replay.
	if err := l.Record(context.Background(), Meta{BroadcastID: "empty"}, &sliceSource{samples: video[1:2]}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Get("empty"); ok {
		t.Fatal("an empty recording is listed")
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.json")); !os.IsNotExist(err) {
		t.Fatalf("empty recording left its sidecar: %v", err)
	}
}
