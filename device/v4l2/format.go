package v4l2

import "github.com/onair/onair/media"

// pixelFormats maps our formats to the V4L2 fourcc we ask the driver for.
var pixelFormats = []struct {
	format media.PixelFormat
	code   uint32
}{
	{media.I420, pixFmtYUV420},
	{media.NV12, pixFmtNV12},
	{media.YUYV, pixFmtYUYV},
	{media.H264, pixFmtH264},
	{media.MJPEG, pixFmtMJPEG},
}

// fourccOf returns the V4L2 fourcc for a pixel format, 0 if it has none.
func fourccOf(f media.PixelFormat) uint32 {
	for _, p := range pixelFormats {
		if p.format == f {
			return p.code
		}
	}
	return 0
}

// formatOf returns the pixel format a fourcc carries, 0 if we do not handle
// it. JPEG is the older name some drivers use for MJPEG.
func formatOf(code uint32) media.PixelFormat {
	if code == pixFmtJPEG {
		return media.MJPEG
	}
	for _, p := range pixelFormats {
		if p.code == code {
			return p.format
		}
	}
	return 0
}

// compressed reports whether frames of f vary in size (one coded picture
// per buffer) rather than being a raw picture of fixed layout.
func compressed(f media.PixelFormat) bool { return f == media.H264 || f == media.MJPEG }

// plane is one run of rows of a raw picture inside a driver buffer.
type plane struct {
	offset   int // where the plane starts in the buffer
	rows     int
	rowBytes int // payload bytes per row
	stride   int // bytes from one row to the next in the buffer
}

// rawPlanes describes where a raw picture of the given size lies in a buffer
// whose luma rows are stride bytes apart (bytesperline). Chroma rows of the
// planar formats follow V4L2's rule for single-planar YUV 4:2:0: the U and V
// planes have half the luma stride, NV12's interleaved UV has the full one.
// It returns nil for compressed formats.
func rawPlanes(f media.PixelFormat, width, height, stride int) []plane {
	chromaRows := (height + 1) / 2
	switch f {
	case media.YUYV:
		return []plane{{offset: 0, rows: height, rowBytes: width * 2, stride: stride}}
	case media.NV12:
		luma := stride * height
		return []plane{
			{offset: 0, rows: height, rowBytes: width, stride: stride},
			{offset: luma, rows: chromaRows, rowBytes: (width + 1) / 2 * 2, stride: stride},
		}
	case media.I420:
		luma := stride * height
		chromaStride := stride / 2
		chromaWidth := (width + 1) / 2
		return []plane{
			{offset: 0, rows: height, rowBytes: width, stride: stride},
			{offset: luma, rows: chromaRows, rowBytes: chromaWidth, stride: chromaStride},
			{offset: luma + chromaStride*chromaRows, rows: chromaRows, rowBytes: chromaWidth, stride: chromaStride},
		}
	default:
		return nil
	}
}

// packedStride is bytesperline of a raw format with no row padding.
func packedStride(f media.PixelFormat, width int) int {
	if f == media.YUYV {
		return width * 2
	}
	return width
}

// planesSize is how many bytes the picture needs: up to the end of the last
// row of the last plane.
func planesSize(planes []plane) int {
	end := 0
	for _, p := range planes {
		if p.rows == 0 {
			continue
		}
		if e := p.offset + (p.rows-1)*p.stride + p.rowBytes; e > end {
			end = e
		}
	}
	return end
}

// payloadSize is the size of the picture with its padding removed.
func payloadSize(planes []plane) int {
	n := 0
	for _, p := range planes {
		n += p.rows * p.rowBytes
	}
	return n
}

// packed reports whether the planes follow each other without any padding,
// so the buffer can be handed out as it is.
func packed(planes []plane) bool {
	next := 0
	for _, p := range planes {
		if p.offset != next || (p.rows > 1 && p.stride != p.rowBytes) {
			return false
		}
		next = p.offset + p.rows*p.rowBytes
	}
	return true
}

// compact copies the payload of planes out of src into dst (which must hold
// payloadSize bytes), dropping the row padding, and returns dst's used part.
func compact(dst, src []byte, planes []plane) []byte {
	n := 0
	for _, p := range planes {
		for r := 0; r < p.rows; r++ {
			start := p.offset + r*p.stride
			n += copy(dst[n:], src[start:start+p.rowBytes])
		}
	}
	return dst[:n]
}
