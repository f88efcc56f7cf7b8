package broadcast

import (
	"context"
	"errors"
	"sync"

	"github.com/onair/onair/media"
)

// ErrSinkClosed is returned by Sink.Next once the sink is closed.
var ErrSinkClosed = errors.New("broadcast: sink closed")

// SinkOptions describe a consumer of the broadcast.
type SinkOptions struct {
	// Name labels the sink's kind in metrics: whep, recorder, uplink, preview.
	Name string
	// Preview sinks receive samples while idle too (the admin console's
	// preview); every other sink receives only while live.
	Preview bool
	// Queue is how many samples may wait; default 256 (several seconds of
	// audio and video). On overflow the queue is emptied and the sink skips
	// to the next keyframe.
	Queue int
	// Signal, when set, is signalled (without blocking) in place of the
	// sink's own channel whenever a sample is queued or the sink closes, so
	// that one goroutine can serve many sinks: such a sink is read with
	// TryNext, never Next.
	Signal chan<- struct{}
}

// Sink is one consumer's bounded queue. Its owner reads it with Next from
// one goroutine; the hub writes to it without ever blocking.
type Sink struct {
	hub     *Hub
	name    string
	preview bool
	notify  chan struct{}
	signal  chan<- struct{} // SinkOptions.Signal

	mu           sync.Mutex
	ring         []media.Sample
	head, n      int
	waitKeyframe bool
	closed       bool
	dropped      uint64
}

// Next returns the next sample, blocking until there is one, the sink is
// closed (ErrSinkClosed) or ctx ends.
func (s *Sink) Next(ctx context.Context) (media.Sample, error) {
	for {
		sample, ok, err := s.TryNext()
		if ok || err != nil {
			return sample, err
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return media.Sample{}, ctx.Err()
		}
	}
}

// TryNext returns the next sample without waiting: ok is false when none is
// queued, err is ErrSinkClosed once the sink is closed and nothing is left.
func (s *Sink) TryNext() (sample media.Sample, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n > 0 {
		sample = s.ring[s.head]
		s.ring[s.head] = media.Sample{} // let the data go
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		return sample, true, nil
	}
	if s.closed {
		return media.Sample{}, false, ErrSinkClosed
	}
	return media.Sample{}, false, nil
}

// Dropped is how many samples this sink lost to overflow.
func (s *Sink) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close removes the sink from the hub and wakes a waiting Next.
func (s *Sink) Close() {
	s.hub.removeSink(s)
	s.mu.Lock()
	s.closed = true
	s.n = 0
	clear(s.ring)
	s.mu.Unlock()
	s.wake()
}

// Finish removes the sink from the hub but lets its owner read what is
// still queued before Next reports ErrSinkClosed: the recorder keeps the
// last moments of a broadcast.
func (s *Sink) Finish() {
	s.hub.removeSink(s)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
}

func (s *Sink) wake() {
	if s.signal != nil {
		select {
		case s.signal <- struct{}{}:
		default:
		}
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push queues a sample; it returns how many samples were dropped and
// whether the sink now needs a keyframe. It never blocks on the consumer.
func (s *Sink) push(sample media.Sample) (dropped int, needKeyframe bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, false
	}
	if s.waitKeyframe {
		if sample.Kind != media.Video || !sample.Keyframe {
			s.mu.Unlock()
			return 0, false
		}
		s.waitKeyframe = false
	}
	if s.n == len(s.ring) {
		// A slow consumer: throw away what waits (it is stale by now) and
		// resume at the next keyframe, which the hub asks for.
		dropped = s.n + 1
		s.dropped += uint64(dropped)
		s.n = 0
		clear(s.ring)
		s.waitKeyframe = !(sample.Kind == media.Video && sample.Keyframe)
		if s.waitKeyframe {
			s.mu.Unlock()
			return dropped, true
		}
		dropped--
		s.dropped--
	}
	s.ring[(s.head+s.n)%len(s.ring)] = sample
	s.n++
	s.mu.Unlock()
	s.wake()
	return dropped, false
}

// restart makes the sink wait for a keyframe again (a new broadcast).
func (s *Sink) restart() {
	s.mu.Lock()
	s.waitKeyframe = true
	s.mu.Unlock()
}
