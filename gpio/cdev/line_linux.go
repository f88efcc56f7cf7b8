//go:build linux

package cdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"periph.io/x/conn/v3/gpio"
)

// Flags of struct gpio_v2_line_config (include/uapi/linux/gpio.h); x/sys
// has the structs and ioctl numbers but not these.
const (
	flagInput         = 1 << 2
	flagEdgeRising    = 1 << 4
	flagEdgeFalling   = 1 << 5
	flagBiasPullUp    = 1 << 8
	flagBiasPullDown  = 1 << 9
	flagBiasDisabled  = 1 << 10
	eventSize         = int(unsafe.Sizeof(unix.GPIOV2LineEvent{}))
	eventsPerRead     = 16
	consumerNameLimit = len(unix.GPIOV2LineRequest{}.Consumer) - 1
)

// Line is one input line of a GPIO chip, requested through the character
// device. It implements gpio.PinIn; NextEdge and Now give the kernel's record
// of each edge. Its methods may be called from any goroutine, but only one
// goroutine may wait for edges at a time.
type Line struct {
	name   string
	chip   string // device path, /dev/gpiochip0
	offset int

	mu      sync.Mutex
	waitEnd *sync.Cond // broadcast when a wait ends
	fd      int        // the line request, -1 until In
	haltFD  int        // eventfd: readable while halted
	pull    gpio.Pull
	edge    gpio.Edge
	waiting bool
	closed  bool
	readErr error

	// Owned by the one waiting goroutine (waiting is set) or by whoever
	// holds mu while nobody waits.
	buf      [eventsPerRead * eventSize]byte
	pos, end int
	lastSeq  uint32
	pollFDs  [2]unix.PollFd
}

// Open returns line offset of the GPIO chip at chipPath (/dev/gpiochip0),
// named name in logs and in Name. The line is not requested until In, as
// with periph's lines.
func Open(chipPath string, offset int, name string) (*Line, error) {
	chipFD, err := unix.Open(chipPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", chipPath, err)
	}
	defer unix.Close(chipFD)
	var info unix.GPIOChipInfo
	if err := ioctl(chipFD, unix.GPIO_GET_CHIPINFO_IOCTL, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("%s: chip info: %w", chipPath, err)
	}
	if offset < 0 || offset >= int(info.Lines) {
		return nil, fmt.Errorf("%s has lines 0 to %d, not %d", chipPath, info.Lines-1, offset)
	}
	haltFD, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("line %s: eventfd: %w", name, err)
	}
	l := &Line{name: name, chip: chipPath, offset: offset, fd: -1, haltFD: haltFD}
	l.waitEnd = sync.NewCond(&l.mu)
	return l, nil
}

// In implements gpio.PinIn: it requests the line as an input with the bias
// of pull (PullNoChange leaves it as it is, Float disables it) and edge
// detection, with room for EventBuffer queued edges. Each call makes a new
// request, which drops queued edges, restarts the sequence numbers and
// clears a Halt. A wait in progress returns false first.
func (l *Line) In(pull gpio.Pull, edge gpio.Edge) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("line %s: %w", l.name, ErrClosed)
	}
	for l.waiting {
		l.signalHaltLocked()
		l.waitEnd.Wait()
	}
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = uint32(l.offset)
	req.Num_lines = 1
	copy(req.Consumer[:consumerNameLimit], consumerName())
	req.Config.Flags = flagInput
	switch pull {
	case gpio.PullUp:
		req.Config.Flags |= flagBiasPullUp
	case gpio.PullDown:
		req.Config.Flags |= flagBiasPullDown
	case gpio.Float:
		req.Config.Flags |= flagBiasDisabled
	}
	switch edge {
	case gpio.RisingEdge:
		req.Config.Flags |= flagEdgeRising
	case gpio.FallingEdge:
		req.Config.Flags |= flagEdgeFalling
	case gpio.BothEdges:
		req.Config.Flags |= flagEdgeRising | flagEdgeFalling
	}
	if edge != gpio.NoEdge {
		req.Event_buffer_size = EventBuffer
	}
	// The line is released before it is requested again: the kernel gives a
	// line to one request at a time.
	if l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
	chipFD, err := unix.Open(l.chip, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("line %s: open %s: %w", l.name, l.chip, err)
	}
	err = ioctl(chipFD, unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(&req))
	unix.Close(chipFD)
	if err != nil {
		return fmt.Errorf("line %s: request %s line %d as input with %s, %s: %w", l.name, l.chip, l.offset, pull, edge, err)
	}
	l.fd = int(req.Fd)
	if err := unix.SetNonblock(l.fd, true); err != nil {
		unix.Close(l.fd)
		l.fd = -1
		return fmt.Errorf("line %s: set non-blocking: %w", l.name, err)
	}
	l.pull, l.edge = pull, edge
	l.pos, l.end, l.lastSeq = 0, 0, 0
	l.clearHaltLocked()
	return nil
}

// consumerName is what gpioinfo shows as the line's user: the program and
// its process ID, cut to the kernel's 31 bytes.
func consumerName() string {
	s := fmt.Sprintf("%s@%d", filepath.Base(os.Args[0]), os.Getpid())
	if len(s) > consumerNameLimit {
		s = s[:consumerNameLimit]
	}
	return s
}

// Read implements gpio.PinIn: the line's level now. A line not yet
// requested is requested as an input without edges and without changing its
// bias. A failed read gives Low; Err tells why.
func (l *Line) Read() gpio.Level {
	l.mu.Lock()
	requested := l.fd >= 0
	l.mu.Unlock()
	if !requested {
		if err := l.In(gpio.PullNoChange, gpio.NoEdge); err != nil {
			l.setReadErr(err)
			return gpio.Low
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.readErr = fmt.Errorf("line %s: read: %w", l.name, ErrClosed)
		return gpio.Low
	}
	values := unix.GPIOV2LineValues{Mask: 1}
	if err := ioctl(l.fd, unix.GPIO_V2_LINE_GET_VALUES_IOCTL, unsafe.Pointer(&values)); err != nil {
		l.readErr = fmt.Errorf("line %s: read: %w", l.name, err)
		return gpio.Low
	}
	return values.Bits&1 != 0
}

func (l *Line) setReadErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readErr = err
}

// Err reports the last failed Read, which gpio.PinIn cannot return.
func (l *Line) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readErr
}

// Now is the kernel's CLOCK_MONOTONIC, the clock of Edge.At.
func (l *Line) Now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux; this is not reached.
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return time.Duration(ts.Nano())
}

// NextEdge returns the oldest edge the kernel has queued, waiting at most
// timeout for one; a timeout of zero or less only looks. It returns false
// without an error when the time ran out or the line was halted, and an
// error when the line is not requested with edges, is closed, or its device
// failed (ENODEV: the chip went away).
func (l *Line) NextEdge(timeout time.Duration) (Edge, bool, error) {
	return l.next(max(timeout, 0))
}

// next waits up to timeout, forever when it is negative.
func (l *Line) next(timeout time.Duration) (Edge, bool, error) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return Edge{}, false, fmt.Errorf("line %s: %w", l.name, ErrClosed)
	case l.fd < 0 || l.edge == gpio.NoEdge:
		l.mu.Unlock()
		return Edge{}, false, fmt.Errorf("line %s: wait for an edge: not requested with edge detection (In)", l.name)
	case l.waiting:
		l.mu.Unlock()
		return Edge{}, false, fmt.Errorf("line %s: wait for an edge: another wait is in progress", l.name)
	case l.pos < l.end:
		// Read with the previous batch.
		e := l.parseLocked()
		l.mu.Unlock()
		return e, true, nil
	}
	l.waiting = true
	fd, haltFD := l.fd, l.haltFD
	l.mu.Unlock()

	n, err := l.waitAndRead(fd, haltFD, timeout)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting = false
	l.waitEnd.Broadcast()
	if err != nil {
		return Edge{}, false, fmt.Errorf("line %s: read edges: %w", l.name, err)
	}
	if n == 0 {
		return Edge{}, false, nil
	}
	l.pos, l.end = 0, n
	return l.parseLocked(), true, nil
}

// waitAndRead waits in ppoll for an edge or a Halt and reads a batch of
// edges into buf. It returns 0 bytes after a timeout or a Halt.
func (l *Line) waitAndRead(fd, haltFD int, timeout time.Duration) (int, error) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		l.pollFDs[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		l.pollFDs[1] = unix.PollFd{Fd: int32(haltFD), Events: unix.POLLIN}
		var ts *unix.Timespec
		if timeout >= 0 {
			remaining := unix.NsecToTimespec(max(time.Until(deadline), 0).Nanoseconds())
			ts = &remaining
		}
		_, err := unix.Ppoll(l.pollFDs[:], ts, nil)
		if errors.Is(err, unix.EINTR) {
			// The Go runtime preempts with signals; the wait goes on for
			// what is left of it.
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll: %w", err)
		}
		if l.pollFDs[1].Revents != 0 {
			return 0, nil // halted
		}
		if l.pollFDs[0].Revents&unix.POLLNVAL != 0 {
			return 0, unix.EBADF
		}
		if l.pollFDs[0].Revents == 0 {
			return 0, nil // timed out
		}
		// POLLIN, or POLLERR/POLLHUP when the chip went away: the read
		// returns the edges or the errno that says what happened.
		n, err := unix.Read(fd, l.buf[:])
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			if timeout >= 0 && !time.Now().Before(deadline) {
				return 0, nil
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if n%eventSize != 0 {
			return 0, fmt.Errorf("read %d bytes, not a whole number of %d-byte events", n, eventSize)
		}
		return n, nil
	}
}

// parseLocked decodes the next struct gpio_v2_line_event of the batch.
func (l *Line) parseLocked() Edge {
	e := decodeEvent(l.buf[l.pos:l.pos+eventSize], l.lastSeq)
	l.pos += eventSize
	l.lastSeq = e.Seq
	return e
}

// decodeEvent decodes one struct gpio_v2_line_event (timestamp_ns, id,
// offset, seqno, line_seqno, padding) following the edge numbered lastSeq.
func decodeEvent(b []byte, lastSeq uint32) Edge {
	var ev unix.GPIOV2LineEvent
	ev.Timestamp_ns = binary.NativeEndian.Uint64(b[unsafe.Offsetof(ev.Timestamp_ns):])
	ev.Id = binary.NativeEndian.Uint32(b[unsafe.Offsetof(ev.Id):])
	ev.Line_seqno = binary.NativeEndian.Uint32(b[unsafe.Offsetof(ev.Line_seqno):])
	e := Edge{
		Rising: ev.Id == unix.GPIO_V2_LINE_EVENT_RISING_EDGE,
		At:     time.Duration(ev.Timestamp_ns),
		Seq:    ev.Line_seqno,
	}
	if e.Seq > lastSeq+1 {
		e.Lost = e.Seq - lastSeq - 1
	}
	return e
}

// WaitForEdge implements gpio.PinIn: -1 waits forever, 0 only looks. Errors
// read as false; NextEdge returns them.
func (l *Line) WaitForEdge(timeout time.Duration) bool {
	if timeout < 0 {
		timeout = -1
	}
	_, ok, _ := l.next(timeout)
	return ok
}

// Halt implements conn.Resource: a wait in progress returns false, and so
// does every wait after it until the next In. Unlike gpioioctl's, a Halt just
// before a wait starts is not lost.
func (l *Line) Halt() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	return l.signalHaltLocked()
}

func (l *Line) signalHaltLocked() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(l.haltFD, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("line %s: halt: %w", l.name, err)
	}
	return nil
}

func (l *Line) clearHaltLocked() {
	var count [8]byte
	_, _ = unix.Read(l.haltFD, count[:]) // EAGAIN: not halted
}

// Close releases the line. A wait in progress returns first; Close waits
// for it.
func (l *Line) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	_ = l.signalHaltLocked()
	for l.waiting {
		l.waitEnd.Wait()
	}
	var err error
	if l.fd >= 0 {
		err = unix.Close(l.fd)
		l.fd = -1
	}
	unix.Close(l.haltFD)
	if err != nil {
		return fmt.Errorf("line %s: close: %w", l.name, err)
	}
	return nil
}

// String implements conn.Resource.
func (l *Line) String() string { return l.name }

// Name implements pin.Pin.
func (l *Line) Name() string { return l.name }

// Number implements pin.Pin: the line's offset on its chip.
func (l *Line) Number() int { return l.offset }

// Function implements pin.Pin.
func (l *Line) Function() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return ""
	}
	return "In"
}

// Pull implements gpio.PinIn: the pull of the last In.
func (l *Line) Pull() gpio.Pull {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pull
}

// DefaultPull implements gpio.PinIn; the character device cannot tell.
func (l *Line) DefaultPull() gpio.Pull { return gpio.PullNoChange }

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

var _ gpio.PinIn = (*Line)(nil)
