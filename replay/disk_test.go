package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onair/onair/media"
)

// fakeDisk is a file system of a given capacity holding only the replay
// directory: free space is the capacity less what the directory holds, so
// deleting a replay gives its space back, as on the real disk.
type fakeDisk struct{ capacity atomic.Int64 }

func (d *fakeDisk) used(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

func (d *fakeDisk) FreeBytes(dir string) (int64, error) { return d.capacity.Load() - d.used(dir), nil }

// setFree makes the disk have free bytes free now.
func (d *fakeDisk) setFree(dir string, free int64) { d.capacity.Store(d.used(dir) + free) }

func TestDiskFullDeletesOldestThenPausesAndResumes(t *testing.T) {
	all := testMedia(t)
	dir := t.TempDir()
	clk := newFakeClock(broadcastStart)
	disk := &fakeDisk{}
	disk.capacity.Store(1 << 40)
	const minFree = 4 << 20
	l := openLib(t, dir, clk, Options{MinFreeBytes: minFree, FreeBytes: disk.FreeBytes})

	clip := firstSeconds(all, 4*time.Second)
	record(t, l, "old1", clip)
	clk.Advance(time.Minute)
	record(t, l, "kept", clip)
	if err := l.SetKeep("kept", true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	old2 := record(t, l, "old2", clip)
	clk.Advance(time.Minute)

	src := newChanSource()
	recorded := make(chan error, 1)
	go func() { recorded <- l.Record(context.Background(), Meta{BroadcastID: "live"}, src) }()
	defer src.close()
	next := 0
	feedUntil := func(d time.Duration) {
		for next < len(all) && all[next].Capture < all[0].Capture+d {
			src.feed(t, all[next])
			next++
		}
	}
	committed := func() float64 {
		in, _ := l.Get("live")
		return in.DurationS
	}

	feedUntil(4 * time.Second)
	waitFor(t, l, "3 s recorded", func() bool { return committed() >= 3 })

	// Free space drops just below the minimum: the oldest replay goes, the
	// kept one and the one recording stay, recording goes on.
	disk.setFree(dir, minFree-20<<10)
	feedUntil(7 * time.Second)
	waitFor(t, l, "6 s recorded", func() bool { return committed() >= 6 })
	wantIDs(t, l, "live", "old2", "kept")
	if st := l.Status(); st.State != StateRecording || st.FreeBytes >= minFree+old2.SizeBytes {
		t.Fatalf("after deleting old1: %+v", st)
	}

	// Far too little: old2 goes too, that is not enough, recording pauses.
	// The source keeps being drained all along (feed fails if not).
	disk.setFree(dir, minFree/2)
	feedUntil(12 * time.Second)
	waitFor(t, l, "paused", func() bool { return l.Status().State == StatePaused })
	wantIDs(t, l, "live", "kept")
	st := l.Status()
	if !strings.Contains(st.Error, "MB free") || st.FreeBytes >= minFree {
		t.Fatalf("paused status %+v", st)
	}
	pausedAt := committed()
	feedUntil(16 * time.Second)
	if got := committed(); got != pausedAt {
		t.Fatalf("wrote while paused: %.2f s, paused at %.2f s", got, pausedAt)
	}

	// Space returns: recording resumes at the next keyframe.
	disk.capacity.Store(1 << 40)
	feedUntil(22 * time.Second)
	waitFor(t, l, "resumed", func() bool { return l.Status().State == StateRecording && committed() >= pausedAt+4 })
	src.close()
	if err := <-recorded; err != nil {
		t.Fatal(err)
	}
	if st := l.Status(); st.State != StateIdle {
		t.Fatalf("after the broadcast: %+v", st)
	}

	// The replay plays across the pause, which is cut out of it.
	path := filepath.Join(dir, "live.mp4")
	if msg := ffmpegDecode(t, path); msg != "" {
		t.Fatalf("ffmpeg: %s", msg)
	}
	in, _ := l.Get("live")
	decoded := decodedVideoSeconds(t, path)
	if decoded < pausedAt+4 || decoded > 21 || abs(decoded-in.DurationS) > 0.1 {
		t.Fatalf("decoded %.2f s, listed %.2f s, paused at %.2f s of 22 s fed", decoded, in.DurationS, pausedAt)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// A write error (here: the file descriptor taken away) stops writing, never
// the source; the replay is left for Open to repair.
func TestWriteErrorKeepsDrainingAndOpenRepairs(t *testing.T) {
	all := testMedia(t)
	dir := t.TempDir()
	clk := newFakeClock(broadcastStart)
	l := openLib(t, dir, clk, Options{})
	src := newChanSource()
	recorded := make(chan error, 1)
	go func() { recorded <- l.Record(context.Background(), Meta{BroadcastID: "w"}, src) }()
	defer src.close()
	i := 0
	for ; all[i].Capture < all[0].Capture+3*time.Second; i++ {
		src.feed(t, all[i])
	}
	waitFor(t, l, "2 s recorded", func() bool { in, _ := l.Get("w"); return in.DurationS >= 2 })
	l.mu.Lock()
	l.active[0].file.Close()
	l.mu.Unlock()
	for ; all[i].Capture < all[0].Capture+8*time.Second; i++ {
		src.feed(t, all[i])
	}
	waitFor(t, l, "error state", func() bool { return l.Status().State == StateError })
	if st := l.Status(); !strings.Contains(st.Error, "write replay") {
		t.Fatalf("status %+v", st)
	}
	// Retries (every 5 s of media) fail too, quietly; the source is drained.
	for ; all[i].Capture < all[0].Capture+20*time.Second; i++ {
		src.feed(t, all[i])
	}
	src.close()
	if err := <-recorded; err == nil {
		t.Fatal("Record reported no error for a replay it could not finish")
	}
	st := l.Status()
	if st.State != StateIdle || st.Error == "" {
		t.Fatalf("after the broadcast: %+v", st)
	}
	l2 := openLib(t, dir, clk, Options{})
	in, ok := l2.Get("w")
	if !ok || in.DurationS < 2 || in.DurationS > 3.5 {
		t.Fatalf("after repair: %+v", in)
	}
	if msg := ffmpegDecode(t, filepath.Join(dir, "w.mp4")); msg != "" {
		t.Fatalf("ffmpeg: %s", msg)
	}
}

// The replay directory vanishes under a recording: no panic, the source is
// drained, Record says what failed.
func TestDirectoryVanishes(t *testing.T) {
	all := firstSeconds(testMedia(t), 6*time.Second)
	dir := filepath.Join(t.TempDir(), "replays")
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	src := &sliceSource{samples: all, before: func(i int) {
		if i == len(all)/2 {
			os.RemoveAll(dir)
		}
	}}
	if err := l.Record(context.Background(), Meta{BroadcastID: "gone"}, src); err == nil {
		t.Fatal("no error")
	}
	if src.i != len(all) {
		t.Fatalf("source drained to %d of %d", src.i, len(all))
	}
	// Recording again recreates the directory.
	record(t, l, "back", firstSeconds(all, time.Second))

	// Where the directory was is now a file: the recording cannot start.
	// Status says so while the source is drained, and after.
	os.RemoveAll(dir)
	os.WriteFile(dir, nil, 0o644)
	var during Status
	src = &sliceSource{samples: all, before: func(i int) {
		if i == 10 {
			during = l.Status()
		}
	}}
	if err := l.Record(context.Background(), Meta{BroadcastID: "never"}, src); err == nil {
		t.Fatal("no error")
	}
	if src.i != len(all) || during.State != StateError || during.Error == "" {
		t.Fatalf("drained %d of %d, status while live %+v", src.i, len(all), during)
	}
	if st := l.Status(); st.State != StateIdle || st.Error != during.Error {
		t.Fatalf("status after %+v", st)
	}
}

// A writer that stalls (here: in the free space check) makes the queue
// overflow: the source is still drained, samples are dropped up to the next
// keyframe, and the replay skips the hole.
func TestQueueOverflowSkipsToKeyframe(t *testing.T) {
	all := firstSeconds(testMedia(t), 12*time.Second)
	dir := t.TempDir()
	var stall atomic.Bool
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	free := func(string) (int64, error) {
		if stall.Load() {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-release
		}
		return 1 << 40, nil
	}
	l := openLib(t, dir, newFakeClock(broadcastStart), Options{FreeBytes: free})
	l.queueLen = 256 // about 3 s
	src := newChanSource()
	recorded := make(chan error, 1)
	go func() { recorded <- l.Record(context.Background(), Meta{BroadcastID: "o"}, src) }()
	defer src.close()
	i := 0
	committed := func() float64 { in, _ := l.Get("o"); return in.DurationS }
	// feedSecond feeds one second and waits until the writer has caught
	// up (every fragment that could be cut is written), as real time would
	// let it.
	feedSecond := func() {
		end := all[i].Capture + time.Second
		for ; i < len(all) && all[i].Capture < end; i++ {
			src.feed(t, all[i])
		}
		fed := (all[i-1].Capture - all[0].Capture).Seconds()
		waitFor(t, l, "the writer to catch up", func() bool { return committed() >= fed-1.05 })
	}
	feedSecond()
	feedSecond()
	stall.Store(true)
	// The next video sample cuts a fragment, and the writer stalls on it.
	for ; all[i].Kind != media.Video; i++ {
		src.feed(t, all[i])
	}
	src.feed(t, all[i])
	i++
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not reach the free space check")
	}
	// The writer is stuck; 5 s more arrive and must not hold up the feeder.
	for end := all[i].Capture + 5*time.Second; all[i].Capture < end; i++ {
		src.feed(t, all[i])
	}
	stall.Store(false)
	close(release)
	for end := all[i].Capture + 2*time.Second; all[i].Capture < end; i++ {
		src.feed(t, all[i])
	}
	src.close()
	if err := <-recorded; err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "o.mp4")
	if msg := ffmpegDecode(t, path); msg != "" {
		t.Fatalf("ffmpeg: %s", msg)
	}
	fed := (all[i-1].Capture - all[0].Capture).Seconds()
	if got := decodedVideoSeconds(t, path); got < 4 || got > fed-1 {
		t.Fatalf("decoded %.2f s of %.2f s fed with a 5 s stall", got, fed)
	}
}
