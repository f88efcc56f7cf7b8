package v4l2m2m

// Mirrors of the parts of the kernel's V4L2 uapi (include/uapi/linux/
// videodev2.h, v4l2-controls.h) that a multi-planar memory-to-memory encoder
// needs, laid out byte for byte as gcc lays them out for linux/amd64,
// linux/arm64 and linux/arm. abi_test.go pins every size, field offset,
// request number and constant against the C compiler.
//
// The ABI traps, as in device/v4l2:
//   - unions holding a pointer or an unsigned long (v4l2_format's fmt,
//     v4l2_buffer's m, v4l2_plane's m) are pointer-wide and pointer-aligned:
//     8 bytes on 64-bit, 4 on 32-bit ARM;
//   - struct timeval in v4l2_buffer is two longs. unix.Timeval follows Go's
//     port, which on linux/arm is the classic 32-bit time_t ABI (Debian
//     armhf's default): a 68-byte v4l2_buffer and request numbers such as
//     VIDIOC_QBUF = 0xc044560f. A C program built with _TIME_BITS=64 uses an
//     80-byte v4l2_buffer and VIDIOC_QBUF = 0xc050560f instead; the kernel
//     serves both, and abi_test.go checks both layouts against gcc;
//   - v4l2_pix_format_mplane, v4l2_plane_pix_format and v4l2_ext_control are
//     packed: no padding anywhere, whatever the architecture.
//
// All our targets are little-endian, which the union accessors rely on.

import (
	"fmt"
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

// Buffer types (enum v4l2_buf_type). The encoder only uses the _MPLANE ones;
// the single-planar ones exist here so the fake can refuse them.
const (
	bufTypeVideoCapture       = 1
	bufTypeVideoOutput        = 2
	bufTypeVideoCaptureMplane = 9
	bufTypeVideoOutputMplane  = 10
)

// Memory types (enum v4l2_memory).
const (
	memoryMMAP   = 1
	memoryDMABUF = 4
)

// fieldNone is V4L2_FIELD_NONE: progressive frames.
const fieldNone = 1

// colorspaceRec709 is V4L2_COLORSPACE_REC709, the driver's default.
const colorspaceRec709 = 3

// Buffer flags of v4l2_buffer.flags.
const (
	bufFlagMapped        = 0x00000001
	bufFlagQueued        = 0x00000002
	bufFlagDone          = 0x00000004
	bufFlagKeyframe      = 0x00000008
	bufFlagPFrame        = 0x00000010
	bufFlagError         = 0x00000040
	bufFlagTimestampCopy = 0x00004000
	bufFlagLast          = 0x00100000
)

// requestBuffers capability bits (V4L2_BUF_CAP_*).
const (
	bufCapSupportsMMAP   = 0x00000001
	bufCapSupportsDMABUF = 0x00000004
)

// fmtFlagCompressed is V4L2_FMT_FLAG_COMPRESSED in v4l2_fmtdesc.flags.
const fmtFlagCompressed = 0x0001

// capTimePerFrame is V4L2_CAP_TIMEPERFRAME in v4l2_outputparm.capability.
const capTimePerFrame = 0x1000

// Encoder commands (VIDIOC_ENCODER_CMD).
const (
	encCmdStart = 0
	encCmdStop  = 1
)

// videoMaxPlanes is VIDEO_MAX_PLANES.
const videoMaxPlanes = 8

// vb2MaxFrame is VB2_MAX_FRAME, the most buffers a vb2 queue holds (it is
// 64 in newer kernels; the smaller value is what every kernel accepts).
const vb2MaxFrame = 32

// fourcc packs four characters the way v4l2_fourcc does.
func fourcc(a, b, c, d byte) uint32 {
	return uint32(a) | uint32(b)<<8 | uint32(c)<<16 | uint32(d)<<24
}

// Pixel formats by their V4L2 fourcc.
var (
	pixFmtYUV420 = fourcc('Y', 'U', '1', '2')
	pixFmtNV12   = fourcc('N', 'V', '1', '2')
	pixFmtYUYV   = fourcc('Y', 'U', 'Y', 'V')
	pixFmtH264   = fourcc('H', '2', '6', '4')
	pixFmtMJPEG  = fourcc('M', 'J', 'P', 'G')
)

// fourccString spells a fourcc for logs and errors ("H264").
func fourccString(f uint32) string {
	b := []byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// Control IDs (V4L2_CID_*), all in the codec class.
const (
	ctrlClassCodec = 0x00990000
	cidCodecBase   = ctrlClassCodec | 0x900

	cidBFrames         = cidCodecBase + 202
	cidGOPSize         = cidCodecBase + 203
	cidBitrateMode     = cidCodecBase + 206
	cidBitrate         = cidCodecBase + 207
	cidHeaderMode      = cidCodecBase + 216
	cidRepeatSeqHeader = cidCodecBase + 226
	cidForceKeyFrame   = cidCodecBase + 229
	cidH264MinQP       = cidCodecBase + 353
	cidH264MaxQP       = cidCodecBase + 354
	cidH264IPeriod     = cidCodecBase + 358
	cidH264Level       = cidCodecBase + 359
	cidH264Profile     = cidCodecBase + 363
)

// Menu values of the controls above.
const (
	bitrateModeVBR = 0
	bitrateModeCBR = 1

	headerModeSeparate           = 0
	headerModeJoinedWith1stFrame = 1

	profileBaseline            = 0
	profileConstrainedBaseline = 1
	profileMain                = 2
	profileExtended            = 3
	profileHigh                = 4
)

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

// v4l2PlanePixFormat mirrors struct v4l2_plane_pix_format (packed).
type v4l2PlanePixFormat struct {
	SizeImage    uint32
	BytesPerLine uint32
	Reserved     [6]uint16
}

// v4l2PixFormatMplane mirrors struct v4l2_pix_format_mplane (packed).
// YcbcrEnc shares its byte with hsv_enc.
type v4l2PixFormatMplane struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	Colorspace   uint32
	PlaneFmt     [videoMaxPlanes]v4l2PlanePixFormat
	NumPlanes    uint8
	Flags        uint8
	YcbcrEnc     uint8
	Quantization uint8
	XferFunc     uint8
	Reserved     [7]uint8
}

// v4l2FormatUnion is the 200-byte union of struct v4l2_format. Other members
// (v4l2_window) hold pointers, which makes the union pointer-aligned: the
// leading [0]uintptr reproduces that.
type v4l2FormatUnion struct {
	_     [0]uintptr
	PixMP v4l2PixFormatMplane
	_     [200 - unsafe.Sizeof(v4l2PixFormatMplane{})]byte
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

// v4l2Plane mirrors struct v4l2_plane. M is the union {mem_offset, userptr,
// fd}: as wide as an unsigned long; for MMAP buffers the kernel puts the
// mmap cookie in mem_offset, its low 32 bits on a little-endian machine.
type v4l2Plane struct {
	BytesUsed  uint32
	Length     uint32
	M          uintptr
	DataOffset uint32
	Reserved   [11]uint32
}

// memOffset is m.mem_offset: the cookie to pass to mmap.
func (p *v4l2Plane) memOffset() uint32 { return uint32(p.M) }

// setFD sets m.fd, the dma-buf of a DMABUF plane: an int in the union's
// first word, the rest of it cleared.
func (p *v4l2Plane) setFD(fd int) { p.M = uintptr(uint32(int32(fd))) }

// fd is m.fd.
func (p *v4l2Plane) fd() int { return int(int32(uint32(p.M))) }

// v4l2Buffer mirrors struct v4l2_buffer for the multi-planar API: the union
// m holds the planes pointer and Length counts the planes. 88 bytes on
// 64-bit, 68 on 32-bit ARM (32-bit time_t).
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
	Planes    *v4l2Plane
	Length    uint32
	Reserved2 uint32
	// RequestFD shares its slot with the reserved member of the last union.
	RequestFD int32
}

// v4l2Fract mirrors struct v4l2_fract.
type v4l2Fract struct {
	Numerator   uint32
	Denominator uint32
}

// v4l2OutputParm mirrors struct v4l2_outputparm.
type v4l2OutputParm struct {
	Capability   uint32
	OutputMode   uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	WriteBuffers uint32
	Reserved     [4]uint32
}

// v4l2StreamParmUnion is the 200-byte parm union of struct v4l2_streamparm;
// its members hold only 32-bit fields, so it is 4-aligned everywhere.
type v4l2StreamParmUnion struct {
	Output v4l2OutputParm
	_      [200 - unsafe.Sizeof(v4l2OutputParm{})]byte
}

// v4l2StreamParm mirrors struct v4l2_streamparm (VIDIOC_G_PARM, S_PARM).
type v4l2StreamParm struct {
	Type uint32
	Parm v4l2StreamParmUnion
}

// v4l2Control mirrors struct v4l2_control (VIDIOC_G_CTRL, S_CTRL).
type v4l2Control struct {
	ID    uint32
	Value int32
}

// v4l2ExtControl mirrors struct v4l2_ext_control (packed, 20 bytes). The
// union at offset 12 is 8 bytes (value64 or a pointer); the controls here
// are all 32-bit, read from its first word.
type v4l2ExtControl struct {
	ID        uint32
	Size      uint32
	Reserved2 uint32
	Value     int32
	ValueHigh int32
}

// v4l2ExtControls mirrors struct v4l2_ext_controls (VIDIOC_S_EXT_CTRLS).
// Which is the union {ctrl_class, which}.
type v4l2ExtControls struct {
	Which     uint32
	Count     uint32
	ErrorIdx  uint32
	RequestFD int32
	Reserved  [1]uint32
	Controls  *v4l2ExtControl
}

// v4l2EncoderCmd mirrors struct v4l2_encoder_cmd (VIDIOC_ENCODER_CMD).
type v4l2EncoderCmd struct {
	Cmd   uint32
	Flags uint32
	Data  [8]uint32
}

// The asm-generic ioctl number layout (x86, ARM, arm64): nr in bits 0-7,
// type in 8-15, argument size in 16-29, direction in 30-31.
const (
	iocWrite = 1
	iocRead  = 2

	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
	iocSizeMask  = 1<<14 - 1
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<iocDirShift | (size&iocSizeMask)<<iocSizeShift | typ<<iocTypeShift | nr
}

func ior(typ, nr, size uintptr) uintptr  { return ioc(iocRead, typ, nr, size) }
func iow(typ, nr, size uintptr) uintptr  { return ioc(iocWrite, typ, nr, size) }
func iowr(typ, nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, typ, nr, size) }

// The V4L2 requests, numbered from the Go mirrors' sizes so that a layout
// mistake also shows up as a wrong request number in the tests.
var (
	vidiocQueryCap      = ior('V', 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt       = iowr('V', 2, unsafe.Sizeof(v4l2Fmtdesc{}))
	vidiocGFmt          = iowr('V', 4, unsafe.Sizeof(v4l2Format{}))
	vidiocSFmt          = iowr('V', 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqBufs       = iowr('V', 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQueryBuf      = iowr('V', 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQBuf          = iowr('V', 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDQBuf         = iowr('V', 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamOn      = iow('V', 18, unsafe.Sizeof(int32(0)))
	vidiocStreamOff     = iow('V', 19, unsafe.Sizeof(int32(0)))
	vidiocGParm         = iowr('V', 21, unsafe.Sizeof(v4l2StreamParm{}))
	vidiocSParm         = iowr('V', 22, unsafe.Sizeof(v4l2StreamParm{}))
	vidiocGCtrl         = iowr('V', 27, unsafe.Sizeof(v4l2Control{}))
	vidiocTryFmt        = iowr('V', 64, unsafe.Sizeof(v4l2Format{}))
	vidiocSCtrl         = iowr('V', 28, unsafe.Sizeof(v4l2Control{}))
	vidiocGExtCtrls     = iowr('V', 71, unsafe.Sizeof(v4l2ExtControls{}))
	vidiocSExtCtrls     = iowr('V', 72, unsafe.Sizeof(v4l2ExtControls{}))
	vidiocTryExtCtrls   = iowr('V', 73, unsafe.Sizeof(v4l2ExtControls{}))
	vidiocEncoderCmd    = iowr('V', 77, unsafe.Sizeof(v4l2EncoderCmd{}))
	vidiocTryEncoderCmd = iowr('V', 78, unsafe.Sizeof(v4l2EncoderCmd{}))
)

// controlName names a control for errors and the fake's state.
func controlName(id uint32) string {
	switch id {
	case cidBFrames:
		return "b_frames"
	case cidGOPSize:
		return "gop_size"
	case cidBitrateMode:
		return "bitrate_mode"
	case cidBitrate:
		return "bitrate"
	case cidHeaderMode:
		return "header_mode"
	case cidRepeatSeqHeader:
		return "repeat_sequence_header"
	case cidForceKeyFrame:
		return "force_key_frame"
	case cidH264MinQP:
		return "h264_min_qp"
	case cidH264MaxQP:
		return "h264_max_qp"
	case cidH264IPeriod:
		return "h264_i_frame_period"
	case cidH264Level:
		return "h264_level"
	case cidH264Profile:
		return "h264_profile"
	default:
		return fmt.Sprintf("control %#x", id)
	}
}

// cString turns a NUL-padded kernel string into a Go string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// putCString copies s into a kernel string field, keeping the final NUL.
func putCString(dst []byte, s string) {
	copy(dst[:len(dst)-1], s)
}
