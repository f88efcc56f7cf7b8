package mjpeg

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// JPEG markers the table check looks at.
const (
	markerSOI = 0xd8
	markerEOI = 0xd9
	markerSOS = 0xda
	markerDHT = 0xc4
	markerTEM = 0x01
	markerRST = 0xd0 // RST0..RST7 are 0xd0..0xd7
)

// ErrCorrupt is wrapped by Decode's errors for a frame that is not a
// whole JPEG picture of the expected size (truncated, damaged, another
// size or a layout we do not convert).
var ErrCorrupt = errors.New("corrupt MJPEG frame")

// Decoder decodes MJPEG frames into I420. Its output buffer is reused:
// the picture Decode returns is valid until the next call. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	// withTables holds a frame with the Annex K tables put in.
	withTables []byte
	reader     bytes.Reader
	out        []byte
}

// Decode decodes one JPEG picture of width x height into I420 (Y plane,
// then U and V planes of (width+1)/2 x (height+1)/2, no padding). A frame
// without a DHT segment gets the Annex K tables. Any failure wraps
// ErrCorrupt; Decode never panics on bad input.
func (d *Decoder) Decode(frame []byte, width, height int) (i420 []byte, err error) {
	i420, err = d.decodeInto(d.out, frame, width, height)
	if err == nil {
		d.out = i420
	}
	return i420, err
}

// decodeInto is Decode writing into dst, which it reuses when it is large
// enough; the result aliases dst then. On failure dst is left to the
// caller (it may hold part of a picture).
func (d *Decoder) decodeInto(dst, frame []byte, width, height int) (i420 []byte, err error) {
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("decode MJPEG: size %dx%d: %w", width, height, ErrCorrupt)
	}
	if len(frame) < 4 || frame[0] != 0xff || frame[1] != markerSOI {
		return nil, fmt.Errorf("decode MJPEG: no start-of-image marker: %w", ErrCorrupt)
	}
	defer func() {
		// image/jpeg is hardened against bad input, but a camera frame is
		// outside input and one bad frame must never take the box down.
		if r := recover(); r != nil {
			i420, err = nil, fmt.Errorf("decode MJPEG: decoder panicked: %v: %w", r, ErrCorrupt)
		}
	}()
	if scanStart(frame) >= 0 {
		d.withTables = appendWithTables(d.withTables[:0], frame)
		frame = d.withTables
	}
	d.reader.Reset(frame)
	// image/jpeg has no way to decode into a picture we own: this makes a
	// new one (1.8 MB at 720p 4:2:2) on every call. Only our I420 copy is
	// reused.
	img, err := jpeg.Decode(&d.reader)
	// Drop the reference so the caller's buffer is not kept alive by the
	// Decoder between frames.
	d.reader.Reset(nil)
	if err != nil {
		return nil, fmt.Errorf("decode MJPEG: %w: %w", err, ErrCorrupt)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		return nil, fmt.Errorf("decode MJPEG: picture is %dx%d, the camera said %dx%d: %w", b.Dx(), b.Dy(), width, height, ErrCorrupt)
	}
	size := i420Size(width, height)
	if cap(dst) < size {
		dst = make([]byte, size)
	}
	dst = dst[:size]
	switch img := img.(type) {
	case *image.YCbCr:
		toI420(dst, img, width, height)
	case *image.Gray:
		grayToI420(dst, img, width, height)
	default:
		return nil, fmt.Errorf("decode MJPEG: %T pictures (CMYK?) are not converted: %w", img, ErrCorrupt)
	}
	return dst, nil
}

// i420Size is the bytes of a width x height I420 picture without padding.
func i420Size(width, height int) int {
	chromaW, chromaH := (width+1)/2, (height+1)/2
	return width*height + 2*chromaW*chromaH
}

// appendWithTables appends frame to dst with the Annex K Huffman tables
// inserted before its first scan, or frame as it is when it has a DHT
// segment of its own (or is too damaged to tell: the decoder then says
// what is wrong). Source makes its copy of a camera frame with it, so the
// copy it needs anyway also puts the tables in.
func appendWithTables(dst, frame []byte) []byte {
	at := scanStart(frame)
	if at < 0 {
		return append(dst, frame...)
	}
	dst = append(dst, frame[:at]...)
	dst = append(dst, standardDHT...)
	return append(dst, frame[at:]...)
}

// scanStart returns the offset of the first SOS marker when no DHT segment
// comes before it, else -1.
func scanStart(frame []byte) int {
	i := 2 // after SOI
	for i+1 < len(frame) {
		if frame[i] != 0xff {
			return -1
		}
		marker := frame[i+1]
		switch {
		case marker == 0xff:
			// Fill byte before a marker.
			i++
			continue
		case marker == markerDHT:
			return -1
		case marker == markerSOS:
			return i
		case marker == markerSOI || marker == markerEOI || marker == markerTEM || (marker >= markerRST && marker <= markerRST+7):
			// Markers without a length.
			i += 2
			continue
		}
		if i+3 >= len(frame) {
			return -1
		}
		i += 2 + (int(frame[i+2])<<8 | int(frame[i+3]))
	}
	return -1
}

// The JFIF colour space uses the full 0-255 range; video (and the raw
// formats cameras send, and what the encoders signal) uses 16-235 for luma
// and 16-240 for chroma. These tables scale one into the other.
var lumaRange, chromaRange = rangeTables()

func rangeTables() (luma, chroma [256]byte) {
	for i := range 256 {
		luma[i] = byte((i*219+127)/255 + 16)
		// (i-128)*224/255 rounded half away from zero, then +128.
		c := (i - 128) * 224
		if c >= 0 {
			c = (c + 127) / 255
		} else {
			c = -((-c + 127) / 255)
		}
		chroma[i] = byte(c + 128)
	}
	return luma, chroma
}

// toI420 converts a decoded picture into dst, scaling the range and
// bringing the chroma to 4:2:0 by averaging the samples each 2x2 block of
// luma covers.
func toI420(dst []byte, img *image.YCbCr, width, height int) {
	for y := range height {
		src := img.Y[y*img.YStride : y*img.YStride+width]
		row := dst[y*width : (y+1)*width]
		for x, v := range src {
			row[x] = lumaRange[v]
		}
	}
	chromaW, chromaH := (width+1)/2, (height+1)/2
	u := dst[width*height : width*height+chromaW*chromaH]
	v := dst[width*height+chromaW*chromaH:]
	switch img.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		// Half width already: average each pair of rows.
		for cy := range chromaH {
			top := cy * 2 * img.CStride
			bottom := top
			if 2*cy+1 < height {
				bottom += img.CStride
			}
			average2(u[cy*chromaW:(cy+1)*chromaW], img.Cb[top:], img.Cb[bottom:])
			average2(v[cy*chromaW:(cy+1)*chromaW], img.Cr[top:], img.Cr[bottom:])
		}
	case image.YCbCrSubsampleRatio420:
		for cy := range chromaH {
			row := cy * img.CStride
			scale(u[cy*chromaW:(cy+1)*chromaW], img.Cb[row:])
			scale(v[cy*chromaW:(cy+1)*chromaW], img.Cr[row:])
		}
	default:
		// 4:4:4, 4:4:0, 4:1:1, 4:1:0: rare in cameras; average what the
		// block covers through the image's own addressing.
		for cy := range chromaH {
			for cx := range chromaW {
				x0, y0 := 2*cx, 2*cy
				x1, y1 := min(x0+1, width-1), min(y0+1, height-1)
				var sumU, sumV int
				for _, p := range [4][2]int{{x0, y0}, {x1, y0}, {x0, y1}, {x1, y1}} {
					o := img.COffset(p[0]+img.Rect.Min.X, p[1]+img.Rect.Min.Y)
					sumU += int(img.Cb[o])
					sumV += int(img.Cr[o])
				}
				u[cy*chromaW+cx] = chromaRange[(sumU+2)/4]
				v[cy*chromaW+cx] = chromaRange[(sumV+2)/4]
			}
		}
	}
}

// average2 writes the range-scaled mean of two chroma rows into dst.
func average2(dst, a, b []byte) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = chromaRange[(uint16(a[i])+uint16(b[i])+1)>>1]
	}
}

// scale writes a range-scaled chroma row into dst.
func scale(dst, src []byte) {
	src = src[:len(dst)]
	for i, c := range src {
		dst[i] = chromaRange[c]
	}
}

// grayToI420 converts a greyscale JPEG: luma scaled, chroma neutral.
func grayToI420(dst []byte, img *image.Gray, width, height int) {
	for y := range height {
		src := img.Pix[y*img.Stride : y*img.Stride+width]
		row := dst[y*width : (y+1)*width]
		for x, v := range src {
			row[x] = lumaRange[v]
		}
	}
	chroma := dst[width*height:]
	for i := range chroma {
		chroma[i] = 128
	}
}
