package v4l2_test

import (
	"context"
	"fmt"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/media"
)

// Capture from a camera: here the fake, so that the example runs anywhere;
// on a box, v4l2.Open("/dev/video0", ...) does the same with the real node.
func ExampleNewSource() {
	cam := v4l2.NewFakeCamera(v4l2.FakeConfig{
		Formats: []v4l2.FakeFormat{
			{Format: media.YUYV, Sizes: []v4l2.FakeSize{{Width: 640, Height: 480}}},
			{Format: media.MJPEG, Sizes: []v4l2.FakeSize{{Width: 1280, Height: 720}}},
		},
	})
	src, err := v4l2.NewSource(cam, "/dev/video0", v4l2.Config{
		Width: 1280, Height: 720, FPS: 30,
		Formats: []media.PixelFormat{media.NV12, media.MJPEG, media.YUYV},
	}, device.NewClock())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	m := src.Mode()
	fmt.Printf("%s %dx%d at %v fps\n", m.FourCC, m.Width, m.Height, m.FPS)
	frame, err := src.ReadVideo(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(frame.Format, frame.Width, frame.Height, frame.Capture >= 0)
	// Output:
	// MJPG 1280x720 at 30 fps
	// MJPEG 1280 720 true
}
