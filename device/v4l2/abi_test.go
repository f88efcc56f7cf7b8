package v4l2

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The expected values below are what gcc computes from linux/videodev2.h
// and linux/v4l2-subdev.h (Debian 12's linux-libc-dev) for x86_64-linux-gnu, aarch64-linux-gnu and
// arm-linux-gnueabihf (32-bit time_t); TestABIMatchesCCompiler recomputes
// them with the compiler where it is installed. 64-bit targets share one
// layout.

type abiLayout struct {
	sizes   map[string]uintptr
	offsets map[string]uintptr
	ioctls  map[string]uintptr
}

var layout64 = abiLayout{
	sizes: map[string]uintptr{
		"v4l2_capability":     104,
		"v4l2_fmtdesc":        64,
		"v4l2_pix_format":     48,
		"v4l2_format":         208,
		"v4l2_requestbuffers": 20,
		"v4l2_timecode":       16,
		"v4l2_buffer":         88,
		"v4l2_captureparm":    40,
		"v4l2_streamparm":     204,
		"v4l2_frmsizeenum":    44,
		"v4l2_frmivalenum":    52,

		"v4l2_edid":               40,
		"v4l2_event":              136,
		"v4l2_bt_timings":         124,
		"v4l2_dv_timings":         132,
		"v4l2_event_subscription": 32,
		"v4l2_exportbuffer":       64,
	},
	offsets: map[string]uintptr{
		"v4l2_capability.card":          16,
		"v4l2_capability.bus_info":      48,
		"v4l2_capability.version":       80,
		"v4l2_capability.capabilities":  84,
		"v4l2_capability.device_caps":   88,
		"v4l2_fmtdesc.description":      12,
		"v4l2_fmtdesc.pixelformat":      44,
		"v4l2_fmtdesc.mbus_code":        48,
		"v4l2_pix_format.bytesperline":  16,
		"v4l2_pix_format.sizeimage":     20,
		"v4l2_pix_format.xfer_func":     44,
		"v4l2_format.fmt":               8,
		"v4l2_requestbuffers.flags":     16,
		"v4l2_buffer.field":             16,
		"v4l2_buffer.timestamp":         24,
		"v4l2_buffer.timecode":          40,
		"v4l2_buffer.sequence":          56,
		"v4l2_buffer.memory":            60,
		"v4l2_buffer.m":                 64,
		"v4l2_buffer.length":            72,
		"v4l2_buffer.reserved2":         76,
		"v4l2_buffer.request_fd":        80,
		"v4l2_captureparm.timeperframe": 8,
		"v4l2_streamparm.parm":          4,
		"v4l2_frmsizeenum.type":         8,
		"v4l2_frmsizeenum.discrete":     12,
		"v4l2_frmsizeenum.stepwise":     12,
		"v4l2_frmsizeenum.reserved":     36,
		"v4l2_frmivalenum.type":         16,
		"v4l2_frmivalenum.discrete":     20,
		"v4l2_frmivalenum.stepwise":     20,
		"v4l2_frmivalenum.reserved":     44,

		"v4l2_edid.blocks":               8,
		"v4l2_edid.edid":                 32,
		"v4l2_bt_timings.pixelclock":     16,
		"v4l2_bt_timings.hfrontporch":    24,
		"v4l2_bt_timings.vbackporch":     44,
		"v4l2_bt_timings.standards":      60,
		"v4l2_bt_timings.picture_aspect": 68,
		"v4l2_bt_timings.cea861_vic":     76,
		"v4l2_bt_timings.reserved":       78,
		"v4l2_dv_timings.bt":             4,
		"v4l2_event_subscription.flags":  8,
		"v4l2_event.u":                   8,
		"v4l2_event.pending":             72,
		"v4l2_event.sequence":            76,
		"v4l2_event.timestamp":           80,
		"v4l2_event.id":                  96,
		"v4l2_event.reserved":            100,
		"v4l2_exportbuffer.index":        4,
		"v4l2_exportbuffer.plane":        8,
		"v4l2_exportbuffer.flags":        12,
		"v4l2_exportbuffer.fd":           16,
		"v4l2_exportbuffer.reserved":     20,
	},
	ioctls: map[string]uintptr{
		"VIDIOC_QUERYCAP":  0x80685600,
		"VIDIOC_ENUM_FMT":  0xc0405602,
		"VIDIOC_G_FMT":     0xc0d05604,
		"VIDIOC_S_FMT":     0xc0d05605,
		"VIDIOC_REQBUFS":   0xc0145608,
		"VIDIOC_QUERYBUF":  0xc0585609,
		"VIDIOC_QBUF":      0xc058560f,
		"VIDIOC_EXPBUF":    0xc0405610,
		"VIDIOC_DQBUF":     0xc0585611,
		"VIDIOC_STREAMON":  0x40045612,
		"VIDIOC_STREAMOFF": 0x40045613,
		"VIDIOC_G_PARM":    0xc0cc5615,
		"VIDIOC_S_PARM":    0xc0cc5616,

		"VIDIOC_ENUM_FRAMESIZES":     0xc02c564a,
		"VIDIOC_ENUM_FRAMEINTERVALS": 0xc034564b,

		"VIDIOC_G_EDID":            0xc0285628,
		"VIDIOC_S_EDID":            0xc0285629,
		"VIDIOC_S_DV_TIMINGS":      0xc0845657,
		"VIDIOC_G_DV_TIMINGS":      0xc0845658,
		"VIDIOC_DQEVENT":           0x80885659,
		"VIDIOC_SUBSCRIBE_EVENT":   0x4020565a,
		"VIDIOC_UNSUBSCRIBE_EVENT": 0x4020565b,
		"VIDIOC_QUERY_DV_TIMINGS":  0x80845663,

		"VIDIOC_SUBDEV_G_EDID":           0xc0285628,
		"VIDIOC_SUBDEV_S_EDID":           0xc0285629,
		"VIDIOC_SUBDEV_S_DV_TIMINGS":     0xc0845657,
		"VIDIOC_SUBDEV_G_DV_TIMINGS":     0xc0845658,
		"VIDIOC_SUBDEV_QUERY_DV_TIMINGS": 0x80845663,
	},
}

// layoutARM is 32-bit ARM EABI with the 32-bit time_t that Go's linux/arm
// port (and Debian armhf) use: timeval and pointers are 4 bytes, so the
// v4l2_format union starts at 4 and v4l2_buffer shrinks to 68 bytes.
var layoutARM = abiLayout{
	sizes: map[string]uintptr{
		"v4l2_capability":     104,
		"v4l2_fmtdesc":        64,
		"v4l2_pix_format":     48,
		"v4l2_format":         204,
		"v4l2_requestbuffers": 20,
		"v4l2_timecode":       16,
		"v4l2_buffer":         68,
		"v4l2_captureparm":    40,
		"v4l2_streamparm":     204,
		"v4l2_frmsizeenum":    44,
		"v4l2_frmivalenum":    52,

		"v4l2_edid":               36,
		"v4l2_event":              128,
		"v4l2_bt_timings":         124,
		"v4l2_dv_timings":         132,
		"v4l2_event_subscription": 32,
		"v4l2_exportbuffer":       64,
	},
	offsets: map[string]uintptr{
		"v4l2_capability.card":          16,
		"v4l2_capability.bus_info":      48,
		"v4l2_capability.version":       80,
		"v4l2_capability.capabilities":  84,
		"v4l2_capability.device_caps":   88,
		"v4l2_fmtdesc.description":      12,
		"v4l2_fmtdesc.pixelformat":      44,
		"v4l2_fmtdesc.mbus_code":        48,
		"v4l2_pix_format.bytesperline":  16,
		"v4l2_pix_format.sizeimage":     20,
		"v4l2_pix_format.xfer_func":     44,
		"v4l2_format.fmt":               4,
		"v4l2_requestbuffers.flags":     16,
		"v4l2_buffer.field":             16,
		"v4l2_buffer.timestamp":         20,
		"v4l2_buffer.timecode":          28,
		"v4l2_buffer.sequence":          44,
		"v4l2_buffer.memory":            48,
		"v4l2_buffer.m":                 52,
		"v4l2_buffer.length":            56,
		"v4l2_buffer.reserved2":         60,
		"v4l2_buffer.request_fd":        64,
		"v4l2_captureparm.timeperframe": 8,
		"v4l2_streamparm.parm":          4,
		"v4l2_frmsizeenum.type":         8,
		"v4l2_frmsizeenum.discrete":     12,
		"v4l2_frmsizeenum.stepwise":     12,
		"v4l2_frmsizeenum.reserved":     36,
		"v4l2_frmivalenum.type":         16,
		"v4l2_frmivalenum.discrete":     20,
		"v4l2_frmivalenum.stepwise":     20,
		"v4l2_frmivalenum.reserved":     44,

		"v4l2_edid.blocks":               8,
		"v4l2_edid.edid":                 32,
		"v4l2_bt_timings.pixelclock":     16,
		"v4l2_bt_timings.hfrontporch":    24,
		"v4l2_bt_timings.vbackporch":     44,
		"v4l2_bt_timings.standards":      60,
		"v4l2_bt_timings.picture_aspect": 68,
		"v4l2_bt_timings.cea861_vic":     76,
		"v4l2_bt_timings.reserved":       78,
		"v4l2_dv_timings.bt":             4,
		"v4l2_event_subscription.flags":  8,
		"v4l2_event.u":                   8,
		"v4l2_event.pending":             72,
		"v4l2_event.sequence":            76,
		"v4l2_event.timestamp":           80,
		"v4l2_event.id":                  88,
		"v4l2_event.reserved":            92,
		"v4l2_exportbuffer.index":        4,
		"v4l2_exportbuffer.plane":        8,
		"v4l2_exportbuffer.flags":        12,
		"v4l2_exportbuffer.fd":           16,
		"v4l2_exportbuffer.reserved":     20,
	},
	ioctls: map[string]uintptr{
		"VIDIOC_QUERYCAP":  0x80685600,
		"VIDIOC_ENUM_FMT":  0xc0405602,
		"VIDIOC_G_FMT":     0xc0cc5604,
		"VIDIOC_S_FMT":     0xc0cc5605,
		"VIDIOC_REQBUFS":   0xc0145608,
		"VIDIOC_QUERYBUF":  0xc0445609,
		"VIDIOC_QBUF":      0xc044560f,
		"VIDIOC_EXPBUF":    0xc0405610,
		"VIDIOC_DQBUF":     0xc0445611,
		"VIDIOC_STREAMON":  0x40045612,
		"VIDIOC_STREAMOFF": 0x40045613,
		"VIDIOC_G_PARM":    0xc0cc5615,
		"VIDIOC_S_PARM":    0xc0cc5616,

		"VIDIOC_ENUM_FRAMESIZES":     0xc02c564a,
		"VIDIOC_ENUM_FRAMEINTERVALS": 0xc034564b,

		"VIDIOC_G_EDID":            0xc0245628,
		"VIDIOC_S_EDID":            0xc0245629,
		"VIDIOC_S_DV_TIMINGS":      0xc0845657,
		"VIDIOC_G_DV_TIMINGS":      0xc0845658,
		"VIDIOC_DQEVENT":           0x80805659,
		"VIDIOC_SUBSCRIBE_EVENT":   0x4020565a,
		"VIDIOC_UNSUBSCRIBE_EVENT": 0x4020565b,
		"VIDIOC_QUERY_DV_TIMINGS":  0x80845663,

		"VIDIOC_SUBDEV_G_EDID":           0xc0245628,
		"VIDIOC_SUBDEV_S_EDID":           0xc0245629,
		"VIDIOC_SUBDEV_S_DV_TIMINGS":     0xc0845657,
		"VIDIOC_SUBDEV_G_DV_TIMINGS":     0xc0845658,
		"VIDIOC_SUBDEV_QUERY_DV_TIMINGS": 0x80845663,
	},
}

func expectedLayout(t *testing.T) abiLayout {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return layout64
	case "arm":
		return layoutARM
	default:
		t.Skipf("no reference layout for GOARCH=%s", runtime.GOARCH)
		return abiLayout{}
	}
}

// goLayout measures the Go mirrors under the C names used above.
func goLayout() abiLayout {
	var (
		capability v4l2Capability
		fmtdesc    v4l2Fmtdesc
		format     v4l2Format
		reqbufs    v4l2RequestBuffers
		buffer     v4l2Buffer
		parm       v4l2StreamParm
		frmsize    v4l2FrmSizeEnum
		frmival    v4l2FrmIvalEnum
		edid       v4l2Edid
		dv         v4l2DVTimings
		sub        v4l2EventSubscription
		event      v4l2Event
		export     v4l2ExportBuffer
	)
	return abiLayout{
		sizes: map[string]uintptr{
			"v4l2_capability":     unsafe.Sizeof(capability),
			"v4l2_fmtdesc":        unsafe.Sizeof(fmtdesc),
			"v4l2_pix_format":     unsafe.Sizeof(format.Fmt.Pix),
			"v4l2_format":         unsafe.Sizeof(format),
			"v4l2_requestbuffers": unsafe.Sizeof(reqbufs),
			"v4l2_timecode":       unsafe.Sizeof(buffer.Timecode),
			"v4l2_buffer":         unsafe.Sizeof(buffer),
			"v4l2_captureparm":    unsafe.Sizeof(parm.Parm.Capture),
			"v4l2_streamparm":     unsafe.Sizeof(parm),
			"v4l2_frmsizeenum":    unsafe.Sizeof(frmsize),
			"v4l2_frmivalenum":    unsafe.Sizeof(frmival),

			"v4l2_edid":               unsafe.Sizeof(edid),
			"v4l2_event":              unsafe.Sizeof(event),
			"v4l2_bt_timings":         unsafe.Sizeof(dv.BT),
			"v4l2_dv_timings":         unsafe.Sizeof(dv),
			"v4l2_event_subscription": unsafe.Sizeof(sub),
			"v4l2_exportbuffer":       unsafe.Sizeof(export),
		},
		offsets: map[string]uintptr{
			"v4l2_capability.card":          unsafe.Offsetof(capability.Card),
			"v4l2_capability.bus_info":      unsafe.Offsetof(capability.BusInfo),
			"v4l2_capability.version":       unsafe.Offsetof(capability.Version),
			"v4l2_capability.capabilities":  unsafe.Offsetof(capability.Capabilities),
			"v4l2_capability.device_caps":   unsafe.Offsetof(capability.DeviceCaps),
			"v4l2_fmtdesc.description":      unsafe.Offsetof(fmtdesc.Description),
			"v4l2_fmtdesc.pixelformat":      unsafe.Offsetof(fmtdesc.PixelFormat),
			"v4l2_fmtdesc.mbus_code":        unsafe.Offsetof(fmtdesc.MbusCode),
			"v4l2_pix_format.bytesperline":  unsafe.Offsetof(format.Fmt.Pix.BytesPerLine),
			"v4l2_pix_format.sizeimage":     unsafe.Offsetof(format.Fmt.Pix.SizeImage),
			"v4l2_pix_format.xfer_func":     unsafe.Offsetof(format.Fmt.Pix.XferFunc),
			"v4l2_format.fmt":               unsafe.Offsetof(format.Fmt),
			"v4l2_requestbuffers.flags":     unsafe.Offsetof(reqbufs.Flags),
			"v4l2_buffer.field":             unsafe.Offsetof(buffer.Field),
			"v4l2_buffer.timestamp":         unsafe.Offsetof(buffer.Timestamp),
			"v4l2_buffer.timecode":          unsafe.Offsetof(buffer.Timecode),
			"v4l2_buffer.sequence":          unsafe.Offsetof(buffer.Sequence),
			"v4l2_buffer.memory":            unsafe.Offsetof(buffer.Memory),
			"v4l2_buffer.m":                 unsafe.Offsetof(buffer.M),
			"v4l2_buffer.length":            unsafe.Offsetof(buffer.Length),
			"v4l2_buffer.reserved2":         unsafe.Offsetof(buffer.Reserved2),
			"v4l2_buffer.request_fd":        unsafe.Offsetof(buffer.RequestFD),
			"v4l2_captureparm.timeperframe": unsafe.Offsetof(parm.Parm.Capture.TimePerFrame),
			"v4l2_streamparm.parm":          unsafe.Offsetof(parm.Parm),
			"v4l2_frmsizeenum.type":         unsafe.Offsetof(frmsize.Type),
			"v4l2_frmsizeenum.discrete":     unsafe.Offsetof(frmsize.Size),
			"v4l2_frmsizeenum.stepwise":     unsafe.Offsetof(frmsize.Size),
			"v4l2_frmsizeenum.reserved":     unsafe.Offsetof(frmsize.Reserved),
			"v4l2_frmivalenum.type":         unsafe.Offsetof(frmival.Type),
			"v4l2_frmivalenum.discrete":     unsafe.Offsetof(frmival.Interval),
			"v4l2_frmivalenum.stepwise":     unsafe.Offsetof(frmival.Interval),
			"v4l2_frmivalenum.reserved":     unsafe.Offsetof(frmival.Reserved),

			"v4l2_edid.blocks":               unsafe.Offsetof(edid.Blocks),
			"v4l2_edid.edid":                 unsafe.Offsetof(edid.Edid),
			"v4l2_bt_timings.pixelclock":     unsafe.Offsetof(dv.BT.PixelClock),
			"v4l2_bt_timings.hfrontporch":    unsafe.Offsetof(dv.BT.HFrontPorch),
			"v4l2_bt_timings.vbackporch":     unsafe.Offsetof(dv.BT.VBackPorch),
			"v4l2_bt_timings.standards":      unsafe.Offsetof(dv.BT.Standards),
			"v4l2_bt_timings.picture_aspect": unsafe.Offsetof(dv.BT.PictureAspect),
			"v4l2_bt_timings.cea861_vic":     unsafe.Offsetof(dv.BT.CEA861VIC),
			"v4l2_bt_timings.reserved":       unsafe.Offsetof(dv.BT.Reserved),
			"v4l2_dv_timings.bt":             unsafe.Offsetof(dv.BT),
			"v4l2_event_subscription.flags":  unsafe.Offsetof(sub.Flags),
			"v4l2_event.u":                   unsafe.Offsetof(event.U),
			"v4l2_event.pending":             unsafe.Offsetof(event.Pending),
			"v4l2_event.sequence":            unsafe.Offsetof(event.Sequence),
			"v4l2_event.timestamp":           unsafe.Offsetof(event.Timestamp),
			"v4l2_event.id":                  unsafe.Offsetof(event.ID),
			"v4l2_event.reserved":            unsafe.Offsetof(event.Reserved),
			"v4l2_exportbuffer.index":        unsafe.Offsetof(export.Index),
			"v4l2_exportbuffer.plane":        unsafe.Offsetof(export.Plane),
			"v4l2_exportbuffer.flags":        unsafe.Offsetof(export.Flags),
			"v4l2_exportbuffer.fd":           unsafe.Offsetof(export.FD),
			"v4l2_exportbuffer.reserved":     unsafe.Offsetof(export.Reserved),
		},
		ioctls: map[string]uintptr{
			"VIDIOC_QUERYCAP":  vidiocQueryCap,
			"VIDIOC_ENUM_FMT":  vidiocEnumFmt,
			"VIDIOC_G_FMT":     vidiocGFmt,
			"VIDIOC_S_FMT":     vidiocSFmt,
			"VIDIOC_REQBUFS":   vidiocReqBufs,
			"VIDIOC_QUERYBUF":  vidiocQueryBuf,
			"VIDIOC_QBUF":      vidiocQBuf,
			"VIDIOC_EXPBUF":    vidiocExpBuf,
			"VIDIOC_DQBUF":     vidiocDQBuf,
			"VIDIOC_STREAMON":  vidiocStreamOn,
			"VIDIOC_STREAMOFF": vidiocStreamOff,
			"VIDIOC_G_PARM":    vidiocGParm,
			"VIDIOC_S_PARM":    vidiocSParm,

			"VIDIOC_ENUM_FRAMESIZES":     vidiocEnumFrameSizes,
			"VIDIOC_ENUM_FRAMEINTERVALS": vidiocEnumFrameIntervals,

			"VIDIOC_G_EDID":            vidiocGEdid,
			"VIDIOC_S_EDID":            vidiocSEdid,
			"VIDIOC_S_DV_TIMINGS":      vidiocSDVTimings,
			"VIDIOC_G_DV_TIMINGS":      vidiocGDVTimings,
			"VIDIOC_DQEVENT":           vidiocDQEvent,
			"VIDIOC_SUBSCRIBE_EVENT":   vidiocSubscribeEvent,
			"VIDIOC_UNSUBSCRIBE_EVENT": vidiocUnsubscribeEvent,
			"VIDIOC_QUERY_DV_TIMINGS":  vidiocQueryDVTimings,

			// The subdevice node's requests are the video node's: one
			// set of numbers serves both.
			"VIDIOC_SUBDEV_G_EDID":           vidiocGEdid,
			"VIDIOC_SUBDEV_S_EDID":           vidiocSEdid,
			"VIDIOC_SUBDEV_S_DV_TIMINGS":     vidiocSDVTimings,
			"VIDIOC_SUBDEV_G_DV_TIMINGS":     vidiocGDVTimings,
			"VIDIOC_SUBDEV_QUERY_DV_TIMINGS": vidiocQueryDVTimings,
		},
	}
}

func compareTable(t *testing.T, what string, want, got map[string]uintptr) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d reference entries, %d measured: tables out of step", what, len(want), len(got))
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s %s: not measured", what, name)
		case g != w:
			t.Errorf("%s %s on %s = %#x, kernel ABI says %#x", what, name, runtime.GOARCH, g, w)
		}
	}
}

func TestABISizes(t *testing.T) {
	want, got := expectedLayout(t), goLayout()
	compareTable(t, "size of", want.sizes, got.sizes)
}

func TestABIOffsets(t *testing.T) {
	want, got := expectedLayout(t), goLayout()
	compareTable(t, "offset of", want.offsets, got.offsets)
}

func TestABIIoctlNumbers(t *testing.T) {
	want, got := expectedLayout(t), goLayout()
	compareTable(t, "request", want.ioctls, got.ioctls)
}

func TestIocMacros(t *testing.T) {
	// Values from the asm-generic macros, independent of any V4L2 struct.
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"_IO-like none", ioc(iocNone, 'V', 1, 0), 0x00005601},
		{"_IOR size 4", ior('V', 3, 4), 0x80045603},
		{"_IOW size 4", iow('V', 18, 4), 0x40045612},
		{"_IOWR size 0x3fff", iowr('V', 0xff, 0x3fff), 0xffff56ff},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestBufferOffsetUnion(t *testing.T) {
	var b v4l2Buffer
	b.setOffset(0x12345000)
	if got := b.offset(); got != 0x12345000 {
		t.Fatalf("offset() = %#x after setOffset(0x12345000)", got)
	}
	// The kernel reads m.offset from the first 4 bytes of the union.
	first := *(*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&b)) + unsafe.Offsetof(b.M)))
	if first != 0x12345000 {
		t.Fatalf("first word of union m = %#x, want 0x12345000 (little-endian)", first)
	}
}

func TestFourCC(t *testing.T) {
	tests := []struct {
		code uint32
		want string
		num  uint32
	}{
		{pixFmtYUYV, "YUYV", 0x56595559},
		{pixFmtH264, "H264", 0x34363248},
		{pixFmtMJPEG, "MJPG", 0x47504a4d},
		{pixFmtYUV420, "YU12", 0x32315559},
		{pixFmtNV12, "NV12", 0x3231564e},
		{0x01020304, "????", 0x01020304},
	}
	for _, tt := range tests {
		if got := fourccString(tt.code); got != tt.want {
			t.Errorf("fourccString(%#x) = %q, want %q", tt.code, got, tt.want)
		}
		if tt.code != tt.num {
			t.Errorf("fourcc %s = %#x, want %#x", tt.want, tt.code, tt.num)
		}
	}
}

// cCompilers are Debian's compilers for each GOARCH whose layout we pin.
var cCompilers = map[string]string{
	"amd64": "x86_64-linux-gnu-gcc",
	"arm64": "aarch64-linux-gnu-gcc",
	"arm":   "arm-linux-gnueabihf-gcc",
}

// cProbe returns C source that puts every measured size, offset and request
// number of the layout tables into a named constant, so the compiler's
// assembly output (-S) carries the values without running anything on the
// target.
func cProbe(names []string) string {
	var b strings.Builder
	b.WriteString("#include <stddef.h>\n#include <linux/videodev2.h>\n#include <linux/v4l2-subdev.h>\n")
	for _, name := range names {
		var expr string
		switch {
		case strings.HasPrefix(name, "VIDIOC_"):
			expr = name
		case strings.Contains(name, "."):
			structName, field, _ := strings.Cut(name, ".")
			expr = fmt.Sprintf("offsetof(struct %s, %s)", structName, field)
		default:
			expr = fmt.Sprintf("sizeof(struct %s)", name)
		}
		fmt.Fprintf(&b, "const unsigned int abi_%s = (unsigned int)(%s);\n", strings.ReplaceAll(name, ".", "__"), expr)
	}
	return b.String()
}

// compileProbe compiles the probe with cc and returns the values by name.
func compileProbe(t *testing.T, cc string, flags []string, names []string) map[string]uintptr {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(cProbe(names)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-S", "-O0", "-o", "-"}, flags...)
	out, err := exec.Command(cc, append(args, src)...).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("%s: %v\n%s", cc, err, exitErr.Stderr)
		}
		t.Fatalf("%s: %v", cc, err)
	}
	// Each constant comes out as "abi_name:" followed by a ".long N" (x86)
	// or ".word N" (ARM) line.
	values := make(map[string]uintptr)
	label := ""
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "abi_") && strings.HasSuffix(line, ":") {
			label = strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(line, "abi_"), ":"), "__", ".")
			continue
		}
		fields := strings.Fields(line)
		if label != "" && len(fields) == 2 && (fields[0] == ".long" || fields[0] == ".word") {
			v, err := strconv.ParseInt(fields[1], 0, 64)
			if err != nil {
				t.Fatalf("%s: value of %s: %v", cc, label, err)
			}
			values[label] = uintptr(uint32(v))
			label = ""
		}
	}
	return values
}

func sortedKeys(tables ...map[string]uintptr) []string {
	var names []string
	for _, table := range tables {
		for name := range table {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestABIMatchesCCompiler checks the Go mirrors against what Debian's C
// compiler for this GOARCH computes from linux/videodev2.h. It needs the
// compiler (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, gcc on amd64),
// which `make test` installs.
func TestABIMatchesCCompiler(t *testing.T) {
	cc, ok := cCompilers[runtime.GOARCH]
	if !ok {
		t.Skipf("no C compiler known for GOARCH=%s", runtime.GOARCH)
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Fatalf("%s not installed (make test installs it with the Debian cross compilers): %v", cc, err)
	}
	got := goLayout()
	names := sortedKeys(got.sizes, got.offsets, got.ioctls)
	c := compileProbe(t, cc, nil, names)
	measured := make(map[string]uintptr)
	for _, table := range []map[string]uintptr{got.sizes, got.offsets, got.ioctls} {
		for name, v := range table {
			measured[name] = v
		}
	}
	compareTable(t, "C "+cc, c, measured)

	if runtime.GOARCH == "arm" {
		// A C program built with a 64-bit time_t uses the 80-byte
		// v4l2_buffer (and its own request numbers); Go's linux/arm uses
		// the 32-bit time_t one. Show that the probe tells them apart.
		time64 := compileProbe(t, cc, []string{"-D_FILE_OFFSET_BITS=64", "-D_TIME_BITS=64"}, names)
		if time64["v4l2_buffer"] == measured["v4l2_buffer"] {
			t.Errorf("time64 v4l2_buffer is %d bytes, the same as ours: the probe cannot tell the ABIs apart", time64["v4l2_buffer"])
		}
		t.Logf("time64 ABI: v4l2_buffer %d bytes, VIDIOC_DQBUF %#x; ours (time32): %d bytes, %#x",
			time64["v4l2_buffer"], time64["VIDIOC_DQBUF"], measured["v4l2_buffer"], measured["VIDIOC_DQBUF"])
	}
}
