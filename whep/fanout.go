package whep

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/media"
)

// fanout writes the hub's samples to its share of the viewers from one
// goroutine. Its viewers' sinks share one signal, so a published sample
// wakes one goroutine per fanout instead of one per viewer: with 50 viewers
// that took 3.7-3.9 % of a core off the daemon's CPU profile (BENCHMARKS.md,
// "Writers"). Writes never block (UDP), so one viewer cannot hold up the
// others.
type fanout struct {
	signal chan struct{}
	log    *slog.Logger
	// rounds, when set, is told where a round of writes starts and ends
	// (the batched shared port sends each round in as few syscalls as it can)
	rounds  rounds
	mu      sync.Mutex
	viewers []*viewerSink
}

type rounds interface {
	Hold()
	Release()
}

type viewerSink struct {
	sess *session
	sink *broadcast.Sink
}

func newFanout(log *slog.Logger, r rounds) *fanout {
	return &fanout{signal: make(chan struct{}, 1), log: log, rounds: r}
}

func (f *fanout) add(v *viewerSink) {
	f.mu.Lock()
	f.viewers = append(f.viewers, v)
	f.mu.Unlock()
	f.wake() // what the sink was prefilled with before it was here
}

func (f *fanout) remove(v *viewerSink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.Index(f.viewers, v); i >= 0 {
		f.viewers = slices.Delete(f.viewers, i, i+1) // clears the freed slot
	}
}

func (f *fanout) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.viewers)
}

func (f *fanout) wake() {
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// run serves the viewers until ctx ends: on each signal, rounds of one
// sample per viewer until every queue is empty, so that a viewer with a
// backlog does not delay the others' next sample.
func (f *fanout) run(ctx context.Context) {
	var batch []*viewerSink
	for {
		select {
		case <-f.signal:
		case <-ctx.Done():
			return
		}
		f.mu.Lock()
		batch = append(batch[:0], f.viewers...)
		f.mu.Unlock()
		for more := true; more; {
			more = f.round(batch)
		}
		clear(batch)
	}
}

// round writes one sample to each viewer that has one waiting, held as one
// round on the batched port; it says whether any had one.
func (f *fanout) round(viewers []*viewerSink) (wrote bool) {
	if f.rounds != nil {
		f.rounds.Hold()
		defer f.rounds.Release()
	}
	for _, v := range viewers {
		sample, ok, _ := v.sink.TryNext()
		if !ok {
			continue
		}
		wrote = true
		v.write(sample, f.log)
	}
	return wrote
}

func (v *viewerSink) write(sample media.Sample, log *slog.Logger) {
	track := v.sess.video
	if sample.Kind == media.Audio {
		track = v.sess.audio
	}
	if err := track.writeSample(sample); err != nil && !errors.Is(err, errNotBound) {
		log.Debug("viewer write failed", "session", v.sess.id, "err", err)
	}
}
