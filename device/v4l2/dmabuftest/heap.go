// Package dmabuftest is a fake dma-buf table shared by the fake capture
// device (device/v4l2's FakeCamera, the exporter) and the fake encoder
// (encoder/v4l2m2m's FakeDevice, the importer). It hands out fake file
// descriptors for exported buffers, tells an importer what kind of memory
// lies behind one, and checks the rule that makes zero-copy safe: a buffer
// is either with its exporter (queued on the camera, being filled) or lent
// to an importer (queued on the encoder, being read), never both.
package dmabuftest

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Memory is what backs an exported buffer, which decides who can import it.
type Memory int

const (
	// Contiguous is physically contiguous memory (videobuf2-dma-contig:
	// unicam, the TC358743 bridge, vivid with allocators=1). The Pi's
	// encoder imports it.
	Contiguous Memory = iota + 1
	// Vmalloc is scattered pages (videobuf2-vmalloc: UVC webcams, vivid by
	// default). Exporting works; the Pi's encoder, which has no IOMMU,
	// refuses to import it.
	Vmalloc
)

// String names the memory as the kernel's allocator does.
func (m Memory) String() string {
	switch m {
	case Contiguous:
		return "dma-contig"
	case Vmalloc:
		return "vmalloc"
	default:
		return "unknown"
	}
}

// firstFD is the first fake descriptor: far above what a test process has
// open, so a fake descriptor passed to a real system call fails instead of
// hitting a real file.
const firstFD = 1 << 20

// Heap is a table of fake dma-bufs. The zero value is not usable: make one
// with NewHeap and give the same Heap to the exporter and the importer.
type Heap struct {
	mu         sync.Mutex
	next       int
	bufs       map[int]*buffer
	violations []string
	// onViolation is called (outside the lock) for every broken rule.
	onViolation func(string)
}

type buffer struct {
	data     []byte
	memory   Memory
	exporter string
	// filling: the exporter has the buffer queued to be filled.
	filling bool
	// lent counts importers holding the buffer (queued for reading).
	lent int
}

// NewHeap makes an empty table. onViolation, when not nil, is called with
// a description of every ownership rule broken (tests pass t.Error);
// Violations lists them in any case.
func NewHeap(onViolation func(string)) *Heap {
	return &Heap{next: firstFD, bufs: map[int]*buffer{}, onViolation: onViolation}
}

// Export makes a descriptor for data, memory the exporter's kind, as
// VIDIOC_EXPBUF does. name says whose buffer it is, for messages.
func (h *Heap) Export(data []byte, memory Memory, name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	fd := h.next
	h.next++
	h.bufs[fd] = &buffer{data: data, memory: memory, exporter: name}
	return fd
}

// Close closes a descriptor made by Export: EBADF when it is not open.
func (h *Heap) Close(fd int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.bufs[fd]; !ok {
		return unix.EBADF
	}
	delete(h.bufs, fd)
	return nil
}

// Open counts the descriptors not closed yet (a source must close what it
// exported).
func (h *Heap) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bufs)
}

// Lookup returns the memory behind fd and its kind; EBADF when fd is not
// an open export (what dma_buf_get says of a stray descriptor).
func (h *Heap) Lookup(fd int) ([]byte, Memory, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.bufs[fd]
	if !ok {
		return nil, 0, unix.EBADF
	}
	return b.data, b.memory, nil
}

// Filling records that the exporter queued (true) or dequeued (false) the
// buffer behind fd. Queuing a buffer an importer still holds is the bug
// this package exists to catch: the camera would overwrite a picture the
// encoder is reading.
func (h *Heap) Filling(fd int, filling bool) {
	h.change(fd, func(b *buffer) (broken string) {
		if filling && b.lent > 0 {
			broken = fmt.Sprintf("%s queued dma-buf %d to be filled while an importer still holds it", b.exporter, fd)
		}
		b.filling = filling
		return broken
	})
}

// Lend records that an importer queued the buffer behind fd for reading;
// the exporter must not be filling it.
func (h *Heap) Lend(fd int, importer string) {
	h.change(fd, func(b *buffer) (broken string) {
		if b.filling {
			broken = fmt.Sprintf("%s imported dma-buf %d of %s while it is queued to be filled", importer, fd, b.exporter)
		}
		b.lent++
		return broken
	})
}

// change applies f to the buffer behind fd under the lock (nothing for an
// unknown fd) and records the rule f reports broken, if any.
func (h *Heap) change(fd int, f func(b *buffer) (broken string)) {
	h.mu.Lock()
	b, ok := h.bufs[fd]
	if !ok {
		h.mu.Unlock()
		return
	}
	broken := f(b)
	h.mu.Unlock()
	h.violate(broken)
}

// Return records that an importer is done with the buffer behind fd.
func (h *Heap) Return(fd int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.bufs[fd]; ok && b.lent > 0 {
		b.lent--
	}
}

// Lent reports how many importers hold the buffer behind fd.
func (h *Heap) Lent(fd int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.bufs[fd]; ok {
		return b.lent
	}
	return 0
}

// Violations lists the ownership rules broken so far.
func (h *Heap) Violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.violations...)
}

func (h *Heap) violate(what string) {
	if what == "" {
		return
	}
	h.mu.Lock()
	h.violations = append(h.violations, what)
	h.mu.Unlock()
	if h.onViolation != nil {
		h.onViolation(what)
	}
}
