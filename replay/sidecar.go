package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/onair/onair/internal/atomicfile"
)

const sidecarVersion = 1

// sidecar is <id>.json beside <id>.mp4: what the file itself does not say.
// It is replaced atomically (write, fsync, rename, fsync the directory).
type sidecar struct {
	Version     int    `json:"version"`
	ID          string `json:"id"`
	BroadcastID string `json:"broadcast_id"`
	Title       string `json:"title"`
	Private     bool   `json:"private"`
	Keep        bool   `json:"keep"`
	// Start is the broadcast's start on the wall clock, for display.
	Start time.Time `json:"start"`
	// StartTrusted is false when the wall clock read before 2020 at the
	// start (no RTC, no NTP yet), so Start is not a real date.
	StartTrusted bool `json:"start_trusted"`
	// StartClockMS is the library's running-time clock at the start: what
	// retention counts from, immune to the wall clock.
	StartClockMS int64 `json:"start_clock_ms"`
	DurationMS   int64 `json:"duration_ms"`
	SizeBytes    int64 `json:"size_bytes"`
	// Finished is set once the file has its index; a replay found
	// unfinished at Open was interrupted and is repaired.
	Finished bool `json:"finished"`
}

func readSidecar(path string) (sidecar, error) {
	var s sidecar
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse %s: %w", path, err)
	}
	if s.Version != sidecarVersion {
		return s, fmt.Errorf("%s: version %d, want %d", path, s.Version, sidecarVersion)
	}
	return s, nil
}

func writeSidecarFile(path string, s sidecar) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// clockFile persists the library's running-time clock. Its name starts with
// a dot, which no replay id can.
const clockFile = ".clock"

type clockState struct {
	RunningMS int64 `json:"running_ms"`
}

func loadClock(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, clockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var c clockState
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, fmt.Errorf("parse %s: %w", clockFile, err)
	}
	if c.RunningMS < 0 {
		return 0, fmt.Errorf("%s: negative running time", clockFile)
	}
	return time.Duration(c.RunningMS) * time.Millisecond, nil
}

func saveClockFile(dir string, running time.Duration) error {
	b, _ := json.Marshal(clockState{RunningMS: running.Milliseconds()})
	return atomicfile.Write(filepath.Join(dir, clockFile), append(b, '\n'), 0o644)
}
