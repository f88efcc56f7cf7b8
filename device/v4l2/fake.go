package v4l2

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device/v4l2/dmabuftest"
	"github.com/onair/onair/media"
)

// FakeSize is a frame size a FakeCamera supports.
type FakeSize struct {
	Width, Height int
	// FrameRates at this size, overriding FakeConfig.FrameRates: real
	// cameras often send big raw pictures slower (USB bandwidth).
	FrameRates []int
}

// FakeFormat is one pixel format a FakeCamera offers, with its sizes.
type FakeFormat struct {
	Format media.PixelFormat
	// Sizes the camera can deliver; S_FMT picks the nearest. Empty means
	// 640x480 only.
	Sizes []FakeSize
	// Range, when set, replaces Sizes with a stepwise size range and a
	// continuous interval range, as HDMI bridges and vivid's non-webcam
	// inputs enumerate them.
	Range *FakeRange
}

// FakeRange is a stepwise range of sizes (a step of 1 makes it continuous)
// with a continuous range of frame rates at every size.
type FakeRange struct {
	MinWidth, MaxWidth, StepWidth    int
	MinHeight, MaxHeight, StepHeight int
	MinFPS, MaxFPS                   int
}

// FakeConfig describes a FakeCamera.
type FakeConfig struct {
	Driver, Card, Bus string
	// Formats in the order VIDIOC_ENUM_FMT lists them.
	Formats []FakeFormat
	// FrameRates the camera supports; S_PARM picks the nearest. Empty
	// means 30 only.
	FrameRates []int
	// RowPadding adds bytes at the end of every luma row of raw formats
	// (bytesperline > width), as some drivers do for alignment.
	RowPadding int
	// M2M makes the fake a multi-planar memory-to-memory codec (like the
	// Pi's bcm2835-codec) instead of a camera; it then only answers
	// QUERYCAP and ENUM_FMT, with Formats on the capture (coded) queue and
	// OutputFormats on the output (raw) queue.
	M2M           bool
	OutputFormats []FakeFormat
	// NoMonotonic makes the fake stamp buffers without the
	// TIMESTAMP_MONOTONIC flag, like drivers that copy timestamps.
	NoMonotonic bool
	// Pictures, when set, are the coded frames (MJPEG, H264) the camera
	// sends, in turn, instead of its numbered pattern; one longer than the
	// buffer is cut short, as a real one would be.
	Pictures [][]byte
	// HDMI, when set, makes the fake an HDMI-to-CSI-2 bridge (see
	// FakeHDMI); Formats and FrameRates are then not used.
	HDMI *FakeHDMI
	// DMABufs, when set, makes VIDIOC_EXPBUF export the buffers into this
	// table (give the fake encoder the same one); without it EXPBUF is
	// ENOTTY, as from a driver that cannot export. The fake tells the
	// table when a buffer is queued to be filled and dequeued, and the
	// table reports a buffer queued while an importer holds it.
	DMABufs *dmabuftest.Heap
	// DMABufMemory is what the exported buffers are: dmabuftest.Contiguous
	// (default: unicam, the HDMI bridge) or dmabuftest.Vmalloc (UVC).
	DMABufMemory dmabuftest.Memory
}

// FakeCamera is a V4L2 capture device in memory that implements Device and
// enforces the rules the kernel's videobuf2 core enforces, so capture code
// that works against it uses the real ioctl sequence:
//
//   - S_FMT or REQBUFS while buffers are allocated or streaming: EBUSY;
//     REQBUFS while buffers are mapped: EBUSY;
//   - a wrong buffer type or memory type: EINVAL;
//   - QBUF of an index out of range or of a buffer already queued: EINVAL;
//   - DQBUF when not streaming or with nothing queued: EINVAL (the real
//     core blocks or returns EAGAIN in the second case; the fake is stricter
//     so that a source that loses track of its buffers fails loudly);
//   - STREAMON without buffers: EINVAL;
//   - EXPBUF of a wrong type, index or plane, or with flags other than
//     O_CLOEXEC and the access mode: EINVAL; without FakeConfig.DMABufs:
//     ENOTTY;
//   - S_PARM while streaming: EBUSY (as UVC answers; the rate is part of
//     the USB bandwidth negotiated at STREAMON);
//   - ENUM_FRAMEINTERVALS for a size the format does not list: EINVAL;
//   - an unknown request: ENOTTY; anything after Close: EBADF;
//   - after Unplug: ENODEV from every ioctl and mmap, and Poll reports
//     readiness (POLLERR), as a vanished USB camera does.
//
// S_FMT rounds the size to the nearest supported one and, like UVC, resets
// the frame interval when the new size does not list the current one.
// S_PARM clamps the interval to the nearest one the current size lists
// (or into the range). Frames are ready as
// soon as a buffer is queued (unless Pause is in effect); frame n carries
// the CLOCK_MONOTONIC time of STREAMON plus n frame intervals, its sequence
// number in its first 4 bytes (little-endian) and the byte n%256 in the rest
// of its payload; row padding is filled with 0xEE. Coded formats start with
// an Annex-B start code (H264) or SOI marker (MJPEG) and vary in length.
type FakeCamera struct {
	cfg FakeConfig

	mu sync.Mutex
	// wake is closed and replaced whenever something a poller waits for
	// changes (a buffer queued, Resume, Unplug, Close).
	wake chan struct{}

	closed     bool
	unplugged  bool
	paused     bool
	streaming  bool
	damageNext bool

	format v4l2PixFormat
	// planes is the raw layout of format, nil for coded formats.
	planes   []plane
	interval v4l2Fract

	// waiting counts callers blocked in Poll, so tests can act while a
	// reader waits instead of guessing with a sleep.
	waiting int

	buffers []*fakeBuffer
	// queue holds the indices of queued buffers in QBUF order: the driver
	// fills and returns them in that order.
	queue    []int
	sequence uint32
	start    time.Duration

	// hdmi is the bridge of an HDMI fake, nil for cameras.
	hdmi *fakeHDMI
}

type fakeBuffer struct {
	data   []byte
	queued bool
	mapped int
	// exports are the dma-buf descriptors made of this buffer.
	exports []int
}

// setQueued marks the buffer queued to be filled or back with the user,
// and tells the dma-buf table so for every export of it.
func (f *FakeCamera) setQueued(b *fakeBuffer, queued bool) {
	b.queued = queued
	for _, fd := range b.exports {
		f.cfg.DMABufs.Filling(fd, queued)
	}
}

// fakeCookieShift spaces the mmap cookies of the fake's buffers the way
// videobuf2 does (one page-aligned range per buffer).
const fakeCookieShift = 20

// NewFakeCamera makes a fake camera. With no formats it offers YUYV and
// MJPEG at 640x480 and 1280x720, like a cheap UVC webcam.
func NewFakeCamera(cfg FakeConfig) *FakeCamera {
	if len(cfg.Formats) == 0 && !cfg.M2M {
		sizes := []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720}}
		cfg.Formats = []FakeFormat{{Format: media.YUYV, Sizes: sizes}, {Format: media.MJPEG, Sizes: sizes}}
	}
	for i := range cfg.Formats {
		if len(cfg.Formats[i].Sizes) == 0 {
			cfg.Formats[i].Sizes = []FakeSize{{Width: 640, Height: 480}}
		}
	}
	if len(cfg.FrameRates) == 0 {
		cfg.FrameRates = []int{30}
	}
	if cfg.Driver == "" {
		cfg.Driver = "fake"
	}
	if cfg.Card == "" {
		cfg.Card = "Fake Camera"
	}
	if cfg.Bus == "" {
		cfg.Bus = "platform:fake"
	}
	f := &FakeCamera{cfg: cfg, wake: make(chan struct{})}
	f.interval = v4l2Fract{Numerator: 1, Denominator: uint32(cfg.FrameRates[0])}
	if cfg.HDMI != nil {
		f.hdmi = newFakeHDMI(*cfg.HDMI)
		f.applyHDMIFormat(&v4l2PixFormat{PixelFormat: pixFmtUYVY})
		return f
	}
	if len(cfg.Formats) > 0 {
		first := &cfg.Formats[0]
		size := first.Sizes[0]
		if first.Range != nil {
			size = FakeSize{Width: first.Range.MaxWidth, Height: first.Range.MaxHeight}
			f.interval = v4l2Fract{Numerator: 1, Denominator: uint32(first.Range.MaxFPS)}
		}
		f.setFormat(fourccOf(first.Format), size)
	}
	return f
}

// Pause stops the camera producing frames (a stalled sensor): Poll times
// out and DQBUF says EAGAIN until Resume.
func (f *FakeCamera) Pause() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = true
}

// Resume undoes Pause.
func (f *FakeCamera) Resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	f.notifyLocked()
}

// Unplug makes the camera vanish: from now on its ioctls fail with ENODEV
// and Poll reports an error condition.
func (f *FakeCamera) Unplug() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unplugged = true
	f.notifyLocked()
}

// DamageNextFrame makes the next dequeued buffer carry V4L2_BUF_FLAG_ERROR,
// as a USB camera does after losing packets.
func (f *FakeCamera) DamageNextFrame() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.damageNext = true
}

// FakeState is a snapshot of what a FakeCamera holds, for tests to check
// that a user released everything.
type FakeState struct {
	Closed    bool
	Streaming bool
	Buffers   int
	Mapped    int
	Queued    int
	Width     int
	Height    int
	FourCC    string
	// FPS is the frame rate S_PARM settled on.
	FPS int
}

// State reports the fake's current state.
func (f *FakeCamera) State() FakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FakeState{
		Closed:    f.closed,
		Streaming: f.streaming,
		Buffers:   len(f.buffers),
		Queued:    len(f.queue),
		Width:     int(f.format.Width),
		Height:    int(f.format.Height),
		FourCC:    fourccString(f.format.PixelFormat),
	}
	if f.interval.Numerator != 0 {
		st.FPS = int(f.interval.Denominator / f.interval.Numerator)
	}
	for _, b := range f.buffers {
		st.Mapped += b.mapped
	}
	return st
}

func (f *FakeCamera) pollers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}

// notifyLocked wakes the pollers. With nobody waiting it does nothing, so
// that a steady stream costs the fake no allocation either.
func (f *FakeCamera) notifyLocked() {
	if f.waiting == 0 {
		return
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

// Ioctl implements Device.
func (f *FakeCamera) Ioctl(req uintptr, arg unsafe.Pointer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	if f.unplugged {
		return unix.ENODEV
	}
	if f.hdmi != nil {
		if handled, err := f.hdmiIoctl(req, arg); handled {
			return err
		}
	} else if isHDMIRequest(req) {
		return unix.ENOTTY
	}
	switch req {
	case vidiocQueryCap:
		return f.queryCap((*v4l2Capability)(arg))
	case vidiocEnumFmt:
		return f.enumFmt((*v4l2Fmtdesc)(arg))
	case vidiocGFmt, vidiocSFmt:
		if f.cfg.M2M {
			return unix.EINVAL
		}
		format := (*v4l2Format)(arg)
		if format.Type != bufTypeVideoCapture {
			return unix.EINVAL
		}
		if req == vidiocSFmt {
			if len(f.buffers) > 0 {
				return unix.EBUSY
			}
			f.applyFormat(&format.Fmt.Pix)
		}
		format.Fmt.Pix = f.format
		return nil
	case vidiocGParm, vidiocSParm:
		parm := (*v4l2StreamParm)(arg)
		if f.cfg.M2M || parm.Type != bufTypeVideoCapture {
			return unix.EINVAL
		}
		if req == vidiocSParm {
			if f.streaming {
				return unix.EBUSY
			}
			f.applyInterval(parm.Parm.Capture.TimePerFrame)
		}
		parm.Parm.Capture = v4l2CaptureParm{Capability: captureTimePerFrame, TimePerFrame: f.interval}
		return nil
	case vidiocEnumFrameSizes:
		return f.enumFrameSizes((*v4l2FrmSizeEnum)(arg))
	case vidiocEnumFrameIntervals:
		return f.enumFrameIntervals((*v4l2FrmIvalEnum)(arg))
	case vidiocReqBufs:
		return f.reqBufs((*v4l2RequestBuffers)(arg))
	case vidiocQueryBuf:
		return f.queryBuf((*v4l2Buffer)(arg))
	case vidiocQBuf:
		return f.qbuf((*v4l2Buffer)(arg))
	case vidiocExpBuf:
		return f.expBuf((*v4l2ExportBuffer)(arg))
	case vidiocDQBuf:
		return f.dqbuf((*v4l2Buffer)(arg))
	case vidiocStreamOn, vidiocStreamOff:
		if f.cfg.M2M || *(*int32)(arg) != bufTypeVideoCapture {
			return unix.EINVAL
		}
		if req == vidiocStreamOff {
			f.streamOff()
			return nil
		}
		return f.streamOn()
	default:
		return unix.ENOTTY
	}
}

func (f *FakeCamera) queryCap(c *v4l2Capability) error {
	*c = v4l2Capability{Version: 6<<16 | 1<<8}
	copy(c.Driver[:len(c.Driver)-1], f.cfg.Driver)
	copy(c.Card[:len(c.Card)-1], f.cfg.Card)
	copy(c.BusInfo[:len(c.BusInfo)-1], f.cfg.Bus)
	if f.cfg.M2M {
		c.DeviceCaps = capVideoM2MMplane | capStreaming
	} else {
		c.DeviceCaps = capVideoCapture | capStreaming
	}
	c.Capabilities = c.DeviceCaps | capDeviceCaps
	return nil
}

func (f *FakeCamera) enumFmt(d *v4l2Fmtdesc) error {
	var list []FakeFormat
	switch {
	case !f.cfg.M2M && d.Type == bufTypeVideoCapture:
		list = f.cfg.Formats
	case f.cfg.M2M && d.Type == bufTypeVideoCaptureMplane:
		list = f.cfg.Formats
	case f.cfg.M2M && d.Type == bufTypeVideoOutputMplane:
		list = f.cfg.OutputFormats
	default:
		return unix.EINVAL
	}
	if int(d.Index) >= len(list) {
		return unix.EINVAL
	}
	format := list[d.Index].Format
	index, bufType := d.Index, d.Type
	*d = v4l2Fmtdesc{Index: index, Type: bufType, PixelFormat: fourccOf(format)}
	if compressed(format) {
		d.Flags = fmtFlagCompressed
	}
	copy(d.Description[:len(d.Description)-1], "Fake "+format.String())
	return nil
}

// offered returns the camera's entry for a fourcc, nil if it has none.
func (f *FakeCamera) offered(code uint32) *FakeFormat {
	for i := range f.cfg.Formats {
		if fourccOf(f.cfg.Formats[i].Format) == code {
			return &f.cfg.Formats[i]
		}
	}
	return nil
}

func (f *FakeCamera) enumFrameSizes(e *v4l2FrmSizeEnum) error {
	format := f.offered(e.PixelFormat)
	if f.cfg.M2M || format == nil {
		return unix.EINVAL
	}
	if r := format.Range; r != nil {
		if e.Index > 0 {
			return unix.EINVAL
		}
		e.Type = frmTypeStepwise
		if r.StepWidth <= 1 && r.StepHeight <= 1 {
			e.Type = frmTypeContinuous
		}
		e.Size = v4l2FrmSizeStepwise{
			MinWidth: uint32(r.MinWidth), MaxWidth: uint32(r.MaxWidth), StepWidth: uint32(max(r.StepWidth, 1)),
			MinHeight: uint32(r.MinHeight), MaxHeight: uint32(r.MaxHeight), StepHeight: uint32(max(r.StepHeight, 1)),
		}
		return nil
	}
	if int(e.Index) >= len(format.Sizes) {
		return unix.EINVAL
	}
	size := format.Sizes[e.Index]
	e.Type = frmTypeDiscrete
	e.setDiscrete(uint32(size.Width), uint32(size.Height))
	return nil
}

func (f *FakeCamera) enumFrameIntervals(e *v4l2FrmIvalEnum) error {
	format := f.offered(e.PixelFormat)
	if f.cfg.M2M || format == nil {
		return unix.EINVAL
	}
	if r := format.Range; r != nil {
		if e.Index > 0 || !r.contains(int(e.Width), int(e.Height)) {
			return unix.EINVAL
		}
		e.Type = frmTypeContinuous
		e.Interval = v4l2FrmIvalStepwise{
			Min:  v4l2Fract{Numerator: 1, Denominator: uint32(r.MaxFPS)},
			Max:  v4l2Fract{Numerator: 1, Denominator: uint32(r.MinFPS)},
			Step: v4l2Fract{Numerator: 1, Denominator: 1},
		}
		return nil
	}
	found := false
	for _, size := range format.Sizes {
		found = found || (size.Width == int(e.Width) && size.Height == int(e.Height))
	}
	rates := f.ratesAt(format, e.Width, e.Height)
	if !found || int(e.Index) >= len(rates) {
		return unix.EINVAL
	}
	e.Type = frmTypeDiscrete
	e.Interval = v4l2FrmIvalStepwise{Min: v4l2Fract{Numerator: 1, Denominator: uint32(rates[e.Index])}}
	return nil
}

// applyFormat does what a driver's S_FMT does: unknown formats become the
// first supported one, the size becomes the nearest supported one.
func (f *FakeCamera) applyFormat(pix *v4l2PixFormat) {
	chosen := f.offered(pix.PixelFormat)
	if chosen == nil {
		chosen = &f.cfg.Formats[0]
	}
	if r := chosen.Range; r != nil {
		f.setFormat(fourccOf(chosen.Format), FakeSize{
			Width:  snap(int(pix.Width), r.MinWidth, r.MaxWidth, r.StepWidth),
			Height: snap(int(pix.Height), r.MinHeight, r.MaxHeight, r.StepHeight),
		})
		f.interval = r.clamp(f.interval)
		return
	}
	best := chosen.Sizes[0]
	bestDistance := -1
	for _, size := range chosen.Sizes {
		d := abs(size.Width-int(pix.Width)) + abs(size.Height-int(pix.Height))
		if bestDistance < 0 || d < bestDistance {
			best, bestDistance = size, d
		}
	}
	f.setFormat(fourccOf(chosen.Format), best)
	// Like UVC, a new size resets the rate to one that size supports.
	rates := f.ratesAt(chosen, uint32(best.Width), uint32(best.Height))
	keep := false
	for _, fps := range rates {
		keep = keep || (f.interval.Numerator == 1 && uint32(fps) == f.interval.Denominator)
	}
	if !keep {
		f.interval = v4l2Fract{Numerator: 1, Denominator: uint32(rates[0])}
	}
}

func (f *FakeCamera) setFormat(code uint32, size FakeSize) {
	format := formatOf(code)
	pix := v4l2PixFormat{
		Width:       uint32(size.Width),
		Height:      uint32(size.Height),
		PixelFormat: code,
		Field:       fieldNone,
	}
	f.planes = nil
	if compressed(format) {
		// Coded pictures have no rows; sizeimage is the worst case.
		pix.SizeImage = uint32(size.Width * size.Height * 2)
	} else {
		// Padding is kept even so that the half-stride chroma planes of
		// I420 stay whole bytes.
		padding := f.cfg.RowPadding &^ 1
		stride := packedStride(format, size.Width) + padding
		pix.BytesPerLine = uint32(stride)
		f.planes = rawPlanes(format, size.Width, size.Height, stride)
		pix.SizeImage = uint32(planesSize(f.planes))
	}
	f.format = pix
}

// ratesAt returns the frame rates offered at a size of a format.
func (f *FakeCamera) ratesAt(format *FakeFormat, width, height uint32) []int {
	for _, size := range format.Sizes {
		if size.Width == int(width) && size.Height == int(height) && len(size.FrameRates) > 0 {
			return size.FrameRates
		}
	}
	return f.cfg.FrameRates
}

func (f *FakeCamera) applyInterval(want v4l2Fract) {
	if want.Numerator == 0 || want.Denominator == 0 {
		return
	}
	rates := f.cfg.FrameRates
	if format := f.offered(f.format.PixelFormat); format != nil {
		if format.Range != nil {
			f.interval = format.Range.clamp(want)
			return
		}
		rates = f.ratesAt(format, f.format.Width, f.format.Height)
	}
	wantFPS := float64(want.Denominator) / float64(want.Numerator)
	best := rates[0]
	for _, fps := range rates {
		if absFloat(float64(fps)-wantFPS) < absFloat(float64(best)-wantFPS) {
			best = fps
		}
	}
	f.interval = v4l2Fract{Numerator: 1, Denominator: uint32(best)}
}

// contains reports whether a size lies in the range, on its grid.
func (r *FakeRange) contains(width, height int) bool {
	return snap(width, r.MinWidth, r.MaxWidth, r.StepWidth) == width &&
		snap(height, r.MinHeight, r.MaxHeight, r.StepHeight) == height
}

// clamp puts a frame interval inside the range, as a driver with a
// continuous interval range does with what S_PARM asks.
func (r *FakeRange) clamp(interval v4l2Fract) v4l2Fract {
	if interval.Numerator == 0 || interval.Denominator == 0 {
		return v4l2Fract{Numerator: 1, Denominator: uint32(r.MaxFPS)}
	}
	fps := float64(interval.Denominator) / float64(interval.Numerator)
	switch {
	case fps > float64(r.MaxFPS):
		return v4l2Fract{Numerator: 1, Denominator: uint32(r.MaxFPS)}
	case fps < float64(r.MinFPS):
		return v4l2Fract{Numerator: 1, Denominator: uint32(r.MinFPS)}
	}
	return interval
}

func (f *FakeCamera) reqBufs(req *v4l2RequestBuffers) error {
	if f.cfg.M2M || req.Type != bufTypeVideoCapture || req.Memory != memoryMMAP {
		return unix.EINVAL
	}
	if f.streaming {
		return unix.EBUSY
	}
	for _, b := range f.buffers {
		if b.mapped > 0 {
			return unix.EBUSY
		}
	}
	f.buffers = nil
	f.queue = nil
	count := int(req.Count)
	if count == 0 {
		return nil
	}
	// Like most drivers: at least 2, at most 8.
	count = max(2, min(count, 8))
	for range count {
		f.buffers = append(f.buffers, &fakeBuffer{data: make([]byte, f.format.SizeImage)})
	}
	req.Count = uint32(count)
	req.Capabilities = 1 // V4L2_BUF_CAP_SUPPORTS_MMAP
	return nil
}

// checkBuffer validates the type, memory and index of a buffer argument.
func (f *FakeCamera) checkBuffer(b *v4l2Buffer) (*fakeBuffer, error) {
	if f.cfg.M2M || b.Type != bufTypeVideoCapture || b.Memory != memoryMMAP {
		return nil, unix.EINVAL
	}
	if int(b.Index) >= len(f.buffers) {
		return nil, unix.EINVAL
	}
	return f.buffers[b.Index], nil
}

func (f *FakeCamera) describe(b *v4l2Buffer, buf *fakeBuffer) {
	b.Length = uint32(len(buf.data))
	b.setOffset(b.Index << fakeCookieShift)
	b.Flags &^= bufFlagMapped | bufFlagQueued
	if buf.mapped > 0 {
		b.Flags |= bufFlagMapped
	}
	if buf.queued {
		b.Flags |= bufFlagQueued
	}
}

func (f *FakeCamera) queryBuf(b *v4l2Buffer) error {
	if f.cfg.M2M || b.Type != bufTypeVideoCapture {
		return unix.EINVAL
	}
	if int(b.Index) >= len(f.buffers) {
		return unix.EINVAL
	}
	b.Memory = memoryMMAP
	f.describe(b, f.buffers[b.Index])
	return nil
}

func (f *FakeCamera) qbuf(b *v4l2Buffer) error {
	buf, err := f.checkBuffer(b)
	if err != nil {
		return err
	}
	if buf.queued {
		return unix.EINVAL
	}
	f.setQueued(buf, true)
	f.queue = append(f.queue, int(b.Index))
	f.describe(b, buf)
	f.notifyLocked()
	return nil
}

func (f *FakeCamera) dqbuf(b *v4l2Buffer) error {
	if f.cfg.M2M || b.Type != bufTypeVideoCapture || b.Memory != memoryMMAP {
		return unix.EINVAL
	}
	if !f.streaming || len(f.queue) == 0 {
		return unix.EINVAL
	}
	if f.paused || (f.hdmi != nil && !f.hdmi.flowing()) {
		return unix.EAGAIN
	}
	index := f.queue[0]
	// Shift rather than reslice so the queue keeps its capacity.
	f.queue = append(f.queue[:0], f.queue[1:]...)
	buf := f.buffers[index]
	f.setQueued(buf, false)

	*b = v4l2Buffer{Index: uint32(index), Type: bufTypeVideoCapture, Memory: memoryMMAP, Field: fieldNone}
	b.BytesUsed = uint32(f.fill(buf.data, f.sequence))
	b.Sequence = f.sequence
	b.Flags = bufFlagDone
	if !f.cfg.NoMonotonic {
		b.Flags |= bufFlagTimestampMonotonic
	}
	if f.damageNext {
		b.Flags |= bufFlagError
		f.damageNext = false
	}
	ts := f.start + time.Duration(f.sequence)*f.frameInterval()
	b.Timestamp = unix.NsecToTimeval(int64(ts))
	f.describe(b, buf)
	f.sequence++
	return nil
}

// framesFlow is false while an HDMI fake's bridge gets no usable picture.
func (f *FakeCamera) framesFlow() bool { return f.hdmi == nil || f.hdmi.flowing() }

// eventPending reports an event that the video node's poll signals
// (POLLPRI); a subdevice's events are signalled on the subdevice.
func (f *FakeCamera) eventPending() bool {
	return f.hdmi != nil && !f.hdmi.cfg.Subdevice && len(f.hdmi.events) > 0
}

func (f *FakeCamera) frameInterval() time.Duration {
	return time.Duration(f.interval.Numerator) * time.Second / time.Duration(f.interval.Denominator)
}

// fill writes frame n's pattern into data and returns the bytes used.
func (f *FakeCamera) fill(data []byte, n uint32) int {
	format := formatOf(f.format.PixelFormat)
	if compressed(format) && len(f.cfg.Pictures) > 0 {
		return copy(data, f.cfg.Pictures[int(n%uint32(len(f.cfg.Pictures)))])
	}
	var header []byte
	switch format {
	case media.H264:
		nal := byte(0x41) // non-IDR slice
		if n%30 == 0 {
			nal = 0x65 // IDR slice
		}
		header = []byte{0, 0, 0, 1, nal}
	case media.MJPEG:
		header = []byte{0xff, 0xd8}
	}
	if header != nil {
		// Coded frames differ in size, as real ones do.
		used := min(len(data), 64+int(n%16)*8)
		copy(data, header)
		binary.LittleEndian.PutUint32(data[len(header):], n)
		for i := len(header) + 4; i < used; i++ {
			data[i] = byte(n)
		}
		if format == media.MJPEG {
			data[used-2], data[used-1] = 0xff, 0xd9
		}
		return used
	}
	if !packed(f.planes) {
		fillBytes(data, 0xee)
	}
	for _, p := range f.planes {
		if p.stride == p.rowBytes {
			fillBytes(data[p.offset:][:p.rows*p.rowBytes], byte(n))
			continue
		}
		for r := 0; r < p.rows; r++ {
			fillBytes(data[p.offset+r*p.stride:][:p.rowBytes], byte(n))
		}
	}
	binary.LittleEndian.PutUint32(data, n)
	return int(f.format.SizeImage)
}

func (f *FakeCamera) streamOn() error {
	if len(f.buffers) == 0 {
		return unix.EINVAL
	}
	if f.streaming {
		return nil
	}
	f.streaming = true
	f.sequence = 0
	f.start = monotonicNow()
	f.notifyLocked()
	return nil
}

// streamOff returns every buffer to the user, as the kernel does.
func (f *FakeCamera) streamOff() {
	f.streaming = false
	for _, b := range f.buffers {
		f.setQueued(b, false)
	}
	f.queue = nil
	f.notifyLocked()
}

// expBuf is VIDIOC_EXPBUF: a new dma-buf descriptor for a buffer. Like
// videobuf2's, an export outlives REQBUFS and Close (it holds the memory).
func (f *FakeCamera) expBuf(e *v4l2ExportBuffer) error {
	if f.cfg.DMABufs == nil {
		return unix.ENOTTY
	}
	if f.cfg.M2M || e.Type != bufTypeVideoCapture || int(e.Index) >= len(f.buffers) || e.Plane != 0 ||
		e.Flags&^uint32(unix.O_CLOEXEC|unix.O_ACCMODE) != 0 {
		return unix.EINVAL
	}
	memory := f.cfg.DMABufMemory
	if memory == 0 {
		memory = dmabuftest.Contiguous
	}
	buf := f.buffers[e.Index]
	fd := f.cfg.DMABufs.Export(buf.data, memory, fmt.Sprintf("camera %s buffer %d", f.cfg.Card, e.Index))
	buf.exports = append(buf.exports, fd)
	if buf.queued {
		f.cfg.DMABufs.Filling(fd, true)
	}
	e.FD = int32(fd)
	return nil
}

// CloseDMABuf closes a descriptor EXPBUF returned, as close(2) would.
func (f *FakeCamera) CloseDMABuf(fd int) error {
	if f.cfg.DMABufs == nil {
		return unix.EBADF
	}
	f.mu.Lock()
	for _, b := range f.buffers {
		for i, exported := range b.exports {
			if exported == fd {
				b.exports = append(b.exports[:i], b.exports[i+1:]...)
				break
			}
		}
	}
	f.mu.Unlock()
	return f.cfg.DMABufs.Close(fd)
}

// Mmap implements Device.
func (f *FakeCamera) Mmap(offset int64, length int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, unix.EBADF
	}
	if f.unplugged {
		return nil, unix.ENODEV
	}
	index := int(offset >> fakeCookieShift)
	if offset&(1<<fakeCookieShift-1) != 0 || index < 0 || index >= len(f.buffers) {
		return nil, unix.EINVAL
	}
	buf := f.buffers[index]
	if length <= 0 || length > len(buf.data) {
		return nil, unix.EINVAL
	}
	buf.mapped++
	return buf.data[:length:length], nil
}

// Munmap implements Device.
func (f *FakeCamera) Munmap(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(b) == 0 {
		return unix.EINVAL
	}
	for _, buf := range f.buffers {
		if buf.mapped > 0 && &buf.data[0] == &b[0] {
			buf.mapped--
			return nil
		}
	}
	return unix.EINVAL
}

// Poll implements Device: ready when a frame can be dequeued, and also when
// DQBUF would fail at once (not streaming, unplugged), as vb2's poll reports
// POLLERR then.
func (f *FakeCamera) Poll(timeout time.Duration) (bool, error) {
	// The timer is made only when there is something to wait for, so a
	// steady stream of ready frames costs no allocation (benchmarks run the
	// capture path against this fake).
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return false, unix.EBADF
		}
		if f.unplugged || !f.streaming || (!f.paused && len(f.queue) > 0 && f.framesFlow()) || f.eventPending() {
			f.mu.Unlock()
			return true, nil
		}
		if timeout == 0 {
			f.mu.Unlock()
			return false, nil
		}
		// Registered as a waiter under the same lock that checked
		// readiness, so a notify in between cannot be missed.
		f.waiting++
		wake := f.wake
		f.mu.Unlock()

		var expired <-chan time.Time
		if timeout > 0 {
			if timer == nil {
				timer = time.NewTimer(timeout)
			}
			expired = timer.C
		}
		timedOut := false
		select {
		case <-wake:
		case <-expired:
			timedOut = true
		}
		f.mu.Lock()
		f.waiting--
		f.mu.Unlock()
		if timedOut {
			return false, nil
		}
	}
}

// Close implements Device. Like closing the file descriptor, it stops
// streaming and frees buffers no longer mapped.
func (f *FakeCamera) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	f.closed = true
	f.streaming = false
	for _, b := range f.buffers {
		f.setQueued(b, false)
	}
	f.queue = nil
	if f.hdmi != nil && !f.hdmi.cfg.Subdevice {
		// Subscriptions belong to the file handle.
		f.hdmi.subscribed, f.hdmi.events = false, nil
	}
	f.notifyLocked()
	return nil
}

// fillBytes sets every byte of b to v, doubling with copy so that filling a
// 1080p frame costs the fake little time in benchmarks.
func fillBytes(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for i := 1; i < len(b); i *= 2 {
		copy(b[i:], b[:i])
	}
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func absFloat(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
