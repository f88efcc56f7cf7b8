package fat_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/onair/onair/ota/fat"
	"github.com/onair/onair/ota/otatest"
)

func filler(size int, seed byte) []byte {
	out := make([]byte, size)
	for i := range out {
		out[i] = byte(i*7) ^ seed
	}
	return out
}

// image makes a FAT file system with mkfs.vfat (extra flags in mkfs) and
// copies files into it with mcopy in order; a name with a leading "-" is
// deleted with mdel instead, leaving a hole.
func image(t *testing.T, sizeKiB int, mkfs []string, files ...string) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	otatest.Run(t, "mkfs.vfat", append(append([]string{"-C"}, mkfs...), img, strconv.Itoa(sizeKiB))...)
	content := map[string][]byte{}
	for i, spec := range files {
		if name, ok := bytes.CutPrefix([]byte(spec), []byte("-")); ok {
			otatest.Run(t, "mdel", "-i", img, "::"+string(name))
			delete(content, string(name))
			continue
		}
		name, sizeText, _ := bytes.Cut([]byte(spec), []byte(":"))
		size, err := strconv.Atoi(string(sizeText))
		if err != nil {
			t.Fatal(err)
		}
		data := filler(size, byte(i))
		src := filepath.Join(dir, string(name))
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		otatest.Run(t, "mcopy", "-i", img, src, "::"+string(name))
		content[string(name)] = data
	}
	return img, content
}

func open(t *testing.T, img string) (*fat.FS, *os.File) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fat.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fsys, f
}

// TestLookupAndOverwrite: on FAT12, FAT16 and FAT32 images made by
// mkfs.vfat, files copied in by mcopy read back as written, fragmented
// ones included, and a rewrite in place across a fragment boundary reads
// back through mtools and passes fsck.fat.
func TestLookupAndOverwrite(t *testing.T) {
	files := []string{"a.bin:1000", "hole.bin:3000", "b.bin:700", "-hole.bin", "frag.txt:9000", "empty:0", "MIXED.Txt:10"}
	for _, c := range []struct {
		name    string
		sizeKiB int
		mkfs    []string
		// mtools fills holes on FAT12/16; on FAT32 it allocates after the
		// last cluster it handed out, so no hole is reused there.
		fragmented bool
	}{
		{"FAT12", 1024, []string{"-s", "2"}, true},
		{"FAT16", 16 << 10, []string{"-F", "16", "-s", "2"}, true},
		{"FAT32", 40 << 10, []string{"-F", "32", "-s", "1"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, content := image(t, c.sizeKiB, c.mkfs, files...)
			fsys, dev := open(t, img)
			for name, want := range content {
				f, err := fsys.Lookup(name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := f.ReadAll()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s reads %d bytes (%v), want %d", name, len(got), err, len(want))
				}
			}
			frag, err := fsys.Lookup("FRAG.TXT")
			if err != nil {
				t.Fatal(err)
			}
			ext := frag.Extents()
			if c.fragmented != (len(ext) > 1) {
				t.Fatalf("frag.txt in %d piece(s), want fragmented %v", len(ext), c.fragmented)
			}
			// Across the end of the first fragment, or of a cluster.
			at := min(ext[0].Length, 1024) - 3
			if err := frag.Overwrite(dev, []byte("ONAIR"), at); err != nil {
				t.Fatal(err)
			}
			want := content["frag.txt"]
			copy(want[at:], "ONAIR")
			if got := otatest.Run(t, "mtype", "-i", img, "::frag.txt"); !bytes.Equal(got, want) {
				t.Fatal("mtype does not read the rewrite")
			}
			otatest.Run(t, "fsck.fat", "-n", img)
			if err := frag.Overwrite(dev, []byte("xx"), frag.Size()-1); err == nil {
				t.Fatal("a write past the end of the file was done")
			}
			if _, err := fsys.Lookup("nothere.txt"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing file: %v", err)
			}
			if _, err := fsys.Lookup("hole.bin"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("deleted file: %v", err)
			}
		})
	}
}

func TestNotFAT(t *testing.T) {
	for name, data := range map[string][]byte{"empty": {}, "zeros": make([]byte, 4096), "text": bytes.Repeat([]byte("not fat "), 200)} {
		if _, err := fat.Open(bytes.NewReader(data), int64(len(data))); !errors.Is(err, fat.ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	img, _ := image(t, 1024, nil, "a.bin:10")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// Cut off before the FAT ends: refused, nothing read past the cut.
	if _, err := fat.Open(bytes.NewReader(data[:1024]), 1024); !errors.Is(err, fat.ErrFormat) {
		t.Errorf("truncated image: %v, want ErrFormat", err)
	}
}

// FuzzLookup: a damaged file system gives an error, never a panic, a read
// outside the device, or a file larger than the device.
func FuzzLookup(f *testing.F) {
	img := make([]byte, 4096)
	img[11], img[12], img[13], img[14], img[16], img[17], img[19], img[22] = 0x00, 0x02, 1, 1, 1, 16, 8, 1
	img[510], img[511] = 0x55, 0xAA
	copy(img[1024:], "CMDLINE TXT")
	img[1024+26], img[1024+28] = 3, 200
	f.Add(img)
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &boundedReader{data: data, t: t}
		fsys, err := fat.Open(r, int64(len(data)))
		if err != nil {
			return
		}
		file, err := fsys.Lookup("cmdline.txt")
		if err != nil {
			return
		}
		if file.Size() > int64(len(data)) {
			t.Fatalf("a file of %d bytes on a device of %d", file.Size(), len(data))
		}
		if _, err := file.ReadAll(); err != nil {
			t.Fatalf("located but unreadable: %v", err)
		}
	})
}

// boundedReader fails the test on any read outside the device.
type boundedReader struct {
	data []byte
	t    *testing.T
}

func (r *boundedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(r.data)) {
		r.t.Fatalf("read of %d bytes at %d on a device of %d", len(p), off, len(r.data))
	}
	return copy(p, r.data[off:]), nil
}
