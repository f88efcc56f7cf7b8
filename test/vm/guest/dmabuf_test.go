package guest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/media"
)

// TestDmabufExport exports vivid's capture buffers (VIDIOC_EXPBUF) and
// checks the export against the real kernel: every frame names a dma-buf
// descriptor that is open and is a dma-buf, one per buffer, and mapping
// that descriptor shows the very bytes the capture mapping shows. The
// import side (the Pi's encoder) has no driver in the VM: it stays on the
// fake. vivid exports whatever its allocators parameter gives it (0, the
// default the VM loads it with, is vmalloc; 1 is dma-contig): the export
// works with both, the Pi's encoder could import only the second.
func TestDmabufExport(t *testing.T) {
	inGuest(t)
	info := findVivid(t)
	if b, err := os.ReadFile("/sys/module/vivid/parameters/allocators"); err == nil {
		// One value per possible instance; the VM has the first.
		first, _, _ := strings.Cut(strings.TrimSpace(string(b)), ",")
		t.Logf("vivid instance 0 allocator %s (0 vmalloc, 1 dma-contig)", first)
	}
	for _, format := range []media.PixelFormat{media.YUYV, media.NV12} {
		t.Run(format.String(), func(t *testing.T) {
			src, err := v4l2.Open(info.Path, v4l2.Config{
				Width: 640, Height: 480, FPS: 30, Formats: []media.PixelFormat{format}, Logger: testLogger(t),
			}, device.NewClock())
			if err != nil {
				t.Fatalf("open %s: %v", info.Path, err)
			}
			defer src.Close()
			if err := src.ExportBuffers(); err != nil {
				t.Fatalf("export vivid's buffers: %v", err)
			}
			mode := src.Mode()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			fds := map[int]bool{}
			for i := 0; i < 2*mode.Buffers; i++ {
				frame, err := src.ReadVideo(ctx)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				d := frame.DMABuf
				if d.Size == 0 || d.Stride != mode.Stride {
					t.Fatalf("frame %d carries dma-buf %+v (mode stride %d)", i, d, mode.Stride)
				}
				checkDmabufFD(t, d)
				if !fds[d.FD] {
					fds[d.FD] = true
					checkDmabufBytes(t, frame, format)
				}
			}
			if len(fds) != mode.Buffers {
				t.Errorf("frames came in %d dma-bufs, vivid gave %d buffers", len(fds), mode.Buffers)
			}
			t.Logf("%s %dx%d: %d buffers exported, stride %d, dma-bufs %v", mode.FourCC, mode.Width, mode.Height, mode.Buffers, mode.Stride, fds)
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			for fd := range fds {
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); !errors.Is(err, unix.EBADF) {
					t.Errorf("dma-buf %d after Close: fstat says %v, want EBADF", fd, err)
				}
			}
		})
	}
}

// checkDmabufFD checks that the descriptor is open, is a dma-buf and has
// the size the frame says.
func checkDmabufFD(t *testing.T, d media.DMABuf) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(d.FD, &st); err != nil {
		t.Fatalf("fstat dma-buf %d: %v", d.FD, err)
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(d.FD))
	if err != nil {
		t.Fatalf("readlink of dma-buf %d: %v", d.FD, err)
	}
	// "/dmabuf:" since Linux 5.x's dma-buf file system, "anon_inode:dmabuf" before.
	if !strings.Contains(link, "dmabuf") {
		t.Fatalf("descriptor %d is %q, not a dma-buf", d.FD, link)
	}
	// A dma-buf's size is its file size, as lseek to the end reports:
	// videobuf2 exports whole pages, the buffer's length rounded up.
	end, err := unix.Seek(d.FD, 0, unix.SEEK_END)
	if err != nil {
		t.Fatalf("seek dma-buf %d: %v", d.FD, err)
	}
	if page := os.Getpagesize(); int(end) < d.Size || int(end) >= d.Size+page {
		t.Fatalf("dma-buf %d is %d bytes, the frame says its buffer is %d (pages of %d)", d.FD, end, d.Size, page)
	}
	if _, err := unix.Seek(d.FD, 0, unix.SEEK_SET); err != nil {
		t.Fatalf("seek dma-buf %d back: %v", d.FD, err)
	}
}

// checkDmabufBytes maps the frame's dma-buf and compares it, row by row,
// with the frame the capture mapping gave.
func checkDmabufBytes(t *testing.T, frame media.VideoFrame, format media.PixelFormat) {
	t.Helper()
	d := frame.DMABuf
	mem, err := unix.Mmap(d.FD, 0, d.Size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap dma-buf %d (%d bytes): %v", d.FD, d.Size, err)
	}
	defer unix.Munmap(mem)
	rowBytes, rows := frame.Width, frame.Height*3/2
	if format == media.YUYV {
		rowBytes, rows = frame.Width*2, frame.Height
	}
	for r := 0; r < rows; r++ {
		got := mem[d.Offset+r*d.Stride:][:rowBytes]
		want := frame.Data[r*rowBytes:][:rowBytes]
		if !bytes.Equal(got, want) {
			t.Fatalf("dma-buf %d row %d differs from the capture mapping", d.FD, r)
		}
	}
	if bytes.Count(frame.Data, frame.Data[:1]) == len(frame.Data) {
		t.Fatalf("frame is one byte value throughout: nothing to compare")
	}
}
