package v4l2m2m

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/onair/onair/media"
)

// TestCopyFrame puts a picture into a padded buffer and takes it out again;
// the padding must stay untouched and the planes where videodev2 puts them.
func TestCopyFrame(t *testing.T) {
	for _, format := range []media.PixelFormat{media.I420, media.NV12, media.YUYV} {
		for _, size := range [][2]int{{640, 480}, {322, 242}, {1920, 1080}} {
			w, h := size[0], size[1]
			t.Run(fmt.Sprintf("%s_%dx%d", format, w, h), func(t *testing.T) {
				bpl := minBytesPerLine(format, w) + 64
				l := rawLayout{format: format, width: w, height: h, bytesPerLine: bpl}
				l.sizeImage = l.payload()
				if err := l.check(); err != nil {
					t.Fatal(err)
				}
				frame := picture(format, w, h, 3)
				buf := bytes.Repeat([]byte{0xEE}, l.sizeImage)
				n, err := l.copyFrame(buf, frame.Data)
				if err != nil || n != len(frame.Data) {
					t.Fatalf("copyFrame: %d bytes, %v; want %d", n, err, len(frame.Data))
				}
				back := make([]byte, len(frame.Data))
				l.extractFrame(back, buf)
				if !bytes.Equal(back, frame.Data) {
					t.Fatal("picture changed on the way through the buffer")
				}
				// Luma row 1 starts one stride in, its padding untouched.
				if buf[bpl] != frame.Data[minBytesPerLine(format, w)] || buf[bpl-1] != 0xEE {
					t.Fatal("rows are not bytesperline apart")
				}
				if format == media.I420 {
					// V follows U at half the stride.
					v := bpl*h + bpl/2*h/2
					if buf[v] != frame.Data[w*h+w/2*h/2] {
						t.Fatal("V plane misplaced")
					}
				}
				allocs := testing.AllocsPerRun(10, func() { l.copyFrame(buf, frame.Data) })
				if allocs != 0 {
					t.Fatalf("copyFrame allocates %v times", allocs)
				}
			})
		}
	}
}

func TestCopyFrameRefuses(t *testing.T) {
	l := rawLayout{format: media.I420, width: 64, height: 64, bytesPerLine: 64, sizeImage: 64 * 64 * 3 / 2}
	if _, err := l.copyFrame(make([]byte, l.sizeImage), make([]byte, 100)); err == nil {
		t.Error("short frame accepted")
	}
	if _, err := l.copyFrame(make([]byte, 100), make([]byte, l.sizeImage)); err == nil {
		t.Error("short buffer accepted")
	}
	for _, bad := range []rawLayout{
		{format: media.I420, width: 64, height: 64, bytesPerLine: 32, sizeImage: 1 << 20},
		{format: media.I420, width: 64, height: 64, bytesPerLine: 65, sizeImage: 1 << 20},
		{format: media.YUYV, width: 64, height: 64, bytesPerLine: 128, sizeImage: 100},
	} {
		if err := bad.check(); err == nil {
			t.Errorf("layout %+v accepted", bad)
		}
	}
	l.format = media.MJPEG
	if _, err := l.copyFrame(make([]byte, 1<<20), make([]byte, 1<<20)); err == nil {
		t.Error("MJPEG accepted")
	}
}
