package ota_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/cmdline"
	"github.com/onair/onair/ota/fat"
	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/tryboot"
)

// fatSpec describes a boot partition image to make with mkfs.vfat and
// mtools, as the image build makes boot-a.vfat.
type fatSpec struct {
	sizeKiB           int
	sectorsPerCluster int // 0: mkfs.vfat's choice
	// files are copied in this order; a name starting with "-" is deleted
	// (mdel) at that point instead, to leave holes that fragment the files
	// copied after it.
	files []fatEntry
	// mutate, when set, edits the finished image (to damage it).
	mutate func(t *testing.T, img []byte)
}

type fatEntry struct {
	name string
	data []byte
}

func (s fatSpec) make(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "boot.vfat")
	args := []string{"-C", "-i", "6f6e6169", "-n", "ONAIR-A"}
	if s.sectorsPerCluster > 0 {
		args = append(args, "-s", strconv.Itoa(s.sectorsPerCluster))
	}
	otatest.Run(t, "mkfs.vfat", append(args, path, strconv.Itoa(s.sizeKiB))...)
	for _, f := range s.files {
		if name, ok := strings.CutPrefix(f.name, "-"); ok {
			otatest.Run(t, "mdel", "-i", path, "::"+name)
			continue
		}
		src := filepath.Join(dir, "src-"+f.name)
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		otatest.Run(t, "mcopy", "-i", path, src, "::"+f.name)
	}
	if s.mutate != nil {
		img := readFile(t, path)
		s.mutate(t, img)
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// noise is deterministic filler, different for every seed.
func noise(size int, seed byte) []byte {
	out := make([]byte, size)
	x := uint32(seed)*2654435761 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = byte(x)
	}
	return out
}

const bootRigCapacity = 24 << 20

// bootRig is a box with file-backed slots big enough for a real boot
// partition image: slot partitions of bootRigCapacity, the running slot
// holding factory bytes, and the board's bootloader fake.
type bootRig struct {
	dir     string
	kind    string
	slots   [2]ota.FileSlot
	board   board
	bl      ota.Bootloader
	running string
}

func newBootRig(t *testing.T, kind, running string) *bootRig {
	t.Helper()
	dir := t.TempDir()
	slots, err := otatest.MakeSlots(dir, bootRigCapacity, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r := &bootRig{dir: dir, kind: kind, slots: slots, running: running}
	for i, s := range slots {
		for j, p := range []string{s.BootPath, s.RootfsPath} {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(noise(64<<10, byte(10*i+j+1)), 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	switch kind {
	case "pi":
		part := map[string]int{"A": 2, "B": 3}[running]
		otatest.NewFATSelector(t, dir, tryboot.Selection{Committed: part, Trial: part})
		pi, err := otatest.NewPi(dir, tryboot.FATPartition{Device: filepath.Join(dir, "bootsel.img")})
		if err != nil {
			t.Fatal(err)
		}
		r.board, r.bl = pi, pi.Bootloader()
	default:
		u, err := otatest.NewUBoot(dir, running)
		if err != nil {
			t.Fatal(err)
		}
		r.board, r.bl = u, u.Bootloader()
	}
	if info, err := r.board.PowerOn(); err != nil || info != (ota.BootInfo{Slot: running}) {
		t.Fatalf("rig boots %+v, %v", info, err)
	}
	return r
}

func (r *bootRig) agent(t *testing.T) *ota.Agent {
	t.Helper()
	cfg := ota.Config{
		DataDir: filepath.Join(r.dir, "data"), Board: map[string]string{"pi": "pi4", "uboot": "zero2w"}[r.kind],
		Version: "1.0.0", Keys: bundle.NewKeyring(keyOld.priv.Public().(ed25519.PublicKey)),
		Slots: [2]ota.Slot{r.slots[0], r.slots[1]}, Bootloader: r.bl, Clock: otatest.NewClock(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if r.kind == "pi" {
		cfg.CmdlineRoots = piRoots
	}
	a, err := ota.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (r *bootRig) slot(name string) ota.FileSlot {
	if name == "A" {
		return r.slots[0]
	}
	return r.slots[1]
}

func (r *bootRig) sums(t *testing.T, name string) [2][32]byte {
	t.Helper()
	s := r.slot(name)
	return [2][32]byte{sha256.Sum256(readFile(t, s.BootPath)), sha256.Sum256(readFile(t, s.RootfsPath))}
}

// bundle signs a bundle of version 1.1.0 whose boot image is boot.
func (r *bootRig) bundle(t *testing.T, boot string) string {
	t.Helper()
	rootfs := filepath.Join(r.dir, "rootfs.img")
	if err := os.WriteFile(rootfs, append([]byte("onair version=1.1.0 keys=old\n"), noise(300<<10, 99)...), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(r.dir, "update.bundle")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := bundle.CreateOptions{Version: "1.1.0", Board: map[string]string{"pi": "pi4", "uboot": "zero2w"}[r.kind],
		CreatedAt: time.Unix(0, 0), Keys: []ed25519.PrivateKey{keyOld.priv}}
	if _, err := bundle.CreateFromFiles(f, boot, rootfs, opts); err != nil {
		t.Fatal(err)
	}
	return path
}

// mtoolsRead reads a file of the slot's boot partition with mtools, an
// implementation independent of the agent's.
func mtoolsRead(t *testing.T, image, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out-"+name)
	otatest.Run(t, "mcopy", "-n", "-i", image, "::"+name, out)
	return readFile(t, out)
}

// cmdlineWith is a kernel command line with root= at a chosen byte offset
// and a chosen total length, so that it can straddle a cluster boundary.
func cmdlineWith(root string, rootAt, total int) string {
	var b strings.Builder
	for b.Len() < rootAt-len("quiet ") {
		b.WriteString("quiet ")
	}
	b.WriteString(strings.Repeat("x", rootAt-b.Len()-1) + " ")
	b.WriteString("root=" + root + " rootfstype=ext4 rootwait ro")
	for b.Len() < total-len(" quiet")-1 {
		b.WriteString(" quiet")
	}
	b.WriteString("\n")
	return b.String()
}

// TestBootImageInstall installs a bundle whose boot image is a real FAT
// image from mkfs.vfat and mtools, built for slot A, and reads the slot
// back with mtools: cmdline.txt names the target slot's rootfs and nothing
// else of the partition changed; the running slot is untouched and the
// trial boots the target.
func TestBootImageInstall(t *testing.T) {
	kernel := noise(8<<20, 1) // a kernel-sized file
	piCmd := "console=serial0,115200 console=tty1 root=PARTUUID=6f6e6169-05 rootfstype=ext4 rootwait ro panic=5 oops=panic\n"
	piFiles := []fatEntry{
		{"config.txt", []byte("arm_64bit=1\nkernel=Image\n")},
		{"Image", kernel},
		{"bcm2711-rpi-4-b.dtb", noise(50<<10, 2)},
		{"cmdline.txt", []byte(piCmd)},
	}
	// 512-byte clusters; holes left by deleted files make the 1200-byte
	// cmdline.txt take three clusters, not all neighbours, with root=
	// across the first cluster boundary.
	fragmented := cmdlineWith("PARTUUID=6f6e6169-05", 500, 1200)
	cases := []struct {
		name, kind, running string
		spec                fatSpec
		wantCmdline         string // "" when the boot image has none
		wantFragments       int
	}{
		{name: "pi A to B", kind: "pi", running: "A", spec: fatSpec{sizeKiB: 16 << 10, files: piFiles},
			wantCmdline: strings.Replace(piCmd, "-05", "-06", 1), wantFragments: 1},
		{name: "pi B to A", kind: "pi", running: "B", spec: fatSpec{sizeKiB: 16 << 10, files: piFiles},
			wantCmdline: piCmd, wantFragments: 1},
		{name: "pi fragmented cmdline.txt", kind: "pi", running: "A", spec: fatSpec{sizeKiB: 2 << 10, sectorsPerCluster: 1, files: []fatEntry{
			{"hole1", noise(512, 3)}, {"keep1", noise(512, 4)}, {"hole2", noise(1024, 5)}, {"keep2", noise(512, 6)},
			{"-hole1", nil}, {"-hole2", nil},
			{"cmdline.txt", []byte(fragmented)},
			{"Image", noise(200<<10, 7)},
		}}, wantCmdline: strings.Replace(fragmented, "-05", "-06", 1), wantFragments: 2},
		{name: "uboot A to B", kind: "uboot", running: "A", spec: fatSpec{sizeKiB: 16 << 10, files: []fatEntry{
			{"zImage", kernel}, {"bcm2710-rpi-zero-2-w.dtb", noise(30<<10, 8)},
		}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newBootRig(t, c.kind, c.running)
			image := c.spec.make(t, t.TempDir())
			src := readFile(t, image)
			if c.wantCmdline != "" {
				fsys, err := fat.Open(bytes.NewReader(src), int64(len(src)))
				if err != nil {
					t.Fatal(err)
				}
				f, err := fsys.Lookup("cmdline.txt")
				if err != nil {
					t.Fatal(err)
				}
				if got := len(f.Extents()); got != c.wantFragments {
					t.Fatalf("mtools laid cmdline.txt out in %d pieces, the case wants %d", got, c.wantFragments)
				}
			}
			target := map[string]string{"A": "B", "B": "A"}[c.running]
			running := r.sums(t, c.running)
			inst, err := r.agent(t).Install(context.Background(), ota.Request{Source: r.bundle(t, image)})
			if err != nil {
				t.Fatalf("install: %v", err)
			}
			if inst.Slot != target {
				t.Fatalf("installed into %s, want %s", inst.Slot, target)
			}
			if r.sums(t, c.running) != running {
				t.Fatal("running slot changed")
			}
			boot := r.slot(target).BootPath
			if c.wantCmdline != "" {
				if got := string(otatest.Run(t, "mtype", "-i", boot, "::cmdline.txt")); got != c.wantCmdline {
					t.Fatalf("mtype reads cmdline.txt\n%q\nwant\n%q", got, c.wantCmdline)
				}
			}
			for _, f := range c.spec.files {
				if f.name == "cmdline.txt" || strings.HasPrefix(f.name, "-") || strings.HasPrefix(f.name, "hole") {
					continue
				}
				if !bytes.Equal(mtoolsRead(t, boot, f.name), f.data) {
					t.Errorf("%s differs from the bundle's", f.name)
				}
			}
			otatest.Run(t, "fsck.fat", "-n", boot)
			// Byte for byte: the partition is the boot image but for the
			// one digit of root= that names the slot.
			got := readFile(t, boot)[:len(src)]
			diff := 0
			for i := range src {
				if got[i] != src[i] {
					diff++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[c.kind == "pi" && target == "B"]; diff != want {
				t.Fatalf("%d bytes of the boot partition differ from the bundle's image, want %d", diff, want)
			}
			if err := r.agent(t).Reboot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if info, err := r.board.PowerOn(); err != nil || info != (ota.BootInfo{Slot: target, Trial: true}) {
				t.Fatalf("after install booted %+v, %v; want a trial of %s", info, err, target)
			}
		})
	}
}

// TestBootImageRefused: a boot image the agent cannot point at the target
// slot is refused after it was written and verified, before anything is
// armed; the running slot stays byte-identical and the next boot runs it.
func TestBootImageRefused(t *testing.T) {
	kernel := []fatEntry{{"Image", noise(300<<10, 11)}}
	withCmdline := func(line string) []fatEntry {
		return append([]fatEntry{{"cmdline.txt", []byte(line)}}, kernel...)
	}
	cases := []struct {
		name string
		spec fatSpec
		want error
	}{
		{"no cmdline.txt", fatSpec{sizeKiB: 1 << 10, files: kernel}, cmdline.ErrNoFile},
		{"no root=", fatSpec{sizeKiB: 1 << 10, files: withCmdline("console=tty1 rootwait ro\n")}, cmdline.ErrRoot},
		{"root= of no slot", fatSpec{sizeKiB: 1 << 10, files: withCmdline("console=tty1 root=PARTUUID=deadbeef-02 rootwait\n")}, cmdline.ErrRoot},
		{"root= as a device name", fatSpec{sizeKiB: 1 << 10, files: withCmdline("root=/dev/mmcblk0p5 rootwait\n")}, cmdline.ErrRoot},
		{"two root=", fatSpec{sizeKiB: 1 << 10, files: withCmdline("root=PARTUUID=6f6e6169-05 root=PARTUUID=6f6e6169-06\n")}, cmdline.ErrRoot},
		{"root= only after --", fatSpec{sizeKiB: 1 << 10, files: withCmdline("console=tty1 -- root=PARTUUID=6f6e6169-05\n")}, cmdline.ErrRoot},
		{"not a command line", fatSpec{sizeKiB: 1 << 10, files: withCmdline(strings.Repeat("quiet ", 12000) + "root=PARTUUID=6f6e6169-05\n")}, cmdline.ErrRoot},
		// The directory entry claims three clusters, the FAT chain holds
		// one: a damaged file system, not guessed at.
		{"chain shorter than the file", fatSpec{sizeKiB: 1 << 10, sectorsPerCluster: 1,
			files: withCmdline("root=PARTUUID=6f6e6169-05 rootwait\n"), mutate: func(t *testing.T, img []byte) {
				at := bytes.Index(img, []byte("CMDLINE TXT"))
				if at < 0 {
					t.Fatal("no CMDLINE TXT entry")
				}
				binary.LittleEndian.PutUint32(img[at+28:], 1500)
			}}, fat.ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newBootRig(t, "pi", "A")
			before := r.sums(t, "A")
			a := r.agent(t)
			_, err := a.Install(context.Background(), ota.Request{Source: r.bundle(t, c.spec.make(t, t.TempDir()))})
			if !errors.Is(err, ota.ErrBootImage) || !errors.Is(err, c.want) {
				t.Fatalf("install: %v; want %v and %v", err, ota.ErrBootImage, c.want)
			}
			t.Logf("refused: %v", err)
			if r.sums(t, "A") != before {
				t.Fatal("running slot changed")
			}
			st, err := a.State()
			if err != nil || st.Phase != ota.PhaseIdle || st.Last == nil || st.Last.Result != ota.ResultFailed {
				t.Fatalf("state %+v, %v", st, err)
			}
			if err := a.Reboot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if info, err := r.board.PowerOn(); err != nil || info != (ota.BootInfo{Slot: "A"}) {
				t.Fatalf("after the refusal booted %+v, %v", info, err)
			}
		})
	}
}

// TestCmdlineRootsChecked: the agent refuses root= values it could not
// rewrite in place.
func TestCmdlineRootsChecked(t *testing.T) {
	r := newBootRig(t, "pi", "A")
	for name, roots := range map[string]map[string]string{
		"one slot":   {"A": "PARTUUID=6f6e6169-05"},
		"same":       {"A": "PARTUUID=6f6e6169-05", "B": "PARTUUID=6f6e6169-05"},
		"lengths":    {"A": "PARTUUID=6f6e6169-05", "B": "/dev/mmcblk0p6"},
		"space":      {"A": "PARTUUID=6f6e6169-05", "B": "PARTUUID=6f6e 169-06"},
		"other name": {"A": "PARTUUID=6f6e6169-05", "C": "PARTUUID=6f6e6169-06"},
	} {
		cfg := ota.Config{
			DataDir: filepath.Join(r.dir, "data"), Board: "pi4", Version: "1.0.0",
			Keys:  bundle.NewKeyring(keyOld.priv.Public().(ed25519.PublicKey)),
			Slots: [2]ota.Slot{r.slots[0], r.slots[1]}, Bootloader: r.bl, CmdlineRoots: roots,
		}
		if _, err := ota.New(cfg); err == nil {
			t.Errorf("%s: %v accepted", name, roots)
		}
	}
}
