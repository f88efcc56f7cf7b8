//go:build !cgo

package opus

import (
	"errors"

	"github.com/onair/onair/media"
)

// Available tells that this build has no Opus encoder (built without cgo).
const Available = false

// Encoder is absent in builds without cgo.
type Encoder struct{}

var errNoCgo = errors.New("opus: this build has no Opus encoder (built without cgo)")

// New fails: Opus needs cgo.
func New(rate, channels, bitrateKbps int) (*Encoder, error) { return nil, errNoCgo }

// Encode fails: Opus needs cgo.
func (*Encoder) Encode(dst []media.Sample, _ media.AudioFrame) ([]media.Sample, error) {
	return dst, errNoCgo
}

// Close does nothing.
func (*Encoder) Close() error { return nil }
