// Package cmdline reads and rewrites the root= argument of the kernel
// command line that a Raspberry Pi boot partition carries in cmdline.txt.
//
// A slot is a boot partition and a root file system. On the Pi 4/5 the
// firmware's tryboot picks the boot partition and cmdline.txt in it names
// the slot's rootfs, so boot A and boot B differ in that one argument. An
// OnAir bundle carries ONE boot partition image, built for slot A; the
// update agent writes it to the target slot, verifies the written bytes
// against the signed hash, then points root= at the target slot's rootfs:
// a same-length rewrite of the file's data in place, found through the FAT
// structures (ota/fat), with no directory entry, FAT or file size touched,
// read back before the slot is armed. On the Zero 2 W (U-Boot) boot A and
// boot B are the same bytes, because boot.scr passes root=, and the image
// is installed as it is.
//
// Why one image and a rewrite rather than both boot images in the bundle:
//   - Size: a boot image is the whole FAT partition (128 MiB on the Pi 4/5,
//     mostly free space, and bundles are not compressed). Two would double
//     that for one byte of difference.
//   - Signing and streaming: the bundle's image is one stream, hashed once
//     and written while it downloads. Two boot images would make the agent
//     read and hash the one it does not write, and the manifest say where
//     each starts: a new bundle format that agents in the field refuse.
//   - Simplicity: the rewrite reuses the FAT code of the boot selector, the
//     signed bytes are checked before it and the result after it.
//   - Other updaters: RAUC installs one image per slot class into whichever
//     slot of that class is inactive, so what differs per slot has to come
//     from the bootloader; OnAir's U-Boot board works that way, the Pi
//     firmware's tryboot cannot pass root=. Mender's Raspberry Pi support
//     keeps kernel and DTBs in the root file system, loaded by U-Boot, and
//     leaves the boot partition out of updates; OnAir's Pi 4/5 boot without
//     U-Boot, so kernel, DTBs and firmware live in the boot partitions.
package cmdline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/onair/onair/ota/fat"
)

// FileName is the file the Pi firmware reads the kernel command line from
// (the config.txt default; the OnAir images do not change it with cmdline=).
const FileName = "cmdline.txt"

// MaxSize bounds the file: the kernel keeps at most a few KiB of command
// line, so anything much larger is not one.
const MaxSize = 64 << 10

// Errors a boot image is refused with.
var (
	// ErrNoFile: the boot image has no cmdline.txt.
	ErrNoFile = errors.New("boot image has no " + FileName)
	// ErrRoot: cmdline.txt has no root=, more than one, or one naming a
	// root file system that is not one of the slots'.
	ErrRoot = errors.New(FileName + " has no usable root=")
)

// RootValue finds the value of the root= argument in a kernel command
// line: the bytes line[start:end]. Exactly one root= must come before the
// "--" that ends the kernel's arguments (the kernel would take the last of
// several; a rewrite refuses to guess which one is meant).
func RootValue(line []byte) (start, end int, err error) {
	found := 0
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		word := line[i:j]
		if string(word) == "--" {
			break
		}
		if v, ok := bytes.CutPrefix(word, []byte("root=")); ok {
			found++
			start, end = j-len(v), j
		}
		i = j
	}
	switch {
	case found == 0:
		return 0, 0, fmt.Errorf("%w: no root= argument", ErrRoot)
	case found > 1:
		return 0, 0, fmt.Errorf("%w: %d root= arguments", ErrRoot, found)
	case start == end:
		return 0, 0, fmt.Errorf("%w: root= is empty", ErrRoot)
	}
	return start, end, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// open finds cmdline.txt in the FAT file system of size bytes on r.
func open(r io.ReaderAt, size int64) (*fat.File, []byte, error) {
	fsys, err := fat.Open(r, size)
	if err != nil {
		return nil, nil, err
	}
	file, err := fsys.Lookup(FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoFile
	}
	if err != nil {
		return nil, nil, err
	}
	if file.Size() > MaxSize {
		return nil, nil, fmt.Errorf("%w: %s of %d bytes is not a command line (at most %d)", ErrRoot, FileName, file.Size(), MaxSize)
	}
	data, err := file.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", FileName, err)
	}
	return file, data, nil
}

// Read returns the content of cmdline.txt in the FAT file system of size
// bytes on r.
func Read(r io.ReaderAt, size int64) ([]byte, error) {
	_, data, err := open(r, size)
	return data, err
}

// Root returns the root= value of cmdline.txt in the FAT file system of
// size bytes on r.
func Root(r io.ReaderAt, size int64) (string, error) {
	_, data, err := open(r, size)
	if err != nil {
		return "", err
	}
	start, end, err := RootValue(data)
	if err != nil {
		return "", err
	}
	return string(data[start:end]), nil
}

// Device is a boot partition (or its image) that can be read and written.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// SetRoot makes cmdline.txt in the FAT file system of size bytes on dev
// name root: the current root= value must be one of known (the slots'
// values) and as long as root, so the edit is a rewrite of file data in
// place; a fragmented file is written piece by piece. It returns the
// file's content as it must now read; the caller syncs the device and
// compares what Read returns with it. Nothing is written when the file
// already names root, or when it is refused.
func SetRoot(dev Device, size int64, known []string, root string) ([]byte, error) {
	file, data, err := open(dev, size)
	if err != nil {
		return nil, err
	}
	start, end, err := RootValue(data)
	if err != nil {
		return nil, err
	}
	current := string(data[start:end])
	switch {
	case current == root:
		return data, nil
	case !slices.Contains(known, current):
		return nil, fmt.Errorf("%w: root=%s is none of the slots' (%s)", ErrRoot, current, strings.Join(known, ", "))
	case len(current) != len(root):
		return nil, fmt.Errorf("%w: root=%s and root=%s differ in length; only a same-length rewrite in place is done", ErrRoot, current, root)
	}
	want := slices.Concat(data[:start], []byte(root), data[end:])
	if err := file.Overwrite(dev, want[start:end], int64(start)); err != nil {
		return nil, fmt.Errorf("rewrite root= in %s: %w", FileName, err)
	}
	return want, nil
}
