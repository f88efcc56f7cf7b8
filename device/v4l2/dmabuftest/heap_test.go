package dmabuftest

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHeap(t *testing.T) {
	var broken []string
	h := NewHeap(func(v string) { broken = append(broken, v) })
	data := make([]byte, 16)
	fd := h.Export(data, Contiguous, "camera buffer 0")
	if other := h.Export(data, Vmalloc, "camera buffer 0"); other == fd {
		t.Fatal("two exports share a descriptor")
	}
	got, memory, err := h.Lookup(fd)
	if err != nil || memory != Contiguous || &got[0] != &data[0] {
		t.Fatalf("Lookup: %v %v", memory, err)
	}
	if _, _, err := h.Lookup(fd + 100); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Lookup of a stray descriptor: %v", err)
	}

	// The rule kept: filled, handed out, lent, returned, filled again.
	h.Filling(fd, true)
	h.Filling(fd, false)
	h.Lend(fd, "encoder")
	if h.Lent(fd) != 1 {
		t.Fatal("not lent")
	}
	h.Return(fd)
	h.Filling(fd, true)
	if len(broken) != 0 {
		t.Fatalf("violations on a correct hand-off: %q", broken)
	}
	// And broken both ways.
	h.Lend(fd, "encoder")
	h.Return(fd)
	h.Filling(fd, false)
	h.Lend(fd, "encoder")
	h.Filling(fd, true)
	if len(broken) != 2 || !strings.Contains(broken[0], "queued to be filled") || !strings.Contains(broken[1], "still holds it") {
		t.Fatalf("violations %q", broken)
	}
	if len(h.Violations()) != 2 {
		t.Fatalf("Violations() = %q", h.Violations())
	}

	if h.Open() != 2 {
		t.Fatalf("%d open", h.Open())
	}
	if err := h.Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(fd); !errors.Is(err, unix.EBADF) {
		t.Fatalf("second Close: %v", err)
	}
}
