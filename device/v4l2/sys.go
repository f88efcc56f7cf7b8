package v4l2

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is an open V4L2 device node: the four system calls capture needs.
// The real one is a file descriptor (OpenNode); FakeCamera is the test
// double. Errors are unix.Errno values, as the kernel returns them, so callers
// can test them with errors.Is.
type Device interface {
	// Ioctl issues a V4L2 request; arg points at the request's struct.
	Ioctl(req uintptr, arg unsafe.Pointer) error
	// Mmap maps length bytes of driver memory at the cookie offset that
	// VIDIOC_QUERYBUF returned, shared and read-write.
	Mmap(offset int64, length int) ([]byte, error)
	// Munmap releases a mapping made by Mmap.
	Munmap(b []byte) error
	// Poll waits at most timeout for a filled buffer. It reports true when
	// one is ready, when an event is pending (POLLPRI: VIDIOC_DQEVENT) or
	// when the device signals an error condition, so that the following
	// VIDIOC_DQEVENT or VIDIOC_DQBUF tells which; false after the timeout.
	Poll(timeout time.Duration) (bool, error)
	// Close closes the device node.
	Close() error
}

// dmabufCloser is the optional part of a Device that exports buffers: it
// closes a descriptor VIDIOC_EXPBUF returned (a real file descriptor on a
// node, a fake one on a FakeCamera).
type dmabufCloser interface {
	CloseDMABuf(fd int) error
}

// fileDevice is a Device backed by a real V4L2 file descriptor.
type fileDevice struct {
	fd int
	// pollFDs is kept here so that polling allocates nothing per frame.
	pollFDs [1]unix.PollFd
}

// OpenNode opens a V4L2 device node (/dev/videoN). The node is opened
// non-blocking because the capture loop waits in poll(2), where it can
// honour a context, and never inside VIDIOC_DQBUF.
func OpenNode(path string) (Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &fileDevice{fd: fd}, nil
}

func (d *fileDevice) Ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), req, uintptr(arg))
		// A signal (the Go runtime preempts with SIGURG) can interrupt a
		// sleeping ioctl; the kernel wants it repeated.
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

func (d *fileDevice) Mmap(offset int64, length int) ([]byte, error) {
	return unix.Mmap(d.fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (d *fileDevice) Munmap(b []byte) error { return unix.Munmap(b) }

func (d *fileDevice) Poll(timeout time.Duration) (bool, error) {
	d.pollFDs[0] = unix.PollFd{Fd: int32(d.fd), Events: unix.POLLIN | unix.POLLPRI}
	ms := int(timeout / time.Millisecond)
	if timeout < 0 {
		ms = -1
	}
	n, err := unix.Poll(d.pollFDs[:], ms)
	if errors.Is(err, unix.EINTR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	if d.pollFDs[0].Revents&unix.POLLNVAL != 0 {
		return false, unix.EBADF
	}
	// POLLERR/POLLHUP (an unplugged camera, a stopped queue) count as ready:
	// VIDIOC_DQBUF then returns the errno that says what happened.
	return true, nil
}

// CloseDMABuf closes a dma-buf descriptor exported from this node.
func (d *fileDevice) CloseDMABuf(fd int) error { return unix.Close(fd) }

func (d *fileDevice) Close() error {
	if d.fd < 0 {
		return unix.EBADF
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
