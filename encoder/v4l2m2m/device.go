package v4l2m2m

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is an open V4L2 memory-to-memory device node: the system calls the
// encoder needs. The real one is a file descriptor (OpenNode); FakeDevice is
// the test double. Errors are unix.Errno values as the kernel returns them,
// so callers can test them with errors.Is.
type Device interface {
	// Ioctl issues a V4L2 request; arg points at the request's struct.
	Ioctl(req uintptr, arg unsafe.Pointer) error
	// Mmap maps length bytes of driver memory at the cookie that
	// VIDIOC_QUERYBUF returned in m.mem_offset, shared and read-write.
	Mmap(offset int64, length int) ([]byte, error)
	// Munmap releases a mapping made by Mmap.
	Munmap(b []byte) error
	// Poll waits at most timeout for one of events (unix.POLLIN: a coded
	// buffer is done on the CAPTURE queue; unix.POLLOUT: a raw buffer is
	// done on the OUTPUT queue) and returns the events that happened,
	// including unix.POLLERR. It returns 0 only when timeout passed.
	Poll(events int16, timeout time.Duration) (int16, error)
	// Close closes the device node.
	Close() error
}

// Opener opens a device node by path; OpenNode is the real one.
type Opener func(path string) (Device, error)

// fileDevice is a Device backed by a real V4L2 file descriptor.
type fileDevice struct {
	fd int
	// pollFDs is kept here so that polling allocates nothing per frame.
	pollFDs [1]unix.PollFd
}

// OpenNode opens a V4L2 device node (/dev/videoN). The node is opened
// non-blocking: the encoder waits in poll(2), with a timeout, never inside
// VIDIOC_DQBUF, so a wedged firmware becomes an error instead of a hang.
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
		// The Go runtime preempts with signals; an interrupted ioctl is
		// repeated, as the kernel asks.
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

func (d *fileDevice) Poll(events int16, timeout time.Duration) (int16, error) {
	deadline := time.Now().Add(timeout)
	for {
		d.pollFDs[0] = unix.PollFd{Fd: int32(d.fd), Events: events}
		ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
		n, err := unix.Poll(d.pollFDs[:], ms)
		if errors.Is(err, unix.EINTR) {
			// A signal is not the timeout: wait out the rest.
			if timeout = time.Until(deadline); timeout > 0 {
				continue
			}
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, nil
		}
		revents := d.pollFDs[0].Revents
		if revents&unix.POLLNVAL != 0 {
			return 0, unix.EBADF
		}
		return revents, nil
	}
}

func (d *fileDevice) Close() error {
	if d.fd < 0 {
		return unix.EBADF
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
