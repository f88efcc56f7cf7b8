//go:build linux

package cdev

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestABI checks the kernel structs as Go lays them out on this
// architecture against include/uapi/linux/gpio.h, which pads them to the same
// layout on 32 and 64 bits. make test runs it for arm and arm64 under
// qemu-user: Go aligns uint64 to 4 bytes on 32-bit arm, so a struct without
// the kernel's explicit padding would shift there.
func TestABI(t *testing.T) {
	var req unix.GPIOV2LineRequest
	var ev unix.GPIOV2LineEvent
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct gpio_v2_line_request)", unsafe.Sizeof(req), 592},
		{"offsetof(gpio_v2_line_request, consumer)", unsafe.Offsetof(req.Consumer), 256},
		{"offsetof(gpio_v2_line_request, config)", unsafe.Offsetof(req.Config), 288},
		{"offsetof(gpio_v2_line_request, num_lines)", unsafe.Offsetof(req.Num_lines), 560},
		{"offsetof(gpio_v2_line_request, event_buffer_size)", unsafe.Offsetof(req.Event_buffer_size), 564},
		{"offsetof(gpio_v2_line_request, fd)", unsafe.Offsetof(req.Fd), 588},
		{"sizeof(struct gpio_v2_line_config)", unsafe.Sizeof(req.Config), 272},
		{"offsetof(gpio_v2_line_config, attrs)", unsafe.Offsetof(req.Config.Attrs), 32},
		{"sizeof(struct gpio_v2_line_event)", unsafe.Sizeof(ev), 48},
		{"offsetof(gpio_v2_line_event, id)", unsafe.Offsetof(ev.Id), 8},
		{"offsetof(gpio_v2_line_event, line_seqno)", unsafe.Offsetof(ev.Line_seqno), 20},
		{"sizeof(struct gpio_v2_line_values)", unsafe.Sizeof(unix.GPIOV2LineValues{}), 16},
		{"sizeof(struct gpiochip_info)", unsafe.Sizeof(unix.GPIOChipInfo{}), 68},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	// _IOWR(0xB4, nr, size) on arm and arm64 (asm-generic/ioctl.h).
	iowr := func(nr, size uintptr) uint { return uint(3<<30 | size<<16 | 0xB4<<8 | nr) }
	if got, want := uint(unix.GPIO_V2_GET_LINE_IOCTL), iowr(0x07, unsafe.Sizeof(req)); got != want {
		t.Errorf("GPIO_V2_GET_LINE_IOCTL = %#x, want %#x", got, want)
	}
	if got, want := uint(unix.GPIO_V2_LINE_GET_VALUES_IOCTL), iowr(0x0E, unsafe.Sizeof(unix.GPIOV2LineValues{})); got != want {
		t.Errorf("GPIO_V2_LINE_GET_VALUES_IOCTL = %#x, want %#x", got, want)
	}
}
