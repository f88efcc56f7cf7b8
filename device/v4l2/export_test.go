package v4l2

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2/dmabuftest"
	"github.com/onair/onair/media"
)

func TestExportBuffers(t *testing.T) {
	tests := []struct {
		name       string
		format     media.PixelFormat
		rowPadding int
	}{
		{"YUYV", media.YUYV, 0},
		{"I420", media.I420, 0},
		{"NV12 padded", media.NV12, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			heap := dmabuftest.NewHeap(func(v string) { t.Error(v) })
			cfg := FakeConfig{
				Formats:    []FakeFormat{{Format: tt.format, Sizes: []FakeSize{{Width: 640, Height: 480}}}},
				RowPadding: tt.rowPadding,
				DMABufs:    heap,
			}
			cam := NewFakeCamera(cfg)
			src, err := NewSource(cam, "/dev/video0", Config{Width: 640, Height: 480, Formats: []media.PixelFormat{tt.format}}, device.NewClock())
			if err != nil {
				t.Fatal(err)
			}
			before := read(t, src)
			if before.DMABuf != (media.DMABuf{}) {
				t.Fatalf("frame before ExportBuffers carries %+v", before.DMABuf)
			}
			if err := src.ExportBuffers(); err != nil {
				t.Fatal(err)
			}
			if err := src.ExportBuffers(); err != nil {
				t.Fatalf("second ExportBuffers: %v", err)
			}
			mode := src.Mode()
			if open := heap.Open(); open != mode.Buffers {
				t.Fatalf("%d descriptors for %d buffers", open, mode.Buffers)
			}
			fds := map[int]bool{}
			for i := 0; i < 2*mode.Buffers; i++ {
				frame := read(t, src)
				d := frame.DMABuf
				if d.Size == 0 || d.Stride != mode.Stride || d.Offset != 0 || d.BytesUsed < len(frame.Data) {
					t.Fatalf("frame %d: dma-buf %+v (stride %d, %d bytes of picture)", i, d, mode.Stride, len(frame.Data))
				}
				fds[d.FD] = true
				mem, memory, err := heap.Lookup(d.FD)
				if err != nil || memory != dmabuftest.Contiguous || len(mem) != d.Size {
					t.Fatalf("frame %d: dma-buf %d: %v, %v, %d bytes", i, d.FD, err, memory, len(mem))
				}
				// The dma-buf holds the picture the frame shows, with the
				// driver's stride.
				rowBytes := packedStride(tt.format, 640)
				for _, row := range []int{0, 1, 479} {
					if !bytes.Equal(mem[row*d.Stride:][:rowBytes], frame.Data[row*rowBytes:][:rowBytes]) {
						t.Fatalf("frame %d: row %d of the dma-buf differs from the frame", i, row)
					}
				}
			}
			if len(fds) != mode.Buffers {
				t.Errorf("frames came in %d dma-bufs, the camera has %d buffers", len(fds), mode.Buffers)
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			if open := heap.Open(); open != 0 {
				t.Errorf("%d descriptors open after Close", open)
			}
		})
	}
}

func TestExportBuffersRefused(t *testing.T) {
	t.Run("driver cannot export", func(t *testing.T) {
		src, _, _ := openFake(t, FakeConfig{}, Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.YUYV}})
		if err := src.ExportBuffers(); !errors.Is(err, unix.ENOTTY) {
			t.Fatalf("ExportBuffers without EXPBUF: %v, want ENOTTY", err)
		}
		if frame := read(t, src); frame.DMABuf != (media.DMABuf{}) {
			t.Fatalf("frame carries %+v after a failed export", frame.DMABuf)
		}
	})
	t.Run("compressed", func(t *testing.T) {
		heap := dmabuftest.NewHeap(nil)
		src, _, _ := openFake(t, FakeConfig{Formats: []FakeFormat{{Format: media.MJPEG}}, DMABufs: heap},
			Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.MJPEG}})
		if err := src.ExportBuffers(); err == nil {
			t.Fatal("ExportBuffers of MJPEG frames succeeded")
		}
		if heap.Open() != 0 {
			t.Fatal("descriptors left open")
		}
	})
}

func TestFakeExpBuf(t *testing.T) {
	heap := dmabuftest.NewHeap(nil)
	cam := NewFakeCamera(FakeConfig{DMABufs: heap, DMABufMemory: dmabuftest.Vmalloc})
	req := v4l2RequestBuffers{Count: 2, Type: bufTypeVideoCapture, Memory: memoryMMAP}
	if err := cam.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		exp  v4l2ExportBuffer
		want error
	}{
		{"ok", v4l2ExportBuffer{Type: bufTypeVideoCapture, Index: 1, Flags: unix.O_CLOEXEC | unix.O_RDWR}, nil},
		{"type", v4l2ExportBuffer{Type: 2, Index: 0}, unix.EINVAL},
		{"index", v4l2ExportBuffer{Type: bufTypeVideoCapture, Index: 2}, unix.EINVAL},
		{"plane", v4l2ExportBuffer{Type: bufTypeVideoCapture, Plane: 1}, unix.EINVAL},
		{"flags", v4l2ExportBuffer{Type: bufTypeVideoCapture, Flags: unix.O_NONBLOCK}, unix.EINVAL},
	}
	for _, tt := range tests {
		err := cam.Ioctl(vidiocExpBuf, unsafe.Pointer(&tt.exp))
		if !errors.Is(err, tt.want) && (err != nil || tt.want != nil) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if tt.want == nil {
			if _, memory, err := heap.Lookup(int(tt.exp.FD)); err != nil || memory != dmabuftest.Vmalloc {
				t.Errorf("%s: exported %d: %v %v", tt.name, tt.exp.FD, memory, err)
			}
			if err := cam.CloseDMABuf(int(tt.exp.FD)); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := cam.CloseDMABuf(int(tt.exp.FD)); !errors.Is(err, unix.EBADF) {
				t.Errorf("second close: %v, want EBADF", err)
			}
		}
	}
	if err := NewFakeCamera(FakeConfig{}).Ioctl(vidiocExpBuf, unsafe.Pointer(&v4l2ExportBuffer{})); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("EXPBUF without a dma-buf table: %v, want ENOTTY", err)
	}
}
