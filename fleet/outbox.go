package fleet

import "sync"

// message is one QoS 1 publish waiting for the broker.
type message struct {
	topic   string
	payload []byte
	n       uint64 // position in the outbox, to recognise the head again
}

// outbox keeps QoS 1 messages (events and replies) in order until the broker
// has acknowledged them, so they survive a broker outage. It is bounded: a
// long outage drops the oldest first and counts them (the seq of events shows
// the operator the gap). It lives in memory: a daemon restart loses it.
type outbox struct {
	mu      sync.Mutex
	max     int
	queue   []message
	dropped uint64
	pushed  uint64
	ready   chan struct{} // has a value while the queue is not empty
}

func newOutbox(max int) *outbox {
	return &outbox{max: max, ready: make(chan struct{}, 1)}
}

func (o *outbox) push(m message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) >= o.max {
		o.queue[0] = message{}
		o.queue = o.queue[1:]
		o.dropped++
	}
	o.pushed++
	m.n = o.pushed
	o.queue = append(o.queue, m)
	select {
	case o.ready <- struct{}{}:
	default:
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
		o.queue[0] = message{}
		o.queue = o.queue[1:]
	}
}

func (o *outbox) stats() (queued int, dropped uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue), o.dropped
}
