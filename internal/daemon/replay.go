package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/replay"
	"github.com/onair/onair/status"
)

// openReplays opens the replay library on the data partition. A partition
// that cannot hold it (read-only, vanished) is an error in the status, not
// a reason for the box not to broadcast.
func (d *Daemon) openReplays() {
	if !d.cfg.Replay.Enabled {
		d.sources.Recording = func() status.Component { return status.Component{State: replay.StateOff} }
		return
	}
	lib, err := replay.Open(replay.Options{
		Dir:          filepath.Join(d.cfg.DataDir, "replays"),
		Retention:    d.cfg.Replay.Retention.D(),
		MinFreeBytes: int64(d.cfg.Replay.MinFreeMB) << 20,
		Log:          d.log,
	})
	if err != nil {
		d.log.Error("replays are off: the data partition cannot hold them", "err", err)
		msg := err.Error()
		d.sources.Recording = func() status.Component { return status.Component{State: replay.StateError, Error: msg} }
		return
	}
	d.replays = lib
	d.sources.Recording = func() status.Component {
		st := lib.Status()
		return status.Component{State: st.State, Error: st.Error}
	}
}

// record follows the hub until ctx ends: every broadcast is recorded from
// its first keyframe to its stop, from the same samples the viewers get, and
// a title or privacy change during it goes into the replay's record.
func (d *Daemon) record(ctx context.Context, last broadcast.Status, changed <-chan struct{}) {
	var (
		sink    *broadcast.Sink
		current string
		wg      sync.WaitGroup
	)
	stop := func() {
		if sink != nil {
			sink.Finish() // Record writes what is queued, sees ErrSinkClosed, finishes the file
			sink, current = nil, ""
		}
	}
	defer func() { stop(); wg.Wait() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		var st broadcast.Status
		st, changed = d.hub.Status()
		live := st.State == broadcast.GoingLive || st.State == broadcast.Live
		switch {
		case live && current != st.BroadcastID:
			stop()
			// A queue of several seconds: the recorder writes to an SD card
			// that may stall; when it falls behind it loses data, never the
			// broadcast.
			sink = d.hub.AddSink(broadcast.SinkOptions{Name: "recorder", Queue: 1024})
			current = st.BroadcastID
			meta := replay.Meta{BroadcastID: st.BroadcastID, Title: st.Title, Private: st.Private}
			wg.Add(1)
			go func(src *broadcast.Sink) {
				defer wg.Done()
				if err := d.replays.Record(ctx, meta, src); err != nil && !errors.Is(err, context.Canceled) {
					d.log.Error("recording", "broadcast", meta.BroadcastID, "err", err)
				}
			}(sink)
		case live:
			if st.Title != last.Title || st.Private != last.Private {
				title, private := st.Title, st.Private
				d.replays.Update(current, &title, &private)
			}
		default:
			stop()
		}
		last = st
	}
}

// recordingBytes is what replays have written, for /metrics.
func (d *Daemon) recordingBytes() uint64 {
	if d.replays == nil {
		return 0
	}
	return d.replays.Status().BytesTotal
}
