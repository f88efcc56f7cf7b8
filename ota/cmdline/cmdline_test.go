package cmdline_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/onair/onair/ota/cmdline"
	"github.com/onair/onair/ota/otatest"
)

func TestRootValue(t *testing.T) {
	for _, c := range []struct {
		line, want string
		err        bool
	}{
		{line: "console=tty1 root=PARTUUID=6f6e6169-05 rootwait\n", want: "PARTUUID=6f6e6169-05"},
		{line: "root=/dev/mmcblk0p5", want: "/dev/mmcblk0p5"},
		{line: "\troot=X\r\n", want: "X"},
		{line: "rootwait rootfstype=ext4 root=Y -- root=Z", want: "Y"},
		{line: "console=tty1 rootwait", err: true},
		{line: "root= rootwait", err: true},
		{line: "root=A root=B", err: true},
		{line: "-- root=A", err: true},
		{line: "noroot=A", err: true},
		{line: "", err: true},
	} {
		start, end, err := cmdline.RootValue([]byte(c.line))
		if c.err {
			if !errors.Is(err, cmdline.ErrRoot) {
				t.Errorf("%q: %v, want ErrRoot", c.line, err)
			}
			continue
		}
		if err != nil || c.line[start:end] != c.want {
			t.Errorf("%q: [%d:%d] %v, want %q", c.line, start, end, err, c.want)
		}
	}
}

// TestSetRoot on a FAT image from mkfs.vfat and mcopy: the rewrite reads
// back through mtype; naming the root it already names writes nothing; a
// value of another length is refused.
func TestSetRoot(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "boot.vfat")
	otatest.Run(t, "mkfs.vfat", "-C", img, "1024")
	line := "console=tty1 root=PARTUUID=6f6e6169-05 rootwait\n"
	src := filepath.Join(dir, "cmdline.txt")
	if err := os.WriteFile(src, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	otatest.Run(t, "mcopy", "-i", img, src, "::cmdline.txt")
	dev, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	size := int64(1024 << 10)
	known := []string{"PARTUUID=6f6e6169-05", "PARTUUID=6f6e6169-06"}

	if root, err := cmdline.Root(dev, size); err != nil || root != known[0] {
		t.Fatalf("Root = %q, %v", root, err)
	}
	before, _ := os.ReadFile(img)
	if got, err := cmdline.SetRoot(dev, size, known, known[0]); err != nil || string(got) != line {
		t.Fatalf("SetRoot to the same root: %q, %v", got, err)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("SetRoot to the root already named wrote something")
	}
	want, err := cmdline.SetRoot(dev, size, known, known[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := otatest.Run(t, "mtype", "-i", img, "::cmdline.txt"); !bytes.Equal(got, want) || !bytes.Contains(got, []byte("root=PARTUUID=6f6e6169-06 ")) {
		t.Fatalf("mtype reads %q, want %q", got, want)
	}
	if _, err := cmdline.SetRoot(dev, size, append(known, "/dev/sda6"), "/dev/sda6"); !errors.Is(err, cmdline.ErrRoot) {
		t.Fatalf("a root of another length: %v, want ErrRoot", err)
	}
}

// FuzzRootValue: any line gives one root= inside it, or an error.
func FuzzRootValue(f *testing.F) {
	f.Add([]byte("console=tty1 root=PARTUUID=6f6e6169-05 rootwait\n"))
	f.Add([]byte("root=a -- root=b"))
	f.Fuzz(func(t *testing.T, line []byte) {
		start, end, err := cmdline.RootValue(line)
		if err != nil {
			return
		}
		if start < 5 || end <= start || end > len(line) || string(line[start-5:start]) != "root=" {
			t.Fatalf("root value at [%d:%d] of %q", start, end, line)
		}
		if bytes.ContainsAny(line[start:end], " \t\r\n") {
			t.Fatalf("root value %q holds white space", line[start:end])
		}
	})
}
