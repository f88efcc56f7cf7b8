package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/onair/onair/media"
)

const (
	// queueLen bounds the samples between the source and the file writer
	// (about 12 s of 30 fps video with 20 ms audio). When the writer falls
	// further behind, samples are dropped up to the next keyframe: the
	// source is drained no matter what the disk does.
	queueLen = 1024
	// retryAfter spaces attempts to write again after a write error, in
	// capture time.
	retryAfter = 5 * time.Second
)

// item is a queued sample; gap tells that samples before it were dropped.
type item struct {
	s   media.Sample
	gap bool
}

// recording is one broadcast being written. The writer goroutine owns the
// file, the muxer and the fields above the line; the others are guarded by
// the library's mu and read by Status, List and ServeMedia.
type recording struct {
	l           *Library
	id          string
	file        *os.File
	mux         *muxer
	end         int64         // bytes of complete fragments on disk
	lastCapture time.Duration // of the last sample handled
	retryAt     time.Duration // capture time before which no resume is tried
	lastFrag    int64         // bytes of the last fragment cut: a paused recording resumes with room for two

	state, errText string
	committed      int64         // = end, for readers
	written        time.Duration // media time on disk
	grew           chan struct{} // closed when committed grows or the recording ends
	done           bool
}

// Record writes the broadcast that src delivers to a new replay until src
// fails (it ended: broadcast.ErrSinkClosed, or any other error) or ctx
// ends, then finishes the file. It keeps draining src even when it cannot
// write (no space, write errors, the directory gone), so that whoever feeds
// src is never held up; Status tells what happens. It returns an error when
// the replay could not be started or finished.
func (l *Library) Record(ctx context.Context, m Meta, src Source) error {
	r, err := l.begin(m)
	if err != nil {
		l.log.Error("cannot record the broadcast", "broadcast", m.BroadcastID, "err", err)
		// Status says so while the broadcast lasts; the source is drained.
		failed := &recording{l: l, state: StateError, errText: err.Error()}
		l.mu.Lock()
		l.active = append(l.active, failed)
		l.notifyLocked()
		l.mu.Unlock()
		for {
			if _, nerr := src.Next(ctx); nerr != nil {
				break
			}
		}
		l.mu.Lock()
		l.active = slices.DeleteFunc(l.active, func(a *recording) bool { return a == failed })
		l.lastError = err.Error()
		l.notifyLocked()
		l.mu.Unlock()
		return err
	}
	queue := make(chan item, l.queueLen)
	written := make(chan struct{})
	go func() {
		defer close(written)
		r.write(queue)
	}()
	gap := false
	dropped := 0
	for {
		s, err := src.Next(ctx)
		if err != nil {
			break
		}
		if gap && (s.Kind != media.Video || !s.Keyframe) {
			dropped++
			continue
		}
		select {
		case queue <- item{s, gap}:
			gap = false
		default:
			gap = true
			dropped++
		}
	}
	close(queue)
	<-written
	if dropped > 0 {
		l.log.Warn("recorder fell behind and skipped media", "replay", r.id, "samples", dropped)
	}
	return l.finish(r)
}

// begin registers a new replay and creates its sidecar and file.
func (l *Library) begin(m Meta) (*recording, error) {
	start := m.Start
	if start.IsZero() {
		start = l.opt.WallNow()
	}
	base := m.BroadcastID
	if !validID(base) || len(base) > 56 {
		var b [4]byte
		rand.Read(b[:])
		base = "r" + start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
	}
	r := &recording{l: l, mux: newMuxer(), state: StateRecording, grew: make(chan struct{})}
	l.mu.Lock()
	id := base
	for n := 2; l.entries[id] != nil; n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	r.id = id
	e := &entry{rec: r, startFixable: !trustedWall(start), side: sidecar{
		Version: sidecarVersion, ID: id, BroadcastID: m.BroadcastID, Title: m.Title, Private: m.Private,
		Start: start, StartTrusted: trustedWall(start), StartClockMS: l.clock().Milliseconds(),
	}}
	l.entries[id] = e
	l.active = append(l.active, r)
	l.lastError = ""
	l.notifyLocked()
	l.mu.Unlock()

	err := os.MkdirAll(l.opt.Dir, 0o755) // it may have vanished since Open
	if err == nil {
		err = l.writeSidecar(id)
	}
	if err == nil {
		r.file, err = os.OpenFile(l.path(id, ".mp4"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err == nil {
		err = syncDir(l.opt.Dir)
	}
	if err != nil {
		if r.file != nil {
			r.file.Close()
		}
		l.mu.Lock()
		delete(l.entries, id)
		l.active = slices.DeleteFunc(l.active, func(a *recording) bool { return a == r })
		l.notifyLocked()
		l.mu.Unlock()
		l.removeFiles(id)
		return nil, fmt.Errorf("start replay %s: %w", id, err)
	}
	l.log.Info("recording", "replay", id, "title", m.Title, "private", m.Private)
	return r, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// write is the writer goroutine: it muxes the queued samples and writes
// fragments until the queue is closed.
func (r *recording) write(queue <-chan item) {
	for it := range queue {
		r.handle(it)
	}
	if r.state == StateRecording {
		r.flush(0, false)
	}
}

func (r *recording) handle(it item) {
	s := it.s
	r.lastCapture = s.Capture
	if it.gap && r.state == StateRecording {
		r.flush(0, false) // what came before the gap is good
		r.mux.discontinuity()
	}
	if r.state != StateRecording {
		// Resume only with room for a couple of fragments beyond the floor,
		// not at the first byte above it: a disk at the edge would pause
		// and resume at every fragment.
		if s.Kind != media.Video || !s.Keyframe || s.Capture < r.retryAt || !r.l.makeRoom(max(2*r.lastFrag, 1<<20)) {
			return
		}
		r.setState(StateRecording, "")
		r.l.log.Info("recording resumed", "replay", r.id)
	}
	if r.mux.needCut(s) {
		r.flush(s.Capture, s.Kind == media.Video)
		if r.state != StateRecording {
			return
		}
	}
	r.mux.add(s)
}

// flush cuts the fragment being built and writes it, or pauses when there
// is no room for it.
func (r *recording) flush(next time.Duration, hasNext bool) {
	out, frag, _ := r.mux.cut(next, hasNext)
	if out == nil {
		return
	}
	r.lastFrag = int64(len(out))
	if !r.l.makeRoom(int64(len(out))) {
		r.l.mu.Lock()
		free := r.l.freeBytes
		r.l.mu.Unlock()
		r.stop(StatePaused, fmt.Sprintf("recording paused: %d MB free on the replay disk, %d MB needed (replay.min_free_mb)",
			free>>20, r.l.opt.MinFreeBytes>>20), false)
		return
	}
	if err := r.append(out); err != nil {
		state := StateError
		if errors.Is(err, syscall.ENOSPC) {
			state = StatePaused
		}
		r.stop(state, err.Error(), true)
		return
	}
	r.mux.written(&frag)
	r.l.bytesTotal.Add(uint64(len(out)))
	r.l.mu.Lock()
	r.committed, r.written = r.end, r.mux.writtenEnd
	close(r.grew)
	r.grew = make(chan struct{})
	r.l.notifyLocked()
	r.l.mu.Unlock()
}

// append writes a fragment after the last one and syncs it: once append
// returns, a power cut no longer loses it. A failed write is cut off again
// so that the next fragment follows the last good one.
func (r *recording) append(out []byte) error {
	if _, err := r.file.WriteAt(out, r.end); err != nil {
		r.file.Truncate(r.end)
		return fmt.Errorf("write replay %s: %w", filepath.Base(r.file.Name()), err)
	}
	if err := r.file.Sync(); err != nil {
		r.file.Truncate(r.end)
		return fmt.Errorf("sync replay %s: %w", filepath.Base(r.file.Name()), err)
	}
	r.end += int64(len(out))
	return nil
}

// stop pauses writing (state paused or error): samples are dropped until a
// keyframe at which there is room again and, after a write error, not
// before retryAfter.
func (r *recording) stop(state, msg string, backoff bool) {
	r.mux.discontinuity()
	r.retryAt = 0
	if backoff {
		r.retryAt = r.lastCapture + retryAfter
	}
	if r.state == StateRecording {
		level := slog.LevelWarn
		if state == StateError {
			level = slog.LevelError
		}
		r.l.log.Log(context.Background(), level, "recording stopped writing, the broadcast goes on",
			"replay", r.id, "state", state, "err", msg)
	}
	r.setState(state, msg)
}

func (r *recording) setState(state, msg string) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.state != state || r.errText != msg {
		r.state, r.errText = state, msg
		r.l.notifyLocked()
	}
}

// finish writes the index and the final sidecar, or removes a replay that
// got no media at all.
func (l *Library) finish(r *recording) error {
	var lay layout
	var err error
	if r.end > 0 {
		lay, err = scan(r.file, r.end)
		if err == nil {
			err = finalize(r.file, &lay)
		}
	}
	var size int64
	if st, serr := r.file.Stat(); serr == nil {
		size = st.Size()
	}
	if cerr := r.file.Close(); err == nil && cerr != nil {
		err = cerr
	}

	l.mu.Lock()
	e := l.entries[r.id]
	l.active = slices.DeleteFunc(l.active, func(a *recording) bool { return a == r })
	r.done = true
	close(r.grew)
	if r.state != StateRecording {
		l.lastError = r.errText
	}
	empty := r.end == 0
	if e != nil {
		e.rec = nil
		if empty {
			delete(l.entries, r.id)
		} else if err == nil {
			e.side.Finished = true
			e.side.DurationMS = lay.duration().Milliseconds()
			e.side.SizeBytes = size
			e.size = size
		} else {
			// Left unfinished: the next Open repairs it.
			e.size = r.end
		}
	}
	l.notifyLocked()
	l.mu.Unlock()

	switch {
	case empty:
		l.removeFiles(r.id)
		l.log.Info("recording ended without media, no replay kept", "replay", r.id)
		if r.state != StateRecording {
			return fmt.Errorf("replay %s: nothing recorded: %s", r.id, r.errText)
		}
		return nil
	case err != nil:
		return fmt.Errorf("finish replay %s: %w", r.id, err)
	}
	if err := l.writeSidecar(r.id); err != nil {
		return fmt.Errorf("finish replay %s: %w", r.id, err)
	}
	l.log.Info("recording finished", "replay", r.id, "duration", lay.duration().Round(time.Millisecond), "size_bytes", size)
	return nil
}
