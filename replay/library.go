package replay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair/onair/media"
)

// Options configure a Library. Zero values take the defaults.
type Options struct {
	// Dir holds the replays: <data_dir>/replays. Created if missing.
	Dir string
	// Retention is how long a replay is kept after its broadcast ended,
	// counted in the box's running time (see the package doc); default 24h.
	Retention time.Duration
	// MinFreeBytes is the free space below which the oldest replays are
	// deleted and, if that is not enough, recording pauses; default 200 MB.
	MinFreeBytes int64
	// FreeBytes tells the free space of the file system holding dir;
	// default statfs.
	FreeBytes func(dir string) (int64, error)
	// Now is a monotonic clock; default the time since Open.
	Now func() time.Duration
	// WallNow is the wall clock, used only for display; default time.Now.
	WallNow func() time.Time
	// CheckEvery is the period of Run's retention and disk checks;
	// default 1 minute.
	CheckEvery time.Duration
	// Log receives the library's logs; default slog.Default().
	Log *slog.Logger
}

// Info describes a replay, as GET /api/replays lists it.
type Info struct {
	ID string `json:"id"`
	// BroadcastID is the broadcast recorded; usually equal to ID.
	BroadcastID string    `json:"-"`
	Title       string    `json:"title"`
	Start       time.Time `json:"start"`
	DurationS   float64   `json:"duration_s"`
	SizeBytes   int64     `json:"size_bytes"`
	Private     bool      `json:"private"`
	Keep        bool      `json:"keep"`
	Recording   bool      `json:"recording"`
}

// Meta describes the broadcast being recorded.
type Meta struct {
	BroadcastID string
	Title       string
	Private     bool
	// Start is the broadcast's start on the wall clock (display only);
	// zero means now.
	Start time.Time
}

// Source delivers the broadcast's encoded samples; broadcast.Sink is one.
// Next blocks until a sample is there and fails when the source ends.
type Source interface {
	Next(ctx context.Context) (media.Sample, error)
}

// Recording states, as Status reports them.
const (
	StateOff       = "off"       // no library (replays disabled)
	StateIdle      = "idle"      // not recording
	StateRecording = "recording" // writing the live broadcast
	StatePaused    = "paused"    // live, but not writing: too little disk space
	StateError     = "error"     // live, but writing fails; retried every few seconds
)

// Status is the recorder's state for the status document and metrics.
type Status struct {
	State string
	// Error says why recording is paused or failing, or why the last
	// recording failed (kept while idle until the next one starts).
	Error string
	// BytesTotal counts bytes written to replays since Open.
	BytesTotal uint64
	// FreeBytes is the free space last measured, -1 before the first.
	FreeBytes int64
}

// Errors.
var (
	ErrNotFound  = errors.New("replay not found")
	ErrRecording = errors.New("replay is being recorded")
)

const (
	defaultRetention  = 24 * time.Hour
	defaultMinFree    = 200 << 20
	defaultCheckEvery = time.Minute
	// clockSaveEvery is how often the running-time clock is persisted: a
	// crash makes replays at most this much younger.
	clockSaveEvery = 5 * time.Minute
)

// Library owns the replay directory: it records broadcasts, lists, serves
// and deletes replays, and enforces retention and free space. Its methods
// are safe for concurrent use. It starts no goroutine of its own: Run and
// Record run in their callers' goroutines (Record with one helper that it
// waits for).
type Library struct {
	opt         Options
	log         *slog.Logger
	nowAtOpen   time.Duration
	clockAtOpen time.Duration

	// ioMu serializes sidecar and clock writes, so that an older content
	// never lands after a newer one.
	ioMu sync.Mutex

	mu         sync.Mutex
	entries    map[string]*entry
	active     []*recording // started order; Status reports the last
	lastError  string
	freeBytes  int64
	clockSaved time.Duration
	changed    chan struct{}

	bytesTotal atomic.Uint64
	queueLen   int // queueLen, or more in tests whose sources run faster than real time
}

type entry struct {
	side sidecar
	size int64
	rec  *recording // non-nil while recording
	// startFixable: recorded by this process with an untrusted wall
	// clock, so the start can be set right once the clock is trusted.
	startFixable bool
}

// Open opens (creating) the replay directory, repairs what a crash left
// unfinished, applies retention and lists what is there.
func Open(opt Options) (*Library, error) {
	if opt.Dir == "" {
		return nil, errors.New("replay: no directory")
	}
	if opt.Retention <= 0 {
		opt.Retention = defaultRetention
	}
	if opt.MinFreeBytes <= 0 {
		opt.MinFreeBytes = defaultMinFree
	}
	if opt.FreeBytes == nil {
		opt.FreeBytes = statfsFree
	}
	if opt.Now == nil {
		start := time.Now()
		opt.Now = func() time.Duration { return time.Since(start) }
	}
	if opt.WallNow == nil {
		opt.WallNow = time.Now
	}
	if opt.CheckEvery <= 0 {
		opt.CheckEvery = defaultCheckEvery
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	l := &Library{
		opt: opt, log: opt.Log.With("component", "replay"),
		entries: make(map[string]*entry), freeBytes: -1, changed: make(chan struct{}), queueLen: queueLen,
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("replay: create %s: %w", opt.Dir, err)
	}
	l.nowAtOpen = opt.Now()
	clock, err := loadClock(opt.Dir)
	if err != nil {
		l.log.Warn("running-time clock unreadable, starting it from the replays", "err", err)
	}
	if err := l.load(&clock); err != nil {
		return nil, err
	}
	l.clockAtOpen = clock
	l.clockSaved = clock
	l.check()
	return l, nil
}

// clock is the library's running time: how long the box has been running
// with this directory, across restarts. Retention counts it.
func (l *Library) clock() time.Duration {
	return l.clockAtOpen + l.opt.Now() - l.nowAtOpen
}

// load reads the directory: sidecars, media files, leftovers.
func (l *Library) load(clock *time.Duration) error {
	dirEntries, err := os.ReadDir(l.opt.Dir)
	if err != nil {
		return fmt.Errorf("replay: read %s: %w", l.opt.Dir, err)
	}
	media := map[string]bool{}
	for _, de := range dirEntries {
		name := de.Name()
		switch {
		case name == clockFile:
		case strings.HasPrefix(name, "."):
			// A temporary file of an atomic write that a crash interrupted.
			os.Remove(filepath.Join(l.opt.Dir, name))
		case strings.HasSuffix(name, ".json") && validID(strings.TrimSuffix(name, ".json")):
			id := strings.TrimSuffix(name, ".json")
			side, err := readSidecar(l.path(id, ".json"))
			if err != nil || side.ID != id {
				l.log.Warn("replay sidecar unreadable, rebuilding it from the media", "replay", id, "err", err)
				continue
			}
			l.entries[id] = &entry{side: side}
		case strings.HasSuffix(name, ".mp4") && validID(strings.TrimSuffix(name, ".mp4")):
			media[strings.TrimSuffix(name, ".mp4")] = true
		}
	}
	for id := range media {
		if _, ok := l.entries[id]; ok {
			continue
		}
		// Media without a sidecar: keep it, with what the file tells.
		side := sidecar{Version: sidecarVersion, ID: id, BroadcastID: id}
		if st, err := os.Stat(l.path(id, ".mp4")); err == nil {
			side.Start = st.ModTime()
			side.StartTrusted = trustedWall(side.Start)
		}
		side.StartClockMS = clock.Milliseconds()
		l.entries[id] = &entry{side: side}
	}
	for id, e := range l.entries {
		if !media[id] {
			l.log.Warn("replay media missing, forgetting the replay", "replay", id)
			l.removeFiles(id)
			delete(l.entries, id)
			continue
		}
		if !e.side.Finished {
			if err := l.repair(e); err != nil {
				l.log.Warn("replay left unfinished cannot be repaired, deleting it", "replay", id, "err", err)
				l.removeFiles(id)
				delete(l.entries, id)
				continue
			}
		}
		if st, err := os.Stat(l.path(id, ".mp4")); err == nil {
			e.size = st.Size()
		}
		// The clock may have been saved before the last replays were
		// made: it never runs backwards from what they record.
		if end := time.Duration(e.side.StartClockMS+e.side.DurationMS) * time.Millisecond; end > *clock {
			*clock = end
		}
	}
	return nil
}

// repair finishes a replay that a crash or power cut interrupted: the
// partial fragment at its end is cut and the index written.
func (l *Library) repair(e *entry) error {
	path := l.path(e.side.ID, ".mp4")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	lay, err := scan(f, st.Size())
	if err != nil {
		return err
	}
	if err := finalize(f, &lay); err != nil {
		return err
	}
	e.side.Finished = true
	e.side.DurationMS = lay.duration().Milliseconds()
	if st, err := f.Stat(); err == nil {
		e.side.SizeBytes = st.Size()
	}
	l.log.Info("replay repaired after an interrupted recording", "replay", e.side.ID,
		"duration", lay.duration().Round(time.Millisecond), "cut_bytes", st.Size()-lay.end)
	return l.writeSidecarNow(e.side)
}

func (l *Library) path(id, ext string) string { return filepath.Join(l.opt.Dir, id+ext) }

// removeFiles deletes a replay's media, then its sidecar: a crash between
// the two leaves a sidecar without media, which Open forgets.
func (l *Library) removeFiles(id string) error {
	var errs []error
	for _, ext := range []string{".mp4", ".json"} {
		if err := os.Remove(l.path(id, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// notify wakes StatusChanged waiters; l.mu is held.
func (l *Library) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// StatusChanged returns a channel that is closed at the next change of
// Status or of a recording's progress (each fragment written), so status
// publishers need no polling.
func (l *Library) StatusChanged() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Status reports the recorder's state. A nil Library reports StateOff.
func (l *Library) Status() Status {
	if l == nil {
		return Status{State: StateOff, FreeBytes: -1}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{State: StateIdle, Error: l.lastError, BytesTotal: l.bytesTotal.Load(), FreeBytes: l.freeBytes}
	if n := len(l.active); n > 0 {
		r := l.active[n-1]
		st.State, st.Error = r.state, r.errText
	}
	return st
}

func (l *Library) info(e *entry) Info {
	in := Info{
		ID: e.side.ID, BroadcastID: e.side.BroadcastID, Title: e.side.Title, Start: e.side.Start,
		DurationS: float64(e.side.DurationMS) / 1000, SizeBytes: e.size,
		Private: e.side.Private, Keep: e.side.Keep,
	}
	if r := e.rec; r != nil {
		in.Recording = true
		in.DurationS = r.written.Seconds()
		in.SizeBytes = r.committed
	}
	return in
}

// List returns the replays, newest first.
func (l *Library) List() []Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Info, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, l.info(e))
	}
	slices.SortFunc(out, func(a, b Info) int {
		ea, eb := l.entries[a.ID], l.entries[b.ID]
		if c := eb.side.StartClockMS - ea.side.StartClockMS; c != 0 {
			if c < 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

// Get returns one replay.
func (l *Library) Get(id string) (Info, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[id]
	if !ok {
		return Info{}, false
	}
	return l.info(e), true
}

// Delete deletes a replay; the one being recorded cannot be deleted.
func (l *Library) Delete(id string) error {
	l.mu.Lock()
	e, ok := l.entries[id]
	switch {
	case !ok:
		l.mu.Unlock()
		return ErrNotFound
	case e.rec != nil:
		l.mu.Unlock()
		return ErrRecording
	}
	delete(l.entries, id)
	l.notifyLocked()
	l.mu.Unlock()
	if err := l.removeFiles(id); err != nil {
		return fmt.Errorf("delete replay %s: %w", id, err)
	}
	l.log.Info("replay deleted", "replay", id)
	return nil
}

// SetKeep exempts a replay from retention (keep) or returns it to it.
func (l *Library) SetKeep(id string, keep bool) error {
	return l.change(func(e *entry) bool { return e.side.ID == id }, func(s *sidecar) { s.Keep = keep }, true)
}

// Update changes the title or privacy of the replays of a broadcast (nil
// leaves a field as it is), typically while it is being recorded.
func (l *Library) Update(broadcastID string, title *string, private *bool) {
	err := l.change(func(e *entry) bool { return e.side.BroadcastID == broadcastID }, func(s *sidecar) {
		if title != nil {
			s.Title = *title
		}
		if private != nil {
			s.Private = *private
		}
	}, false)
	if err != nil {
		l.log.Error("update replay", "broadcast", broadcastID, "err", err)
	}
}

// change edits the sidecars of the matching entries and writes them.
func (l *Library) change(match func(*entry) bool, edit func(*sidecar), mustMatch bool) error {
	l.mu.Lock()
	var ids []string
	for id, e := range l.entries {
		if match(e) {
			edit(&e.side)
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		l.notifyLocked()
	}
	l.mu.Unlock()
	if len(ids) == 0 && mustMatch {
		return ErrNotFound
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, l.writeSidecar(id))
	}
	return errors.Join(errs...)
}

// writeSidecar writes an entry's current sidecar durably.
func (l *Library) writeSidecar(id string) error {
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	l.mu.Lock()
	e, ok := l.entries[id]
	var side sidecar
	if ok {
		side = e.side
	}
	l.mu.Unlock()
	if !ok {
		return nil // deleted meanwhile
	}
	return writeSidecarFile(l.path(id, ".json"), side)
}

// writeSidecarNow writes a sidecar during Open, before the entry is shared.
func (l *Library) writeSidecarNow(side sidecar) error {
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	return writeSidecarFile(l.path(side.ID, ".json"), side)
}

// Run applies retention, watches free space, keeps the running-time clock
// and corrects start times once the wall clock is trusted, every
// CheckEvery until ctx ends; then it saves the clock.
func (l *Library) Run(ctx context.Context) {
	t := time.NewTicker(l.opt.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.check()
		case <-ctx.Done():
			l.saveClock()
			return
		}
	}
}

// check is one round of Run's periodic work.
func (l *Library) check() {
	now := l.clock()
	wall := l.opt.WallNow()

	l.mu.Lock()
	var expired, fixed []string
	for id, e := range l.entries {
		if e.startFixable && trustedWall(wall) {
			// Recorded by this process before the clock was set: the
			// running time since then is exact, so the start is too.
			e.side.Start = wall.Add(-(now - time.Duration(e.side.StartClockMS)*time.Millisecond)).Round(time.Second)
			e.side.StartTrusted, e.startFixable = true, false
			fixed = append(fixed, id)
		}
		if e.rec != nil || e.side.Keep || !e.side.Finished {
			continue
		}
		ended := time.Duration(e.side.StartClockMS+e.side.DurationMS) * time.Millisecond
		if now-ended > l.opt.Retention {
			expired = append(expired, id)
		}
	}
	saveClock := now-l.clockSaved >= clockSaveEvery
	l.mu.Unlock()

	for _, id := range fixed {
		if err := l.writeSidecar(id); err != nil {
			l.log.Error("write replay sidecar", "replay", id, "err", err)
		}
	}
	for _, id := range expired {
		if err := l.Delete(id); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrRecording) {
			l.log.Error("delete expired replay", "replay", id, "err", err)
		} else if err == nil {
			l.log.Info("replay expired", "replay", id, "retention", l.opt.Retention)
		}
	}
	l.makeRoom(0)
	if saveClock {
		l.saveClock()
	}
}

// saveClock persists the running-time clock.
func (l *Library) saveClock() {
	now := l.clock()
	l.ioMu.Lock()
	err := saveClockFile(l.opt.Dir, now)
	l.ioMu.Unlock()
	if err != nil {
		l.log.Error("save replay clock", "err", err)
		return
	}
	l.mu.Lock()
	l.clockSaved = now
	l.mu.Unlock()
}

// makeRoom deletes the oldest replays (not kept, not recording) until need
// bytes fit above MinFreeBytes. It reports whether they fit; an unreadable
// free space counts as fitting, so that a broken statfs never stops a
// recording.
func (l *Library) makeRoom(need int64) bool {
	for {
		free, err := l.opt.FreeBytes(l.opt.Dir)
		if err != nil {
			l.log.Debug("free space unknown", "dir", l.opt.Dir, "err", err)
			return true
		}
		l.mu.Lock()
		if free != l.freeBytes {
			l.freeBytes = free
			l.notifyLocked()
		}
		if free-need >= l.opt.MinFreeBytes {
			l.mu.Unlock()
			return true
		}
		var oldest *entry
		for _, e := range l.entries {
			if e.rec != nil || e.side.Keep {
				continue
			}
			if oldest == nil || e.side.StartClockMS < oldest.side.StartClockMS ||
				(e.side.StartClockMS == oldest.side.StartClockMS && e.side.ID < oldest.side.ID) {
				oldest = e
			}
		}
		if oldest == nil {
			l.mu.Unlock()
			return false
		}
		id := oldest.side.ID
		delete(l.entries, id)
		l.notifyLocked()
		l.mu.Unlock()
		l.log.Warn("replay deleted to free disk space", "replay", id,
			"free_bytes", free, "min_free_bytes", l.opt.MinFreeBytes)
		if err := l.removeFiles(id); err != nil {
			l.log.Error("delete replay", "replay", id, "err", err)
			return false
		}
	}
}

// trustedWall tells whether a wall time can be a real date: a box without
// a real-time clock starts in 1970 until NTP sets it.
func trustedWall(t time.Time) bool { return t.Year() >= 2020 }

// validID tells whether id is a plain, safe replay name: letters, digits,
// '-' and '_', starting with a letter or digit, at most 64 bytes. No dots,
// slashes or escapes can get through.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}
