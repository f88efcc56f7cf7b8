// Package v4l2 captures video from Linux V4L2 cameras in pure Go (ioctls
// through golang.org/x/sys/unix, no cgo) and implements device.VideoSource.
//
// We do not use pion/mediadevices' camera driver because it stamps frames
// with time.Now instead of the kernel's buffer timestamp, copies every
// picture into an image.Image and offers no H.264 format. This package hands
// out the driver's memory-mapped buffers without a copy, keeps the kernel's
// CLOCK_MONOTONIC capture time (converted onto the pipeline's device.Clock),
// and negotiates H.264, MJPEG, YUYV, NV12 and YUV 4:2:0.
//
// Open (or NewSource on an open Device) negotiates format, size and rate;
// Source.Mode tells what the driver gave, which may differ from what was
// asked. Probe and List describe device nodes (cameras, and M2M codecs such
// as the Pi's bcm2835-codec-encode) without streaming.
//
// The hardware is reached through the small Device interface (ioctl, mmap,
// poll, close). FakeCamera implements it with the kernel's rules so the
// capture code runs unchanged in tests on machines without a camera.
//
// HDMI-to-CSI-2 bridges (TC358743) are brought up with Config.HDMI: EDID,
// DV timings and source change events, on the video node or the bridge's
// subdevice (hdmi.go); FakeHDMI is their fake.
//
// Source.ExportBuffers exports the buffers as dma-bufs (VIDIOC_EXPBUF) and
// makes every raw frame name the one it lies in (media.DMABuf), for a
// hardware encoder to read without a copy; FakeConfig.DMABufs gives the
// fake a dmabuftest.Heap shared with the fake encoder, which checks that a
// buffer is never filled and read at once.
//
// Limits: single-planar capture only (USB cameras, unicam, HDMI bridges);
// MMAP buffers only (exported, never imported). On 32-bit ARM the structs follow the 32-bit time_t ABI
// that Go's linux/arm port uses (68-byte v4l2_buffer); the kernel serves it
// on both 32-bit and 64-bit kernels.
package v4l2
