//go:build !cgo

package alsa

import (
	"context"
	"fmt"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Source is an ALSA microphone. Without cgo it cannot be opened; the type
// exists so that code using it compiles in pure-Go builds.
type Source struct{}

// Open returns ErrNoCgo: miniaudio is C and this binary was built without
// cgo, so the caller falls back to another audio source.
func Open(cfg Config, clock *device.Clock) (*Source, error) {
	return nil, fmt.Errorf("open ALSA microphone %q: %w", cfg.Device, ErrNoCgo)
}

// List returns ErrNoCgo.
func List() ([]DeviceInfo, error) {
	return nil, fmt.Errorf("list ALSA capture devices: %w", ErrNoCgo)
}

// ReadAudio returns ErrNoCgo.
func (s *Source) ReadAudio(ctx context.Context) (media.AudioFrame, error) {
	return media.AudioFrame{}, ErrNoCgo
}

// Close does nothing.
func (s *Source) Close() error { return nil }

// Device returns the zero DeviceInfo.
func (s *Source) Device() DeviceInfo { return DeviceInfo{} }

// Dropped returns 0.
func (s *Source) Dropped() uint64 { return 0 }

// Gaps returns 0.
func (s *Source) Gaps() uint64 { return 0 }

// String describes the source.
func (s *Source) String() string { return "ALSA (unavailable without cgo)" }

var _ device.AudioSource = (*Source)(nil)
