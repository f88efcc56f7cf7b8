package v4l2

// Mirrors of the kernel's V4L2 uapi (include/uapi/linux/videodev2.h) that
// capture needs, laid out byte for byte as the C compiler lays them out for
// linux/amd64, linux/arm64 and linux/arm. abi_test.go pins every size and
// field offset, because a wrong layout on 32-bit ARM would otherwise only
// show up as garbage (or EINVAL) on a real box.
//
// Two ABI traps shape these types:
//   - unions that hold a pointer or an unsigned long are 8 bytes wide and
//     8-aligned on 64-bit but 4 on 32-bit, so the Go mirrors use uintptr
//     (or a [0]uintptr member) to get the same alignment;
//   - struct timeval is two longs: 16 bytes on 64-bit, 8 bytes on 32-bit ARM
//     with the classic 32-bit time_t. unix.Timeval follows the same rule,
//     which is what the kernel's VIDIOC_*BUF (time32 variant on a 32-bit
//     process) expects. A 32-bit build with a 64-bit time_t would need the
//     80-byte v4l2_buffer instead; Go's linux/arm port uses the 32-bit one.
//
// All our targets are little-endian, which the union accessors rely on.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capability bits of v4l2_capability.capabilities / device_caps.
const (
	capVideoCapture       = 0x00000001
	capVideoOutput        = 0x00000002
	capVideoCaptureMplane = 0x00001000
	capVideoOutputMplane  = 0x00002000
	capVideoM2MMplane     = 0x00004000
	capVideoM2M           = 0x00008000
	capStreaming          = 0x04000000
	capDeviceCaps         = 0x80000000
)

// Buffer types (enum v4l2_buf_type).
const (
	bufTypeVideoCapture       = 1
	bufTypeVideoOutput        = 2
	bufTypeVideoCaptureMplane = 9
	bufTypeVideoOutputMplane  = 10
)

// memoryMMAP is V4L2_MEMORY_MMAP: buffers the driver allocates and we map.
const memoryMMAP = 1

// fieldNone is V4L2_FIELD_NONE: progressive frames.
const fieldNone = 1

// Buffer flags of v4l2_buffer.flags.
const (
	bufFlagMapped             = 0x00000001
	bufFlagQueued             = 0x00000002
	bufFlagDone               = 0x00000004
	bufFlagKeyframe           = 0x00000008
	bufFlagError              = 0x00000040
	bufFlagTimestampMask      = 0x0000e000
	bufFlagTimestampMonotonic = 0x00002000
)

// fmtFlagCompressed is V4L2_FMT_FLAG_COMPRESSED in v4l2_fmtdesc.flags.
const fmtFlagCompressed = 0x0001

// captureTimePerFrame is V4L2_CAP_TIMEPERFRAME in v4l2_captureparm.capability:
// the driver honours timeperframe in S_PARM.
const captureTimePerFrame = 0x1000

// fourcc packs four characters the way v4l2_fourcc does.
func fourcc(a, b, c, d byte) uint32 {
	return uint32(a) | uint32(b)<<8 | uint32(c)<<16 | uint32(d)<<24
}

// Pixel formats we can hand on, by their V4L2 fourcc.
var (
	pixFmtYUV420 = fourcc('Y', 'U', '1', '2')
	pixFmtNV12   = fourcc('N', 'V', '1', '2')
	pixFmtYUYV   = fourcc('Y', 'U', 'Y', 'V')
	pixFmtH264   = fourcc('H', '2', '6', '4')
	pixFmtMJPEG  = fourcc('M', 'J', 'P', 'G')
	// pixFmtJPEG is what some older UVC and capture drivers call the same
	// one-JPEG-per-frame stream.
	pixFmtJPEG = fourcc('J', 'P', 'E', 'G')
	// pixFmtUYVY is packed YUV 4:2:2 with chroma first (U Y0 V Y1): what
	// the TC358743 HDMI bridge sends. Source swaps it into YUYV.
	pixFmtUYVY = fourcc('U', 'Y', 'V', 'Y')
	// pixFmtRGB24 is the bridge's other output, which we do not take.
	pixFmtRGB24 = fourcc('R', 'G', 'B', '3')
)

// fourccString spells a fourcc for logs and errors ("YUYV").
func fourccString(f uint32) string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// v4l2Capability mirrors struct v4l2_capability (VIDIOC_QUERYCAP).
type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

// v4l2Fmtdesc mirrors struct v4l2_fmtdesc (VIDIOC_ENUM_FMT).
type v4l2Fmtdesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

// v4l2PixFormat mirrors struct v4l2_pix_format, the single-planar member of
// v4l2_format's union. YcbcrEnc shares its slot with hsv_enc.
type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YcbcrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

// v4l2FormatUnion is the 200-byte union of struct v4l2_format. Other members
// (v4l2_window) hold pointers, which makes the union pointer-aligned: the
// leading [0]uintptr reproduces that, so Fmt lands at offset 8 on 64-bit and
// 4 on 32-bit, as in C.
type v4l2FormatUnion struct {
	_   [0]uintptr
	Pix v4l2PixFormat
	_   [200 - unsafe.Sizeof(v4l2PixFormat{})]byte
}

// v4l2Format mirrors struct v4l2_format (VIDIOC_G_FMT, VIDIOC_S_FMT).
type v4l2Format struct {
	Type uint32
	Fmt  v4l2FormatUnion
}

// v4l2RequestBuffers mirrors struct v4l2_requestbuffers (VIDIOC_REQBUFS).
type v4l2RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	Reserved     [3]uint8
}

// v4l2Timecode mirrors struct v4l2_timecode.
type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// v4l2Buffer mirrors struct v4l2_buffer (VIDIOC_QUERYBUF, QBUF, DQBUF):
// 88 bytes on 64-bit, 68 on 32-bit ARM.
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	// M is the union {offset, userptr, planes, fd}; it is as wide as a
	// pointer. For MMAP buffers the driver puts the mmap cookie in offset,
	// the low 32 bits on a little-endian machine.
	M         uintptr
	Length    uint32
	Reserved2 uint32
	// RequestFD shares its slot with the reserved member of the last union.
	RequestFD int32
}

// offset is the m.offset member of the union: the cookie to pass to mmap.
func (b *v4l2Buffer) offset() uint32 { return uint32(b.M) }

// setOffset sets m.offset, clearing the rest of the union.
func (b *v4l2Buffer) setOffset(off uint32) { b.M = uintptr(off) }

// v4l2ExportBuffer mirrors struct v4l2_exportbuffer (VIDIOC_EXPBUF): which
// buffer (and plane) to export, the open(2) flags of the new descriptor,
// and the dma-buf descriptor the kernel returns. 64 bytes everywhere.
type v4l2ExportBuffer struct {
	Type     uint32
	Index    uint32
	Plane    uint32
	Flags    uint32
	FD       int32
	Reserved [11]uint32
}

// v4l2Fract mirrors struct v4l2_fract.
type v4l2Fract struct {
	Numerator   uint32
	Denominator uint32
}

// Frame size and interval entry types (V4L2_FRMSIZE_TYPE_*,
// V4L2_FRMIVAL_TYPE_*: the same values for both).
const (
	frmTypeDiscrete   = 1
	frmTypeContinuous = 2
	frmTypeStepwise   = 3
)

// v4l2FrmSizeStepwise mirrors struct v4l2_frmsize_stepwise. The discrete
// member of the union (width, height) is its first two fields' slots, so
// one Go type serves both: MinWidth is width, MaxWidth is height.
type v4l2FrmSizeStepwise struct {
	MinWidth   uint32
	MaxWidth   uint32
	StepWidth  uint32
	MinHeight  uint32
	MaxHeight  uint32
	StepHeight uint32
}

// v4l2FrmSizeEnum mirrors struct v4l2_frmsizeenum
// (VIDIOC_ENUM_FRAMESIZES). All members are 32-bit: one layout everywhere.
type v4l2FrmSizeEnum struct {
	Index       uint32
	PixelFormat uint32
	Type        uint32
	Size        v4l2FrmSizeStepwise
	Reserved    [2]uint32
}

// discrete reads the union as struct v4l2_frmsize_discrete.
func (e *v4l2FrmSizeEnum) discrete() (width, height uint32) {
	return e.Size.MinWidth, e.Size.MaxWidth
}

// setDiscrete writes the union as struct v4l2_frmsize_discrete.
func (e *v4l2FrmSizeEnum) setDiscrete(width, height uint32) {
	e.Size = v4l2FrmSizeStepwise{MinWidth: width, MaxWidth: height}
}

// v4l2FrmIvalStepwise mirrors struct v4l2_frmival_stepwise; its Min is also
// the slot of the union's discrete member.
type v4l2FrmIvalStepwise struct {
	Min  v4l2Fract
	Max  v4l2Fract
	Step v4l2Fract
}

// v4l2FrmIvalEnum mirrors struct v4l2_frmivalenum
// (VIDIOC_ENUM_FRAMEINTERVALS).
type v4l2FrmIvalEnum struct {
	Index       uint32
	PixelFormat uint32
	Width       uint32
	Height      uint32
	Type        uint32
	Interval    v4l2FrmIvalStepwise
	Reserved    [2]uint32
}

// v4l2CaptureParm mirrors struct v4l2_captureparm.
type v4l2CaptureParm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

// v4l2StreamParmUnion is the 200-byte parm union of struct v4l2_streamparm.
// Its members hold only 32-bit fields, so it is 4-aligned everywhere.
type v4l2StreamParmUnion struct {
	Capture v4l2CaptureParm
	_       [200 - unsafe.Sizeof(v4l2CaptureParm{})]byte
}

// v4l2StreamParm mirrors struct v4l2_streamparm (VIDIOC_G_PARM, S_PARM).
type v4l2StreamParm struct {
	Type uint32
	Parm v4l2StreamParmUnion
}

// DV timings (HDMI receivers): enum v4l2_dv_timings type and the
// v4l2_bt_timings flags we read.
const (
	dvBT6561120   = 0 // V4L2_DV_BT_656_1120: the only timings type there is
	dvInterlaced  = 1 // V4L2_DV_INTERLACED in v4l2_bt_timings.interlaced
	dvVSyncPosPol = 1 // V4L2_DV_VSYNC_POS_POL
	dvHSyncPosPol = 2 // V4L2_DV_HSYNC_POS_POL
)

// Events: V4L2_EVENT_SOURCE_CHANGE and its V4L2_EVENT_SRC_CH_RESOLUTION bit.
const (
	eventSourceChange    = 5
	eventSrcChResolution = 1
)

// edidBlockSize is the size of one EDID block, the unit of v4l2_edid.
const edidBlockSize = 128

// v4l2Edid mirrors struct v4l2_edid (VIDIOC_G_EDID, VIDIOC_S_EDID and the
// subdevice's VIDIOC_SUBDEV_[GS]_EDID, which share the numbers). Edid is a
// __u8 pointer: 40 bytes on 64-bit, 36 on 32-bit ARM. It is an
// unsafe.Pointer, not a uintptr, so the buffer stays alive and known to the
// garbage collector while the kernel reads or writes it.
type v4l2Edid struct {
	Pad        uint32
	StartBlock uint32
	Blocks     uint32
	Reserved   [5]uint32
	Edid       unsafe.Pointer
}

// v4l2BTTimings mirrors struct v4l2_bt_timings, which the kernel declares
// packed: its __u64 pixelclock sits at offset 16 of the struct and at 20 of
// v4l2_dv_timings, where no 64-bit field may be in Go. It is therefore two
// 32-bit halves, low word first (all our targets are little-endian), and
// every other field is 32 or 8 bits wide: 124 bytes, 4-aligned everywhere.
type v4l2BTTimings struct {
	Width      uint32
	Height     uint32
	Interlaced uint32
	Polarities uint32
	PixelClock [2]uint32
	// Porches and syncs in pixels (h) and lines (v); il_* are the second
	// field's, for interlaced formats.
	HFrontPorch, HSync, HBackPorch       uint32
	VFrontPorch, VSync, VBackPorch       uint32
	ILVFrontPorch, ILVSync, ILVBackPorch uint32
	Standards                            uint32
	Flags                                uint32
	PictureAspect                        v4l2Fract
	CEA861VIC                            uint8
	HDMIVIC                              uint8
	Reserved                             [46]uint8
}

// pixelClock returns the pixel clock in Hz.
func (t *v4l2BTTimings) pixelClock() uint64 {
	return uint64(t.PixelClock[0]) | uint64(t.PixelClock[1])<<32
}

// setPixelClock sets the pixel clock in Hz.
func (t *v4l2BTTimings) setPixelClock(hz uint64) {
	t.PixelClock = [2]uint32{uint32(hz), uint32(hz >> 32)}
}

// v4l2DVTimings mirrors the packed struct v4l2_dv_timings
// (VIDIOC_QUERY_DV_TIMINGS, VIDIOC_S_DV_TIMINGS, VIDIOC_G_DV_TIMINGS): a
// type and a 128-byte union whose only member in use is bt. 132 bytes.
type v4l2DVTimings struct {
	Type uint32
	BT   v4l2BTTimings
	_    [128 - unsafe.Sizeof(v4l2BTTimings{})]byte
}

// v4l2EventSubscription mirrors struct v4l2_event_subscription
// (VIDIOC_SUBSCRIBE_EVENT, VIDIOC_UNSUBSCRIBE_EVENT).
type v4l2EventSubscription struct {
	Type     uint32
	ID       uint32
	Flags    uint32
	Reserved [5]uint32
}

// v4l2Event mirrors struct v4l2_event (VIDIOC_DQEVENT). Its 64-byte union
// holds 64-bit members (v4l2_event_ctrl's value64), which the ARM EABI
// aligns to 8 like the 64-bit ABIs do: the union starts at 8 everywhere and
// the struct's size is a multiple of 8. Go aligns 64-bit values to 4 on
// linux/arm, so both paddings are spelled out; the timestamp is a struct
// timespec with the 32-bit time_t of Go's linux/arm (8 bytes there, 16 on
// 64-bit): 136 bytes on 64-bit, 128 on 32-bit ARM.
type v4l2Event struct {
	Type      uint32
	_         uint32
	U         [64]byte
	Pending   uint32
	Sequence  uint32
	Timestamp unix.Timespec
	ID        uint32
	Reserved  [8]uint32
	_         uint32
}

// sourceChanges reads u.src_change.changes of a V4L2_EVENT_SOURCE_CHANGE.
func (e *v4l2Event) sourceChanges() uint32 {
	return uint32(e.U[0]) | uint32(e.U[1])<<8 | uint32(e.U[2])<<16 | uint32(e.U[3])<<24
}

// The asm-generic ioctl number layout (x86, ARM, arm64): nr in bits 0-7,
// type in 8-15, argument size in 16-29, direction in 30-31. Other
// architectures (mips, powerpc) lay it out differently; we do not ship there.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
	iocSizeMask  = 1<<14 - 1
)

// ioc is the kernel's _IOC macro.
func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<iocDirShift | (size&iocSizeMask)<<iocSizeShift | typ<<iocTypeShift | nr<<iocNRShift
}

// ior, iow and iowr are _IOR, _IOW and _IOWR: the direction is seen from
// user space (R = the kernel writes the argument back to us).
func ior(typ, nr, size uintptr) uintptr  { return ioc(iocRead, typ, nr, size) }
func iow(typ, nr, size uintptr) uintptr  { return ioc(iocWrite, typ, nr, size) }
func iowr(typ, nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, typ, nr, size) }

// The V4L2 requests, numbered from the Go mirrors' sizes so that a layout
// mistake also shows up as a wrong request number in the tests.
var (
	vidiocQueryCap  = ior('V', 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt   = iowr('V', 2, unsafe.Sizeof(v4l2Fmtdesc{}))
	vidiocGFmt      = iowr('V', 4, unsafe.Sizeof(v4l2Format{}))
	vidiocSFmt      = iowr('V', 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqBufs   = iowr('V', 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQueryBuf  = iowr('V', 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQBuf      = iowr('V', 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocExpBuf    = iowr('V', 16, unsafe.Sizeof(v4l2ExportBuffer{}))
	vidiocDQBuf     = iowr('V', 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamOn  = iow('V', 18, unsafe.Sizeof(int32(0)))
	vidiocStreamOff = iow('V', 19, unsafe.Sizeof(int32(0)))
	vidiocGParm     = iowr('V', 21, unsafe.Sizeof(v4l2StreamParm{}))
	vidiocSParm     = iowr('V', 22, unsafe.Sizeof(v4l2StreamParm{}))

	vidiocEnumFrameSizes     = iowr('V', 74, unsafe.Sizeof(v4l2FrmSizeEnum{}))
	vidiocEnumFrameIntervals = iowr('V', 75, unsafe.Sizeof(v4l2FrmIvalEnum{}))

	// HDMI receivers. A video node that passes them on (unicam without the
	// media controller) and a subdevice node (/dev/v4l-subdevN) answer the
	// same numbers: VIDIOC_SUBDEV_G_EDID is VIDIOC_G_EDID and so on.
	vidiocGEdid            = iowr('V', 40, unsafe.Sizeof(v4l2Edid{}))
	vidiocSEdid            = iowr('V', 41, unsafe.Sizeof(v4l2Edid{}))
	vidiocSDVTimings       = iowr('V', 87, unsafe.Sizeof(v4l2DVTimings{}))
	vidiocGDVTimings       = iowr('V', 88, unsafe.Sizeof(v4l2DVTimings{}))
	vidiocDQEvent          = ior('V', 89, unsafe.Sizeof(v4l2Event{}))
	vidiocSubscribeEvent   = iow('V', 90, unsafe.Sizeof(v4l2EventSubscription{}))
	vidiocUnsubscribeEvent = iow('V', 91, unsafe.Sizeof(v4l2EventSubscription{}))
	vidiocQueryDVTimings   = ior('V', 99, unsafe.Sizeof(v4l2DVTimings{}))
)

// cString turns a NUL-padded kernel string into a Go string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
