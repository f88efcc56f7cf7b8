package v4l2m2m

import (
	"fmt"

	"github.com/onair/onair/media"
)

// rawLayout is how a raw picture lies in an OUTPUT buffer: one plane (the
// driver's single-buffer formats), rows bytesPerLine apart. For YU12 the
// chroma planes follow the luma with half the stride, for NV12 the
// interleaved chroma follows with the full stride, as videodev2 defines
// those formats.
type rawLayout struct {
	format        media.PixelFormat
	width, height int
	bytesPerLine  int
	sizeImage     int
}

// fourccOf is the V4L2 code of a raw pixel format, 0 for one the encoder
// does not take.
func fourccOf(f media.PixelFormat) uint32 {
	switch f {
	case media.I420:
		return pixFmtYUV420
	case media.NV12:
		return pixFmtNV12
	case media.YUYV:
		return pixFmtYUYV
	default:
		return 0
	}
}

// formatOf is the pixel format of a V4L2 code, 0 for others.
func formatOf(code uint32) media.PixelFormat {
	switch code {
	case pixFmtYUV420:
		return media.I420
	case pixFmtNV12:
		return media.NV12
	case pixFmtYUYV:
		return media.YUYV
	case pixFmtH264:
		return media.H264
	case pixFmtMJPEG:
		return media.MJPEG
	default:
		return 0
	}
}

// frameBytes is the size of a picture without row padding, as
// media.VideoFrame carries it.
func frameBytes(f media.PixelFormat, width, height int) int {
	switch f {
	case media.YUYV:
		return width * height * 2
	default:
		return width * height * 3 / 2
	}
}

// minBytesPerLine is the shortest row of the layout's first plane.
func minBytesPerLine(f media.PixelFormat, width int) int {
	if f == media.YUYV {
		return width * 2
	}
	return width
}

// check tells whether the driver's answer can hold the picture.
func (l rawLayout) check() error {
	if l.bytesPerLine < minBytesPerLine(l.format, l.width) {
		return fmt.Errorf("driver's bytesperline %d is shorter than a %d-pixel %s row", l.bytesPerLine, l.width, l.format)
	}
	if l.format == media.I420 && l.bytesPerLine%2 != 0 {
		return fmt.Errorf("driver's bytesperline %d is odd: YU12 chroma rows need half of it", l.bytesPerLine)
	}
	if need := l.payload(); l.sizeImage < need {
		return fmt.Errorf("driver's sizeimage %d is smaller than the %d bytes a %dx%d %s picture takes",
			l.sizeImage, need, l.width, l.height, l.format)
	}
	return nil
}

// payload is the bytes the layout's picture occupies in the buffer.
func (l rawLayout) payload() int {
	if l.format == media.YUYV {
		return l.bytesPerLine * l.height
	}
	return l.bytesPerLine * l.height * 3 / 2
}

// copyFrame copies a picture without row padding (src, as media.VideoFrame
// holds it) into a driver buffer laid out as l. It returns the bytes copied
// and allocates nothing: this is the per-frame hand-off to the hardware.
func (l rawLayout) copyFrame(dst, src []byte) (int, error) {
	w, h, bpl := l.width, l.height, l.bytesPerLine
	if need := frameBytes(l.format, w, h); len(src) < need {
		return 0, fmt.Errorf("%dx%d %s picture needs %d bytes, frame has %d", w, h, l.format, need, len(src))
	}
	if len(dst) < l.payload() {
		return 0, fmt.Errorf("buffer of %d bytes is smaller than the %d the picture takes", len(dst), l.payload())
	}
	switch l.format {
	case media.YUYV:
		return copyPlane(dst, bpl, src, 2*w, h), nil
	case media.NV12:
		n := copyPlane(dst, bpl, src, w, h)
		n += copyPlane(dst[bpl*h:], bpl, src[w*h:], w, h/2)
		return n, nil
	case media.I420:
		cw, ch, cbpl := w/2, h/2, bpl/2
		n := copyPlane(dst, bpl, src, w, h)
		n += copyPlane(dst[bpl*h:], cbpl, src[w*h:], cw, ch)
		n += copyPlane(dst[bpl*h+cbpl*ch:], cbpl, src[w*h+cw*ch:], cw, ch)
		return n, nil
	default:
		return 0, fmt.Errorf("the hardware encoder takes I420, NV12 or YUYV, not %s", l.format)
	}
}

// copyPlane copies rows of rowBytes from a tightly packed src into dst with
// the given stride, in one copy when there is no padding.
func copyPlane(dst []byte, stride int, src []byte, rowBytes, rows int) int {
	if stride == rowBytes {
		return copy(dst[:rowBytes*rows], src[:rowBytes*rows])
	}
	for r := 0; r < rows; r++ {
		copy(dst[r*stride:r*stride+rowBytes], src[r*rowBytes:(r+1)*rowBytes])
	}
	return rowBytes * rows
}

// extractFrame is copyFrame backwards: it takes the picture out of a driver
// buffer into a tightly packed slice (the fake reads its OUTPUT buffers
// with it).
func (l rawLayout) extractFrame(dst, src []byte) {
	w, h, bpl := l.width, l.height, l.bytesPerLine
	switch l.format {
	case media.YUYV:
		uncopyPlane(dst, src, bpl, 2*w, h)
	case media.NV12:
		uncopyPlane(dst, src, bpl, w, h)
		uncopyPlane(dst[w*h:], src[bpl*h:], bpl, w, h/2)
	case media.I420:
		cw, ch, cbpl := w/2, h/2, bpl/2
		uncopyPlane(dst, src, bpl, w, h)
		uncopyPlane(dst[w*h:], src[bpl*h:], cbpl, cw, ch)
		uncopyPlane(dst[w*h+cw*ch:], src[bpl*h+cbpl*ch:], cbpl, cw, ch)
	}
}

func uncopyPlane(dst, src []byte, stride, rowBytes, rows int) {
	for r := 0; r < rows; r++ {
		copy(dst[r*rowBytes:(r+1)*rowBytes], src[r*stride:r*stride+rowBytes])
	}
}
