// Package settings keeps the run-time settings that the crew or the
// operator change while the box runs (title, bitrate): they survive a reboot
// and override the config file until cleared. The file is replaced
// atomically, so a power cut leaves the old settings or the new ones.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/onair/onair/internal/atomicfile"
)

// Settings are the run-time overrides; a nil field is not overridden.
type Settings struct {
	Title           *string `json:"title,omitempty"`
	BitrateKbps     *int    `json:"bitrate_kbps,omitempty"`
	Private         *bool   `json:"private,omitempty"`
	CommentsEnabled *bool   `json:"comments_enabled,omitempty"`
	UplinkURL       *string `json:"uplink_url,omitempty"`
	UplinkToken     *string `json:"uplink_token,omitempty"`
	UplinkEnabled   *bool   `json:"uplink_enabled,omitempty"`
}

// FileName is the settings file's name in the data directory.
const FileName = "settings.json"

// Store reads and writes the settings file.
type Store struct {
	path string
	mu   sync.Mutex
	cur  Settings
}

// Open loads the settings from dir. A missing file means no overrides; a
// damaged one is set aside (renamed .bad) and reported, and the box starts
// on the config file's values rather than not at all.
func Open(dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, FileName)}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	if err := json.Unmarshal(data, &s.cur); err != nil {
		s.cur = Settings{}
		bad := s.path + ".bad"
		if rerr := os.Rename(s.path, bad); rerr != nil {
			return nil, fmt.Errorf("settings %s are damaged (%v) and cannot be set aside: %w", s.path, err, rerr)
		}
		return s, fmt.Errorf("settings %s were damaged and are kept as %s: %w", s.path, bad, err)
	}
	return s, nil
}

// Get returns the current settings.
func (s *Store) Get() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Update changes the settings with change and writes them durably before
// returning; on a write error the settings stay as they were.
func (s *Store) Update(change func(*Settings)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cur
	change(&next)
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	s.cur = next
	return nil
}
