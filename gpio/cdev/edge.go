package cdev

import (
	"errors"
	"fmt"
	"time"
)

// EventBuffer is how many edges the kernel is asked to keep for a line
// nobody reads (its default is 16; it allows up to 1024). 256 edges are a
// few seconds of a badly bouncing contact, long enough for any stall of the
// daemon that still leaves it working.
const EventBuffer = 256

// ErrClosed is returned by a Line used after Close.
var ErrClosed = errors.New("gpio line closed")

// ErrUnsupported is returned by Open where there is no GPIO character
// device (anything but Linux).
var ErrUnsupported = errors.New("gpio character device: only on Linux")

// Edge is one edge of an input line as the kernel recorded it.
type Edge struct {
	// Rising: the line went high (it read high when the kernel handled the
	// interrupt); otherwise it went low.
	Rising bool
	// At is when the edge happened: the kernel's CLOCK_MONOTONIC, taken in
	// the interrupt handler, comparable with Line.Now.
	At time.Duration
	// Seq is the line's sequence number of the edge, from 1 after each In.
	Seq uint32
	// Lost is how many edges the kernel dropped just before this one because
	// its queue was full (the reader was too slow).
	Lost uint32
}

// String returns the edge as "rising@12.345678s" with a note of lost edges.
func (e Edge) String() string {
	dir := "falling"
	if e.Rising {
		dir = "rising"
	}
	if e.Lost > 0 {
		return fmt.Sprintf("%s@%v#%d (%d lost before)", dir, e.At, e.Seq, e.Lost)
	}
	return fmt.Sprintf("%s@%v#%d", dir, e.At, e.Seq)
}
