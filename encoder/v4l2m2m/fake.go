package v4l2m2m

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device/v4l2/dmabuftest"
	"github.com/onair/onair/media"
)

// FakeRole is what a FakeDevice pretends to be.
type FakeRole int

// Roles a FakeDevice can play; only FakeEncoder streams, the others answer
// VIDIOC_QUERYCAP and VIDIOC_ENUM_FMT so that Find can be tested.
const (
	// FakeEncoder is the Pi's bcm2835-codec-encode.
	FakeEncoder FakeRole = iota
	// FakeDecoder is bcm2835-codec-decode: H.264 in, raw out.
	FakeDecoder
	// FakeCamera is a single-planar capture device (a UVC webcam).
	FakeCamera
	// FakeSinglePlanarEncoder is an M2M H.264 encoder with the
	// single-planar API, which this package does not drive.
	FakeSinglePlanarEncoder
)

// FakeConfig describes a FakeDevice. The zero value is the Pi's encoder.
type FakeConfig struct {
	Role FakeRole
	// Driver, Card and Bus default to the Pi's ("bcm2835-codec",
	// "bcm2835-codec-encode", "platform:bcm2835-codec").
	Driver, Card, Bus string
	// CodedFormats are the CAPTURE queue's formats (default H264, MJPEG)
	// and RawFormats the OUTPUT queue's (default I420, NV12, YUYV).
	CodedFormats, RawFormats []media.PixelFormat
	// SplitHeaders makes the "firmware" return SPS and PPS in a coded
	// buffer of their own, before the IDR picture's.
	SplitHeaders bool
	// FragmentBytes, when positive, splits every access unit over coded
	// buffers of at most that many bytes, as the firmware does with a
	// picture that does not fit its buffer.
	FragmentBytes int
	// Latency is how many pictures the "firmware" holds before their coded
	// buffers come out (0: at once).
	Latency int
	// OnPicture, when set, is called with every raw picture the firmware
	// reads, taken out of its padded buffer. It runs with the fake's lock
	// held, inside the ioctl that let the picture be encoded (its QBUF, or
	// the STREAMON or ENC_CMD_START after it).
	OnPicture func(FakePicture)
	// Stall makes the firmware take every setting and produce nothing, as
	// a wedged VPU does.
	Stall bool
	// DMABufs is the dma-buf table the OUTPUT queue imports from (the
	// fake camera's, see device/v4l2.FakeConfig.DMABufs). Without it every
	// imported descriptor is unknown: QBUF says EINVAL.
	DMABufs *dmabuftest.Heap
}

// FakePicture is a raw picture as the fake read it out of an OUTPUT buffer,
// without row padding. Data is only valid during the OnPicture call.
type FakePicture struct {
	Format        media.PixelFormat
	Width, Height int
	Data          []byte
	// Timestamp is the buffer's timestamp as the driver keeps it
	// (microseconds).
	Timestamp time.Duration
}

// FakeDevice is the Pi's bcm2835-codec-encode in memory: it implements
// Device and enforces what the driver, videobuf2 and the V4L2 core enforce,
// so the encoder runs the real ioctl sequence against it:
//
//   - multi-planar only: a single-planar buffer type in S_FMT, REQBUFS,
//     QUERYBUF, QBUF, DQBUF or STREAMON is EINVAL (ENUM_FMT takes both, as
//     the V4L2 core does); MMAP memory on both queues and DMABUF on OUTPUT
//     (the real one also takes DMABUF on CAPTURE: the fake says EINVAL); a
//     buffer ioctl whose memory is not the queue's: EINVAL;
//   - DMABUF import (QBUF on OUTPUT with m.fd): a descriptor not in
//     FakeConfig.DMABufs: EINVAL (dma_buf_get fails); a length or dma-buf
//     smaller than sizeimage: EINVAL; memory that is not contiguous
//     (dmabuftest.Vmalloc, a UVC webcam's): EFAULT, as videobuf2-dma-contig
//     refuses a scattered buffer on a device without an IOMMU. An imported
//     buffer is lent to the encoder from QBUF until DQBUF or STREAMOFF, and
//     the table reports a camera that queues it again meanwhile;
//   - S_FMT on a queue with buffers: EBUSY; REQBUFS while streaming, or while
//     buffers are mapped: EBUSY; STREAMON without buffers: EINVAL;
//   - formats corrected as the driver's try_fmt does: sizes clamped to
//     32..1920, bytesperline aligned to 64 bytes (YU12, YUYV) or 32 (NV12),
//     sizeimage computed for raw formats, at least 512 KiB (768 KiB above
//     720p) for H.264, an unknown pixel format replaced by the first;
//   - buffer ownership: QBUF of a buffer that is queued or done, of an index
//     out of range, without a planes array or with bytesused above the plane
//     length: EINVAL; DQBUF while not streaming: EINVAL; DQBUF with nothing
//     done: EAGAIN; DQBUF on CAPTURE after the LAST buffer: EPIPE;
//   - controls: the encoder's set (bitrate 25 kbit/s..25 Mbit/s in steps of
//     25 kbit/s, rounded like the core does; menus checked: ERANGE out of
//     range, EINVAL for a skipped entry; unknown ID: EINVAL). The driver
//     grabs no control, so the real one takes every control while
//     streaming and hands it to the running firmware, which documents no
//     promise to honour a new profile, level, rate control or header mode
//     there (a refusal would come back as EINVAL). The fake is stricter and
//     says so: every control but bitrate and force_key_frame is EBUSY while
//     either queue streams, so code that sets them late fails in tests;
//   - V4L2_ENC_CMD_STOP drains (queued pictures are encoded, then a coded
//     buffer with V4L2_BUF_FLAG_LAST and no payload); a second STOP while
//     draining is EBUSY (the documented rule; the driver itself would send
//     another EOS); START resumes;
//   - what makes the real firmware stall without a word (no error, no
//     output) makes the fake stall too: a level too low for the size and
//     frame rate, CBR with the main or high profile (CABAC), more than
//     20 Mbit/s below the high profile, a coded size other than the raw
//     size (undefined on the real firmware; the fake refuses it);
//   - after Fail every ioctl but QUERYCAP is EIO (the stateful encoder's
//     fatal error), after Close everything is EBADF.
//
// The fake does its work inside the ioctls (a picture is encoded when it is
// queued and a coded buffer is free), so nothing becomes ready by waiting:
// Poll reports what is ready now, or the timeout at once, and tests never
// sleep. The coded stream is valid H.264 (see fakeH264): SPS/PPS in front of
// the first IDR and, with repeat_sequence_header, of every IDR; an IDR
// every h264_i_frame_period pictures and on force_key_frame; timestamps
// copied from OUTPUT to CAPTURE at the driver's microsecond precision.
type FakeDevice struct {
	cfg FakeConfig

	mu     sync.Mutex
	closed bool
	failed bool

	queues   [2]fakeQueue // fakeOut, fakeCap
	controls []fakeControl
	interval v4l2Fract

	// The "firmware".
	encoding    bool // both queues stream and it is set up
	stalled     string
	codec       *fakeH264
	frames      int // pictures encoded since encoding began
	sinceIDR    int
	forceKey    bool
	pending     []fakeChunk
	draining    bool
	stopped     bool // drain finished: pictures wait for START
	lastPending bool // the LAST buffer goes to the next queued CAPTURE buffer
	corruptNext bool

	// What tests look at.
	stats   FakeStats
	picture []byte // reused for OnPicture
}

// Queue indexes of FakeDevice.queues.
const (
	fakeOut = 0
	fakeCap = 1
)

type fakeQueue struct {
	bufType uint32
	// memory is the queue's memory type since REQBUFS (0: no buffers).
	memory    uint32
	format    v4l2PixFormatMplane
	buffers   []*fakeBuffer
	streaming bool
	queued    []int // FIFO, waiting for the firmware
	done      []int // FIFO, waiting for DQBUF
	sequence  uint32
	// lastDequeued is videobuf2's last_buffer_dequeued (CAPTURE).
	lastDequeued bool
}

type fakeBufState int

const (
	fakeBufDequeued fakeBufState = iota
	fakeBufQueued
	fakeBufDone
)

type fakeBuffer struct {
	// data is the buffer's memory: its own for MMAP, the imported
	// dma-buf's (from dataOffset) for DMABUF.
	data       []byte
	dataOffset uint32
	// fd is the imported dma-buf (DMABUF), lent while the buffer is
	// queued or done.
	fd        int
	lent      bool
	state     fakeBufState
	mapped    int
	bytesUsed uint32
	flags     uint32
	timestamp unix.Timeval
	sequence  uint32
}

// fakeChunk is one coded buffer's worth of output, waiting for a CAPTURE
// buffer.
type fakeChunk struct {
	data      []byte
	timestamp unix.Timeval
	keyframe  bool
	err       bool
	picture   int // which picture (for Latency)
}

// fakeDstOffset is videobuf2-m2m's DST_QUEUE_OFF_BASE: CAPTURE buffers'
// mmap cookies start here, OUTPUT ones at 0.
const fakeDstOffset = 1 << 30

// fakeCookieShift spaces the mmap cookies of a queue's buffers.
const fakeCookieShift = 20

// FakeStats is what a FakeDevice saw, for tests.
type FakeStats struct {
	// ControlsAtStart are the control values when encoding began (both
	// queues streaming), by control name.
	ControlsAtStart map[string]int32
	// FramesEncoded counts pictures the firmware consumed, Keyframes the
	// IDR pictures among them, ForcedKeyframes the force_key_frame
	// requests that made one.
	FramesEncoded, Keyframes, ForcedKeyframes int
	// BitrateChanges counts bitrate controls set while streaming.
	BitrateChanges int
	// EncoderStops counts V4L2_ENC_CMD_STOP; LastDequeued tells that the
	// coded buffer marked LAST was dequeued.
	EncoderStops int
	LastDequeued bool
	// Imports counts dma-bufs queued on OUTPUT, ImportsRefused the QBUFs
	// of one that failed.
	Imports, ImportsRefused int
}

// FakeState is a snapshot of a FakeDevice.
type FakeState struct {
	Closed                            bool
	OutputStreaming, CaptureStreaming bool
	// OutputMemory is "mmap" or "dmabuf" (OUTPUT buffers allocated).
	OutputMemory                       string
	OutputBuffers, CaptureBuffers      int
	Mapped                             int
	RawFourCC                          string
	Width, Height, BytesPerLine        int
	CodedWidth, CodedHeight, CodedSize int
	FPS                                int
	Controls                           map[string]int32
	Stalled                            string
	Stats                              FakeStats
}

// NewFakeDevice makes a fake device node, as if freshly opened.
func NewFakeDevice(cfg FakeConfig) *FakeDevice {
	if cfg.Driver == "" {
		cfg.Driver = "bcm2835-codec"
	}
	if cfg.Card == "" {
		switch cfg.Role {
		case FakeDecoder:
			cfg.Card = "bcm2835-codec-decode"
		case FakeCamera:
			cfg.Card = "Fake Webcam"
		case FakeSinglePlanarEncoder:
			cfg.Card = "fake-encoder"
		default:
			cfg.Card = PiEncoderCard
		}
	}
	if cfg.Bus == "" {
		cfg.Bus = "platform:" + cfg.Driver
	}
	coded := []media.PixelFormat{media.H264, media.MJPEG}
	raw := []media.PixelFormat{media.I420, media.NV12, media.YUYV}
	if cfg.CodedFormats == nil {
		cfg.CodedFormats = coded
	}
	if cfg.RawFormats == nil {
		cfg.RawFormats = raw
	}
	if cfg.Role == FakeDecoder || cfg.Role == FakeCamera {
		// Their CAPTURE side delivers raw pictures.
		cfg.CodedFormats, cfg.RawFormats = cfg.RawFormats, cfg.CodedFormats
	}
	f := &FakeDevice{cfg: cfg, controls: newFakeControls(), interval: v4l2Fract{Numerator: 1, Denominator: 30}}
	f.queues[fakeOut].bufType = bufTypeVideoOutputMplane
	f.queues[fakeCap].bufType = bufTypeVideoCaptureMplane
	// The driver's defaults after open: 32x32, first format of each list.
	f.tryFormat(fakeOut, &f.queues[fakeOut].format)
	f.tryFormat(fakeCap, &f.queues[fakeCap].format)
	return f
}

// Fail puts the device in the stateful encoder's fatal error state: every
// ioctl but QUERYCAP fails with EIO from now on and Poll reports POLLERR.
func (f *FakeDevice) Fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
}

// CorruptNext makes the firmware flag the next coded buffer
// V4L2_BUF_FLAG_ERROR.
func (f *FakeDevice) CorruptNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corruptNext = true
}

// State reports the fake's current state.
func (f *FakeDevice) State() FakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	outQ, capQ := &f.queues[fakeOut], &f.queues[fakeCap]
	st := FakeState{
		Closed:          f.closed,
		OutputMemory:    memoryName(outQ.memory),
		OutputStreaming: outQ.streaming, CaptureStreaming: capQ.streaming,
		OutputBuffers: len(outQ.buffers), CaptureBuffers: len(capQ.buffers),
		RawFourCC: fourccString(outQ.format.PixelFormat),
		Width:     int(outQ.format.Width), Height: int(outQ.format.Height),
		BytesPerLine: int(outQ.format.PlaneFmt[0].BytesPerLine),
		CodedWidth:   int(capQ.format.Width), CodedHeight: int(capQ.format.Height),
		CodedSize: int(capQ.format.PlaneFmt[0].SizeImage),
		Controls:  map[string]int32{},
		Stalled:   f.stalled,
		Stats:     f.stats,
	}
	if f.interval.Numerator != 0 {
		st.FPS = int(f.interval.Denominator / f.interval.Numerator)
	}
	for _, q := range f.queues {
		for _, b := range q.buffers {
			st.Mapped += b.mapped
		}
	}
	for _, c := range f.controls {
		if c.kind != ctrlButton {
			st.Controls[c.name] = c.value
		}
	}
	return st
}

// Ioctl implements Device.
func (f *FakeDevice) Ioctl(req uintptr, arg unsafe.Pointer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	if req == vidiocQueryCap {
		return f.queryCap((*v4l2Capability)(arg))
	}
	if f.failed {
		return unix.EIO
	}
	if req == vidiocEnumFmt {
		return f.enumFmt((*v4l2Fmtdesc)(arg))
	}
	switch req {
	case vidiocGFmt, vidiocSFmt, vidiocTryFmt:
		if f.cfg.Role != FakeEncoder && f.cfg.Role != FakeDecoder {
			return unix.EINVAL // no multi-planar queues
		}
		return f.format(req, (*v4l2Format)(arg))
	}
	if f.cfg.Role != FakeEncoder {
		return unix.ENOTTY
	}
	switch req {
	case vidiocGParm, vidiocSParm:
		return f.parm(req, (*v4l2StreamParm)(arg))
	case vidiocReqBufs:
		return f.reqBufs((*v4l2RequestBuffers)(arg))
	case vidiocQueryBuf:
		return f.queryBuf((*v4l2Buffer)(arg))
	case vidiocQBuf:
		return f.qbuf((*v4l2Buffer)(arg))
	case vidiocDQBuf:
		return f.dqbuf((*v4l2Buffer)(arg))
	case vidiocStreamOn:
		return f.streamOn(uint32(*(*int32)(arg)))
	case vidiocStreamOff:
		return f.streamOff(uint32(*(*int32)(arg)))
	case vidiocGCtrl, vidiocSCtrl:
		return f.control(req, (*v4l2Control)(arg))
	case vidiocGExtCtrls, vidiocSExtCtrls, vidiocTryExtCtrls:
		return f.extControls(req, (*v4l2ExtControls)(arg))
	case vidiocEncoderCmd, vidiocTryEncoderCmd:
		return f.encoderCmd(req == vidiocEncoderCmd, (*v4l2EncoderCmd)(arg))
	default:
		return unix.ENOTTY
	}
}

func (f *FakeDevice) queryCap(c *v4l2Capability) error {
	*c = v4l2Capability{Version: 6<<16 | 6<<8}
	putCString(c.Driver[:], f.cfg.Driver)
	putCString(c.Card[:], f.cfg.Card)
	putCString(c.BusInfo[:], f.cfg.Bus)
	switch f.cfg.Role {
	case FakeCamera:
		c.DeviceCaps = capVideoCapture | capStreaming
	case FakeSinglePlanarEncoder:
		c.DeviceCaps = capVideoM2M | capStreaming
	default:
		c.DeviceCaps = capVideoM2MMplane | capStreaming
	}
	c.Capabilities = c.DeviceCaps | capDeviceCaps
	return nil
}

func (f *FakeDevice) enumFmt(d *v4l2Fmtdesc) error {
	var list []media.PixelFormat
	switch d.Type {
	case bufTypeVideoCapture, bufTypeVideoCaptureMplane:
		list = f.cfg.CodedFormats
	case bufTypeVideoOutput, bufTypeVideoOutputMplane:
		if f.cfg.Role == FakeCamera {
			return unix.EINVAL
		}
		list = f.cfg.RawFormats
	default:
		return unix.EINVAL
	}
	if int(d.Index) >= len(list) {
		return unix.EINVAL
	}
	format := list[d.Index]
	index, bufType := d.Index, d.Type
	*d = v4l2Fmtdesc{Index: index, Type: bufType, PixelFormat: fakeFourCC(format)}
	if format == media.H264 || format == media.MJPEG {
		d.Flags = fmtFlagCompressed
	}
	putCString(d.Description[:], format.String())
	return nil
}

func fakeFourCC(f media.PixelFormat) uint32 {
	switch f {
	case media.H264:
		return pixFmtH264
	case media.MJPEG:
		return pixFmtMJPEG
	default:
		return fourccOf(f)
	}
}

// queueOf maps a buffer type to a queue: multi-planar types only.
func queueOf(bufType uint32) (int, bool) {
	switch bufType {
	case bufTypeVideoOutputMplane:
		return fakeOut, true
	case bufTypeVideoCaptureMplane:
		return fakeCap, true
	default:
		return 0, false
	}
}

func (f *FakeDevice) format(req uintptr, format *v4l2Format) error {
	q, ok := queueOf(format.Type)
	if !ok {
		return unix.EINVAL
	}
	queue := &f.queues[q]
	switch req {
	case vidiocGFmt:
		format.Fmt.PixMP = queue.format
		return nil
	case vidiocTryFmt:
		f.tryFormat(q, &format.Fmt.PixMP)
		return nil
	}
	if len(queue.buffers) > 0 {
		return unix.EBUSY
	}
	f.tryFormat(q, &format.Fmt.PixMP)
	queue.format = format.Fmt.PixMP
	return nil
}

// tryFormat corrects a format as the driver's try_fmt does for the encode
// role.
func (f *FakeDevice) tryFormat(q int, pix *v4l2PixFormatMplane) {
	list := f.cfg.RawFormats
	if q == fakeCap {
		list = f.cfg.CodedFormats
	}
	known := false
	for _, format := range list {
		known = known || fakeFourCC(format) == pix.PixelFormat
	}
	if !known {
		pix.PixelFormat = fakeFourCC(list[0])
	}
	pix.Width = min(max(pix.Width, MinSide), MaxSide)
	pix.Height = min(max(pix.Height, MinSide), MaxSide)
	pix.NumPlanes = 1
	pix.Field = fieldNone
	if pix.Colorspace == 0 {
		pix.Colorspace = colorspaceRec709
	}
	plane := &pix.PlaneFmt[0]
	plane.Reserved = [6]uint16{}
	switch format := formatOf(pix.PixelFormat); format {
	case media.H264, media.MJPEG:
		plane.BytesPerLine = 0
		def := uint32(512 << 10)
		if pix.Width*pix.Height > 1280*720 {
			def = 768 << 10
		}
		plane.SizeImage = max(plane.SizeImage, def)
	default:
		align := uint32(64)
		if format == media.NV12 {
			align = 32
		}
		bpl := max(plane.BytesPerLine, uint32(minBytesPerLine(format, int(pix.Width))))
		plane.BytesPerLine = (bpl + align - 1) / align * align
		if format == media.YUYV {
			plane.SizeImage = plane.BytesPerLine * pix.Height
		} else {
			plane.SizeImage = plane.BytesPerLine * pix.Height * 3 / 2
		}
	}
	for i := 1; i < videoMaxPlanes; i++ {
		pix.PlaneFmt[i] = v4l2PlanePixFormat{}
	}
}

func (f *FakeDevice) parm(req uintptr, parm *v4l2StreamParm) error {
	if parm.Type != bufTypeVideoOutputMplane {
		return unix.EINVAL
	}
	if req == vidiocSParm {
		tpf := parm.Parm.Output.TimePerFrame
		if tpf.Numerator == 0 || tpf.Denominator == 0 {
			return unix.EINVAL
		}
		f.interval = tpf
	}
	parm.Parm.Output = v4l2OutputParm{Capability: capTimePerFrame, TimePerFrame: f.interval}
	return nil
}

// memoryName names a memory type for FakeState.
func memoryName(memory uint32) string {
	switch memory {
	case memoryMMAP:
		return "mmap"
	case memoryDMABUF:
		return "dmabuf"
	default:
		return ""
	}
}

// returnImports gives back every imported dma-buf the queue holds, as
// STREAMOFF and releasing the file handle do.
func (f *FakeDevice) returnImports(queue *fakeQueue) {
	for _, b := range queue.buffers {
		if b.lent {
			b.lent = false
			if f.cfg.DMABufs != nil {
				f.cfg.DMABufs.Return(b.fd)
			}
		}
	}
}

func (f *FakeDevice) reqBufs(req *v4l2RequestBuffers) error {
	q, ok := queueOf(req.Type)
	if !ok || (req.Memory != memoryMMAP && req.Memory != memoryDMABUF) {
		return unix.EINVAL
	}
	queue := &f.queues[q]
	if queue.streaming {
		return unix.EBUSY
	}
	for _, b := range queue.buffers {
		if b.mapped > 0 {
			return unix.EBUSY
		}
	}
	queue.buffers, queue.queued, queue.done, queue.memory = nil, nil, nil, 0
	req.Capabilities = bufCapSupportsMMAP | bufCapSupportsDMABUF
	if req.Count == 0 {
		return nil
	}
	req.Count = min(req.Count, vb2MaxFrame)
	queue.memory = req.Memory
	size := queue.format.PlaneFmt[0].SizeImage
	for i := uint32(0); i < req.Count; i++ {
		b := &fakeBuffer{fd: -1}
		if req.Memory == memoryMMAP {
			b.data = make([]byte, size)
		}
		queue.buffers = append(queue.buffers, b)
	}
	return nil
}

// checkBuffer applies videobuf2's checks on the v4l2_buffer of a buffer
// ioctl and returns the queue and the buffer.
func (f *FakeDevice) checkBuffer(b *v4l2Buffer, needIndex bool) (*fakeQueue, *fakeBuffer, error) {
	q, ok := queueOf(b.Type)
	if !ok || b.Memory != f.queues[q].memory {
		return nil, nil, unix.EINVAL
	}
	if b.Planes == nil || b.Length < 1 || b.Length > videoMaxPlanes {
		return nil, nil, unix.EINVAL
	}
	queue := &f.queues[q]
	if !needIndex {
		return queue, nil, nil
	}
	if int(b.Index) >= len(queue.buffers) {
		return nil, nil, unix.EINVAL
	}
	return queue, queue.buffers[b.Index], nil
}

func (f *FakeDevice) cookie(queue *fakeQueue, index uint32) uint32 {
	c := index << fakeCookieShift
	if queue.bufType == bufTypeVideoCaptureMplane {
		c += fakeDstOffset
	}
	return c
}

// describe fills a v4l2_buffer (and its one plane) from a fake buffer.
func (f *FakeDevice) describe(queue *fakeQueue, index uint32, b *v4l2Buffer) {
	buf := queue.buffers[index]
	planes := unsafe.Slice(b.Planes, b.Length)
	b.Index = index
	b.Length = 1
	b.Field = fieldNone
	b.BytesUsed = 0
	b.Flags = buf.flags | bufFlagTimestampCopy
	switch buf.state {
	case fakeBufQueued:
		b.Flags |= bufFlagQueued
	case fakeBufDone:
		b.Flags |= bufFlagDone
	}
	if buf.mapped > 0 {
		b.Flags |= bufFlagMapped
	}
	b.Timestamp = buf.timestamp
	b.Sequence = buf.sequence
	planes[0] = v4l2Plane{BytesUsed: buf.bytesUsed, Length: uint32(len(buf.data)), M: uintptr(f.cookie(queue, index))}
	if queue.memory == memoryDMABUF {
		planes[0].setFD(buf.fd)
		planes[0].Length = uint32(len(buf.data)) + buf.dataOffset
		planes[0].DataOffset = buf.dataOffset
	}
}

func (f *FakeDevice) queryBuf(b *v4l2Buffer) error {
	queue, _, err := f.checkBuffer(b, true)
	if err != nil {
		return err
	}
	f.describe(queue, b.Index, b)
	return nil
}

func (f *FakeDevice) qbuf(b *v4l2Buffer) error {
	queue, buf, err := f.checkBuffer(b, true)
	if err != nil {
		return err
	}
	if buf.state != fakeBufDequeued {
		return unix.EINVAL
	}
	plane := unsafe.Slice(b.Planes, b.Length)[0]
	if queue.memory == memoryDMABUF {
		if err := f.importPlane(queue, buf, plane); err != nil {
			f.stats.ImportsRefused++
			return err
		}
	}
	buf.flags = 0
	if queue.bufType == bufTypeVideoOutputMplane {
		used := plane.BytesUsed
		if used == 0 {
			used = uint32(len(buf.data)) // what videobuf2 does, with a warning
		}
		if used > uint32(len(buf.data))+buf.dataOffset || (plane.DataOffset > 0 && plane.DataOffset >= used) {
			f.returnImport(buf)
			return unix.EINVAL
		}
		buf.bytesUsed = used
		buf.timestamp = b.Timestamp
		buf.flags = b.Flags & (bufFlagKeyframe | bufFlagLast)
	}
	buf.state = fakeBufQueued
	queue.queued = append(queue.queued, int(b.Index))
	f.describe(queue, b.Index, b)
	f.run()
	return nil
}

func (f *FakeDevice) dqbuf(b *v4l2Buffer) error {
	queue, _, err := f.checkBuffer(b, false)
	if err != nil {
		return err
	}
	if !queue.streaming {
		return unix.EINVAL
	}
	if queue.bufType == bufTypeVideoCaptureMplane && queue.lastDequeued {
		return unix.EPIPE
	}
	if len(queue.done) == 0 {
		return unix.EAGAIN
	}
	index := popFront(&queue.done)
	buf := queue.buffers[index]
	buf.state = fakeBufDequeued
	f.returnImport(buf)
	f.describe(queue, uint32(index), b)
	if queue.bufType == bufTypeVideoCaptureMplane && buf.flags&bufFlagLast != 0 {
		queue.lastDequeued = true
		f.stats.LastDequeued = true
	}
	return nil
}

func (f *FakeDevice) streamOn(bufType uint32) error {
	q, ok := queueOf(bufType)
	if !ok {
		return unix.EINVAL
	}
	queue := &f.queues[q]
	if queue.streaming {
		return nil
	}
	if len(queue.buffers) == 0 {
		return unix.EINVAL
	}
	queue.streaming = true
	queue.sequence = 0
	f.run()
	return nil
}

func (f *FakeDevice) streamOff(bufType uint32) error {
	q, ok := queueOf(bufType)
	if !ok {
		return unix.EINVAL
	}
	queue := &f.queues[q]
	// Every buffer goes back to the application, done or not.
	for _, b := range queue.buffers {
		b.state = fakeBufDequeued
	}
	f.returnImports(queue)
	queue.queued, queue.done = nil, nil
	queue.streaming = false
	queue.lastDequeued = false
	// Stopping either queue ends the stream: the next start is a new one
	// with an IDR first. (The real OUTPUT queue resumes the old stream;
	// the encoder never relies on either.)
	f.encoding, f.draining, f.stopped, f.lastPending = false, false, false, false
	f.pending = nil
	return nil
}

// run is the firmware: whenever both queues stream it encodes the queued
// pictures and fills the queued coded buffers.
func (f *FakeDevice) run() {
	outQ, capQ := &f.queues[fakeOut], &f.queues[fakeCap]
	if !outQ.streaming || !capQ.streaming {
		return
	}
	if !f.encoding {
		f.startEncoding()
	}
	if f.stalled != "" {
		return
	}
	for len(outQ.queued) > 0 && !f.stopped {
		index := popFront(&outQ.queued)
		f.encodePicture(outQ, index)
	}
	f.deliver()
	if f.draining && len(outQ.queued) == 0 && len(f.pending) == 0 {
		f.draining, f.stopped, f.lastPending = false, true, true
	}
	if f.lastPending && len(capQ.queued) > 0 {
		index := popFront(&capQ.queued)
		buf := capQ.buffers[index]
		buf.bytesUsed, buf.flags = 0, bufFlagLast
		buf.sequence = capQ.sequence
		capQ.sequence++
		buf.state = fakeBufDone
		capQ.done = append(capQ.done, index)
		f.lastPending = false
	}
}

// startEncoding is the firmware's component enable: settings are read now,
// and a setting it cannot work with makes it stall.
func (f *FakeDevice) startEncoding() {
	f.encoding = true
	f.frames, f.sinceIDR, f.pending = 0, 0, nil
	f.stats.ControlsAtStart = map[string]int32{}
	for _, c := range f.controls {
		if c.kind != ctrlButton {
			f.stats.ControlsAtStart[c.name] = c.value
		}
	}
	raw, coded := f.queues[fakeOut].format, f.queues[fakeCap].format
	width, height := int(raw.Width), int(raw.Height)
	fps := 0
	if f.interval.Numerator != 0 {
		fps = int((f.interval.Denominator + f.interval.Numerator - 1) / f.interval.Numerator)
	}
	profile, level := f.value(cidH264Profile), Level(f.value(cidH264Level))
	limits, _ := levelLimitsOf(level)
	f.stalled = ""
	switch {
	case f.cfg.Stall:
		f.stalled = "FakeConfig.Stall"
	case coded.PixelFormat != pixFmtH264:
		f.stalled = "the coded format is " + fourccString(coded.PixelFormat) + ", the fake encodes H264 only"
	case coded.Width != raw.Width || coded.Height != raw.Height:
		f.stalled = fmt.Sprintf("coded size %dx%d differs from raw size %dx%d", coded.Width, coded.Height, raw.Width, raw.Height)
	case !limits.fits(width, height, fps, 0, profile):
		f.stalled = fmt.Sprintf("level %s is too low for %dx%d at %d fps", level, width, height, fps)
	case f.value(cidBitrateMode) == bitrateModeCBR && (profile == profileMain || profile == profileHigh):
		f.stalled = "CBR with CABAC (main or high profile)"
	case f.value(cidBitrate) > MaxBitrateKbps*1000 && profile != profileHigh:
		f.stalled = fmt.Sprintf("%d bit/s above 20 Mbit/s without the high profile", f.value(cidBitrate))
	}
	f.codec = newFakeH264(width, height, profile, level)
}

// encodePicture consumes one raw buffer and makes its coded chunks.
func (f *FakeDevice) encodePicture(outQ *fakeQueue, index int) {
	buf := outQ.buffers[index]
	raw := outQ.format
	layout := rawLayout{
		format: formatOf(raw.PixelFormat), width: int(raw.Width), height: int(raw.Height),
		bytesPerLine: int(raw.PlaneFmt[0].BytesPerLine), sizeImage: int(raw.PlaneFmt[0].SizeImage),
	}
	chunk := fakeChunk{timestamp: buf.timestamp, picture: f.frames}
	switch {
	case int(buf.bytesUsed-buf.dataOffset) < layout.payload() || f.corruptNext:
		// A short picture (or an injected fault) is a failed encode.
		chunk.err = true
		f.corruptNext = false
		f.forceKey = true
	default:
		if f.cfg.OnPicture != nil {
			n := frameBytes(layout.format, layout.width, layout.height)
			if cap(f.picture) < n {
				f.picture = make([]byte, n)
			}
			f.picture = f.picture[:n]
			layout.extractFrame(f.picture, buf.data)
			f.cfg.OnPicture(FakePicture{
				Format: layout.format, Width: layout.width, Height: layout.height, Data: f.picture,
				Timestamp: time.Duration(buf.timestamp.Nano()),
			})
		}
		period := int(f.value(cidH264IPeriod))
		key := f.frames == 0 || f.forceKey || (period > 0 && f.sinceIDR >= period)
		if key {
			if f.forceKey && f.frames > 0 && !(period > 0 && f.sinceIDR >= period) {
				f.stats.ForcedKeyframes++
			}
			f.stats.Keyframes++
			f.sinceIDR = 0
			headers := f.frames == 0 || f.value(cidRepeatSeqHeader) != 0
			if headers && f.cfg.SplitHeaders {
				h := f.codec
				f.pending = append(f.pending, fakeChunk{
					data: h.appendPPS(h.appendSPS(nil)), timestamp: buf.timestamp, picture: f.frames,
				})
				headers = false
			}
			chunk.data = append([]byte(nil), f.codec.idr(headers)...)
			chunk.keyframe = true
		} else {
			chunk.data = append([]byte(nil), f.codec.p()...)
		}
		f.forceKey = false
		f.sinceIDR++
	}
	f.frames++
	f.stats.FramesEncoded++
	f.pending = f.appendFragments(f.pending, chunk)

	buf.state = fakeBufDone
	buf.sequence = outQ.sequence
	outQ.sequence++
	if chunk.err {
		buf.flags |= bufFlagError
	}
	outQ.done = append(outQ.done, index)
}

// appendFragments appends a chunk split as the firmware splits a picture
// that does not fit one buffer.
func (f *FakeDevice) appendFragments(dst []fakeChunk, c fakeChunk) []fakeChunk {
	if f.cfg.FragmentBytes <= 0 || len(c.data) <= f.cfg.FragmentBytes {
		return append(dst, c)
	}
	first := true
	for data := c.data; len(data) > 0; first = false {
		n := min(len(data), f.cfg.FragmentBytes)
		part := c
		part.data, part.keyframe = data[:n], c.keyframe && first
		dst = append(dst, part)
		data = data[n:]
	}
	return dst
}

// popFront takes the first index of a FIFO, shifting the rest down so the
// slice never needs to grow again.
func popFront(fifo *[]int) int {
	v := (*fifo)[0]
	copy(*fifo, (*fifo)[1:])
	*fifo = (*fifo)[:len(*fifo)-1]
	return v
}

// deliver moves finished chunks into queued coded buffers.
func (f *FakeDevice) deliver() {
	capQ := &f.queues[fakeCap]
	for len(f.pending) > 0 && len(capQ.queued) > 0 {
		chunk := f.pending[0]
		if !f.draining && f.frames-chunk.picture <= f.cfg.Latency {
			return
		}
		copy(f.pending, f.pending[1:])
		f.pending = f.pending[:len(f.pending)-1]
		index := popFront(&capQ.queued)
		buf := capQ.buffers[index]
		n := copy(buf.data, chunk.data)
		if n < len(chunk.data) {
			// Too big for the buffer: the rest comes in the next one.
			rest := chunk
			rest.data, rest.keyframe = chunk.data[n:], false
			f.pending = append([]fakeChunk{rest}, f.pending...)
		}
		buf.bytesUsed = uint32(n)
		buf.timestamp = chunk.timestamp
		buf.flags = 0
		if chunk.keyframe {
			buf.flags |= bufFlagKeyframe
		} else if !chunk.err {
			buf.flags |= bufFlagPFrame
		}
		if chunk.err {
			buf.flags |= bufFlagError
			buf.bytesUsed = 0
		}
		buf.sequence = capQ.sequence
		capQ.sequence++
		buf.state = fakeBufDone
		capQ.done = append(capQ.done, index)
	}
}

func (f *FakeDevice) encoderCmd(apply bool, cmd *v4l2EncoderCmd) error {
	switch cmd.Cmd {
	case encCmdStop, encCmdStart:
	default:
		return unix.EINVAL
	}
	if !apply {
		return nil
	}
	outQ, capQ := &f.queues[fakeOut], &f.queues[fakeCap]
	switch cmd.Cmd {
	case encCmdStop:
		if f.draining {
			return unix.EBUSY
		}
		f.stats.EncoderStops++
		if !outQ.streaming || !capQ.streaming {
			return nil // accepted, but there is nothing to drain
		}
		f.draining = true
	case encCmdStart:
		if f.draining {
			return unix.EBUSY
		}
		f.stopped, f.lastPending = false, false
		capQ.lastDequeued = false
	}
	f.run()
	return nil
}

// Mmap implements Device.
func (f *FakeDevice) Mmap(offset int64, length int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, unix.EBADF
	}
	q := fakeOut
	if offset >= fakeDstOffset {
		q, offset = fakeCap, offset-fakeDstOffset
	}
	queue := &f.queues[q]
	index := int(offset >> fakeCookieShift)
	if queue.memory != memoryMMAP || offset&(1<<fakeCookieShift-1) != 0 || index >= len(queue.buffers) {
		return nil, unix.EINVAL
	}
	buf := queue.buffers[index]
	if length <= 0 || length > len(buf.data) {
		return nil, unix.EINVAL
	}
	buf.mapped++
	return buf.data[:length:length], nil
}

// Munmap implements Device.
func (f *FakeDevice) Munmap(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(b) == 0 {
		return unix.EINVAL
	}
	for _, q := range f.queues {
		for _, buf := range q.buffers {
			if buf.mapped > 0 && &buf.data[0] == &b[0] {
				buf.mapped--
				return nil
			}
		}
	}
	return unix.EINVAL
}

// Poll implements Device. It never waits: see FakeDevice.
func (f *FakeDevice) Poll(events int16, timeout time.Duration) (int16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, unix.EBADF
	}
	if f.failed {
		return unix.POLLERR, nil
	}
	outQ, capQ := &f.queues[fakeOut], &f.queues[fakeCap]
	if !outQ.streaming && !capQ.streaming {
		return unix.POLLERR, nil
	}
	var revents int16
	if len(outQ.done) > 0 {
		revents |= unix.POLLOUT
	}
	if len(capQ.done) > 0 || capQ.lastDequeued {
		revents |= unix.POLLIN
	}
	return revents & (events | unix.POLLERR), nil
}

// Close implements Device: like closing the file handle, it releases the
// buffers (mappings stay valid in a real process; the fake only counts).
func (f *FakeDevice) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	f.closed = true
	// Releasing the file handle stops the queues and drops the imports.
	for q := range f.queues {
		f.returnImports(&f.queues[q])
	}
	return nil
}

// importPlane is videobuf2's DMABUF QBUF for the fake: it looks the
// descriptor up, checks the sizes and the memory, and lends the dma-buf to
// the encoder until the buffer is dequeued.
func (f *FakeDevice) importPlane(queue *fakeQueue, buf *fakeBuffer, plane v4l2Plane) error {
	if queue.bufType != bufTypeVideoOutputMplane || f.cfg.DMABufs == nil {
		return unix.EINVAL
	}
	fd := plane.fd()
	data, memory, err := f.cfg.DMABufs.Lookup(fd)
	if err != nil {
		return unix.EINVAL
	}
	length := int(plane.Length)
	if length == 0 {
		length = len(data)
	}
	if length > len(data) || length < int(queue.format.PlaneFmt[0].SizeImage) || int(plane.DataOffset) >= length {
		return unix.EINVAL
	}
	if memory != dmabuftest.Contiguous {
		return unix.EFAULT
	}
	buf.data, buf.dataOffset, buf.fd = data[plane.DataOffset:length], plane.DataOffset, fd
	buf.lent = true
	f.cfg.DMABufs.Lend(fd, f.cfg.Card)
	f.stats.Imports++
	return nil
}

// returnImport gives an imported dma-buf back to its exporter.
func (f *FakeDevice) returnImport(buf *fakeBuffer) {
	if buf.lent {
		buf.lent = false
		f.cfg.DMABufs.Return(buf.fd)
	}
}
