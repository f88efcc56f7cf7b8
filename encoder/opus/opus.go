//go:build cgo

// Package opus is the audio encoder: Opus in 20 ms packets through
// pion/mediadevices' libopus codec (statically linked, so the box needs no
// libopus at run time). This package adds what the pipeline needs around it:
// PCM of any buffer length is cut into 20 ms frames, and each packet keeps
// the capture time of its first sample.
package opus

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/mediadevices/pkg/codec"
	mdopus "github.com/pion/mediadevices/pkg/codec/opus"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
)

// Available tells that this build has the Opus encoder.
const Available = true

// FrameDuration is the length of every packet.
const FrameDuration = 20 * time.Millisecond

// Encoder is a running Opus encoder for one sample rate and channel count.
type Encoder struct {
	rate, channels int
	frameSamples   int // per channel

	pending        []int16       // interleaved PCM not yet encoded
	pendingCapture time.Duration // capture time of pending[0]
	chunk          *wave.Int16Interleaved
	fed            bool // the reader handed out chunk for this Read
	codec          codec.ReadCloser
}

// New opens an encoder. rate must be one Opus accepts (8, 12, 16, 24 or
// 48 kHz); channels 1 or 2.
func New(rate, channels, bitrateKbps int) (*Encoder, error) {
	switch rate {
	case 8000, 12000, 16000, 24000, 48000:
	default:
		return nil, fmt.Errorf("opus: sample rate %d Hz: want 8000, 12000, 16000, 24000 or 48000", rate)
	}
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("opus: %d channels: want 1 or 2", channels)
	}
	if bitrateKbps < 6 || bitrateKbps > 510 {
		return nil, fmt.Errorf("opus: bitrate %d kbps: want 6 to 510", bitrateKbps)
	}
	frame := rate * int(FrameDuration/time.Millisecond) / 1000
	e := &Encoder{
		rate: rate, channels: channels, frameSamples: frame,
		chunk: wave.NewInt16Interleaved(wave.ChunkInfo{Len: frame, Channels: channels, SamplingRate: rate}),
	}
	params, err := mdopus.NewParams()
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	params.BitRate = bitrateKbps * 1000
	params.Latency = mdopus.Latency20ms
	e.codec, err = params.BuildAudioEncoder(readerFunc(e.read), prop.Media{Audio: prop.Audio{
		SampleRate: rate, ChannelCount: channels, IsInterleaved: true,
	}})
	if err != nil {
		return nil, fmt.Errorf("opus: open encoder %d Hz %d ch: %w", rate, channels, err)
	}
	return e, nil
}

// read hands the codec the one 20 ms chunk that Encode prepared. The codec
// pulls exactly one chunk per packet because the chunk is exactly 20 ms.
func (e *Encoder) read() (wave.Audio, func(), error) {
	if e.fed {
		return nil, func() {}, io.ErrUnexpectedEOF
	}
	e.fed = true
	return e.chunk, func() {}, nil
}

type readerFunc func() (wave.Audio, func(), error)

func (f readerFunc) Read() (wave.Audio, func(), error) { return f() }

// Encode takes PCM of any length and appends a sample for every completed
// 20 ms packet to dst.
func (e *Encoder) Encode(dst []media.Sample, f media.AudioFrame) ([]media.Sample, error) {
	if e.codec == nil {
		return dst, errors.New("opus: encoder is closed")
	}
	if f.SampleRate != e.rate || f.Channels != e.channels {
		return dst, fmt.Errorf("opus: got %d Hz %d ch, encoder is %d Hz %d ch", f.SampleRate, f.Channels, e.rate, e.channels)
	}
	if len(f.Samples)%e.channels != 0 {
		return dst, fmt.Errorf("opus: %d samples do not divide into %d channels", len(f.Samples), e.channels)
	}
	if len(e.pending) == 0 {
		e.pendingCapture = f.Capture
	}
	e.pending = append(e.pending, f.Samples...)
	per := e.frameSamples * e.channels
	for len(e.pending) >= per {
		copy(e.chunk.Data, e.pending[:per])
		e.fed = false
		packet, release, err := e.codec.Read()
		if err != nil {
			return dst, fmt.Errorf("opus: encode: %w", err)
		}
		data := append([]byte(nil), packet...)
		release()
		dst = append(dst, media.Sample{Kind: media.Audio, Data: data, Capture: e.pendingCapture, Duration: FrameDuration})
		e.pending = append(e.pending[:0], e.pending[per:]...)
		e.pendingCapture += FrameDuration
	}
	return dst, nil
}

// Close frees the encoder; safe to call more than once.
func (e *Encoder) Close() error {
	if e.codec == nil {
		return nil
	}
	err := e.codec.Close()
	e.codec = nil
	return err
}

var _ encoder.AudioEncoder = (*Encoder)(nil)
