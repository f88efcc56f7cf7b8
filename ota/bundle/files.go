package bundle

import (
	"fmt"
	"io"
	"os"
)

// CreateFromFiles writes a bundle whose image is the boot partition image
// at bootPath (optional: "" for none) followed by the root file system image
// at rootfsPath, as the image build produces them. opts.BootSize is set
// from the boot image.
func CreateFromFiles(w io.Writer, bootPath, rootfsPath string, opts CreateOptions) (Manifest, error) {
	rootfs, rootfsSize, err := openSized(rootfsPath)
	if err != nil {
		return Manifest{}, fmt.Errorf("create bundle: rootfs image: %w", err)
	}
	defer rootfs.Close()
	opts.BootSize = 0
	var image io.ReadSeeker = io.NewSectionReader(rootfs, 0, rootfsSize)
	if bootPath != "" {
		boot, bootSize, err := openSized(bootPath)
		if err != nil {
			return Manifest{}, fmt.Errorf("create bundle: boot image: %w", err)
		}
		defer boot.Close()
		opts.BootSize = bootSize
		image = io.NewSectionReader(concatReaderAt{boot, bootSize, rootfs}, 0, bootSize+rootfsSize)
	}
	return Create(w, image, opts)
}

func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return f, size, nil
}

// concatReaderAt reads a (of size aSize) followed by b.
type concatReaderAt struct {
	a     io.ReaderAt
	aSize int64
	b     io.ReaderAt
}

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.aSize {
		return c.b.ReadAt(p, off-c.aSize)
	}
	n := min(int64(len(p)), c.aSize-off)
	k, err := c.a.ReadAt(p[:n], off)
	if err != nil || int64(len(p)) == n {
		return k, err
	}
	m, err := c.b.ReadAt(p[n:], 0)
	return k + m, err
}
