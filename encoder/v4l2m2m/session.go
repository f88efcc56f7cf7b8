package v4l2m2m

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// session is one open file handle on the encoder, set up and streaming:
// the driver keeps formats, controls and buffers per handle, so a new
// format or a recovery is a new session.
type session struct {
	dev  Device
	path string
	card string

	layout    rawLayout
	codedSize int

	output  []mapping
	capture []mapping
	// outputCount is how many OUTPUT buffers the driver gave.
	outputCount int
	// freeOutput are the OUTPUT buffers we own (dequeued or never queued).
	freeOutput []int
	streaming  bool

	// importStride is the row stride of the camera's dma-bufs when the
	// OUTPUT queue imports them (V4L2_MEMORY_DMABUF); 0 when it holds MMAP
	// buffers the pictures are copied into.
	importStride int
	// slots[i] is the dma-buf last queued in OUTPUT buffer i (-1: none):
	// a dma-buf goes back to its own slot, where the driver keeps it
	// mapped.
	slots []int
	// lent is the OUTPUT buffer holding the camera's buffer right now, -1
	// when the hardware holds none.
	lent int
	// imported tells that an imported picture went through the hardware:
	// a refusal after that is a device failure, not a reason to copy.
	imported bool

	// pending remembers the exact capture time of each queued picture by
	// the microsecond timestamp the driver carries (it keeps only µs).
	pending     [64]pendingFrame
	pendingNext int

	// ready holds finished access units not yet returned, oldest first.
	ready      []media.Sample
	readyHead  int
	readyCount int
	// header is a coded buffer that held only SPS/PPS, for the next one.
	header []byte
	// lastStamp is the timestamp of the newest access unit on ready.
	lastStamp int64
	// corrupt counts coded buffers flagged ERROR (or pictures sent out
	// incomplete) since the last Encode.
	corrupt int
	// inFlight counts pictures queued whose coded buffer has not come back.
	inFlight int

	// buf and planes are the scratch v4l2_buffer of every buffer ioctl,
	// kept here so that the per-frame ioctls allocate nothing.
	buf    v4l2Buffer
	planes [1]v4l2Plane
	ctrl   v4l2Control
}

type mapping struct {
	mem []byte
}

type pendingFrame struct {
	stamp   int64 // µs, as queued
	capture time.Duration
	used    bool
}

// start opens the node and runs the stateful encoder's initialization
// sequence (dev-encoder.rst): coded format on CAPTURE first, raw format on
// OUTPUT, frame interval, controls, buffers, then STREAMON on both queues.
// Every control is set before STREAMON: the driver hands them to the
// firmware component as it is created (REQBUFS) and enabled (STREAMON);
// profile, level and rate control are not meant to change on a running
// component, and the fake refuses that.
//
// importStride > 0 makes the OUTPUT queue import the camera's dma-bufs,
// laid out with that row stride, instead of holding buffers of its own.
func (e *Encoder) start(format media.PixelFormat, width, height, importStride int) (*session, error) {
	dev, err := e.open(e.path)
	if err != nil {
		return nil, fmt.Errorf("v4l2m2m: %w", err)
	}
	s := &session{dev: dev, path: e.path, importStride: importStride, lent: -1}
	s.buf.Planes = &s.planes[0]
	if err := s.setUp(e, format, width, height); err != nil {
		s.teardown(false, e.opt.Timeout)
		return nil, fmt.Errorf("v4l2m2m %s: %w", e.path, err)
	}
	e.info = Info{
		Card: s.card, Format: format, BytesPerLine: s.layout.bytesPerLine, RawMemory: s.rawMemory(),
		OutputBuffers: s.outputCount, CaptureBuffers: len(s.capture), CodedBufferSize: s.codedSize,
	}
	e.log.Info("hardware encoder ready", "device", e.path, "card", s.card, "raw_memory", s.rawMemory(),
		"format", format.String(), "size", fmt.Sprintf("%dx%d", width, height), "fps", e.params.FPS,
		"bytesperline", s.layout.bytesPerLine, "profile", e.params.Profile, "level", e.level.String(),
		"rate_control", e.opt.RateControl.String(), "bitrate_kbps", e.params.BitrateKbps,
		"buffers", fmt.Sprintf("%d raw, %d coded of %d bytes", s.outputCount, len(s.capture), s.codedSize))
	return s, nil
}

// rawMemory says how pictures reach the hardware, for Info and logs.
func (s *session) rawMemory() string {
	if s.importStride > 0 {
		return "dmabuf"
	}
	return "mmap"
}

// importRefusal is the driver refusing the camera's dma-bufs (a layout it
// cannot take, memory it cannot map): the encoder copies instead.
type importRefusal struct{ err error }

func (r *importRefusal) Error() string { return r.err.Error() }
func (r *importRefusal) Unwrap() error { return r.err }

// importSlots is the fewest OUTPUT buffers asked for when importing: as
// many as a camera usually has, so that each of its buffers keeps a slot
// (and the driver its mapping) of its own. Slots cost no picture memory.
const importSlots = 8

func (s *session) setUp(e *Encoder, format media.PixelFormat, width, height int) error {
	var c v4l2Capability
	if err := s.dev.Ioctl(vidiocQueryCap, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("query capabilities: %w", err)
	}
	s.card = cString(c.Card[:])
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	if caps&capVideoM2MMplane == 0 || caps&capStreaming == 0 {
		return fmt.Errorf("%s is not a multi-planar memory-to-memory device with streaming I/O", s.card)
	}

	// CAPTURE first: it governs what OUTPUT accepts. The bcm2835 driver
	// also takes the coded size from here, so it gets the picture size.
	s.codedSize = codedBufferSize(width, height, max(e.params.BitrateKbps, e.opt.MaxBitrateKbps))
	var coded v4l2Format
	coded.Type = bufTypeVideoCaptureMplane
	pix := &coded.Fmt.PixMP
	pix.Width, pix.Height, pix.PixelFormat, pix.Field = uint32(width), uint32(height), pixFmtH264, fieldNone
	pix.NumPlanes = 1
	pix.PlaneFmt[0].SizeImage = uint32(s.codedSize)
	if err := s.dev.Ioctl(vidiocSFmt, unsafe.Pointer(&coded)); err != nil {
		return fmt.Errorf("set coded format H264: %w", err)
	}
	if pix.PixelFormat != pixFmtH264 {
		return fmt.Errorf("%s does not encode H.264 (it offered %s)", s.card, fourccString(pix.PixelFormat))
	}
	if pix.NumPlanes != 1 {
		return fmt.Errorf("%s wants %d planes for H.264, not 1", s.card, pix.NumPlanes)
	}
	s.codedSize = int(pix.PlaneFmt[0].SizeImage)

	var raw v4l2Format
	raw.Type = bufTypeVideoOutputMplane
	pix = &raw.Fmt.PixMP
	pix.Width, pix.Height, pix.PixelFormat, pix.Field = uint32(width), uint32(height), fourccOf(format), fieldNone
	pix.NumPlanes = 1
	// An imported buffer keeps the camera's rows: ask for its stride.
	pix.PlaneFmt[0].BytesPerLine = uint32(s.importStride)
	if err := s.dev.Ioctl(vidiocSFmt, unsafe.Pointer(&raw)); err != nil {
		return fmt.Errorf("set raw format %s %dx%d: %w", format, width, height, err)
	}
	switch {
	case pix.PixelFormat != fourccOf(format):
		return fmt.Errorf("%s does not take %s pictures (it offered %s)", s.card, format, fourccString(pix.PixelFormat))
	case int(pix.Width) != width || int(pix.Height) != height:
		return fmt.Errorf("%s does not take %dx%d pictures (it offered %dx%d)", s.card, width, height, pix.Width, pix.Height)
	case pix.NumPlanes != 1:
		return fmt.Errorf("%s wants %s in %d planes, not 1", s.card, format, pix.NumPlanes)
	}
	s.layout = rawLayout{
		format: format, width: width, height: height,
		bytesPerLine: int(pix.PlaneFmt[0].BytesPerLine), sizeImage: int(pix.PlaneFmt[0].SizeImage),
	}
	if err := s.layout.check(); err != nil {
		return err
	}
	if s.importStride > 0 && s.layout.bytesPerLine != s.importStride {
		return &importRefusal{fmt.Errorf("the encoder lays raw rows %d bytes apart, the camera's buffers %d",
			s.layout.bytesPerLine, s.importStride)}
	}

	// The frame interval goes on OUTPUT; the driver hands it to the
	// firmware's rate control.
	var parm v4l2StreamParm
	parm.Type = bufTypeVideoOutputMplane
	parm.Parm.Output.TimePerFrame = v4l2Fract{Numerator: 1, Denominator: uint32(e.params.FPS)}
	if err := s.dev.Ioctl(vidiocSParm, unsafe.Pointer(&parm)); err != nil {
		return fmt.Errorf("set frame rate %d fps: %w", e.params.FPS, err)
	}

	if err := s.setControls(e); err != nil {
		return err
	}

	var err error
	if s.importStride > 0 {
		if err := s.allocateImports(max(e.opt.OutputBuffers, importSlots)); err != nil {
			return err
		}
	} else {
		if s.output, err = s.allocate(bufTypeVideoOutputMplane, e.opt.OutputBuffers, s.layout.sizeImage); err != nil {
			return fmt.Errorf("raw buffers: %w", err)
		}
		s.outputCount = len(s.output)
	}
	for i := 0; i < s.outputCount; i++ {
		s.freeOutput = append(s.freeOutput, i)
	}
	if s.capture, err = s.allocate(bufTypeVideoCaptureMplane, e.opt.CaptureBuffers, s.codedSize); err != nil {
		return fmt.Errorf("coded buffers: %w", err)
	}
	s.ready = make([]media.Sample, len(s.capture)+1)
	for i := range s.capture {
		if err := s.queueCapture(i); err != nil {
			return err
		}
	}
	for _, t := range []int32{bufTypeVideoOutputMplane, bufTypeVideoCaptureMplane} {
		if err := s.dev.Ioctl(vidiocStreamOn, unsafe.Pointer(&t)); err != nil {
			return fmt.Errorf("start streaming (%s): %w", queueName(uint32(t)), err)
		}
		s.streaming = true
	}
	return nil
}

// codedBufferSize is the CAPTURE buffer size to ask for: half a second of
// stream at the highest bitrate, at least the driver's default (512 KiB up
// to 720p, 768 KiB above) and at most half a raw picture. A keyframe that
// outgrows its buffer is split by the firmware, which costs a keyframe.
func codedBufferSize(width, height, kbps int) int {
	def := 512 << 10
	if width*height > 1280*720 {
		def = 768 << 10
	}
	want := min(kbps*1000/8/2, width*height*3/4)
	return max(def, want)
}

func queueName(t uint32) string {
	if t == bufTypeVideoOutputMplane {
		return "OUTPUT"
	}
	return "CAPTURE"
}

// setControls sets every encoding control in one VIDIOC_S_EXT_CTRLS, before
// the queues stream.
func (s *session) setControls(e *Encoder) error {
	mode := int32(bitrateModeVBR)
	if e.opt.RateControl == CBR {
		mode = bitrateModeCBR
	}
	controls := []v4l2ExtControl{
		{ID: cidBitrateMode, Value: mode},
		{ID: cidBitrate, Value: int32(e.params.BitrateKbps * 1000)},
		{ID: cidH264Profile, Value: profileOf(e.params.Profile)},
		{ID: cidH264Level, Value: int32(e.level)},
		{ID: cidH264IPeriod, Value: int32(e.params.KeyframeIntervalFrames())},
		// SPS and PPS in front of every IDR, so each keyframe decodes on
		// its own (a viewer joining, a PLI).
		{ID: cidRepeatSeqHeader, Value: 1},
	}
	ext := v4l2ExtControls{Which: ctrlClassCodec, Count: uint32(len(controls)), Controls: &controls[0]}
	if err := s.dev.Ioctl(vidiocSExtCtrls, unsafe.Pointer(&ext)); err != nil {
		if int(ext.ErrorIdx) < len(controls) {
			c := controls[ext.ErrorIdx]
			return fmt.Errorf("set control %s to %d: %w", controlName(c.ID), c.Value, err)
		}
		return fmt.Errorf("set controls (bitrate %d kbps %v, profile %s, level %s, keyframe every %d): %w",
			e.params.BitrateKbps, e.opt.RateControl, e.params.Profile, e.level, e.params.KeyframeIntervalFrames(), err)
	}
	return nil
}

// setControl sets one control while streaming (bitrate, keyframe request).
func (s *session) setControl(id uint32, value int32) error {
	s.ctrl = v4l2Control{ID: id, Value: value}
	return s.dev.Ioctl(vidiocSCtrl, unsafe.Pointer(&s.ctrl))
}

// allocate asks for count MMAP buffers on a queue and maps them.
func (s *session) allocate(bufType uint32, count, minSize int) ([]mapping, error) {
	req := v4l2RequestBuffers{Count: uint32(count), Type: bufType, Memory: memoryMMAP}
	if err := s.dev.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		return nil, fmt.Errorf("request %d buffers: %w", count, err)
	}
	if req.Count == 0 {
		return nil, errors.New("the driver gave no buffers")
	}
	maps := make([]mapping, req.Count)
	for i := range maps {
		s.resetBuf(bufType, uint32(i))
		if err := s.dev.Ioctl(vidiocQueryBuf, unsafe.Pointer(&s.buf)); err != nil {
			return maps, fmt.Errorf("query buffer %d: %w", i, err)
		}
		length := int(s.planes[0].Length)
		if length < minSize {
			return maps, fmt.Errorf("buffer %d has %d bytes, the format needs %d", i, length, minSize)
		}
		mem, err := s.dev.Mmap(int64(s.planes[0].memOffset()), length)
		if err != nil {
			return maps, fmt.Errorf("map buffer %d: %w", i, err)
		}
		maps[i].mem = mem
	}
	return maps, nil
}

// allocateImports asks for count OUTPUT buffers that import dma-bufs
// (REQBUFS with V4L2_MEMORY_DMABUF): slots without memory of their own.
func (s *session) allocateImports(count int) error {
	req := v4l2RequestBuffers{Count: uint32(count), Type: bufTypeVideoOutputMplane, Memory: memoryDMABUF}
	if err := s.dev.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		return &importRefusal{fmt.Errorf("request %d raw buffers importing dma-bufs: %w", count, err)}
	}
	if req.Count == 0 {
		return errors.New("raw buffers: the driver gave no buffers")
	}
	s.outputCount = int(req.Count)
	s.slots = make([]int, req.Count)
	for i := range s.slots {
		s.slots[i] = -1
	}
	if req.Capabilities != 0 && req.Capabilities&bufCapSupportsDMABUF == 0 {
		return &importRefusal{fmt.Errorf("the raw queue does not import dma-bufs (capabilities %#x)", req.Capabilities)}
	}
	return nil
}

// memoryOf is the memory type of a queue's buffers.
func (s *session) memoryOf(bufType uint32) uint32 {
	if bufType == bufTypeVideoOutputMplane && s.importStride > 0 {
		return memoryDMABUF
	}
	return memoryMMAP
}

// resetBuf prepares the scratch v4l2_buffer for a buffer ioctl.
func (s *session) resetBuf(bufType, index uint32) {
	s.planes[0] = v4l2Plane{}
	s.buf = v4l2Buffer{Index: index, Type: bufType, Memory: s.memoryOf(bufType), Planes: &s.planes[0], Length: 1}
}

func (s *session) queueCapture(index int) error {
	s.resetBuf(bufTypeVideoCaptureMplane, uint32(index))
	s.planes[0].Length = uint32(len(s.capture[index].mem))
	if err := s.dev.Ioctl(vidiocQBuf, unsafe.Pointer(&s.buf)); err != nil {
		return fmt.Errorf("queue coded buffer %d: %w", index, err)
	}
	return nil
}

// queueFrame copies a picture into a free OUTPUT buffer and queues it,
// asking for a keyframe first when force is set (the driver passes the
// request to the firmware at once, so it applies to this picture).
func (s *session) queueFrame(frame media.VideoFrame, force bool, timeout time.Duration) error {
	if s.importStride > 0 {
		return s.queueImport(frame, force, timeout)
	}
	index, err := s.takeOutput(timeout, -1)
	if err != nil {
		return err
	}
	if _, err := s.layout.copyFrame(s.output[index].mem, frame.Data); err != nil {
		s.freeOutput = append(s.freeOutput, index)
		return err
	}
	stamp, err := s.prepareOutput(index, frame.Capture, force)
	if err != nil {
		return err
	}
	s.planes[0].BytesUsed = uint32(s.layout.payload())
	s.planes[0].Length = uint32(len(s.output[index].mem))
	if err := s.dev.Ioctl(vidiocQBuf, unsafe.Pointer(&s.buf)); err != nil {
		s.freeOutput = append(s.freeOutput, index)
		return fmt.Errorf("queue raw buffer %d: %w", index, err)
	}
	s.queued(stamp, frame.Capture)
	return nil
}

// prepareOutput asks for a keyframe if force, then sets s.buf up for
// OUTPUT buffer index with the picture's timestamp, which it returns. On an
// error the buffer goes back to the free list.
func (s *session) prepareOutput(index int, capture time.Duration, force bool) (int64, error) {
	if force {
		if err := s.setControl(cidForceKeyFrame, 0); err != nil {
			s.freeOutput = append(s.freeOutput, index)
			return 0, fmt.Errorf("request keyframe: %w", err)
		}
	}
	stamp := int64(max(capture, 0) / time.Microsecond)
	s.resetBuf(bufTypeVideoOutputMplane, uint32(index))
	s.buf.Field = fieldNone
	s.buf.Timestamp = unix.NsecToTimeval(stamp * 1000)
	return stamp, nil
}

// queued records a picture the hardware now has.
func (s *session) queued(stamp int64, capture time.Duration) {
	s.inFlight++
	s.pending[s.pendingNext] = pendingFrame{stamp: stamp, capture: capture, used: true}
	s.pendingNext = (s.pendingNext + 1) % len(s.pending)
}

// queueImport queues the camera's dma-buf that holds the picture in an
// OUTPUT buffer: no copy. The hardware reads the camera's buffer until the
// OUTPUT buffer is dequeued (awaitOutput); s.lent says which one it is.
func (s *session) queueImport(frame media.VideoFrame, force bool, timeout time.Duration) error {
	d := frame.DMABuf
	used := d.Offset + s.layout.payload()
	if d.Stride != s.importStride || used > d.Size {
		// Encode sets the session up for the frame's stride; a buffer
		// smaller than the encoder's layout of the picture cannot be read
		// in place, but the frame's Data can still be copied.
		return &importRefusal{fmt.Errorf("camera's dma-buf %d (%d bytes, rows %d apart) does not hold a %dx%d %s picture laid out with rows %d apart",
			d.FD, d.Size, d.Stride, s.layout.width, s.layout.height, s.layout.format, s.importStride)}
	}
	index, err := s.takeOutput(timeout, d.FD)
	if err != nil {
		return err
	}
	stamp, err := s.prepareOutput(index, frame.Capture, force)
	if err != nil {
		return err
	}
	s.planes[0].setFD(d.FD)
	s.planes[0].Length = uint32(d.Size)
	s.planes[0].DataOffset = uint32(d.Offset)
	// The multi-planar API counts data_offset in bytesused.
	s.planes[0].BytesUsed = uint32(used)
	if err := s.dev.Ioctl(vidiocQBuf, unsafe.Pointer(&s.buf)); err != nil {
		s.freeOutput = append(s.freeOutput, index)
		s.slots[index] = -1
		err = fmt.Errorf("queue the camera's dma-buf in raw buffer %d: %w", index, err)
		if !s.imported {
			return &importRefusal{err}
		}
		return err
	}
	s.slots[index], s.lent = d.FD, index
	s.queued(stamp, frame.Capture)
	return nil
}

// awaitOutput waits until the hardware gives back the OUTPUT buffer that
// holds the camera's dma-buf: until then the camera must not fill it
// again, and Encode returns only after this.
func (s *session) awaitOutput(timeout time.Duration) error {
	if s.lent < 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := s.reclaimOutput(); err != nil {
			return err
		}
		if slices.Contains(s.freeOutput, s.lent) {
			s.lent, s.imported = -1, true
			return nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("the hardware did not give the camera's buffer back in %v: %w", timeout, unix.ETIMEDOUT)
		}
		revents, err := s.dev.Poll(unix.POLLOUT, remaining)
		if err != nil {
			return fmt.Errorf("wait for the camera's buffer back: %w", err)
		}
		if revents == 0 {
			return fmt.Errorf("the hardware did not give the camera's buffer back in %v: %w", timeout, unix.ETIMEDOUT)
		}
		if revents&unix.POLLOUT == 0 && revents&unix.POLLERR != 0 {
			if err := s.reclaimOutput(); err != nil {
				return err
			}
			if !slices.Contains(s.freeOutput, s.lent) {
				return fmt.Errorf("the device reports an error condition holding the camera's buffer: %w", unix.EIO)
			}
		}
	}
}

// takeOutput returns a free OUTPUT buffer, waiting for the hardware to
// return one when all are queued. When importing, the buffer that last
// held dma-buf fd is preferred, then one that held none.
func (s *session) takeOutput(timeout time.Duration, fd int) (int, error) {
	if len(s.freeOutput) == 0 {
		if err := s.reclaimOutput(); err != nil {
			return 0, err
		}
	}
	if len(s.freeOutput) == 0 {
		revents, err := s.dev.Poll(unix.POLLOUT, timeout)
		if err != nil {
			return 0, fmt.Errorf("wait for a raw buffer: %w", err)
		}
		if revents == 0 {
			return 0, fmt.Errorf("no raw buffer came back from the hardware in %v: %w", timeout, unix.ETIMEDOUT)
		}
		if err := s.reclaimOutput(); err != nil {
			return 0, err
		}
		if len(s.freeOutput) == 0 {
			return 0, fmt.Errorf("the device signalled (events %#x) but returned no raw buffer: %w", revents, unix.EIO)
		}
	}
	pick := len(s.freeOutput) - 1
	if s.slots != nil {
		for i, index := range s.freeOutput {
			if s.slots[index] == fd {
				pick = i
				break
			}
			if s.slots[index] < 0 && s.slots[s.freeOutput[pick]] >= 0 {
				pick = i
			}
		}
	}
	index := s.freeOutput[pick]
	last := len(s.freeOutput) - 1
	s.freeOutput[pick] = s.freeOutput[last]
	s.freeOutput = s.freeOutput[:last]
	return index, nil
}

// reclaimOutput dequeues every OUTPUT buffer the hardware is done with.
func (s *session) reclaimOutput() error {
	for {
		s.resetBuf(bufTypeVideoOutputMplane, 0)
		err := s.dev.Ioctl(vidiocDQBuf, unsafe.Pointer(&s.buf))
		if isAgain(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dequeue raw buffer: %w", err)
		}
		s.freeOutput = append(s.freeOutput, int(s.buf.Index))
	}
}

// awaitSample waits until at most delay pictures are inside the hardware,
// then returns the oldest finished access unit. ok is false (and the error
// nil) when none is ready: the hardware holds the picture (delay > 0) or
// returned it corrupt (s.corrupt says so).
func (s *session) awaitSample(delay int, timeout time.Duration) (media.Sample, bool, error) {
	deadline := time.Now().Add(timeout)
	s.corrupt = 0
	for {
		if err := s.collect(); err != nil {
			return media.Sample{}, false, err
		}
		if s.inFlight <= delay {
			sample, ok := s.popReady()
			return sample, ok, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return media.Sample{}, false, s.timeoutError(timeout)
		}
		revents, err := s.dev.Poll(unix.POLLIN, remaining)
		if err != nil {
			return media.Sample{}, false, fmt.Errorf("wait for coded output: %w", err)
		}
		if revents == 0 {
			return media.Sample{}, false, s.timeoutError(timeout)
		}
		if revents&unix.POLLIN == 0 && revents&unix.POLLERR != 0 {
			// The queue is in error or not streaming: DQBUF says which,
			// and when it says nothing the condition is the error.
			before := s.inFlight
			if err := s.collect(); err != nil {
				return media.Sample{}, false, err
			}
			if s.inFlight == before {
				return media.Sample{}, false, fmt.Errorf("the device reports an error condition: %w", unix.EIO)
			}
		}
	}
}

func (s *session) timeoutError(timeout time.Duration) error {
	return fmt.Errorf("no coded picture from the hardware in %v (a level, profile or rate-control setting the firmware refuses stalls it like this): %w",
		timeout, unix.ETIMEDOUT)
}

// collect dequeues every finished CAPTURE buffer, turns each into an
// access unit on the ready queue and gives the buffer back to the driver.
func (s *session) collect() error {
	for {
		s.resetBuf(bufTypeVideoCaptureMplane, 0)
		err := s.dev.Ioctl(vidiocDQBuf, unsafe.Pointer(&s.buf))
		if isAgain(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dequeue coded buffer: %w", err)
		}
		index := int(s.buf.Index)
		flags := s.buf.Flags
		stamp := s.buf.Timestamp.Nano() / 1000
		used, offset := int(s.planes[0].BytesUsed), int(s.planes[0].DataOffset)
		if index >= len(s.capture) || used > len(s.capture[index].mem) || offset > used {
			return fmt.Errorf("driver returned coded buffer %d with %d bytes at offset %d: %w", index, used, offset, unix.EIO)
		}
		switch {
		case flags&bufFlagError != 0:
			s.corrupt++
			s.inFlight--
			s.forget(stamp)
			s.header = s.header[:0]
		case used > offset:
			s.takePayload(s.capture[index].mem[offset:used], stamp)
		}
		if err := s.queueCapture(index); err != nil {
			return err
		}
	}
}

// takePayload turns one coded buffer into an access unit, or keeps it for
// the next buffer when it holds only parameter sets, or appends it to the
// previous one when the firmware split a picture over two buffers.
func (s *session) takePayload(payload []byte, stamp int64) {
	if !startsWithStartCode(payload) {
		// The rest of a picture that did not fit one buffer: the firmware
		// sends it next, with the same timestamp.
		if last := s.lastReady(); last != nil && s.lastStamp == stamp {
			last.Data = append(last.Data, payload...)
			return
		}
		// Its beginning already went out, cut short: the decoder's
		// picture is broken until the next keyframe.
		s.corrupt++
		return
	}
	info := h264.Inspect(payload)
	if info.Slices == 0 {
		if info.SPS || info.PPS {
			s.header = append(s.header, payload...)
		}
		return
	}
	data := make([]byte, 0, len(s.header)+len(payload))
	data = append(append(data, s.header...), payload...)
	s.header = s.header[:0]
	// The driver flags keyframes too, but the hub needs an IDR picture,
	// so the NAL units decide.
	s.pushReady(media.Sample{Kind: media.Video, Data: data, Capture: s.forget(stamp), Keyframe: info.IDR})
	s.inFlight--
	s.lastStamp = stamp
}

func startsWithStartCode(b []byte) bool {
	return len(b) >= 3 && b[0] == 0 && b[1] == 0 && (b[2] == 1 || (b[2] == 0 && len(b) >= 4 && b[3] == 1))
}

// forget returns the exact capture time of the picture queued with stamp
// and forgets it; without a record it is the stamp itself.
func (s *session) forget(stamp int64) time.Duration {
	for i := range s.pending {
		if p := &s.pending[i]; p.used && p.stamp == stamp {
			p.used = false
			return p.capture
		}
	}
	return time.Duration(stamp) * time.Microsecond
}

func (s *session) pushReady(sample media.Sample) {
	if s.readyCount == len(s.ready) {
		// More finished pictures than coded buffers: only when the caller
		// fell behind; grow rather than lose one.
		grown := make([]media.Sample, 2*len(s.ready))
		for i := 0; i < s.readyCount; i++ {
			grown[i] = s.ready[(s.readyHead+i)%len(s.ready)]
		}
		s.ready, s.readyHead = grown, 0
	}
	s.ready[(s.readyHead+s.readyCount)%len(s.ready)] = sample
	s.readyCount++
}

func (s *session) popReady() (media.Sample, bool) {
	if s.readyCount == 0 {
		return media.Sample{}, false
	}
	sample := s.ready[s.readyHead]
	s.ready[s.readyHead] = media.Sample{}
	s.readyHead = (s.readyHead + 1) % len(s.ready)
	s.readyCount--
	return sample, true
}

func (s *session) lastReady() *media.Sample {
	if s.readyCount == 0 {
		return nil
	}
	return &s.ready[(s.readyHead+s.readyCount-1)%len(s.ready)]
}

// teardown ends the session: with drain, V4L2_ENC_CMD_STOP and the coded
// buffers up to the one marked LAST; then STREAMOFF, unmap, free, close.
// It returns the first thing that went wrong but always goes to the end.
func (s *session) teardown(drain bool, timeout time.Duration) error {
	var errs []error
	if s.streaming && drain {
		if err := s.drain(timeout); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
	}
	if s.streaming {
		for _, t := range []int32{bufTypeVideoCaptureMplane, bufTypeVideoOutputMplane} {
			if err := s.dev.Ioctl(vidiocStreamOff, unsafe.Pointer(&t)); err != nil {
				errs = append(errs, fmt.Errorf("stop streaming (%s): %w", queueName(uint32(t)), err))
			}
		}
		s.streaming = false
	}
	for _, group := range []struct {
		bufType uint32
		maps    []mapping
	}{{bufTypeVideoOutputMplane, s.output}, {bufTypeVideoCaptureMplane, s.capture}} {
		if group.maps == nil {
			continue
		}
		for i := range group.maps {
			if group.maps[i].mem == nil {
				continue
			}
			if err := s.dev.Munmap(group.maps[i].mem); err != nil {
				errs = append(errs, fmt.Errorf("unmap %s buffer %d: %w", queueName(group.bufType), i, err))
			}
			group.maps[i].mem = nil
		}
		req := v4l2RequestBuffers{Type: group.bufType, Memory: memoryMMAP}
		if err := s.dev.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
			errs = append(errs, fmt.Errorf("free %s buffers: %w", queueName(group.bufType), err))
		}
	}
	if s.slots != nil {
		req := v4l2RequestBuffers{Type: bufTypeVideoOutputMplane, Memory: memoryDMABUF}
		if err := s.dev.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
			errs = append(errs, fmt.Errorf("free OUTPUT buffers: %w", err))
		}
	}
	s.output, s.capture, s.freeOutput, s.slots, s.lent = nil, nil, nil, nil, -1
	if err := s.dev.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// drain runs the stateful encoder's drain sequence and discards what it
// yields.
func (s *session) drain(timeout time.Duration) error {
	cmd := v4l2EncoderCmd{Cmd: encCmdStop}
	if err := s.dev.Ioctl(vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		return fmt.Errorf("V4L2_ENC_CMD_STOP: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := s.reclaimOutput(); err != nil {
			return err
		}
		s.resetBuf(bufTypeVideoCaptureMplane, 0)
		err := s.dev.Ioctl(vidiocDQBuf, unsafe.Pointer(&s.buf))
		switch {
		case errors.Is(err, unix.EPIPE):
			return nil // the last buffer was already dequeued
		case isAgain(err):
			remaining := time.Until(deadline)
			if remaining <= 0 {
				return fmt.Errorf("no last buffer in %v: %w", timeout, unix.ETIMEDOUT)
			}
			revents, err := s.dev.Poll(unix.POLLIN, remaining)
			if err != nil {
				return err
			}
			if revents == 0 {
				return fmt.Errorf("no last buffer in %v: %w", timeout, unix.ETIMEDOUT)
			}
			continue
		case err != nil:
			return fmt.Errorf("dequeue coded buffer: %w", err)
		}
		if s.buf.Flags&bufFlagLast != 0 {
			return nil
		}
		if err := s.queueCapture(int(s.buf.Index)); err != nil {
			return err
		}
	}
}
