package replay

import (
	"context"
	"testing"
	"time"
)

func ids(l *Library) []string {
	var out []string
	for _, in := range l.List() {
		out = append(out, in.ID)
	}
	return out
}

func wantIDs(t *testing.T, l *Library, want ...string) {
	t.Helper()
	got := ids(l)
	if len(got) != len(want) {
		t.Fatalf("replays %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("replays %v, want %v", got, want)
		}
	}
}

// stop runs the library's Run loop briefly and ends it, as the daemon does
// at shutdown: that saves the running-time clock.
func stop(l *Library) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	cancel()
	<-done
}

// A box without RTC boots in 1970, records, and sets its clock by NTP an
// hour later: the 56-year jump must delete nothing, retention counts the
// box's running time across restarts, and keep exempts.
func TestRetentionSurvivesTheFirstNTPSync(t *testing.T) {
	clip := firstSeconds(testMedia(t), 2*time.Second)
	dir := t.TempDir()
	clk := newFakeClock(time.Unix(20, 0)) // 1970, just after boot
	l := openLib(t, dir, clk, Options{Retention: 24 * time.Hour})

	record(t, l, "a", clip)
	clk.Advance(time.Hour)
	record(t, l, "b", clip)
	record(t, l, "c", clip)
	if err := l.SetKeep("b", true); err != nil {
		t.Fatal(err)
	}
	if in, _ := l.Get("a"); in.Start.Year() != 1970 {
		t.Fatalf("start before NTP: %v", in.Start)
	}

	// NTP: the wall clock jumps to today.
	synced := time.Date(2026, 5, 1, 19, 0, 0, 0, time.UTC)
	clk.SetWall(synced)
	l.check()
	wantIDs(t, l, "c", "b", "a")
	// The starts recorded in 1970 become real dates: the running time
	// since then is known exactly.
	if in, _ := l.Get("a"); !in.Start.Equal(synced.Add(-time.Hour)) {
		t.Errorf("a's start after NTP: %v, want %v", in.Start, synced.Add(-time.Hour))
	}
	if in, _ := l.Get("c"); !in.Start.Equal(synced) {
		t.Errorf("c's start after NTP: %v, want %v", in.Start, synced)
	}

	// a ended 2 s after the start: 24 h after that it goes, b is kept, c is
	// an hour younger.
	clk.Advance(23*time.Hour - 3*time.Second)
	l.check()
	wantIDs(t, l, "c", "b", "a")
	clk.Advance(6 * time.Second)
	l.check()
	wantIDs(t, l, "c", "b")

	// The daemon stops; the box is off for a week and boots in 1970 again,
	// with a new monotonic clock. Time off does not count; running time
	// goes on from where it was.
	clk.Advance(10 * time.Minute)
	stop(l)
	clk2 := newFakeClock(time.Unix(30, 0))
	l2 := openLib(t, dir, clk2, Options{Retention: 24 * time.Hour})
	wantIDs(t, l2, "c", "b")
	if in, _ := l2.Get("c"); !in.Start.Equal(synced) {
		t.Errorf("c's corrected start was not kept: %v", in.Start)
	}
	clk2.SetWall(time.Date(2026, 5, 9, 8, 0, 0, 0, time.UTC)) // NTP again, a week later
	clk2.Advance(40 * time.Minute)
	l2.check()
	wantIDs(t, l2, "c", "b")
	// c ended at 1 h 2 s of running time; the clock reads 24 h 50 m now.
	clk2.Advance(13 * time.Minute)
	l2.check()
	wantIDs(t, l2, "b")
	// Keep exempts until it is taken back.
	if err := l2.SetKeep("b", false); err != nil {
		t.Fatal(err)
	}
	l2.check()
	wantIDs(t, l2)
	if err := l2.SetKeep("b", true); err != ErrNotFound {
		t.Fatalf("keep on a deleted replay: %v", err)
	}
}

// Without a saved clock (lost, or a crash before the first save) the clock
// restarts from the newest replay: ages never run backwards into deletion.
func TestRetentionClockLostStartsFromTheReplays(t *testing.T) {
	clip := firstSeconds(testMedia(t), time.Second)
	dir := t.TempDir()
	clk := newFakeClock(broadcastStart)
	l := openLib(t, dir, clk, Options{})
	clk.Advance(3 * time.Hour)
	record(t, l, "x", clip)
	// No stop(l): the clock was never saved.
	l2 := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	if got := l2.clock(); got < 3*time.Hour {
		t.Fatalf("clock after reopening: %v, want at least the replay's start", got)
	}
	wantIDs(t, l2, "x")
}
