package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// message is one QoS 1 publish waiting for the broker.
type message struct {
	topic   string
	payload []byte
	n       uint64 // position in the outbox; also its file name
}

// outbox keeps QoS 1 messages (events and replies) in order until the broker
// has acknowledged them, so they survive a broker outage and, with a
// directory, a daemon restart. It is bounded: a long outage drops the oldest
// first and counts them (the seq of events shows the operator the gap).
//
// On disk every message is one file named by its zero-padded position, so
// the directory lists in order; each is written to a temporary name, synced
// and renamed, so a power cut leaves either the whole message or none.
// paho's own file store is not used: it replays in an order of its own and
// does not sync.
type outbox struct {
	mu      sync.Mutex
	max     int
	dir     string // "" keeps messages in memory only
	queue   []message
	dropped uint64
	pushed  uint64
	ready   chan struct{} // has a value while the queue is not empty
}

const outboxSuffix = ".msg"

// newOutbox makes an outbox; with a directory it loads what an earlier run
// left there, in order, and drops files it cannot read.
func newOutbox(max int, dir string) (*outbox, error) {
	o := &outbox{max: max, dir: dir, ready: make(chan struct{}, 1)}
	if dir == "" {
		return o, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: outbox: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: outbox: %w", err)
	}
	var ns []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") { // a write cut short
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, outboxSuffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, outboxSuffix) {
			continue // not ours
		}
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	for _, n := range ns {
		o.pushed = n // numbering goes on after every file seen, read or not
		path := o.path(n)
		data, err := os.ReadFile(path)
		topic, payload, ok := bytes.Cut(data, []byte{'\n'})
		if err != nil || !ok || len(topic) == 0 {
			_ = os.Remove(path)
			o.dropped++
			continue
		}
		o.queue = append(o.queue, message{topic: string(topic), payload: payload, n: n})
	}
	for len(o.queue) > o.max {
		o.dropOldest()
	}
	if len(o.queue) > 0 {
		o.ready <- struct{}{}
	}
	return o, nil
}

func (o *outbox) path(n uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", n, outboxSuffix))
}

// push appends a message. With a directory it returns once the message is
// on disk; an error means it is kept in memory only.
func (o *outbox) push(m message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) >= o.max {
		o.dropOldest()
	}
	o.pushed++
	m.n = o.pushed
	o.queue = append(o.queue, m)
	select {
	case o.ready <- struct{}{}:
	default:
	}
	if o.dir == "" {
		return nil
	}
	return o.write(m)
}

func (o *outbox) write(m message) error {
	final := o.path(m.n)
	tmp := filepath.Join(o.dir, "."+filepath.Base(final))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("fleet: outbox: %w", err)
	}
	_, err = f.Write(append(append([]byte(m.topic), '\n'), m.payload...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(o.dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fleet: outbox: write %s: %w", final, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// dropOldest makes room; o.mu is held.
func (o *outbox) dropOldest() {
	o.remove(o.queue[0])
	o.queue[0] = message{}
	o.queue = o.queue[1:]
	o.dropped++
}

func (o *outbox) remove(m message) {
	if o.dir != "" {
		_ = os.Remove(o.path(m.n)) // a leftover file is sent again after a restart: at least once
	}
}

// head returns the oldest message without removing it.
func (o *outbox) head() (message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 {
		return message{}, false
	}
	return o.queue[0], true
}

// pop removes the head once the broker acknowledged it. The head may have
// been dropped for space meanwhile; then only a message that is still the
// same one is removed.
func (o *outbox) pop(sent message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 && o.queue[0].n == sent.n {
		o.remove(o.queue[0])
		o.queue[0] = message{}
		o.queue = o.queue[1:]
	}
}

func (o *outbox) stats() (queued int, dropped uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue), o.dropped
}
