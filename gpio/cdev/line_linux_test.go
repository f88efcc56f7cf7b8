//go:build linux

package cdev

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pipeLine is a Line whose request is the read end of a pipe, so the tests
// write struct gpio_v2_line_event records the way the kernel queues them and
// check the waiting, decoding, Halt and Close around them. Only the two
// ioctls (request, values) need a real chip; the VM rig runs those.
func pipeLine(t *testing.T) (*Line, func(events ...unix.GPIOV2LineEvent)) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	haltFD, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	l := &Line{name: "pipe", chip: "/dev/null", fd: fds[0], haltFD: haltFD, edge: gpio.BothEdges}
	l.waitEnd = sync.NewCond(&l.mu)
	t.Cleanup(func() {
		l.Close()
		unix.Close(fds[1])
	})
	write := func(events ...unix.GPIOV2LineEvent) {
		b := make([]byte, 0, len(events)*eventSize)
		for _, ev := range events {
			rec := make([]byte, eventSize)
			binary.NativeEndian.PutUint64(rec[0:], ev.Timestamp_ns)
			binary.NativeEndian.PutUint32(rec[8:], ev.Id)
			binary.NativeEndian.PutUint32(rec[12:], ev.Offset)
			binary.NativeEndian.PutUint32(rec[16:], ev.Seqno)
			binary.NativeEndian.PutUint32(rec[20:], ev.Line_seqno)
			b = append(b, rec...)
		}
		if _, err := unix.Write(fds[1], b); err != nil {
			t.Fatal(err)
		}
	}
	return l, write
}

func event(seq uint32, at time.Duration, rising bool) unix.GPIOV2LineEvent {
	id := uint32(unix.GPIO_V2_LINE_EVENT_FALLING_EDGE)
	if rising {
		id = unix.GPIO_V2_LINE_EVENT_RISING_EDGE
	}
	return unix.GPIOV2LineEvent{Timestamp_ns: uint64(at), Id: id, Offset: 3, Seqno: seq, Line_seqno: seq}
}

func TestNextEdgeDecodesQueuedEdges(t *testing.T) {
	l, write := pipeLine(t)
	// Queued long before the read, in two batches: the record, not the
	// reading, says when each edge happened.
	write(event(1, 5*time.Second, true), event(2, 5*time.Second+100*time.Millisecond, false))
	write(event(5, 7*time.Second, true)) // 3 and 4 dropped by a full queue
	want := []Edge{
		{Rising: true, At: 5 * time.Second, Seq: 1},
		{Rising: false, At: 5*time.Second + 100*time.Millisecond, Seq: 2},
		{Rising: true, At: 7 * time.Second, Seq: 5, Lost: 2},
	}
	for i, w := range want {
		got, ok, err := l.NextEdge(0)
		if err != nil || !ok || got != w {
			t.Fatalf("edge %d = %v, %v, %v; want %v", i, got, ok, err, w)
		}
	}
	if e, ok, err := l.NextEdge(0); ok || err != nil {
		t.Fatalf("empty queue gave %v, %v, %v", e, ok, err)
	}
	start := time.Now()
	if _, ok, err := l.NextEdge(20 * time.Millisecond); ok || err != nil {
		t.Fatalf("wait on an empty queue = %v, %v", ok, err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("20 ms wait returned after %v", waited)
	}
}

func TestHaltIsNotLost(t *testing.T) {
	l, write := pipeLine(t)
	// Before the wait: the wait returns at once, and so does the next.
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, ok, err := l.NextEdge(time.Hour); ok || err != nil {
			t.Fatalf("halted wait = %v, %v", ok, err)
		}
	}
	if l.WaitForEdge(-1) {
		t.Fatal("halted WaitForEdge(-1) reported an edge")
	}
	// A queued edge still comes after a Halt is cleared (In does that; here
	// by hand, In needs a chip).
	l.clearHaltLocked()
	write(event(1, time.Second, true))
	if !l.WaitForEdge(time.Hour) {
		t.Fatal("queued edge not reported")
	}
}

func TestHaltAndCloseEndAWait(t *testing.T) {
	for _, stop := range []string{"halt", "close"} {
		t.Run(stop, func(t *testing.T) {
			l, _ := pipeLine(t)
			done := make(chan error)
			go func() {
				_, ok, err := l.NextEdge(time.Hour)
				if ok {
					err = errors.New("edge reported")
				}
				done <- err
			}()
			// Nothing tells when the goroutine is inside ppoll; either way
			// the wait must end, since a Halt is never lost.
			time.Sleep(10 * time.Millisecond)
			if stop == "halt" {
				_ = l.Halt()
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
				t.Fatal(err)
			}
			if stop == "close" {
				if _, _, err := l.NextEdge(0); !errors.Is(err, ErrClosed) {
					t.Fatalf("NextEdge after Close: %v, want ErrClosed", err)
				}
			}
		})
	}
}

func TestNextEdgeRules(t *testing.T) {
	l, _ := pipeLine(t)
	l.edge = gpio.NoEdge
	if _, _, err := l.NextEdge(0); err == nil || !strings.Contains(err.Error(), "edge detection") {
		t.Fatalf("NextEdge without edges: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("/dev/gpiochip-none", 3, "x"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open of a missing chip: %v, want ENOENT", err)
	}
	// ENOTTY from the kernel; qemu-user (make test) answers ioctls it does
	// not know with ENOSYS.
	if _, err := Open("/dev/null", 3, "x"); !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.ENOSYS) {
		t.Errorf("Open of /dev/null: %v, want ENOTTY", err)
	}
}
