package tryboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
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
// file is located through the FAT structures and rewritten in place with a
// single write of its data sector: no directory entry, no FAT and no file
// size changes, so there is nothing a power cut could leave half done.
type FATPartition struct {
	// Device is the partition, e.g. /dev/mmcblk0p1.
	Device string
	// Name is the 8.3 name in the directory, default "AUTOBOOT.TXT".
	Name string
}

type fatFile struct {
	offset int64 // device offset of the file's first byte
	size   int64
	room   int64 // bytes in its first cluster
}

func (p FATPartition) name11() ([11]byte, error) {
	var out [11]byte
	name := p.Name
	if name == "" {
		name = "AUTOBOOT.TXT"
	}
	base, ext, _ := cutLast(name, '.')
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 {
		return out, fmt.Errorf("%w: %q is not an 8.3 name", ErrFAT, name)
	}
	for i := range out {
		out[i] = ' '
	}
	copy(out[:8], upper(base))
	copy(out[8:], upper(ext))
	return out, nil
}

func cutLast(s string, sep byte) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func upper(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return b
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
	if file.size > file.room {
		return nil, fmt.Errorf("%w: autoboot.txt of %d bytes spans clusters", ErrFAT, file.size)
	}
	data := make([]byte, file.size)
	if _, err := f.ReadAt(data, file.offset); err != nil {
		return nil, fmt.Errorf("read autoboot.txt: %w", err)
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
	if int64(len(data)) != file.size || len(data) > FileSize {
		return fmt.Errorf("%w: autoboot.txt is %d bytes and the new content %d; both must be the same and at most %d", ErrFAT, file.size, len(data), FileSize)
	}
	if _, err := f.WriteAt(data, file.offset); err != nil {
		return fmt.Errorf("write autoboot.txt: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write autoboot.txt: sync: %w", err)
	}
	return nil
}

// bpb is the part of the FAT boot sector this package needs.
type bpb struct {
	bytesPerSector    int64
	sectorsPerCluster int64
	reservedSectors   int64
	fats              int64
	rootEntries       int64
	fatSectors        int64
	totalSectors      int64
	rootCluster       uint32
	// deviceSize is what may be touched: the smaller of the device and
	// the file system's claimed size.
	deviceSize int64
}

func readBPB(r io.ReaderAt) (bpb, error) {
	var s [512]byte
	if _, err := r.ReadAt(s[:], 0); err != nil {
		return bpb{}, fmt.Errorf("%w: read boot sector: %w", ErrFAT, err)
	}
	if s[510] != 0x55 || s[511] != 0xAA {
		return bpb{}, fmt.Errorf("%w: no boot sector signature", ErrFAT)
	}
	le := binary.LittleEndian
	b := bpb{
		bytesPerSector:    int64(le.Uint16(s[11:])),
		sectorsPerCluster: int64(s[13]),
		reservedSectors:   int64(le.Uint16(s[14:])),
		fats:              int64(s[16]),
		rootEntries:       int64(le.Uint16(s[17:])),
		fatSectors:        int64(le.Uint16(s[22:])),
		totalSectors:      int64(le.Uint16(s[19:])),
	}
	if b.fatSectors == 0 {
		b.fatSectors = int64(le.Uint32(s[36:]))
		b.rootCluster = le.Uint32(s[44:])
	}
	if b.totalSectors == 0 {
		b.totalSectors = int64(le.Uint32(s[32:]))
	}
	switch b.bytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return bpb{}, fmt.Errorf("%w: %d bytes per sector", ErrFAT, b.bytesPerSector)
	}
	if b.sectorsPerCluster == 0 || b.sectorsPerCluster&(b.sectorsPerCluster-1) != 0 {
		return bpb{}, fmt.Errorf("%w: %d sectors per cluster", ErrFAT, b.sectorsPerCluster)
	}
	if b.reservedSectors == 0 || b.fats == 0 || b.fatSectors == 0 {
		return bpb{}, fmt.Errorf("%w: damaged BIOS parameter block", ErrFAT)
	}
	return b, nil
}

func (b bpb) clusterBytes() int64 { return b.sectorsPerCluster * b.bytesPerSector }

func (b bpb) rootDirSectors() int64 {
	return (b.rootEntries*32 + b.bytesPerSector - 1) / b.bytesPerSector
}

func (b bpb) firstDataSector() int64 {
	return b.reservedSectors + b.fats*b.fatSectors + b.rootDirSectors()
}

func (b bpb) clusterOffset(c uint32) int64 {
	return (b.firstDataSector() + int64(c-2)*b.sectorsPerCluster) * b.bytesPerSector
}

// maxRootClusters bounds a FAT32 root directory walk, so a looping chain in
// a damaged FAT ends.
const maxRootClusters = 4096

func (p FATPartition) locate(f *os.File) (fatFile, error) {
	want, err := p.name11()
	if err != nil {
		return fatFile{}, err
	}
	b, err := readBPB(f)
	if err != nil {
		return fatFile{}, err
	}
	// The file system may claim more sectors than the device has (a damaged
	// or truncated image); nothing outside the device is ever touched.
	deviceSize, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fatFile{}, fmt.Errorf("%w: size of %s: %w", ErrFAT, p.Device, err)
	}
	if claimed := b.totalSectors * b.bytesPerSector; claimed < deviceSize {
		deviceSize = claimed
	}
	b.deviceSize = deviceSize
	r := io.ReaderAt(f)
	if b.rootEntries > 0 {
		// FAT12/16: a fixed root directory region after the FATs.
		start := (b.reservedSectors + b.fats*b.fatSectors) * b.bytesPerSector
		found, done, err := scanDir(r, start, b.rootEntries*32, want, b)
		if err != nil || done {
			return found, err
		}
		return fatFile{}, fmt.Errorf("%w: no %s in the root directory", ErrFAT, string(want[:]))
	}
	// FAT32: the root directory is a cluster chain.
	c := b.rootCluster
	// A chain longer than the device has clusters loops; stop there.
	for range min(maxRootClusters, b.deviceSize/b.clusterBytes()+1) {
		if c < 2 || c >= 0x0FFFFFF7 {
			break
		}
		found, done, err := scanDir(r, b.clusterOffset(c), b.clusterBytes(), want, b)
		if err != nil || done {
			return found, err
		}
		var e [4]byte
		if _, err := r.ReadAt(e[:], b.reservedSectors*b.bytesPerSector+int64(c)*4); err != nil {
			return fatFile{}, fmt.Errorf("%w: read FAT: %w", ErrFAT, err)
		}
		c = binary.LittleEndian.Uint32(e[:]) & 0x0FFFFFFF
	}
	return fatFile{}, fmt.Errorf("%w: no %s in the root directory", ErrFAT, string(want[:]))
}

// scanDir looks for the short name want in length bytes of directory
// entries at start. done is true when the search is over (found, or the
// end-of-directory marker).
func scanDir(r io.ReaderAt, start, length int64, want [11]byte, b bpb) (f fatFile, done bool, err error) {
	buf := make([]byte, length)
	if _, err := r.ReadAt(buf, start); err != nil {
		return fatFile{}, true, fmt.Errorf("%w: read directory: %w", ErrFAT, err)
	}
	for off := 0; off+32 <= len(buf); off += 32 {
		e := buf[off : off+32]
		switch {
		case e[0] == 0x00:
			return fatFile{}, true, fmt.Errorf("%w: no %s in the root directory", ErrFAT, string(want[:]))
		case e[0] == 0xE5, e[11] == 0x0F, e[11]&0x18 != 0:
			continue // deleted, long-name part, directory or volume label
		}
		if [11]byte(e[:11]) != want {
			continue
		}
		le := binary.LittleEndian
		cluster := uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:]))
		size := int64(le.Uint32(e[28:]))
		if cluster < 2 {
			return fatFile{}, true, fmt.Errorf("%w: %s has no data cluster", ErrFAT, string(want[:]))
		}
		offset := b.clusterOffset(cluster)
		if offset+min(b.clusterBytes(), size) > b.deviceSize || size > b.clusterBytes() {
			return fatFile{}, true, fmt.Errorf("%w: %s points outside the file system", ErrFAT, string(want[:]))
		}
		return fatFile{offset: offset, size: size, room: b.clusterBytes()}, true, nil
	}
	return fatFile{}, false, nil
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
