//go:build !cgo

package alsa

import (
	"context"
	"errors"
	"testing"

	"github.com/onair/onair/device"
)

func TestWithoutCgoEverythingSaysSo(t *testing.T) {
	if _, err := Open(Config{Device: "USB"}, device.NewClock()); !errors.Is(err, ErrNoCgo) {
		t.Fatalf("Open = %v, want ErrNoCgo", err)
	}
	if _, err := List(); !errors.Is(err, ErrNoCgo) {
		t.Fatalf("List = %v, want ErrNoCgo", err)
	}
	var s Source
	if _, err := s.ReadAudio(context.Background()); !errors.Is(err, ErrNoCgo) {
		t.Fatalf("ReadAudio = %v, want ErrNoCgo", err)
	}
}
