package v4l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Errors a Source returns; they are wrapped with the device and the step,
// and the kernel's errno stays reachable with errors.Is as well.
var (
	// ErrNotCapture means the node is not a single-planar video capture
	// device with streaming I/O (a codec, a metadata node, a radio...).
	ErrNotCapture = errors.New("not a video capture device with streaming I/O")
	// ErrNoFormat means the camera offers none of the wanted formats.
	ErrNoFormat = errors.New("camera offers none of the wanted formats")
	// ErrDisconnected means the camera went away (ENODEV) or its queue
	// failed for good (EIO): close the source and open it again later.
	ErrDisconnected = errors.New("camera disconnected")
	// ErrClosed is returned by ReadVideo after Close.
	ErrClosed = errors.New("camera closed")
)

// Config is what the caller asks of a camera. The driver may give something
// close instead (another size, another rate): Source.Mode says what it gave.
type Config struct {
	// Width and Height are the wanted picture size in pixels.
	Width, Height int
	// FPS is the wanted frame rate; 0 leaves the driver's rate alone.
	FPS int
	// Formats lists acceptable pixel formats, most wanted first. Empty
	// means any format this package handles, in the camera's own order.
	Formats []media.PixelFormat
	// Buffers is how many driver buffers to request; 0 means 4, enough for
	// one held by the consumer, one being filled and slack for jitter.
	Buffers int
	// Logger receives the negotiation outcome; nil means slog.Default().
	Logger *slog.Logger
	// HDMI, when set, makes the node an HDMI-to-CSI-2 bridge (TC358743):
	// the source's DV timings decide size and rate, Width, Height and FPS
	// are not asked for, and frames are YUYV (see hdmi.go).
	HDMI *HDMIConfig
}

// Mode is what the driver actually delivers after negotiation.
type Mode struct {
	Format media.PixelFormat
	// FourCC is the V4L2 code the camera sends ("YUYV", "MJPG").
	FourCC string
	Width  int
	Height int
	// Stride is the driver's bytesperline (0 for compressed formats).
	Stride int
	// FPS is the frame rate the driver runs at (VIDIOC_G_PARM after
	// S_PARM); 0 when it does not say.
	FPS float64
	// Reason says why this mode was chosen (ChooseMode).
	Reason string
	// Buffers is how many buffers the driver allocated.
	Buffers int
	// Copies is true when the driver pads rows, so each raw frame is copied
	// once to remove the padding (media.VideoFrame has no stride), or when
	// UYVY from an HDMI bridge is swapped into YUYV on the way.
	Copies bool
	// Signal is what the HDMI source sends (Config.HDMI); zero otherwise.
	Signal Signal
}

// pollSlice bounds each wait in poll(2) so that ReadVideo notices a
// cancelled context or a concurrent Close within this time, without a
// goroutine or a wake-up descriptor per call.
const pollSlice = 20 * time.Millisecond

// maxSpuriousWakeups stops ReadVideo from spinning when the device keeps
// reporting readiness (POLLERR) while DQBUF has nothing to give.
const maxSpuriousWakeups = 50

// Source captures from one V4L2 camera. It implements device.VideoSource.
// ReadVideo and Close may be called from different goroutines.
type Source struct {
	name  string
	dev   Device
	clock *device.Clock
	log   *slog.Logger
	mode  Mode

	// mu serialises ReadVideo and Close: Close must not unmap a buffer that
	// ReadVideo is handing out.
	mu        sync.Mutex
	closing   atomic.Bool
	closed    bool
	streaming bool
	buffers   [][]byte
	// held is the index of the buffer whose memory the last frame points
	// into; it goes back to the driver on the next ReadVideo.
	held int
	// dq is the DQBUF/QBUF argument, kept here so the per-frame path
	// allocates nothing.
	dq     v4l2Buffer
	planes []plane
	// packedBuf receives raw frames when the driver pads rows.
	packedBuf []byte
	// failed is the sticky error after the device went away (or the HDMI
	// signal did).
	failed error

	// format is the fourcc the driver delivers.
	format uint32
	// hdmi is the bridge side of an HDMI input, nil for cameras.
	hdmi *hdmiInput
	// swapUYVY turns the bridge's UYVY into YUYV while removing padding.
	swapUYVY bool

	// export makes the buffers exported as dma-bufs (ExportBuffers), again
	// whenever they are allocated anew; exports[i] is buffer i's
	// descriptor.
	export  bool
	exports []int
}

var _ device.VideoSource = (*Source)(nil)

// Open opens the camera at path (/dev/video0) and starts it streaming.
// Timestamps of its frames are put on clock's time line.
func Open(path string, want Config, clock *device.Clock) (*Source, error) {
	dev, err := OpenNode(path)
	if err != nil {
		return nil, fmt.Errorf("open camera: %w", err)
	}
	if h := want.HDMI; h != nil && h.Subdevice != "" && h.SubdeviceNode == nil {
		sub, err := OpenNode(h.Subdevice)
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("open HDMI bridge subdevice: %w", err)
		}
		opened := *h
		opened.SubdeviceNode = sub
		want.HDMI = &opened
	}
	return NewSource(dev, path, want, clock)
}

// NewSource negotiates with an already open device (a node from OpenNode or
// a FakeCamera) and starts it streaming. name is used in errors and logs.
// The Source owns dev from now on (and want.HDMI.SubdeviceNode): they are
// closed on failure too.
func NewSource(dev Device, name string, want Config, clock *device.Clock) (*Source, error) {
	closeAll := func() {
		dev.Close()
		if want.HDMI != nil && want.HDMI.SubdeviceNode != nil {
			want.HDMI.SubdeviceNode.Close()
		}
	}
	if clock == nil {
		closeAll()
		return nil, fmt.Errorf("open %s: no capture clock", name)
	}
	if want.HDMI == nil && (want.Width <= 0 || want.Height <= 0) {
		closeAll()
		return nil, fmt.Errorf("open %s: size %dx%d: width and height must be positive", name, want.Width, want.Height)
	}
	logger := want.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Source{
		name:  name,
		dev:   dev,
		clock: clock,
		log:   logger.With("device", name),
		held:  -1,
	}
	if want.HDMI != nil {
		s.hdmi = &hdmiInput{cfg: *want.HDMI, dev: dev, name: name}
		if sub := want.HDMI.SubdeviceNode; sub != nil {
			s.hdmi.dev, s.hdmi.owned, s.hdmi.name = sub, true, want.HDMI.Subdevice
			if s.hdmi.name == "" {
				s.hdmi.name = name + " (subdevice)"
			}
		}
	}
	if err := s.start(want); err != nil {
		s.teardown()
		return nil, err
	}
	s.log.Info("camera streaming",
		"format", s.mode.FourCC, "width", s.mode.Width, "height", s.mode.Height,
		"fps", s.mode.FPS, "buffers", s.mode.Buffers, "copies", s.mode.Copies)
	return s, nil
}

// Mode reports what the driver delivers.
func (s *Source) Mode() Mode { return s.mode }

func (s *Source) ioctl(req uintptr, arg unsafe.Pointer) error { return s.dev.Ioctl(req, arg) }

// start runs the V4L2 capture set-up sequence.
func (s *Source) start(want Config) error {
	var capability v4l2Capability
	if err := s.ioctl(vidiocQueryCap, unsafe.Pointer(&capability)); err != nil {
		return fmt.Errorf("query capabilities of %s: %w", s.name, err)
	}
	caps := effectiveCaps(&capability)
	if caps&capVideoCapture == 0 || caps&capStreaming == 0 || caps&(capVideoM2M|capVideoM2MMplane) != 0 {
		return fmt.Errorf("open %s (%s, device caps %#08x): %w",
			s.name, cString(capability.Card[:]), caps, ErrNotCapture)
	}
	if s.hdmi != nil {
		return s.startHDMI(want)
	}

	offered, err := s.listModes(want)
	if err != nil {
		return err
	}
	chosen, err := ChooseMode(offered, want)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.name, err)
	}
	s.log.Info("camera mode chosen", "mode", chosen.String(), "reason", chosen.Reason,
		"wanted", fmt.Sprintf("%dx%d at %d fps", want.Width, want.Height, want.FPS))
	s.mode.Reason = chosen.Reason
	if err := s.setFormat(fourccFromString(chosen.FourCC), chosen.Width, chosen.Height); err != nil {
		return err
	}
	if err := s.setFrameRate(chosen.FPS); err != nil {
		return err
	}
	return s.startStreaming(want.Buffers)
}

// startStreaming maps count buffers (0 means 4), queues them and starts
// the stream.
func (s *Source) startStreaming(count int) error {
	if count <= 0 {
		count = 4
	}
	if err := s.mapBuffers(count); err != nil {
		return err
	}
	if s.export {
		if err := s.exportBuffers(); err != nil {
			// Frames still flow; the encoder copies them.
			s.log.Warn("camera buffers not exported as dma-bufs; the encoder copies frames", "error", err)
			s.export = false
		}
	}
	for i := range s.buffers {
		if err := s.queue(i); err != nil {
			return err
		}
	}
	bufType := int32(bufTypeVideoCapture)
	if err := s.ioctl(vidiocStreamOn, unsafe.Pointer(&bufType)); err != nil {
		return fmt.Errorf("start streaming on %s: %w", s.name, err)
	}
	s.streaming = true
	return nil
}

// stopStreaming undoes startStreaming, freeing the driver's buffers so
// that the format can change.
func (s *Source) stopStreaming() error {
	bufType := int32(bufTypeVideoCapture)
	if err := s.ioctl(vidiocStreamOff, unsafe.Pointer(&bufType)); err != nil {
		return s.deviceError("stop streaming on "+s.name, err)
	}
	s.streaming = false
	if err := s.closeExports(); err != nil {
		return err
	}
	for i, mem := range s.buffers {
		if err := s.dev.Munmap(mem); err != nil {
			return fmt.Errorf("unmap buffer %d of %s: %w", i, s.name, err)
		}
	}
	s.buffers = nil
	s.held = -1
	req := v4l2RequestBuffers{Count: 0, Type: bufTypeVideoCapture, Memory: memoryMMAP}
	if err := s.ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		return s.deviceError("free the buffers of "+s.name, err)
	}
	return nil
}

// effectiveCaps returns the capabilities of this node: a driver with several
// nodes reports the union in capabilities and this node's own in device_caps.
func effectiveCaps(c *v4l2Capability) uint32 {
	if c.Capabilities&capDeviceCaps != 0 {
		return c.DeviceCaps
	}
	return c.Capabilities
}

// formatDesc is one entry of VIDIOC_ENUM_FMT.
type formatDesc struct {
	code        uint32
	description string
	flags       uint32
}

// enumFormats lists the formats a queue offers, in the driver's order.
func enumFormats(dev Device, bufType uint32) ([]formatDesc, error) {
	var out []formatDesc
	for i := uint32(0); ; i++ {
		desc := v4l2Fmtdesc{Index: i, Type: bufType}
		err := dev.Ioctl(vidiocEnumFmt, unsafe.Pointer(&desc))
		if errors.Is(err, unix.EINVAL) {
			// EINVAL past the last index is how the list ends.
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, formatDesc{code: desc.PixelFormat, description: cString(desc.Description[:]), flags: desc.Flags})
		if i > 255 {
			// A driver that never ends the list is broken; do not loop forever.
			return out, nil
		}
	}
}

// listModes lists the formats, sizes and rates the camera offers, as
// ChooseMode takes them. A size range is measured again at the size the
// request lands on in it, since rates usually fall as pictures grow.
func (s *Source) listModes(want Config) ([]FormatInfo, error) {
	formats, err := listFormats(s.dev, bufTypeVideoCapture)
	if err != nil {
		return nil, fmt.Errorf("list formats of %s: %w", s.name, err)
	}
	for i := range formats {
		if formats[i].Format == 0 {
			continue
		}
		code := fourccFromString(formats[i].FourCC)
		sizes, err := listSizes(s.dev, code)
		if errors.Is(err, unix.ENODEV) {
			return nil, s.deviceError(fmt.Sprintf("list sizes of %s %s", s.name, formats[i].FourCC), err)
		}
		if err != nil {
			// A driver's odd answer to an enumeration only costs the
			// choice some knowledge: S_FMT and G_PARM still tell the truth.
			s.log.Info("camera lists its sizes badly", "format", formats[i].FourCC, "error", err)
		}
		for j, size := range sizes {
			if !size.Range {
				continue
			}
			at := FrameSize{
				Width:  snap(want.Width, size.MinWidth, size.Width, size.StepWidth),
				Height: snap(want.Height, size.MinHeight, size.Height, size.StepHeight),
			}
			if err := listRates(s.dev, code, &at); err == nil && at.MaxFPS > 0 {
				sizes[j].FrameRates, sizes[j].MinFPS, sizes[j].MaxFPS = at.FrameRates, at.MinFPS, at.MaxFPS
			}
		}
		formats[i].Sizes = sizes
	}
	return formats, nil
}

// setFormat asks for code at the chosen size and records what the driver
// made of it: drivers round the size to one they support instead of failing.
func (s *Source) setFormat(code uint32, width, height int) error {
	format := v4l2Format{Type: bufTypeVideoCapture}
	format.Fmt.Pix = v4l2PixFormat{
		Width:       uint32(width),
		Height:      uint32(height),
		PixelFormat: code,
		Field:       fieldNone,
	}
	if err := s.ioctl(vidiocSFmt, unsafe.Pointer(&format)); err != nil {
		return fmt.Errorf("set format %dx%d %s on %s: %w", width, height, fourccString(code), s.name, err)
	}
	pix := format.Fmt.Pix
	if pix.PixelFormat != code {
		// We only ask for formats ENUM_FMT listed, so a substitution means
		// the driver cannot do it in the current input or mode.
		return fmt.Errorf("set format %dx%d %s on %s: driver gave %s instead",
			width, height, fourccString(code), s.name, fourccString(pix.PixelFormat))
	}
	if pix.Width == 0 || pix.Height == 0 {
		return fmt.Errorf("set format %dx%d %s on %s: driver gave an empty size", width, height, fourccString(code), s.name)
	}
	s.format = code
	s.mode.Format = formatOf(code)
	if code == pixFmtUYVY {
		// The same layout as YUYV; frameData swaps the bytes.
		s.mode.Format = media.YUYV
	}
	s.mode.FourCC = fourccString(code)
	s.mode.Width = int(pix.Width)
	s.mode.Height = int(pix.Height)
	s.mode.Copies, s.planes, s.packedBuf = false, nil, nil
	if pix.Width != uint32(width) || pix.Height != uint32(height) {
		s.log.Info("camera adjusted the size", "asked_width", width, "asked_height", height,
			"width", pix.Width, "height", pix.Height)
	}
	if compressed(s.mode.Format) {
		return nil
	}
	stride := int(pix.BytesPerLine)
	if stride == 0 {
		// bytesperline 0 means "no padding" for drivers of old.
		stride = packedStride(s.mode.Format, s.mode.Width)
	}
	if stride < packedStride(s.mode.Format, s.mode.Width) {
		return fmt.Errorf("set format %dx%d %s on %s: driver gave %d bytes per line, less than a row",
			s.mode.Width, s.mode.Height, s.mode.FourCC, s.name, stride)
	}
	s.mode.Stride = stride
	s.planes = rawPlanes(s.mode.Format, s.mode.Width, s.mode.Height, stride)
	if !packed(s.planes) || s.swapUYVY {
		s.mode.Copies = true
		s.packedBuf = make([]byte, payloadSize(s.planes))
	}
	return nil
}

// setFrameRate asks for fps frames per second (S_PARM) and reads back what
// the driver runs at (G_PARM): drivers clamp to a rate they support.
// Drivers without the timeperframe capability (some HDMI bridges, where the
// source sets the rate) refuse or ignore it; that is logged, not fatal.
func (s *Source) setFrameRate(fps float64) error {
	if fps > 0 {
		parm := v4l2StreamParm{Type: bufTypeVideoCapture}
		parm.Parm.Capture.TimePerFrame = intervalOf(fps)
		err := s.ioctl(vidiocSParm, unsafe.Pointer(&parm))
		switch {
		case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL):
			s.log.Warn("camera does not take a frame rate; it runs at its own", "fps", fps, "error", err)
		case err != nil:
			return fmt.Errorf("set frame rate %s fps on %s: %w", fpsString(fps), s.name, err)
		}
	}
	parm := v4l2StreamParm{Type: bufTypeVideoCapture}
	err := s.ioctl(vidiocGParm, unsafe.Pointer(&parm))
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		s.log.Info("camera does not report a frame rate", "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read frame rate of %s: %w", s.name, err)
	}
	tpf := parm.Parm.Capture.TimePerFrame
	if parm.Parm.Capture.Capability&captureTimePerFrame == 0 || tpf.Numerator == 0 || tpf.Denominator == 0 {
		s.log.Info("camera does not report a frame rate")
		return nil
	}
	s.mode.FPS = float64(tpf.Denominator) / float64(tpf.Numerator)
	if fps > 0 && math.Abs(s.mode.FPS-fps) > fps*rateTolerance {
		s.log.Info("camera adjusted the frame rate", "wanted_fps", fps, "fps", s.mode.FPS)
	}
	return nil
}

// mapBuffers asks the driver for count buffers and maps each one.
func (s *Source) mapBuffers(count int) error {
	req := v4l2RequestBuffers{Count: uint32(count), Type: bufTypeVideoCapture, Memory: memoryMMAP}
	if err := s.ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		return fmt.Errorf("request %d buffers on %s: %w", count, s.name, err)
	}
	// One buffer is always lent to the consumer, so fewer than two would
	// leave the driver nothing to fill.
	if req.Count < 2 {
		return fmt.Errorf("request %d buffers on %s: driver gave %d, need at least 2", count, s.name, req.Count)
	}
	s.mode.Buffers = int(req.Count)
	for i := uint32(0); i < req.Count; i++ {
		buf := v4l2Buffer{Index: i, Type: bufTypeVideoCapture, Memory: memoryMMAP}
		if err := s.ioctl(vidiocQueryBuf, unsafe.Pointer(&buf)); err != nil {
			return fmt.Errorf("query buffer %d on %s: %w", i, s.name, err)
		}
		mem, err := s.dev.Mmap(int64(buf.offset()), int(buf.Length))
		if err != nil {
			return fmt.Errorf("map buffer %d (%d bytes) of %s: %w", i, buf.Length, s.name, err)
		}
		s.buffers = append(s.buffers, mem)
		if s.planes != nil && planesSize(s.planes) > len(mem) {
			return fmt.Errorf("map buffer %d of %s: %d bytes cannot hold a %dx%d %s picture",
				i, s.name, len(mem), s.mode.Width, s.mode.Height, s.mode.FourCC)
		}
	}
	return nil
}

// queue hands buffer i to the driver to fill.
func (s *Source) queue(i int) error {
	s.dq = v4l2Buffer{Index: uint32(i), Type: bufTypeVideoCapture, Memory: memoryMMAP}
	if err := s.ioctl(vidiocQBuf, unsafe.Pointer(&s.dq)); err != nil {
		return s.deviceError(fmt.Sprintf("queue buffer %d on %s", i, s.name), err)
	}
	return nil
}

// deviceError wraps err with what was being done, and marks the source
// failed for good when the device is gone.
func (s *Source) deviceError(doing string, err error) error {
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EIO) {
		s.failed = fmt.Errorf("%s: %w: %w", doing, ErrDisconnected, err)
		s.log.Debug("camera gone", "error", err)
		return s.failed
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// ReadVideo waits for the next frame. The frame's Data points into the
// driver's buffer and stays valid until the next ReadVideo or Close. After
// the camera is unplugged it returns an error wrapping ErrDisconnected (and
// unix.ENODEV), on this and every later call.
func (s *Source) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.closing.Load() {
		return media.VideoFrame{}, fmt.Errorf("read frame from %s: %w", s.name, ErrClosed)
	}
	if s.failed != nil {
		return media.VideoFrame{}, s.failed
	}
	// The consumer is done with the previous frame: give its buffer back
	// before waiting, so the driver has it for the next picture.
	if s.held >= 0 {
		held := s.held
		s.held = -1
		if err := s.queue(held); err != nil {
			return media.VideoFrame{}, err
		}
	}
	spurious := 0
	for {
		if err := ctx.Err(); err != nil {
			return media.VideoFrame{}, err
		}
		if s.closing.Load() {
			return media.VideoFrame{}, fmt.Errorf("read frame from %s: %w", s.name, ErrClosed)
		}
		ready, err := s.dev.Poll(pollSlice)
		if err != nil {
			return media.VideoFrame{}, s.deviceError("wait for a frame from "+s.name, err)
		}
		if s.hdmi != nil && s.hdmi.events {
			// Checked on every wake-up and every poll slice: a subdevice's
			// events do not wake the video node's poll.
			changed, err := s.hdmi.sourceChanged()
			if err != nil {
				return media.VideoFrame{}, s.deviceError("read events of "+s.hdmi.name, err)
			}
			if changed {
				if err := s.followSourceChange(); err != nil {
					return media.VideoFrame{}, err
				}
				spurious = 0
				continue
			}
		}
		if !ready {
			continue
		}
		s.dq = v4l2Buffer{Type: bufTypeVideoCapture, Memory: memoryMMAP}
		err = s.ioctl(vidiocDQBuf, unsafe.Pointer(&s.dq))
		if errors.Is(err, unix.EAGAIN) {
			spurious++
			if spurious > maxSpuriousWakeups {
				return media.VideoFrame{}, fmt.Errorf("dequeue frame from %s: device keeps signalling without a frame: %w", s.name, err)
			}
			continue
		}
		if err != nil {
			return media.VideoFrame{}, s.deviceError("dequeue frame from "+s.name, err)
		}
		spurious = 0
		index := int(s.dq.Index)
		if index >= len(s.buffers) {
			return media.VideoFrame{}, fmt.Errorf("dequeue frame from %s: driver returned buffer %d of %d", s.name, index, len(s.buffers))
		}
		data, ok := s.frameData(index)
		if !ok {
			// A damaged or short picture (USB packet loss): skip it rather
			// than hand the encoder garbage; the next one comes in a frame
			// time.
			s.log.Debug("dropped a damaged frame", "sequence", s.dq.Sequence, "flags", s.dq.Flags, "bytesused", s.dq.BytesUsed)
			if err := s.queue(index); err != nil {
				return media.VideoFrame{}, err
			}
			continue
		}
		s.held = index
		return media.VideoFrame{
			Format:  s.mode.Format,
			Width:   s.mode.Width,
			Height:  s.mode.Height,
			Data:    data,
			Capture: s.captureTime(),
			DMABuf:  s.dmabuf(index),
		}, nil
	}
}

// frameData returns the picture in the dequeued buffer, or false when the
// driver flagged it damaged or it is too short. The slice's capacity ends
// with the picture so that a consumer's append cannot write into the rest
// of driver memory.
func (s *Source) frameData(index int) ([]byte, bool) {
	mem := s.buffers[index]
	used := int(s.dq.BytesUsed)
	if s.dq.Flags&bufFlagError != 0 || used == 0 || used > len(mem) {
		return nil, false
	}
	if s.planes == nil {
		return mem[:used:used], true
	}
	if used < planesSize(s.planes) {
		return nil, false
	}
	if s.swapUYVY {
		return swapUYVYRows(s.packedBuf, mem, s.planes[0]), true
	}
	if s.packedBuf != nil {
		return compact(s.packedBuf, mem, s.planes), true
	}
	size := payloadSize(s.planes)
	return mem[:size:size], true
}

// captureTime puts the dequeued buffer's timestamp on the pipeline clock.
// Only a CLOCK_MONOTONIC stamp can be converted; a driver that copies
// timestamps from elsewhere or does not stamp gets the time of dequeue.
func (s *Source) captureTime() time.Duration {
	if s.dq.Flags&bufFlagTimestampMask != bufFlagTimestampMonotonic {
		return s.clock.Now()
	}
	ts := time.Duration(s.dq.Timestamp.Sec)*time.Second + time.Duration(s.dq.Timestamp.Usec)*time.Microsecond
	return s.clock.FromKernel(ts)
}

// Close stops streaming, unmaps the buffers and closes the device. It waits
// for a ReadVideo in progress to return (within pollSlice). Frames read
// before are invalid afterwards. Close is safe to call more than once.
func (s *Source) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.teardown()
}

// teardown releases whatever start acquired; it tolerates a device that has
// gone away, since closing an unplugged camera is the normal way out.
func (s *Source) teardown() error {
	s.closed = true
	var errs []error
	gone := func(err error) bool { return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EIO) }
	if s.streaming {
		bufType := int32(bufTypeVideoCapture)
		if err := s.ioctl(vidiocStreamOff, unsafe.Pointer(&bufType)); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("stop streaming on %s: %w", s.name, err))
		}
		s.streaming = false
	}
	for i, mem := range s.buffers {
		if err := s.dev.Munmap(mem); err != nil {
			errs = append(errs, fmt.Errorf("unmap buffer %d of %s: %w", i, s.name, err))
		}
	}
	if err := s.closeExports(); err != nil {
		errs = append(errs, err)
	}
	s.buffers = nil
	s.held = -1
	if err := s.dev.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", s.name, err))
	}
	if s.hdmi != nil && s.hdmi.owned {
		if err := s.hdmi.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.hdmi.name, err))
		}
	}
	return errors.Join(errs...)
}

// ExportBuffers exports the camera's buffers as dma-bufs (VIDIOC_EXPBUF),
// and again whenever they are allocated anew (an HDMI mode change), so
// that every raw frame carries the dma-buf it lies in (media.DMABuf) and a
// hardware encoder can read it without a copy. The descriptors are closed
// by Close. It fails, and frames carry no dma-buf, when the driver cannot
// export (ENOTTY, EINVAL) or the frames are not the buffer's bytes as they
// are (compressed formats, the HDMI bridge's UYVY swapped into YUYV).
//
// The ownership rule stays the one of Data: the buffer is the consumer's
// until its next ReadVideo, which queues it to be filled again. A consumer
// that lends it to hardware gets it back before reading on.
func (s *Source) ExportBuffers() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("export buffers of %s: %w", s.name, ErrClosed)
	}
	if s.export {
		return nil
	}
	if s.planes == nil || s.swapUYVY {
		return fmt.Errorf("export buffers of %s: %s frames are not the buffers' bytes as the driver fills them", s.name, s.mode.FourCC)
	}
	if err := s.exportBuffers(); err != nil {
		return err
	}
	s.export = true
	return nil
}

// exportBuffers runs VIDIOC_EXPBUF on every buffer; on failure it closes
// what it exported.
func (s *Source) exportBuffers() error {
	if _, ok := s.dev.(dmabufCloser); !ok {
		return fmt.Errorf("export buffers of %s: the device cannot close dma-bufs", s.name)
	}
	for i := range s.buffers {
		exp := v4l2ExportBuffer{Type: bufTypeVideoCapture, Index: uint32(i), Flags: unix.O_CLOEXEC | unix.O_RDWR}
		if err := s.ioctl(vidiocExpBuf, unsafe.Pointer(&exp)); err != nil {
			err = fmt.Errorf("export buffer %d of %s as a dma-buf: %w", i, s.name, err)
			if cerr := s.closeExports(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return err
		}
		s.exports = append(s.exports, int(exp.FD))
	}
	return nil
}

// closeExports closes the dma-buf descriptors of the buffers.
func (s *Source) closeExports() error {
	closer, ok := s.dev.(dmabufCloser)
	if !ok || len(s.exports) == 0 {
		s.exports = nil
		return nil
	}
	var errs []error
	for i, fd := range s.exports {
		if err := closer.CloseDMABuf(fd); err != nil {
			errs = append(errs, fmt.Errorf("close dma-buf of buffer %d of %s: %w", i, s.name, err))
		}
	}
	s.exports = nil
	return errors.Join(errs...)
}

// dmabuf describes where the dequeued buffer index lies as a dma-buf, or
// nothing when the buffers are not exported.
func (s *Source) dmabuf(index int) media.DMABuf {
	if index >= len(s.exports) || s.swapUYVY || s.planes == nil {
		return media.DMABuf{}
	}
	return media.DMABuf{
		FD: s.exports[index], Size: len(s.buffers[index]),
		Stride: s.mode.Stride, BytesUsed: int(s.dq.BytesUsed),
	}
}
