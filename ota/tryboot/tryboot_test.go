package tryboot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/tryboot"
)

func TestRenderParse(t *testing.T) {
	for _, sel := range []tryboot.Selection{{Committed: 2, Trial: 3}, {Committed: 3, Trial: 3}, {Committed: 3, Trial: 2}} {
		data := tryboot.Render(sel)
		if len(data) != tryboot.FileSize {
			t.Fatalf("autoboot.txt of %d bytes, want %d", len(data), tryboot.FileSize)
		}
		got, err := tryboot.Parse(data)
		if err != nil || got != sel {
			t.Fatalf("Parse(Render(%+v)) = %+v, %v", sel, got, err)
		}
	}
}

// TestParseLikeFirmware covers config.txt rules the firmware applies.
func TestParseLikeFirmware(t *testing.T) {
	cases := []struct {
		name, text string
		want       tryboot.Selection
		err        bool
	}{
		{name: "raspberry pi documentation example", text: "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n", want: tryboot.Selection{Committed: 2, Trial: 3}},
		{name: "no tryboot section", text: "[all]\ntryboot_a_b=1\nboot_partition=3\n", want: tryboot.Selection{Committed: 3, Trial: 3}},
		{name: "other filters ignored", text: "tryboot_a_b=1\nboot_partition=2\n[pi3]\nboot_partition=5\n[all]\n# c\n", want: tryboot.Selection{Committed: 2, Trial: 2}},
		{name: "no tryboot_a_b", text: "[all]\nboot_partition=2\n", err: true},
		{name: "bad number", text: "tryboot_a_b=1\nboot_partition=two\n", err: true},
		{name: "empty", text: "", err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tryboot.Parse([]byte(c.text))
			if c.err {
				if !errors.Is(err, tryboot.ErrAutoboot) {
					t.Fatalf("error %v, want ErrAutoboot", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// TestFATImage rewrites autoboot.txt on a FAT image made by mkfs.vfat and
// filled by mcopy, then reads it back with mtools, as the firmware would
// read it, and checks the file system with fsck.fat.
func TestFATImage(t *testing.T) {
	dir := t.TempDir()
	sel := otatest.NewFATSelector(t, dir, tryboot.Selection{Committed: 2, Trial: 2})
	img := sel.Device
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	next := tryboot.Render(tryboot.Selection{Committed: 2, Trial: 3})
	if err := sel.Write(next); err != nil {
		t.Fatal(err)
	}
	got := otatest.Run(t, "mtype", "-i", img, "::autoboot.txt")
	if string(got) != string(next) {
		t.Fatalf("mtype reads\n%s\nwant\n%s", got, next)
	}
	back, err := sel.Read()
	if err != nil || string(back) != string(next) {
		t.Fatalf("Read = %q, %v", back, err)
	}
	// One write: exactly one 512-byte sector of the image differs.
	after, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var changed []int
	for s := 0; s < len(after); s += 512 {
		if string(after[s:s+512]) != string(before[s:s+512]) {
			changed = append(changed, s/512)
		}
	}
	if len(changed) != 1 {
		t.Fatalf("sectors changed: %v, want exactly one", changed)
	}
	otatest.Run(t, "fsck.fat", "-n", img)
	// A content of another size would need the directory entry changed too:
	// refused rather than done in two writes.
	if err := sel.Write([]byte("tryboot_a_b=1\n")); !errors.Is(err, tryboot.ErrFAT) {
		t.Fatalf("short write: %v, want ErrFAT", err)
	}
}

func TestFAT32Image(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "sel32.img")
	otatest.Run(t, "mkfs.vfat", "-F", "32", "-C", img, "40000")
	src := filepath.Join(dir, "autoboot.txt")
	// Fill the root directory past one cluster so the FAT chain is followed.
	for i := range 40 {
		name := filepath.Join(dir, "f"+strings.Repeat("x", 20)+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		otatest.Run(t, "mcopy", "-i", img, name, "::")
	}
	if err := os.WriteFile(src, tryboot.Render(tryboot.Selection{Committed: 3, Trial: 3}), 0o644); err != nil {
		t.Fatal(err)
	}
	otatest.Run(t, "mcopy", "-i", img, src, "::autoboot.txt")
	sel := tryboot.FATPartition{Device: img}
	next := tryboot.Render(tryboot.Selection{Committed: 3, Trial: 2})
	if err := sel.Write(next); err != nil {
		t.Fatal(err)
	}
	if got := otatest.Run(t, "mtype", "-i", img, "::autoboot.txt"); string(got) != string(next) {
		t.Fatalf("mtype reads %q", got)
	}
	otatest.Run(t, "fsck.fat", "-n", img)
}

func TestFATDamaged(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{"empty": {}, "zeros": make([]byte, 4096), "text": []byte(strings.Repeat("not fat ", 200))} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := (tryboot.FATPartition{Device: path}).Read(); !errors.Is(err, tryboot.ErrFAT) {
			t.Errorf("%s: %v, want ErrFAT", name, err)
		}
	}
}

// TestFakeFirmware: the trial is consumed by one reboot; a power cut
// loses it; commit is one write after which power cycles never flip.
func TestFakeFirmware(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pi, err := otatest.NewPi(dir, otatest.NewFATSelector(t, dir, tryboot.Selection{Committed: 2, Trial: 2}))
	if err != nil {
		t.Fatal(err)
	}
	bl := pi.Bootloader()
	boot := func(wantSlot string, wantTrial bool) {
		t.Helper()
		info, err := pi.PowerOn()
		if err != nil {
			t.Fatal(err)
		}
		got, err := bl.Booted(ctx)
		if err != nil || got != info || got.Slot != wantSlot || got.Trial != wantTrial {
			t.Fatalf("booted %+v (firmware %+v, %v), want %s trial=%v", got, info, err, wantSlot, wantTrial)
		}
	}
	boot("A", false)
	if err := bl.ArmTrial(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	boot("A", false) // power cycle, not a tryboot reboot
	if err := bl.Reboot(ctx, true); err != nil {
		t.Fatal(err)
	}
	boot("B", true)
	boot("A", false) // the trial is used up
	if err := bl.Reboot(ctx, true); err != nil {
		t.Fatal(err)
	}
	pi.PowerCut()
	boot("A", false)
	if err := bl.Reboot(ctx, true); err != nil {
		t.Fatal(err)
	}
	boot("B", true)
	if err := bl.Commit(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		boot("B", false)
	}
	if err := bl.Reboot(ctx, false); err != nil { // a plain reboot once committed
		t.Fatal(err)
	}
	boot("B", false)
}

func FuzzParse(f *testing.F) {
	f.Add(tryboot.Render(tryboot.Selection{Committed: 2, Trial: 3}))
	f.Add([]byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n[none]\nx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sel, err := tryboot.Parse(data)
		if err != nil {
			return
		}
		if sel.Committed < 1 || sel.Trial < 1 {
			t.Fatalf("accepted partitions %+v", sel)
		}
		if again, err := tryboot.Parse(tryboot.Render(sel)); err != nil || again != sel {
			t.Fatalf("render of %+v does not parse back: %+v %v", sel, again, err)
		}
	})
}

// FuzzFATPartition: a damaged selector partition must give an error, never
// a panic or a read outside the device. (Write locates the file the same
// way; it is left out here because every write is fsynced.)
func FuzzFATPartition(f *testing.F) {
	img := make([]byte, 4096)
	img[11], img[12], img[13], img[14], img[16], img[17], img[19], img[22] = 0x00, 0x02, 1, 1, 1, 16, 8, 1
	img[510], img[511] = 0x55, 0xAA
	copy(img[1024:], "AUTOBOOTTXT")
	img[1024+26], img[1024+28] = 3, 200
	f.Add(img)
	f.Add(make([]byte, 600))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "sel.img")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		content, err := tryboot.FATPartition{Device: path}.Read()
		if err == nil && len(content) > len(data) {
			t.Fatalf("read %d bytes from a %d-byte device", len(content), len(data))
		}
	})
}
