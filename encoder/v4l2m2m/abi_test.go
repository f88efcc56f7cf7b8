package v4l2m2m

import (
	"bufio"
	"bytes"
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

	"golang.org/x/sys/unix"
)

// The ABI of every struct, request number and constant this package passes
// to the kernel, three ways:
//
//   - the tables below hold what gcc computes from linux/videodev2.h
//     (Debian 12's linux-libc-dev) for each target;
//   - TestABIGoMatchesTable measures the Go mirrors on the running GOARCH
//     against its table: run natively for amd64 and under qemu-aarch64 and
//     qemu-arm for the Pi's architectures, it is what makes a wrong layout
//     on 32-bit ARM fail a test rather than a broadcast;
//   - TestABITableMatchesC compiles a C probe with each cross compiler, runs
//     it (natively, or under qemu-user with -L /usr/<triplet>) and checks
//     the tables against it, so the tables are the C compiler's word.
//
// 32-bit ARM has two ABIs for struct timeval inside v4l2_buffer: the
// classic 32-bit time_t, which Debian armhf's C library uses by default
// and Go's linux/arm port uses (unix.Timeval is two int32), giving a
// 68-byte v4l2_buffer; and the 64-bit time_t a C program gets with
// -D_TIME_BITS=64 (80 bytes, 8-aligned timestamp, other request numbers).
// The kernel serves both. This package uses the first; the second is
// pinned too (layoutARMTime64), so a change of either side shows.

type abiLayout struct {
	sizes   map[string]uintptr
	offsets map[string]uintptr
	ioctls  map[string]uintptr
}

var layout64 = abiLayout{
	sizes: map[string]uintptr{
		"v4l2_buffer": 88, "v4l2_capability": 104, "v4l2_control": 8, "v4l2_encoder_cmd": 40,
		"v4l2_ext_control": 20, "v4l2_ext_controls": 32, "v4l2_fmtdesc": 64, "v4l2_format": 208,
		"v4l2_outputparm": 40, "v4l2_pix_format_mplane": 192, "v4l2_plane": 64, "v4l2_plane_pix_format": 20,
		"v4l2_requestbuffers": 20, "v4l2_streamparm": 204, "v4l2_timecode": 16,
	},
	offsets: map[string]uintptr{
		"v4l2_buffer.field": 16, "v4l2_buffer.flags": 12, "v4l2_buffer.length": 72, "v4l2_buffer.m": 64,
		"v4l2_buffer.memory": 60, "v4l2_buffer.request_fd": 80, "v4l2_buffer.reserved2": 76,
		"v4l2_buffer.sequence": 56, "v4l2_buffer.timecode": 40, "v4l2_buffer.timestamp": 24,
		"v4l2_capability.bus_info": 48, "v4l2_capability.capabilities": 84, "v4l2_capability.card": 16,
		"v4l2_capability.device_caps": 88, "v4l2_capability.version": 80, "v4l2_control.value": 4,
		"v4l2_encoder_cmd.flags": 4, "v4l2_encoder_cmd.raw": 8, "v4l2_ext_control.reserved2": 8,
		"v4l2_ext_control.size": 4, "v4l2_ext_control.value": 12, "v4l2_ext_control.value64": 12,
		"v4l2_ext_controls.controls": 24, "v4l2_ext_controls.count": 4, "v4l2_ext_controls.error_idx": 8,
		"v4l2_ext_controls.request_fd": 12, "v4l2_fmtdesc.description": 12, "v4l2_fmtdesc.pixelformat": 44,
		"v4l2_format.fmt": 8, "v4l2_outputparm.timeperframe": 8, "v4l2_outputparm.writebuffers": 20,
		"v4l2_pix_format_mplane.colorspace": 16, "v4l2_pix_format_mplane.flags": 181,
		"v4l2_pix_format_mplane.num_planes": 180, "v4l2_pix_format_mplane.plane_fmt": 20,
		"v4l2_pix_format_mplane.quantization": 183, "v4l2_pix_format_mplane.xfer_func": 184,
		"v4l2_pix_format_mplane.ycbcr_enc": 182, "v4l2_plane.data_offset": 16, "v4l2_plane.length": 4,
		"v4l2_plane.m": 8, "v4l2_plane.m.fd": 8, "v4l2_plane.reserved": 20, "v4l2_plane_pix_format.bytesperline": 4,
		"v4l2_requestbuffers.capabilities": 12, "v4l2_requestbuffers.flags": 16, "v4l2_streamparm.parm": 4,
	},
	ioctls: map[string]uintptr{
		"VIDIOC_DQBUF": 0xc0585611, "VIDIOC_ENCODER_CMD": 0xc028564d, "VIDIOC_ENUM_FMT": 0xc0405602,
		"VIDIOC_G_CTRL": 0xc008561b, "VIDIOC_G_EXT_CTRLS": 0xc0205647, "VIDIOC_G_FMT": 0xc0d05604,
		"VIDIOC_G_PARM": 0xc0cc5615, "VIDIOC_QBUF": 0xc058560f, "VIDIOC_QUERYBUF": 0xc0585609,
		"VIDIOC_QUERYCAP": 0x80685600, "VIDIOC_REQBUFS": 0xc0145608, "VIDIOC_STREAMOFF": 0x40045613,
		"VIDIOC_STREAMON": 0x40045612, "VIDIOC_S_CTRL": 0xc008561c, "VIDIOC_S_EXT_CTRLS": 0xc0205648,
		"VIDIOC_S_FMT": 0xc0d05605, "VIDIOC_S_PARM": 0xc0cc5616, "VIDIOC_TRY_ENCODER_CMD": 0xc028564e,
		"VIDIOC_TRY_EXT_CTRLS": 0xc0205649, "VIDIOC_TRY_FMT": 0xc0d05640,
	},
}

// layoutARM is 32-bit ARM EABI with the 32-bit time_t that Go's linux/arm
// port and Debian armhf use: pointers, longs and timeval members are 4
// bytes, so v4l2_format's union starts at 4, v4l2_plane is 60 bytes,
// v4l2_buffer 68 and v4l2_ext_controls 24.
var layoutARM = abiLayout{
	sizes: map[string]uintptr{
		"v4l2_buffer": 68, "v4l2_capability": 104, "v4l2_control": 8, "v4l2_encoder_cmd": 40,
		"v4l2_ext_control": 20, "v4l2_ext_controls": 24, "v4l2_fmtdesc": 64, "v4l2_format": 204,
		"v4l2_outputparm": 40, "v4l2_pix_format_mplane": 192, "v4l2_plane": 60, "v4l2_plane_pix_format": 20,
		"v4l2_requestbuffers": 20, "v4l2_streamparm": 204, "v4l2_timecode": 16,
	},
	offsets: map[string]uintptr{
		"v4l2_buffer.field": 16, "v4l2_buffer.flags": 12, "v4l2_buffer.length": 56, "v4l2_buffer.m": 52,
		"v4l2_buffer.memory": 48, "v4l2_buffer.request_fd": 64, "v4l2_buffer.reserved2": 60,
		"v4l2_buffer.sequence": 44, "v4l2_buffer.timecode": 28, "v4l2_buffer.timestamp": 20,
		"v4l2_capability.bus_info": 48, "v4l2_capability.capabilities": 84, "v4l2_capability.card": 16,
		"v4l2_capability.device_caps": 88, "v4l2_capability.version": 80, "v4l2_control.value": 4,
		"v4l2_encoder_cmd.flags": 4, "v4l2_encoder_cmd.raw": 8, "v4l2_ext_control.reserved2": 8,
		"v4l2_ext_control.size": 4, "v4l2_ext_control.value": 12, "v4l2_ext_control.value64": 12,
		"v4l2_ext_controls.controls": 20, "v4l2_ext_controls.count": 4, "v4l2_ext_controls.error_idx": 8,
		"v4l2_ext_controls.request_fd": 12, "v4l2_fmtdesc.description": 12, "v4l2_fmtdesc.pixelformat": 44,
		"v4l2_format.fmt": 4, "v4l2_outputparm.timeperframe": 8, "v4l2_outputparm.writebuffers": 20,
		"v4l2_pix_format_mplane.colorspace": 16, "v4l2_pix_format_mplane.flags": 181,
		"v4l2_pix_format_mplane.num_planes": 180, "v4l2_pix_format_mplane.plane_fmt": 20,
		"v4l2_pix_format_mplane.quantization": 183, "v4l2_pix_format_mplane.xfer_func": 184,
		"v4l2_pix_format_mplane.ycbcr_enc": 182, "v4l2_plane.data_offset": 12, "v4l2_plane.length": 4,
		"v4l2_plane.m": 8, "v4l2_plane.m.fd": 8, "v4l2_plane.reserved": 16, "v4l2_plane_pix_format.bytesperline": 4,
		"v4l2_requestbuffers.capabilities": 12, "v4l2_requestbuffers.flags": 16, "v4l2_streamparm.parm": 4,
	},
	ioctls: map[string]uintptr{
		"VIDIOC_DQBUF": 0xc0445611, "VIDIOC_ENCODER_CMD": 0xc028564d, "VIDIOC_ENUM_FMT": 0xc0405602,
		"VIDIOC_G_CTRL": 0xc008561b, "VIDIOC_G_EXT_CTRLS": 0xc0185647, "VIDIOC_G_FMT": 0xc0cc5604,
		"VIDIOC_G_PARM": 0xc0cc5615, "VIDIOC_QBUF": 0xc044560f, "VIDIOC_QUERYBUF": 0xc0445609,
		"VIDIOC_QUERYCAP": 0x80685600, "VIDIOC_REQBUFS": 0xc0145608, "VIDIOC_STREAMOFF": 0x40045613,
		"VIDIOC_STREAMON": 0x40045612, "VIDIOC_S_CTRL": 0xc008561c, "VIDIOC_S_EXT_CTRLS": 0xc0185648,
		"VIDIOC_S_FMT": 0xc0cc5605, "VIDIOC_S_PARM": 0xc0cc5616, "VIDIOC_TRY_ENCODER_CMD": 0xc028564e,
		"VIDIOC_TRY_EXT_CTRLS": 0xc0185649, "VIDIOC_TRY_FMT": 0xc0cc5640,
	},
}

// layoutARMTime64 is 32-bit ARM with -D_TIME_BITS=64: only v4l2_buffer and
// its requests differ from layoutARM (timestamp 8-aligned at 24, 16 bytes).
var layoutARMTime64 = func() abiLayout {
	l := abiLayout{sizes: map[string]uintptr{}, offsets: map[string]uintptr{}, ioctls: map[string]uintptr{}}
	for k, v := range layoutARM.sizes {
		l.sizes[k] = v
	}
	for k, v := range layoutARM.offsets {
		l.offsets[k] = v
	}
	for k, v := range layoutARM.ioctls {
		l.ioctls[k] = v
	}
	l.sizes["v4l2_buffer"] = 80
	for field, off := range map[string]uintptr{
		"timestamp": 24, "timecode": 40, "sequence": 56, "memory": 60, "m": 64, "length": 68, "reserved2": 72, "request_fd": 76,
	} {
		l.offsets["v4l2_buffer."+field] = off
	}
	l.ioctls["VIDIOC_QUERYBUF"] = 0xc0505609
	l.ioctls["VIDIOC_QBUF"] = 0xc050560f
	l.ioctls["VIDIOC_DQBUF"] = 0xc0505611
	return l
}()

// abiConstants are the same on every target.
var abiConstants = map[string]uintptr{
	"V4L2_CAP_VIDEO_CAPTURE": capVideoCapture, "V4L2_CAP_VIDEO_OUTPUT": capVideoOutput,
	"V4L2_CAP_VIDEO_CAPTURE_MPLANE": capVideoCaptureMplane, "V4L2_CAP_VIDEO_OUTPUT_MPLANE": capVideoOutputMplane,
	"V4L2_CAP_VIDEO_M2M_MPLANE": capVideoM2MMplane, "V4L2_CAP_VIDEO_M2M": capVideoM2M,
	"V4L2_CAP_STREAMING": capStreaming, "V4L2_CAP_DEVICE_CAPS": capDeviceCaps,
	"V4L2_BUF_TYPE_VIDEO_CAPTURE": bufTypeVideoCapture, "V4L2_BUF_TYPE_VIDEO_OUTPUT": bufTypeVideoOutput,
	"V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE": bufTypeVideoCaptureMplane,
	"V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE":  bufTypeVideoOutputMplane,
	"V4L2_MEMORY_MMAP":                   memoryMMAP, "V4L2_MEMORY_DMABUF": memoryDMABUF, "V4L2_FIELD_NONE": fieldNone,
	"V4L2_COLORSPACE_REC709": colorspaceRec709, "VIDEO_MAX_PLANES": videoMaxPlanes,
	"V4L2_BUF_FLAG_MAPPED": bufFlagMapped, "V4L2_BUF_FLAG_QUEUED": bufFlagQueued, "V4L2_BUF_FLAG_DONE": bufFlagDone,
	"V4L2_BUF_FLAG_KEYFRAME": bufFlagKeyframe, "V4L2_BUF_FLAG_PFRAME": bufFlagPFrame, "V4L2_BUF_FLAG_ERROR": bufFlagError,
	"V4L2_BUF_FLAG_TIMESTAMP_COPY": bufFlagTimestampCopy, "V4L2_BUF_FLAG_LAST": bufFlagLast,
	"V4L2_BUF_CAP_SUPPORTS_MMAP": bufCapSupportsMMAP, "V4L2_BUF_CAP_SUPPORTS_DMABUF": bufCapSupportsDMABUF,
	"V4L2_FMT_FLAG_COMPRESSED": fmtFlagCompressed, "V4L2_CAP_TIMEPERFRAME": capTimePerFrame,
	"V4L2_ENC_CMD_START": encCmdStart, "V4L2_ENC_CMD_STOP": encCmdStop,
	"V4L2_PIX_FMT_YUV420": uintptr(pixFmtYUV420), "V4L2_PIX_FMT_NV12": uintptr(pixFmtNV12),
	"V4L2_PIX_FMT_YUYV": uintptr(pixFmtYUYV), "V4L2_PIX_FMT_H264": uintptr(pixFmtH264),
	"V4L2_PIX_FMT_MJPEG":    uintptr(pixFmtMJPEG),
	"V4L2_CTRL_CLASS_CODEC": ctrlClassCodec, "V4L2_CID_CODEC_BASE": cidCodecBase,
	"V4L2_CID_MPEG_VIDEO_B_FRAMES": cidBFrames, "V4L2_CID_MPEG_VIDEO_GOP_SIZE": cidGOPSize,
	"V4L2_CID_MPEG_VIDEO_BITRATE_MODE": cidBitrateMode, "V4L2_CID_MPEG_VIDEO_BITRATE": cidBitrate,
	"V4L2_CID_MPEG_VIDEO_HEADER_MODE": cidHeaderMode, "V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER": cidRepeatSeqHeader,
	"V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME": cidForceKeyFrame, "V4L2_CID_MPEG_VIDEO_H264_MIN_QP": cidH264MinQP,
	"V4L2_CID_MPEG_VIDEO_H264_MAX_QP": cidH264MaxQP, "V4L2_CID_MPEG_VIDEO_H264_I_PERIOD": cidH264IPeriod,
	"V4L2_CID_MPEG_VIDEO_H264_LEVEL": cidH264Level, "V4L2_CID_MPEG_VIDEO_H264_PROFILE": cidH264Profile,
	"V4L2_MPEG_VIDEO_BITRATE_MODE_VBR": bitrateModeVBR, "V4L2_MPEG_VIDEO_BITRATE_MODE_CBR": bitrateModeCBR,
	"V4L2_MPEG_VIDEO_HEADER_MODE_SEPARATE":              headerModeSeparate,
	"V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME": headerModeJoinedWith1stFrame,
	"V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE":             profileBaseline,
	"V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE": profileConstrainedBaseline,
	"V4L2_MPEG_VIDEO_H264_PROFILE_MAIN":                 profileMain,
	"V4L2_MPEG_VIDEO_H264_PROFILE_EXTENDED":             profileExtended,
	"V4L2_MPEG_VIDEO_H264_PROFILE_HIGH":                 profileHigh,
	"V4L2_MPEG_VIDEO_H264_LEVEL_1_0":                    uintptr(Level1_0), "V4L2_MPEG_VIDEO_H264_LEVEL_1_1": uintptr(Level1_1),
	"V4L2_MPEG_VIDEO_H264_LEVEL_1_2": uintptr(Level1_2), "V4L2_MPEG_VIDEO_H264_LEVEL_1_3": uintptr(Level1_3),
	"V4L2_MPEG_VIDEO_H264_LEVEL_2_0": uintptr(Level2_0), "V4L2_MPEG_VIDEO_H264_LEVEL_2_1": uintptr(Level2_1),
	"V4L2_MPEG_VIDEO_H264_LEVEL_2_2": uintptr(Level2_2), "V4L2_MPEG_VIDEO_H264_LEVEL_3_0": uintptr(Level3_0),
	"V4L2_MPEG_VIDEO_H264_LEVEL_3_1": uintptr(Level3_1), "V4L2_MPEG_VIDEO_H264_LEVEL_3_2": uintptr(Level3_2),
	"V4L2_MPEG_VIDEO_H264_LEVEL_4_0": uintptr(Level4_0), "V4L2_MPEG_VIDEO_H264_LEVEL_4_1": uintptr(Level4_1),
	"V4L2_MPEG_VIDEO_H264_LEVEL_4_2": uintptr(Level4_2), "V4L2_MPEG_VIDEO_H264_LEVEL_5_0": uintptr(Level5_0),
	"V4L2_MPEG_VIDEO_H264_LEVEL_5_1": uintptr(Level5_1),
}

// goLayout measures the Go mirrors under the C names used above.
func goLayout() abiLayout {
	var (
		capability v4l2Capability
		fmtdesc    v4l2Fmtdesc
		format     v4l2Format
		reqbufs    v4l2RequestBuffers
		plane      v4l2Plane
		buffer     v4l2Buffer
		parm       v4l2StreamParm
		control    v4l2Control
		ext        v4l2ExtControl
		exts       v4l2ExtControls
		cmd        v4l2EncoderCmd
	)
	pix := &format.Fmt.PixMP
	return abiLayout{
		sizes: map[string]uintptr{
			"v4l2_buffer": unsafe.Sizeof(buffer), "v4l2_capability": unsafe.Sizeof(capability),
			"v4l2_control": unsafe.Sizeof(control), "v4l2_encoder_cmd": unsafe.Sizeof(cmd),
			"v4l2_ext_control": unsafe.Sizeof(ext), "v4l2_ext_controls": unsafe.Sizeof(exts),
			"v4l2_fmtdesc": unsafe.Sizeof(fmtdesc), "v4l2_format": unsafe.Sizeof(format),
			"v4l2_outputparm": unsafe.Sizeof(parm.Parm.Output), "v4l2_pix_format_mplane": unsafe.Sizeof(*pix),
			"v4l2_plane": unsafe.Sizeof(plane), "v4l2_plane_pix_format": unsafe.Sizeof(pix.PlaneFmt[0]),
			"v4l2_requestbuffers": unsafe.Sizeof(reqbufs), "v4l2_streamparm": unsafe.Sizeof(parm),
			"v4l2_timecode": unsafe.Sizeof(buffer.Timecode),
		},
		offsets: map[string]uintptr{
			"v4l2_buffer.field": unsafe.Offsetof(buffer.Field), "v4l2_buffer.flags": unsafe.Offsetof(buffer.Flags),
			"v4l2_buffer.length": unsafe.Offsetof(buffer.Length), "v4l2_buffer.m": unsafe.Offsetof(buffer.Planes),
			"v4l2_buffer.memory": unsafe.Offsetof(buffer.Memory), "v4l2_buffer.request_fd": unsafe.Offsetof(buffer.RequestFD),
			"v4l2_buffer.reserved2": unsafe.Offsetof(buffer.Reserved2), "v4l2_buffer.sequence": unsafe.Offsetof(buffer.Sequence),
			"v4l2_buffer.timecode": unsafe.Offsetof(buffer.Timecode), "v4l2_buffer.timestamp": unsafe.Offsetof(buffer.Timestamp),
			"v4l2_capability.bus_info": unsafe.Offsetof(capability.BusInfo), "v4l2_capability.capabilities": unsafe.Offsetof(capability.Capabilities),
			"v4l2_capability.card": unsafe.Offsetof(capability.Card), "v4l2_capability.device_caps": unsafe.Offsetof(capability.DeviceCaps),
			"v4l2_capability.version": unsafe.Offsetof(capability.Version), "v4l2_control.value": unsafe.Offsetof(control.Value),
			"v4l2_encoder_cmd.flags": unsafe.Offsetof(cmd.Flags), "v4l2_encoder_cmd.raw": unsafe.Offsetof(cmd.Data),
			"v4l2_ext_control.reserved2": unsafe.Offsetof(ext.Reserved2), "v4l2_ext_control.size": unsafe.Offsetof(ext.Size),
			"v4l2_ext_control.value": unsafe.Offsetof(ext.Value), "v4l2_ext_control.value64": unsafe.Offsetof(ext.Value),
			"v4l2_ext_controls.controls": unsafe.Offsetof(exts.Controls), "v4l2_ext_controls.count": unsafe.Offsetof(exts.Count),
			"v4l2_ext_controls.error_idx": unsafe.Offsetof(exts.ErrorIdx), "v4l2_ext_controls.request_fd": unsafe.Offsetof(exts.RequestFD),
			"v4l2_fmtdesc.description": unsafe.Offsetof(fmtdesc.Description), "v4l2_fmtdesc.pixelformat": unsafe.Offsetof(fmtdesc.PixelFormat),
			"v4l2_format.fmt":              unsafe.Offsetof(format.Fmt),
			"v4l2_outputparm.timeperframe": unsafe.Offsetof(parm.Parm.Output.TimePerFrame), "v4l2_outputparm.writebuffers": unsafe.Offsetof(parm.Parm.Output.WriteBuffers),
			"v4l2_pix_format_mplane.colorspace": unsafe.Offsetof(pix.Colorspace), "v4l2_pix_format_mplane.flags": unsafe.Offsetof(pix.Flags),
			"v4l2_pix_format_mplane.num_planes": unsafe.Offsetof(pix.NumPlanes), "v4l2_pix_format_mplane.plane_fmt": unsafe.Offsetof(pix.PlaneFmt),
			"v4l2_pix_format_mplane.quantization": unsafe.Offsetof(pix.Quantization), "v4l2_pix_format_mplane.xfer_func": unsafe.Offsetof(pix.XferFunc),
			"v4l2_pix_format_mplane.ycbcr_enc": unsafe.Offsetof(pix.YcbcrEnc), "v4l2_plane.data_offset": unsafe.Offsetof(plane.DataOffset),
			"v4l2_plane.length": unsafe.Offsetof(plane.Length), "v4l2_plane.m": unsafe.Offsetof(plane.M), "v4l2_plane.m.fd": unsafe.Offsetof(plane.M),
			"v4l2_plane.reserved": unsafe.Offsetof(plane.Reserved), "v4l2_plane_pix_format.bytesperline": unsafe.Offsetof(pix.PlaneFmt[0].BytesPerLine),
			"v4l2_requestbuffers.capabilities": unsafe.Offsetof(reqbufs.Capabilities), "v4l2_requestbuffers.flags": unsafe.Offsetof(reqbufs.Flags),
			"v4l2_streamparm.parm": unsafe.Offsetof(parm.Parm),
		},
		ioctls: map[string]uintptr{
			"VIDIOC_DQBUF": vidiocDQBuf, "VIDIOC_ENCODER_CMD": vidiocEncoderCmd, "VIDIOC_ENUM_FMT": vidiocEnumFmt,
			"VIDIOC_G_CTRL": vidiocGCtrl, "VIDIOC_G_EXT_CTRLS": vidiocGExtCtrls, "VIDIOC_G_FMT": vidiocGFmt,
			"VIDIOC_G_PARM": vidiocGParm, "VIDIOC_QBUF": vidiocQBuf, "VIDIOC_QUERYBUF": vidiocQueryBuf,
			"VIDIOC_QUERYCAP": vidiocQueryCap, "VIDIOC_REQBUFS": vidiocReqBufs, "VIDIOC_STREAMOFF": vidiocStreamOff,
			"VIDIOC_STREAMON": vidiocStreamOn, "VIDIOC_S_CTRL": vidiocSCtrl, "VIDIOC_S_EXT_CTRLS": vidiocSExtCtrls,
			"VIDIOC_S_FMT": vidiocSFmt, "VIDIOC_S_PARM": vidiocSParm, "VIDIOC_TRY_ENCODER_CMD": vidiocTryEncoderCmd,
			"VIDIOC_TRY_EXT_CTRLS": vidiocTryExtCtrls, "VIDIOC_TRY_FMT": vidiocTryFmt,
		},
	}
}

// expectedLayout is the table of the running GOARCH.
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

func compareTable(t *testing.T, what string, want, got map[string]uintptr) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d reference entries, %d measured: tables out of step", what, len(want), len(got))
	}
	for _, name := range sortedKeys(want) {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s %s: not measured", what, name)
		case g != want[name]:
			t.Errorf("%s %s = %#x, want %#x", what, name, g, want[name])
		}
	}
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

// TestABIGoMatchesTable checks the Go mirrors on the running architecture.
func TestABIGoMatchesTable(t *testing.T) {
	want, got := expectedLayout(t), goLayout()
	compareTable(t, "size of ("+runtime.GOARCH+")", want.sizes, got.sizes)
	compareTable(t, "offset of ("+runtime.GOARCH+")", want.offsets, got.offsets)
	compareTable(t, "request ("+runtime.GOARCH+")", want.ioctls, got.ioctls)
}

// TestABITimeT names the time_t ABI this build uses and shows that the
// tables tell the two 32-bit ARM ABIs apart.
func TestABITimeT(t *testing.T) {
	bits := unsafe.Sizeof(unix.Timeval{}.Sec) * 8
	t.Logf("GOARCH=%s: struct timeval has a %d-bit tv_sec; v4l2_buffer is %d bytes, VIDIOC_QBUF %#x",
		runtime.GOARCH, bits, unsafe.Sizeof(v4l2Buffer{}), vidiocQBuf)
	if runtime.GOARCH == "arm" && bits != 32 {
		t.Fatalf("Go's linux/arm now has a %d-bit time_t: compare with layoutARMTime64 and switch tables", bits)
	}
	if layoutARMTime64.sizes["v4l2_buffer"] == layoutARM.sizes["v4l2_buffer"] ||
		layoutARMTime64.ioctls["VIDIOC_QBUF"] == layoutARM.ioctls["VIDIOC_QBUF"] {
		t.Fatal("the time32 and time64 tables do not differ")
	}
	// A naive Go mirror of the time64 layout (two int64 in a row) is wrong
	// on ARM, where Go aligns int64 to 4 and C to 8: the table catches it.
	type naiveTime64Buffer struct {
		Index, Type, BytesUsed, Flags, Field uint32
		Sec, Usec                            int64
		Timecode                             v4l2Timecode
		Sequence, Memory                     uint32
		Planes                               *v4l2Plane
		Length, Reserved2                    uint32
		RequestFD                            int32
	}
	if runtime.GOARCH == "arm" {
		var naive naiveTime64Buffer
		if unsafe.Offsetof(naive.Sec) == layoutARMTime64.offsets["v4l2_buffer.timestamp"] {
			t.Fatal("the table cannot tell a naive time64 mirror from the C layout")
		}
	}
}

// cTargets are the C toolchains whose layouts the tables pin.
var cTargets = []struct {
	name   string
	cc     string
	flags  []string
	run    []string // how to run the probe ("" = natively)
	layout abiLayout
}{
	{"amd64", "x86_64-linux-gnu-gcc", nil, nil, layout64},
	{"arm64", "aarch64-linux-gnu-gcc", nil, []string{"qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"}, layout64},
	{"arm (time32)", "arm-linux-gnueabihf-gcc", nil, []string{"qemu-arm", "-L", "/usr/arm-linux-gnueabihf"}, layoutARM},
	{"arm (time64)", "arm-linux-gnueabihf-gcc", []string{"-D_FILE_OFFSET_BITS=64", "-D_TIME_BITS=64"},
		[]string{"qemu-arm", "-L", "/usr/arm-linux-gnueabihf"}, layoutARMTime64},
}

// cProbe returns a C program that prints every size, offset, request
// number and constant of the tables, one "name value" per line.
func cProbe() string {
	var b strings.Builder
	b.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <linux/videodev2.h>\nint main(void) {\n")
	emit := func(name, expr string) {
		fmt.Fprintf(&b, "\tprintf(\"%s %%llu\\n\", (unsigned long long)(%s));\n", name, expr)
	}
	for _, name := range sortedKeys(layout64.sizes) {
		emit(name, "sizeof(struct "+name+")")
	}
	for _, name := range sortedKeys(layout64.offsets) {
		structName, field, _ := strings.Cut(name, ".")
		emit(name, fmt.Sprintf("offsetof(struct %s, %s)", structName, field))
	}
	for _, name := range sortedKeys(layout64.ioctls, abiConstants) {
		emit(name, name)
	}
	b.WriteString("\treturn 0;\n}\n")
	return b.String()
}

// runProbe compiles the probe for one target and runs it.
func runProbe(t *testing.T, cc string, flags, run []string) map[string]uintptr {
	t.Helper()
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "probe.c"), filepath.Join(dir, "probe")
	if err := os.WriteFile(src, []byte(cProbe()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"-O0", "-o", bin}, flags...), src)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	cmd := exec.Command(bin)
	if len(run) > 0 {
		cmd = exec.Command(run[0], append(run[1:], bin)...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run probe %v: %v\n%s", cmd.Args, err, stderr.String())
	}
	values := map[string]uintptr{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseUint(value, 10, 64)
		if !ok || err != nil {
			t.Fatalf("probe line %q", sc.Text())
		}
		values[name] = uintptr(v)
	}
	return values
}

// TestABITableMatchesC checks the tables against the C compilers. It needs
// gcc, the Debian cross compilers (gcc-aarch64-linux-gnu,
// gcc-arm-linux-gnueabihf) and qemu-user, which `make deps-test` installs.
func TestABITableMatchesC(t *testing.T) {
	for _, target := range cTargets {
		t.Run(target.name, func(t *testing.T) {
			tools := []string{target.cc}
			if len(target.run) > 0 {
				tools = append(tools, target.run[0])
			}
			for _, tool := range tools {
				if _, err := exec.LookPath(tool); err != nil {
					t.Fatalf("%s not installed (make deps-test installs it): %v", tool, err)
				}
			}
			c := runProbe(t, target.cc, target.flags, target.run)
			compareTable(t, "size of", target.layout.sizes, pick(c, target.layout.sizes))
			compareTable(t, "offset of", target.layout.offsets, pick(c, target.layout.offsets))
			compareTable(t, "request", target.layout.ioctls, pick(c, target.layout.ioctls))
			compareTable(t, "constant", abiConstants, pick(c, abiConstants))
		})
	}
}

// pick returns the entries of got named in like.
func pick(got, like map[string]uintptr) map[string]uintptr {
	out := map[string]uintptr{}
	for name := range like {
		if v, ok := got[name]; ok {
			out[name] = v
		}
	}
	return out
}

func TestIocMacros(t *testing.T) {
	for _, tt := range []struct {
		got, want uintptr
	}{
		{ior('V', 3, 4), 0x80045603},
		{iow('V', 18, 4), 0x40045612},
		{iowr('V', 0xff, 0x3fff), 0xffff56ff},
	} {
		if tt.got != tt.want {
			t.Errorf("%#x, want %#x", tt.got, tt.want)
		}
	}
}

// TestUnionAccess: the kernel reads m.mem_offset from the first 4 bytes of
// v4l2_plane's pointer-wide union, and the ext_control value from the first
// 4 of its 8-byte union.
func TestUnionAccess(t *testing.T) {
	p := v4l2Plane{M: 0x12345000}
	if *(*uint32)(unsafe.Add(unsafe.Pointer(&p), unsafe.Offsetof(p.M))) != 0x12345000 || p.memOffset() != 0x12345000 {
		t.Fatal("mem_offset is not the first word of m")
	}
	p.setFD(-1)
	if *(*int32)(unsafe.Add(unsafe.Pointer(&p), unsafe.Offsetof(p.M))) != -1 || p.fd() != -1 || p.M != 0xffffffff {
		t.Fatalf("fd is not the first word of m, the rest cleared: %#x", p.M)
	}
	c := v4l2ExtControl{Value: -5}
	if *(*int32)(unsafe.Add(unsafe.Pointer(&c), 12)) != -5 {
		t.Fatal("value is not at offset 12")
	}
	if fourccString(pixFmtH264) != "H264" || fourccString(0x01020304) != "????" {
		t.Fatal("fourccString")
	}
}
