//go:build !cgo

package x264

import (
	"errors"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
)

// Available tells that this build has no software encoder (built without cgo).
const Available = false

// Options tune the software encoder beyond the common parameters.
type Options struct {
	Preset  string
	Threads int
}

// Encoder is absent in builds without cgo.
type Encoder struct{}

var errNoCgo = errors.New("x264: this build has no software encoder (built without cgo)")

// New fails: x264 needs cgo.
func New(encoder.VideoParams, Options) (*Encoder, error) { return nil, errNoCgo }

// Encode fails: x264 needs cgo.
func (*Encoder) Encode(media.VideoFrame, bool) (media.Sample, bool, error) {
	return media.Sample{}, false, errNoCgo
}

// SetBitrate fails: x264 needs cgo.
func (*Encoder) SetBitrate(int) error { return errNoCgo }

// Close does nothing.
func (*Encoder) Close() error { return nil }
