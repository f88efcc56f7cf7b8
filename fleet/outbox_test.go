package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestOutboxOnDisk: messages come back in order after a restart, the oldest
// go first when full, half-written and unreadable files are dropped.
func TestOutboxOnDisk(t *testing.T) {
	dir := t.TempDir()
	o, err := newOutbox(3, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := o.push(message{topic: "t", payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := o.head()
	o.pop(m) // "3" acknowledged
	if files, _ := os.ReadDir(dir); len(files) != 2 {
		t.Fatalf("%d files, want 2", len(files))
	}
	// A write cut short by a power loss, and a file that is not a message.
	_ = os.WriteFile(filepath.Join(dir, ".00000000000000000009.msg"), []byte("t\nhalf"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "00000000000000000008.msg"), []byte("no topic line"), 0o600)

	again, err := newOutbox(3, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, ok := again.head()
		if !ok {
			break
		}
		got = append(got, string(m.payload))
		again.pop(m)
	}
	if fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("after a restart: %v, want [4 5]", got)
	}
	if _, dropped := again.stats(); dropped != 1 {
		t.Fatalf("dropped %d, want the unreadable file", dropped)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("%d files left after everything was sent", len(files))
	}
	// Numbering goes on after the highest file, so order holds across runs.
	_ = again.push(message{topic: "t", payload: []byte("6")})
	if m, _ := again.head(); m.n <= 8 {
		t.Fatalf("new message numbered %d, after 8", m.n)
	}
}

// TestEventsSurviveRestart: events raised while the broker is unreachable
// are on disk when the daemon stops, and the next run sends them, in order,
// before its own.
func TestEventsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, "")
	addr := b.addr
	b.stop() // nothing listens there now
	first := startBox(t, "tcp://"+addr, func(o *Options) { o.OutboxDir = dir })
	for i := 1; i <= 3; i++ {
		if err := first.Event(EventButton, map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := startBroker(t, addr)
	obs := watch(t, b2.url(), eventTopic)
	second := startBox(t, b2.url(), func(o *Options) { o.OutboxDir = dir; o.BootID = "boot-2" })
	if err := second.Event(EventButton, map[string]any{"n": 4}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		ev := decode[map[string]any](t, obs.next(eventTopic).Payload)
		wantBoot, wantSeq := "boot-1", float64(i)
		if i == 4 {
			wantBoot, wantSeq = "boot-2", 1
		}
		if ev["n"] != float64(i) || ev["boot"] != wantBoot || ev["seq"] != wantSeq {
			t.Fatalf("event %d: %v", i, ev)
		}
	}
	eventually(t, func() bool { q, _ := second.outbox.stats(); return q == 0 }, "the outbox to empty")
	eventually(t, func() bool { f, _ := os.ReadDir(dir); return len(f) == 0 }, "the outbox files to go")
}
