package v4l2

import (
	"errors"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The real Device has no camera to talk to here, so these tests run its
// system calls on descriptors that behave alike: a pipe for poll, a memfd
// for mmap. They also run under qemu-user for arm and arm64.

func TestFileDevicePoll(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	dev := &fileDevice{fd: p[0]}

	start := time.Now()
	ready, err := dev.Poll(20 * time.Millisecond)
	if ready || err != nil {
		t.Fatalf("Poll on an empty pipe = %v, %v; want a timeout", ready, err)
	}
	if took := time.Since(start); took < 10*time.Millisecond {
		t.Fatalf("Poll returned after %v, before its timeout", took)
	}
	if _, err := unix.Write(p[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	if ready, err := dev.Poll(time.Second); !ready || err != nil {
		t.Fatalf("Poll with data = %v, %v; want ready", ready, err)
	}
	// A hung-up peer is an error condition: reported as ready so that the
	// next ioctl can say what happened, as with an unplugged camera.
	var b [1]byte
	unix.Read(p[0], b[:])
	unix.Close(p[1])
	p[1] = -1
	if ready, err := dev.Poll(time.Second); !ready || err != nil {
		t.Fatalf("Poll after hang-up = %v, %v; want ready", ready, err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); !errors.Is(err, unix.EBADF) {
		t.Fatalf("second Close = %v, want EBADF", err)
	}
}

func TestFileDeviceIoctlKeepsErrno(t *testing.T) {
	dev, err := OpenNode("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	var capability v4l2Capability
	err = dev.Ioctl(vidiocQueryCap, unsafe.Pointer(&capability))
	// The kernel says ENOTTY; qemu-user, which does not know V4L2
	// requests, answers ENOSYS instead. Either way it is a bare errno.
	var errno unix.Errno
	if !errors.As(err, &errno) || (errno != unix.ENOTTY && errno != unix.ENOSYS) {
		t.Fatalf("QUERYCAP on /dev/null = %v, want ENOTTY", err)
	}
}

func TestFileDeviceMmap(t *testing.T) {
	fd, err := unix.MemfdCreate("v4l2-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	const size = 3 * 4096
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	dev := &fileDevice{fd: fd}
	defer dev.Close()
	// A buffer's cookie is page-aligned, like the ones videobuf2 hands out.
	mem, err := dev.Mmap(4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	mem[0] = 0x5a
	var b [1]byte
	if _, err := unix.Pread(fd, b[:], 4096); err != nil || b[0] != 0x5a {
		t.Fatalf("write through the mapping not shared: %v %#x", err, b[0])
	}
	if err := dev.Munmap(mem); err != nil {
		t.Fatal(err)
	}
}
