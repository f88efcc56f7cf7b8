package tryboot

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/onair/onair/ota/fat"
)

// Selector reads and rewrites autoboot.txt.
type Selector interface {
	// Read returns the file's content.
	Read() ([]byte, error)
	// Write replaces the content with data of the same length in one write
	// and makes it durable before returning.
	Write(data []byte) error
}

// ErrFAT marks a boot-selector partition this package cannot use.
var ErrFAT = errors.New("boot selector partition")

// FATPartition is autoboot.txt in the root directory of a FAT12/16/32 file
// system on Device, a partition that stays unmounted (or an image file). The
// file is located through the FAT structures (ota/fat) and rewritten in
// place with a single write of its data sector: no directory entry, no FAT
// and no file size changes, so there is nothing a power cut could leave
// half done.
type FATPartition struct {
	// Device is the partition, e.g. /dev/mmcblk0p1.
	Device string
	// Name is the 8.3 name in the directory, default "AUTOBOOT.TXT".
	Name string
}

func (p FATPartition) name() string {
	if p.Name == "" {
		return "AUTOBOOT.TXT"
	}
	return p.Name
}

// locate finds the file on the open device.
func (p FATPartition) locate(f *os.File) (*fat.File, error) {
	// Seeking to the end gives the size of block devices as well as files.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("%w: size of %s: %w", ErrFAT, p.Device, err)
	}
	fsys, err := fat.Open(f, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFAT, err)
	}
	file, err := fsys.Lookup(p.name())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFAT, err)
	}
	return file, nil
}

// Read returns autoboot.txt's content.
func (p FATPartition) Read() ([]byte, error) {
	f, err := os.Open(p.Device)
	if err != nil {
		return nil, fmt.Errorf("read autoboot.txt: %w", err)
	}
	defer f.Close()
	file, err := p.locate(f)
	if err != nil {
		return nil, err
	}
	data, err := file.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: read autoboot.txt: %w", ErrFAT, err)
	}
	return data, nil
}

// Write rewrites autoboot.txt in place. data must have the file's current
// size and at most FileSize bytes: one sector, one write.
func (p FATPartition) Write(data []byte) error {
	f, err := os.OpenFile(p.Device, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	defer f.Close()
	file, err := p.locate(f)
	if err != nil {
		return err
	}
	if int64(len(data)) != file.Size() || len(data) > FileSize {
		return fmt.Errorf("%w: autoboot.txt is %d bytes and the new content %d; both must be the same and at most %d", ErrFAT, file.Size(), len(data), FileSize)
	}
	// At most one sector, and a cluster is at least one: one extent, one
	// write.
	if ext := file.Extents(); len(ext) != 1 {
		return fmt.Errorf("%w: autoboot.txt is not in one piece", ErrFAT)
	}
	if err := file.Overwrite(f, data, 0); err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write autoboot.txt: sync: %w", err)
	}
	return nil
}

// MountedFile is autoboot.txt reached through a mounted file system (or a
// plain file in tests). It is rewritten in place without truncation, so the
// size stays put and the data goes out as one write.
type MountedFile struct {
	// Path of autoboot.txt.
	Path string
}

// Read returns the file's content.
func (m MountedFile) Read() ([]byte, error) {
	data, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, fmt.Errorf("read autoboot.txt: %w", err)
	}
	return data, nil
}

// Write rewrites the file in place; data must have its current size.
func (m MountedFile) Write(data []byte) error {
	f, err := os.OpenFile(m.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	if st.Size() != int64(len(data)) || len(data) > FileSize {
		return fmt.Errorf("%w: autoboot.txt is %d bytes and the new content %d; both must be the same and at most %d", ErrFAT, st.Size(), len(data), FileSize)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write autoboot.txt: sync: %w", err)
	}
	return nil
}
