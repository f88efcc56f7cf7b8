// Package media holds the types that flow through the pipeline: raw frames
// from a capture device, raw audio from a microphone, and the encoded samples
// that the broadcast hub fans out. It has no behaviour and no dependencies so
// that every stage can share it.
package media

import "time"

// PixelFormat names the memory layout of a raw video frame.
type PixelFormat uint8

// Pixel formats a source can deliver.
const (
	// I420 is planar YUV 4:2:0: a full-size Y plane followed by quarter-size
	// U and V planes.
	I420 PixelFormat = iota + 1
	// NV12 is semi-planar YUV 4:2:0: a Y plane followed by interleaved UV.
	NV12
	// YUYV is packed YUV 4:2:2 (Y0 U Y1 V), what most USB webcams deliver raw.
	YUYV
	// H264 is an Annex-B H.264 access unit that the camera encoded itself.
	H264
	// MJPEG is one JPEG picture per frame.
	MJPEG
)

// String returns the format's usual name.
func (f PixelFormat) String() string {
	switch f {
	case I420:
		return "I420"
	case NV12:
		return "NV12"
	case YUYV:
		return "YUYV"
	case H264:
		return "H264"
	case MJPEG:
		return "MJPEG"
	default:
		return "unknown"
	}
}

// VideoFrame is one picture from a source. Data is only valid until the
// source's next frame unless the consumer copies it: sources reuse buffers.
// The same holds for DMABuf: a consumer that lends the buffer to hardware
// must have it back before it asks the source for the next frame.
type VideoFrame struct {
	Format PixelFormat
	Width  int
	Height int
	// Data holds the picture in Format's layout without row padding.
	Data []byte
	// Capture is when the picture was taken, on the pipeline's monotonic
	// clock (time since the pipeline's epoch). It drives RTP and recording
	// timestamps, never the wall clock.
	Capture time.Duration
	// DMABuf, when set (Size > 0), is the dma-buf the picture lies in, as
	// the capture driver laid it out (rows Stride bytes apart), so that a
	// hardware encoder can read it without a copy. The zero value means
	// the picture is only in Data.
	DMABuf DMABuf
}

// DMABuf locates a picture in a dma-buf exported by its capture driver
// (VIDIOC_EXPBUF). The picture is in Format's single-buffer V4L2 layout:
// for I420 and NV12 the chroma follows the luma at Offset+Stride*Height,
// I420's two chroma planes with rows Stride/2 bytes apart.
type DMABuf struct {
	// FD is the dma-buf's file descriptor. The source owns it: it stays
	// open until the source is closed; consumers never close it.
	FD int
	// Size is the buffer's length in bytes as its driver gives it
	// (VIDIOC_QUERYBUF); the dma-buf itself may be rounded up to whole
	// pages. 0 means no dma-buf.
	Size int
	// Offset is where the picture starts in the dma-buf.
	Offset int
	// Stride is the bytes from one row of the first plane to the next.
	Stride int
	// BytesUsed is how many bytes from Offset the picture occupies.
	BytesUsed int
}

// AudioFrame is a run of interleaved signed 16-bit PCM samples.
type AudioFrame struct {
	SampleRate int
	Channels   int
	// Samples are interleaved, len = frames * Channels.
	Samples []int16
	// Capture is when the first sample was captured, on the pipeline clock.
	Capture time.Duration
}

// Duration is how long the frame plays.
func (a AudioFrame) Duration() time.Duration {
	if a.SampleRate == 0 || a.Channels == 0 {
		return 0
	}
	frames := len(a.Samples) / a.Channels
	return time.Duration(frames) * time.Second / time.Duration(a.SampleRate)
}

// Kind tells an encoded sample's track.
type Kind uint8

// Track kinds.
const (
	Video Kind = iota + 1
	Audio
)

// String returns "video" or "audio".
func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	default:
		return "unknown"
	}
}

// Sample is one encoded access unit: an H.264 access unit in Annex-B form
// (start codes before each NAL unit) or one Opus packet.
type Sample struct {
	Kind Kind
	Data []byte
	// Capture is the capture time of the picture or first audio sample.
	Capture time.Duration
	// Duration is how long the sample plays.
	Duration time.Duration
	// Keyframe is true for an H.264 access unit with an IDR picture.
	Keyframe bool
}
