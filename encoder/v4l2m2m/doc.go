// Package v4l2m2m is the hardware H.264 encoder: it drives a V4L2 stateful
// memory-to-memory encoder (the Raspberry Pi 4, 3 and Zero 2 W's
// bcm2835-codec-encode, /dev/video11) in pure Go, with ioctls through
// golang.org/x/sys/unix and no cgo, and implements encoder.VideoEncoder.
//
// Find looks for the encoder node (VIDIOC_QUERYCAP: multi-planar M2M, H.264
// on the CAPTURE queue). Validate checks video settings against what the
// Pi's encoder can do (at most 1920x1080 at 30 fps, level 4.0; 25 kbit/s to
// 20 Mbit/s; even sizes from 32 to 1920; no CBR with the CABAC profiles).
// Open sets the encoder up following the kernel's stateful encoder
// interface (Documentation/userspace-api/media/v4l/dev-encoder.rst): coded
// format on CAPTURE, raw format on OUTPUT, frame interval, every control
// (rate control and bitrate, profile, a level computed from size, rate and
// bitrate, keyframe period, SPS/PPS before every IDR) before STREAMON, then
// MMAP buffers. Encode copies a picture into an OUTPUT buffer with the
// driver's stride (the one copy on this path), asks for an IDR first when
// told to, and waits in poll(2), never in an ioctl, for the coded buffer;
// capture times ride through the buffers' timestamps. SetBitrate changes
// the bitrate while streaming. A device error comes back wrapped with its
// errno and stays until Reset; Close drains with V4L2_ENC_CMD_STOP.
//
// A frame that carries its camera's dma-buf (media.VideoFrame.DMABuf, see
// device/v4l2's Source.ExportBuffers) is not copied: the first one sets
// the encoder up again with the OUTPUT queue importing dma-bufs
// (V4L2_MEMORY_DMABUF, the raw format's stride set to the camera's), and
// each picture is queued with m.fd naming the camera's buffer. Encode
// returns only when the hardware has given that buffer back, so the
// camera's rule (a frame is the reader's until its next read) holds
// unchanged. A driver that refuses the import (the Pi's encoder cannot map
// a UVC webcam's vmalloc memory: EFAULT at QBUF; or a stride it cannot
// take) makes the encoder log why, once, and copy from then on.
//
// The hardware is reached through the small Device interface (ioctl, mmap,
// munmap, poll, close). FakeDevice implements it with the rules of the
// driver, videobuf2 and the V4L2 core, and writes a valid (if grey) H.264
// stream, so the whole encoder runs in tests on any machine, also without
// cgo and under qemu-user.
//
// Limits: single-plane raw formats I420 (YU12), NV12 and YUYV (so the HDMI
// bridge's UYVY, swapped to YUYV by the capture side, is still copied);
// coded buffers are MMAP. On 32-bit ARM the structs follow
// the 32-bit time_t ABI that Go's linux/arm port uses (68-byte v4l2_buffer),
// which the kernel serves beside the 64-bit time_t one; abi_test.go checks
// both against the C compiler.
package v4l2m2m
