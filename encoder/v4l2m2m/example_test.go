package v4l2m2m_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/encoder/v4l2m2m"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// Encode on the fake, so the example runs anywhere; on a Pi,
// v4l2m2m.Find and v4l2m2m.Open do the same with /dev/video11.
func ExampleNew() {
	open := func(string) (v4l2m2m.Device, error) { return v4l2m2m.NewFakeDevice(v4l2m2m.FakeConfig{}), nil }
	p := encoder.VideoParams{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, KeyframeInterval: 2 * time.Second}
	if err := v4l2m2m.Validate(p, v4l2m2m.VBR); err != nil {
		fmt.Println(err)
		return
	}
	// The default logger (slog.Default) says what was set up; quiet here.
	enc, err := v4l2m2m.New(open, "/dev/video11", p, v4l2m2m.Options{Format: media.NV12, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer enc.Close()
	info := enc.Info()
	fmt.Println(info.Card, info.Format, info.Level, info.Profile)

	frame := media.VideoFrame{Format: media.NV12, Width: 1280, Height: 720, Data: make([]byte, 1280*720*3/2), Capture: 40 * time.Millisecond}
	sample, ok, err := enc.Encode(frame, true)
	if err != nil || !ok {
		fmt.Println(ok, err)
		return
	}
	au := h264.Inspect(sample.Data)
	fmt.Println(sample.Keyframe, au.SPS && au.PPS && au.IDR, sample.Capture)
	// Output:
	// bcm2835-codec-encode NV12 3.1 constrained_baseline
	// true true 40ms
}
