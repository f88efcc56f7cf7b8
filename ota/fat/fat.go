// Package fat finds files in the root directory of a FAT12, FAT16 or FAT32
// file system on an unmounted partition (or an image file) and rewrites
// bytes of their data in place. It reads only what it is given through an
// io.ReaderAt, never past the size it is told, and it never changes a
// directory entry, a FAT or a file's size: an in-place rewrite of file data
// is the only kind of write it offers, which is all the update agent needs
// (autoboot.txt on the boot selector, cmdline.txt on a boot partition) and
// leaves nothing a power cut could tear in the file system's own structures.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// ErrFormat marks a device that holds no FAT file system this package can
// read, or a damaged one (a cluster chain that ends early, loops or leaves
// the device).
var ErrFormat = errors.New("no usable FAT file system")

// FS is a FAT file system read through an io.ReaderAt.
type FS struct {
	r    io.ReaderAt
	size int64 // bytes that may be read: the smaller of device and file system

	bytesPerSector    int64
	sectorsPerCluster int64
	reservedSectors   int64
	fats              int64
	rootEntries       int64
	fatSectors        int64
	rootCluster       uint32
	bits              int   // 12, 16 or 32: the width of a FAT entry
	clusters          int64 // data clusters, numbered 2 to clusters+1
}

// Open reads the boot sector of the file system on r, of which size bytes
// exist (a partition's size, or less when only that much is trusted).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	var s [512]byte
	if size < int64(len(s)) {
		return nil, fmt.Errorf("%w: %d bytes is smaller than a boot sector", ErrFormat, size)
	}
	if _, err := r.ReadAt(s[:], 0); err != nil {
		return nil, fmt.Errorf("%w: read boot sector: %w", ErrFormat, err)
	}
	if s[510] != 0x55 || s[511] != 0xAA {
		return nil, fmt.Errorf("%w: no boot sector signature", ErrFormat)
	}
	le := binary.LittleEndian
	f := &FS{
		r:                 r,
		bytesPerSector:    int64(le.Uint16(s[11:])),
		sectorsPerCluster: int64(s[13]),
		reservedSectors:   int64(le.Uint16(s[14:])),
		fats:              int64(s[16]),
		rootEntries:       int64(le.Uint16(s[17:])),
		fatSectors:        int64(le.Uint16(s[22:])),
	}
	totalSectors := int64(le.Uint16(s[19:]))
	if totalSectors == 0 {
		totalSectors = int64(le.Uint32(s[32:]))
	}
	if f.fatSectors == 0 {
		f.fatSectors = int64(le.Uint32(s[36:]))
		f.rootCluster = le.Uint32(s[44:])
	}
	switch f.bytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("%w: %d bytes per sector", ErrFormat, f.bytesPerSector)
	}
	if f.sectorsPerCluster == 0 || f.sectorsPerCluster&(f.sectorsPerCluster-1) != 0 {
		return nil, fmt.Errorf("%w: %d sectors per cluster", ErrFormat, f.sectorsPerCluster)
	}
	if f.reservedSectors == 0 || f.fats == 0 || f.fatSectors == 0 || totalSectors == 0 {
		return nil, fmt.Errorf("%w: damaged BIOS parameter block", ErrFormat)
	}
	firstData := f.firstDataSector()
	if firstData >= totalSectors {
		return nil, fmt.Errorf("%w: no room for data after the FATs", ErrFormat)
	}
	f.clusters = (totalSectors - firstData) / f.sectorsPerCluster
	// The FAT type follows from the number of clusters alone; the root
	// directory kind must agree with it.
	switch {
	case f.clusters < 4085:
		f.bits = 12
	case f.clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	if (f.bits == 32) != (f.rootEntries == 0) {
		return nil, fmt.Errorf("%w: FAT%d with %d root directory entries", ErrFormat, f.bits, f.rootEntries)
	}
	// The file system may claim more than the device has (a truncated
	// image); nothing past the device is ever read.
	f.size = min(size, totalSectors*f.bytesPerSector)
	if fatEnd := f.fatOffset() + (f.clusters+2)*int64(f.bits)/8 + 1; fatEnd > f.size {
		return nil, fmt.Errorf("%w: the FAT ends past the device", ErrFormat)
	}
	return f, nil
}

func (f *FS) clusterBytes() int64 { return f.sectorsPerCluster * f.bytesPerSector }

func (f *FS) rootDirSectors() int64 {
	return (f.rootEntries*32 + f.bytesPerSector - 1) / f.bytesPerSector
}

func (f *FS) firstDataSector() int64 {
	return f.reservedSectors + f.fats*f.fatSectors + f.rootDirSectors()
}

func (f *FS) fatOffset() int64 { return f.reservedSectors * f.bytesPerSector }

func (f *FS) clusterOffset(c uint32) int64 {
	return (f.firstDataSector() + int64(c-2)*f.sectorsPerCluster) * f.bytesPerSector
}

func (f *FS) validCluster(c uint32) bool {
	return c >= 2 && int64(c) < f.clusters+2 && f.clusterOffset(c)+f.clusterBytes() <= f.size
}

// next returns the FAT entry of cluster c (from the first FAT).
func (f *FS) next(c uint32) (uint32, error) {
	var b [4]byte
	var off int64
	switch f.bits {
	case 12:
		off = f.fatOffset() + int64(c) + int64(c)/2
	case 16:
		off = f.fatOffset() + int64(c)*2
	default:
		off = f.fatOffset() + int64(c)*4
	}
	n := 2
	if f.bits == 32 {
		n = 4
	}
	if _, err := f.r.ReadAt(b[:n], off); err != nil {
		return 0, fmt.Errorf("%w: read FAT: %w", ErrFormat, err)
	}
	le := binary.LittleEndian
	switch f.bits {
	case 12:
		v := uint32(le.Uint16(b[:]))
		if c%2 == 1 {
			return v >> 4, nil
		}
		return v & 0xFFF, nil
	case 16:
		return uint32(le.Uint16(b[:])), nil
	}
	return le.Uint32(b[:]) & 0x0FFFFFFF, nil
}

// isEnd reports whether a FAT entry marks the end of a chain.
func (f *FS) isEnd(v uint32) bool {
	switch f.bits {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	}
	return v >= 0x0FFFFFF8
}

// chain returns the device extents of up to n clusters of the chain that
// starts at first, merging neighbours. It stops early at an end-of-chain
// mark only when stopAtEnd is set (a directory); a file's chain must hold
// all n clusters.
func (f *FS) chain(first uint32, n int64, stopAtEnd bool) ([]Extent, error) {
	// A chain longer than the device has clusters loops.
	if n > f.clusters {
		return nil, fmt.Errorf("%w: a chain of %d clusters on a file system of %d", ErrFormat, n, f.clusters)
	}
	var out []Extent
	c := first
	for i := int64(0); i < n; i++ {
		if !f.validCluster(c) {
			return nil, fmt.Errorf("%w: cluster %d is outside the file system", ErrFormat, c)
		}
		off := f.clusterOffset(c)
		if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == off {
			out[k].Length += f.clusterBytes()
		} else {
			out = append(out, Extent{Offset: off, Length: f.clusterBytes()})
		}
		if i == n-1 {
			break
		}
		next, err := f.next(c)
		if err != nil {
			return nil, err
		}
		if f.isEnd(next) {
			if stopAtEnd {
				break
			}
			return nil, fmt.Errorf("%w: the cluster chain ends after %d of %d clusters", ErrFormat, i+1, n)
		}
		c = next
	}
	return out, nil
}

// maxRootClusters bounds a FAT32 root directory walk.
const maxRootClusters = 4096

// Lookup finds the file with the 8.3 name (any case, e.g. "cmdline.txt")
// in the root directory. A missing file is an error that wraps
// fs.ErrNotExist.
func (f *FS) Lookup(name string) (*File, error) {
	want, err := shortName(name)
	if err != nil {
		return nil, err
	}
	var dir []Extent
	if f.bits != 32 {
		start := (f.reservedSectors + f.fats*f.fatSectors) * f.bytesPerSector
		dir = []Extent{{Offset: start, Length: f.rootEntries * 32}}
	} else if dir, err = f.chain(f.rootCluster, min(maxRootClusters, f.clusters), true); err != nil {
		return nil, fmt.Errorf("root directory: %w", err)
	}
	for _, e := range dir {
		if e.Offset+e.Length > f.size {
			return nil, fmt.Errorf("%w: root directory ends past the device", ErrFormat)
		}
		found, done, err := f.scan(e, want, name)
		if err != nil || done {
			return found, err
		}
	}
	return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

// dirChunk bounds what one directory read allocates; a multiple of the
// 32-byte entry size.
const dirChunk = 32 << 10

// scan looks for the short name want in the directory entries of e. done
// is true when the search is over: found, or the end-of-directory mark.
func (f *FS) scan(e Extent, want [11]byte, name string) (*File, bool, error) {
	buf := make([]byte, min(e.Length, dirChunk))
	for start := int64(0); start < e.Length; start += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), e.Length-start)]
		if _, err := f.r.ReadAt(chunk, e.Offset+start); err != nil {
			return nil, true, fmt.Errorf("%w: read directory: %w", ErrFormat, err)
		}
		for off := 0; off+32 <= len(chunk); off += 32 {
			d := chunk[off : off+32]
			switch {
			case d[0] == 0x00:
				return nil, true, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
			case d[0] == 0xE5, d[11] == 0x0F, d[11]&0x18 != 0:
				continue // deleted, long-name part, directory or volume label
			}
			if [11]byte(d[:11]) == want {
				file, err := f.entry(d, name)
				return file, true, err
			}
		}
	}
	return nil, false, nil
}

// entry locates the data of the file whose directory entry is d.
func (f *FS) entry(d []byte, name string) (*File, error) {
	le := binary.LittleEndian
	cluster := uint32(le.Uint16(d[26:]))
	if f.bits == 32 {
		cluster |= uint32(le.Uint16(d[20:])) << 16
	}
	file := &File{r: f.r, size: int64(le.Uint32(d[28:]))}
	if file.size == 0 {
		return file, nil
	}
	if file.size > f.size {
		return nil, fmt.Errorf("%w: %s of %d bytes on a device of %d", ErrFormat, name, file.size, f.size)
	}
	n := (file.size + f.clusterBytes() - 1) / f.clusterBytes()
	extents, err := f.chain(cluster, n, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The last extent may run past the file's end (the rest of its last
	// cluster); the file's bytes are what count.
	rest := file.size
	for i := range extents {
		extents[i].Length = min(extents[i].Length, rest)
		rest -= extents[i].Length
	}
	file.extents = extents
	return file, nil
}

// shortName turns an 8.3 name into its directory entry form.
func shortName(name string) ([11]byte, error) {
	var out [11]byte
	base, ext := name, ""
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			base, ext = name[:i], name[i+1:]
			break
		}
	}
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 {
		return out, fmt.Errorf("fat: %q is not an 8.3 name", name)
	}
	for i := range out {
		out[i] = ' '
	}
	for i, c := range []byte(base + "        "[:8-len(base)] + ext) {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out, nil
}

// Extent is a run of bytes on the device.
type Extent struct {
	// Offset is the device offset of the first byte.
	Offset int64
	// Length is the number of bytes.
	Length int64
}

// File is where a file's data lies on the device.
type File struct {
	r       io.ReaderAt
	size    int64
	extents []Extent
}

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// Extents lists the device byte ranges holding the file's data, in file
// order; more than one when the file is fragmented.
func (f *File) Extents() []Extent { return append([]Extent(nil), f.extents...) }

// ReadAt reads file data at file offset off.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.each(p, off, func(q []byte, devOff int64) (int, error) { return f.r.ReadAt(q, devOff) })
}

// ReadAll returns the file's content.
func (f *File) ReadAll() ([]byte, error) {
	data := make([]byte, f.size)
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data, nil
}

// Overwrite writes p at file offset off through w, which must be the
// device the file system was read from. It writes only file data inside
// the file's current size, one write per extent touched.
func (f *File) Overwrite(w io.WriterAt, p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > f.size {
		return fmt.Errorf("fat: write of %d bytes at %d outside a file of %d", len(p), off, f.size)
	}
	_, err := f.each(p, off, w.WriteAt)
	return err
}

// each maps the file range [off, off+len(p)) onto the device and calls op
// for each piece in order.
func (f *File) each(p []byte, off int64, op func(q []byte, devOff int64) (int, error)) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fat: negative offset %d", off)
	}
	done := 0
	pos := int64(0) // file offset of the current extent
	for _, e := range f.extents {
		if len(p) == 0 {
			break
		}
		if off < pos+e.Length {
			skip := off - pos
			n := min(int64(len(p)), e.Length-skip)
			k, err := op(p[:n], e.Offset+skip)
			done += k
			if err != nil {
				return done, err
			}
			p, off = p[n:], off+n
		}
		pos += e.Length
	}
	if len(p) > 0 {
		return done, io.EOF
	}
	return done, nil
}
