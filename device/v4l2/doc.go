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
// The hardware is reached through the small Device interface (ioctl, mmap,
// poll, close). FakeCamera implements it with the kernel's rules so the
// capture code runs unchanged in tests on machines without a camera.
package v4l2
