package ota

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Slot is one half of the A/B pair: a boot partition and a root file system.
type Slot interface {
	// Name is the slot's name as the bootloader knows it ("A", "B").
	Name() string
	// Open opens the slot's boot and rootfs devices for reading and writing.
	Open() (boot, rootfs Device, err error)
}

// Device is a block device (or a file standing in for one): fixed size,
// random access, and durable after Sync.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Size is the capacity in bytes; writes beyond it fail.
	Size() int64
	// Sync makes written data durable.
	Sync() error
	Close() error
}

// ErrNoSpace is returned by a device write past its end, as a block device
// returns ENOSPC.
var ErrNoSpace = errors.New("write past the end of the device")

// FileSlot is a slot made of two paths: partitions such as
// /dev/mmcblk0p2 and /dev/mmcblk0p5 on the box, or regular files of a fixed
// size in tests. A regular file is treated like a block device: it never
// grows, so tests fail where the box would.
type FileSlot struct {
	// SlotName is the name the bootloader uses.
	SlotName string
	// BootPath is the boot partition; empty when the slot has none.
	BootPath string
	// RootfsPath is the root file system partition.
	RootfsPath string
}

// Name returns SlotName.
func (s FileSlot) Name() string { return s.SlotName }

// Open opens both partitions.
func (s FileSlot) Open() (boot, rootfs Device, err error) {
	if s.BootPath != "" {
		boot, err = OpenDevice(s.BootPath)
		if err != nil {
			return nil, nil, fmt.Errorf("slot %s: %w", s.SlotName, err)
		}
	}
	rootfs, err = OpenDevice(s.RootfsPath)
	if err != nil {
		if boot != nil {
			boot.Close()
		}
		return nil, nil, fmt.Errorf("slot %s: %w", s.SlotName, err)
	}
	return boot, rootfs, nil
}

// OpenDevice opens a block device or a fixed-size file read-write.
func OpenDevice(path string) (Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open device: %w", err)
	}
	// Seeking to the end gives the size of block devices as well as files
	// (Stat reports 0 for a block device).
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	return &fileDevice{f: f, size: size}, nil
}

type fileDevice struct {
	f    *os.File
	size int64
}

func (d *fileDevice) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

func (d *fileDevice) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > d.size {
		return 0, fmt.Errorf("write %s at %d: %w", d.f.Name(), off, ErrNoSpace)
	}
	if room := d.size - off; int64(len(p)) > room {
		n, err := d.f.WriteAt(p[:room], off)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", d.f.Name(), err)
		}
		return n, fmt.Errorf("write %s at %d: %w", d.f.Name(), off+room, ErrNoSpace)
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", d.f.Name(), err)
	}
	return n, nil
}

func (d *fileDevice) Size() int64 { return d.size }

func (d *fileDevice) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.f.Name(), err)
	}
	return nil
}

func (d *fileDevice) Close() error { return d.f.Close() }

// slotImage presents a slot's boot and rootfs devices as one address space
// laid out like the bundle image: bootSize bytes of boot partition, then the
// root file system.
type slotImage struct {
	boot, rootfs Device
	bootSize     int64
}

func (s *slotImage) WriteAt(p []byte, off int64) (int, error) {
	return s.split(p, off, func(d Device, p []byte, off int64) (int, error) { return d.WriteAt(p, off) })
}

func (s *slotImage) ReadAt(p []byte, off int64) (int, error) {
	return s.split(p, off, func(d Device, p []byte, off int64) (int, error) { return d.ReadAt(p, off) })
}

func (s *slotImage) split(p []byte, off int64, op func(Device, []byte, int64) (int, error)) (int, error) {
	done := 0
	if off < s.bootSize {
		n := min(int64(len(p)), s.bootSize-off)
		k, err := op(s.boot, p[:n], off)
		done += k
		if err != nil {
			return done, err
		}
		p, off = p[n:], off+n
	}
	if len(p) == 0 {
		return done, nil
	}
	k, err := op(s.rootfs, p, off-s.bootSize)
	return done + k, err
}

func (s *slotImage) Sync() error {
	if s.boot != nil {
		if err := s.boot.Sync(); err != nil {
			return err
		}
	}
	return s.rootfs.Sync()
}

func (s *slotImage) Close() error {
	var errs []error
	if s.boot != nil {
		errs = append(errs, s.boot.Close())
	}
	errs = append(errs, s.rootfs.Close())
	return errors.Join(errs...)
}
