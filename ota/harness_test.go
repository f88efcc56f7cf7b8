package ota_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/tryboot"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(killChildMain())
	}
	goleak.VerifyTestMain(m)
}

const (
	bootCapacity   = 512 << 10
	rootfsCapacity = 2 << 20
	imageBootSize  = 256 << 10 // a FAT image made by mkfs.vfat
	imageRootSize  = 1<<20 + 12345
)

// piRoots are the root= values of the Pi boards' slots, as firmware.yaml
// gives them; bundles carry a boot image built for slot A.
var piRoots = map[string]string{"A": "PARTUUID=6f6e6169-05", "B": "PARTUUID=6f6e6169-06"}

// signer is a named test key; images name the keys they trust, so key
// rotation is carried by the images as on a real box.
type signer struct {
	name string
	priv ed25519.PrivateKey
}

func newSigner(name string, seed byte) signer {
	return signer{name, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

var (
	keyOld   = newSigner("old", 1)
	keyNew   = newSigner("new", 2)
	keyRogue = newSigner("rogue", 66)
)

func signerByName(name string) (signer, bool) {
	for _, s := range []signer{keyOld, keyNew, keyRogue} {
		if s.name == name {
			return s, true
		}
	}
	return signer{}, false
}

// firmware is a fake image: the first line of its rootfs names its version
// and trusted keys (baked into the image), the rest is deterministic noise.
type firmware struct {
	version string
	trusts  []string
}

var (
	imageCache sync.Map
	bootCache  sync.Map
	bootBuild  sync.Mutex
)

// image is the whole bundle image of fw for this box's board: a boot
// partition image then the root file system.
func (b *box) image(fw firmware) []byte {
	b.t.Helper()
	return append(bootImage(b.t, b.kind, fw.version), fw.rootfs()...)
}

// rootfs is deterministic noise whose first line names the version and
// the trusted keys.
func (f firmware) rootfs() []byte {
	key := f.version + " " + strings.Join(f.trusts, ",")
	if img, ok := imageCache.Load(key); ok {
		return bytes.Clone(img.([]byte))
	}
	rng := rand.New(rand.NewPCG(uint64(len(f.version)), uint64(f.version[len(f.version)-1])))
	img := make([]byte, imageRootSize)
	for i := range img {
		img[i] = byte(rng.Uint32())
	}
	header := fmt.Sprintf("onair version=%s keys=%s\n", f.version, strings.Join(f.trusts, ","))
	copy(img, header)
	imageCache.Store(key, bytes.Clone(img))
	return img
}

// bootImage is a real FAT boot partition image of a version, made with
// mkfs.vfat and filled with mcopy as the image build does: on a Pi a
// kernel, a DTB, config.txt and a cmdline.txt naming slot A's rootfs; for
// U-Boot a kernel and a DTB only (its boot script passes root=).
func bootImage(tb testing.TB, kind, version string) []byte {
	tb.Helper()
	bootBuild.Lock()
	defer bootBuild.Unlock()
	key := kind + " " + version
	if img, ok := bootCache.Load(key); ok {
		return bytes.Clone(img.([]byte))
	}
	dir := tb.TempDir()
	path := filepath.Join(dir, "boot.vfat")
	otatest.Run(tb, "mkfs.vfat", "-C", "-i", "6f6e6169", "-n", "ONAIR-A", path, strconv.Itoa(imageBootSize>>10))
	rng := rand.New(rand.NewPCG(uint64(len(version)), uint64(version[len(version)-1])+7))
	kernel := make([]byte, 100<<10)
	for i := range kernel {
		kernel[i] = byte(rng.Uint32())
	}
	copy(kernel, "kernel "+version+"\n")
	files := map[string][]byte{"bcm2711-rpi-4-b.dtb": []byte("dtb " + version)}
	switch kind {
	case "pi":
		files["Image"] = kernel
		files["config.txt"] = []byte("arm_64bit=1\nkernel=Image\n")
		files["cmdline.txt"] = []byte(piCmdline("05"))
	default:
		files["zImage"] = kernel
	}
	for name, data := range files {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		otatest.Run(tb, "mcopy", "-i", path, src, "::"+name)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(img) != imageBootSize {
		tb.Fatalf("mkfs.vfat made %d bytes, want %d", len(img), imageBootSize)
	}
	bootCache.Store(key, bytes.Clone(img))
	return img
}

func piCmdline(partition string) string {
	return "console=serial0,115200 root=PARTUUID=6f6e6169-" + partition + " rootfstype=ext4 rootwait ro panic=5\n"
}

// wantBoot is what slot's boot partition must hold to boot version: the
// bundle's boot image with, on a Pi, cmdline.txt naming the slot's own
// rootfs. Found here by searching the bytes, not through the agent's FAT
// code, so the check does not share the code it checks.
func (b *box) wantBoot(version, slot string) []byte {
	b.t.Helper()
	img := bootImage(b.t, b.kind, version)
	if b.kind != "pi" {
		return img
	}
	asBuilt := []byte(piCmdline("05"))
	if bytes.Count(img, asBuilt) != 1 {
		b.t.Fatalf("boot image of %s holds its command line %d times", version, bytes.Count(img, asBuilt))
	}
	part := map[string]string{"A": "05", "B": "06"}[slot]
	return bytes.Replace(img, asBuilt, []byte(piCmdline(part)), 1)
}

// parseRunning reads what a slot claims to be.
func parseRunning(rootfs []byte) (version string, keys *bundle.Keyring, err error) {
	line, _, _ := bytes.Cut(rootfs[:min(len(rootfs), 200)], []byte("\n"))
	var keyList string
	if _, err := fmt.Sscanf(string(line), "onair version=%s keys=%s", &version, &keyList); err != nil {
		return "", nil, fmt.Errorf("slot holds no firmware: %q", line)
	}
	var pubs []ed25519.PublicKey
	for _, n := range strings.Split(keyList, ",") {
		s, ok := signerByName(n)
		if !ok {
			return "", nil, fmt.Errorf("unknown key %q in image", n)
		}
		pubs = append(pubs, s.priv.Public().(ed25519.PublicKey))
	}
	return version, bundle.NewKeyring(pubs...), nil
}

// board is what both fake bootloaders offer the tests.
type board interface {
	PowerOn() (ota.BootInfo, error)
	PowerCut()
	Reboots() int
}

// box is a simulated OnAir box: two file-backed slots, a data dir and a
// fake bootloader, all on disk so a child process can share them.
type box struct {
	t      testing.TB
	dir    string
	kind   string
	slots  [2]ota.FileSlot
	board  board
	bl     ota.Bootloader
	clock  *otatest.Clock
	booted ota.BootInfo
	cfg    func(*ota.Config)
}

func newBox(t testing.TB, kind string, initial firmware) *box {
	t.Helper()
	dir := t.TempDir()
	slots, err := otatest.MakeSlots(dir, bootCapacity, rootfsCapacity)
	if err != nil {
		t.Fatal(err)
	}
	b := &box{t: t, dir: dir, kind: kind, slots: slots}
	writeSlot(t, slots[0], b.image(initial))
	switch kind {
	case "pi":
		otatest.NewFATSelector(t, dir, tryboot.Selection{Committed: 2, Trial: 2})
	case "uboot":
	default:
		t.Fatalf("unknown board %q", kind)
	}
	b.attach()
	b.powerOn()
	return b
}

// attach builds the board fakes from what is on disk.
func (b *box) attach() {
	b.t.Helper()
	b.clock = otatest.NewClock()
	switch b.kind {
	case "pi":
		pi, err := otatest.NewPi(b.dir, tryboot.FATPartition{Device: filepath.Join(b.dir, "bootsel.img")})
		if err != nil {
			b.t.Fatal(err)
		}
		b.board, b.bl = pi, pi.Bootloader()
	case "uboot":
		u, err := otatest.NewUBoot(b.dir, "A")
		if err != nil {
			b.t.Fatal(err)
		}
		b.board, b.bl = u, u.Bootloader()
	}
}

func writeSlot(t testing.TB, s ota.FileSlot, img []byte) {
	t.Helper()
	for _, part := range []struct {
		path string
		data []byte
	}{{s.BootPath, img[:imageBootSize]}, {s.RootfsPath, img[imageBootSize:]}} {
		f, err := os.OpenFile(part.path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(part.data, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

func (b *box) slot(name string) ota.FileSlot {
	for _, s := range b.slots {
		if s.SlotName == name {
			return s
		}
	}
	b.t.Fatalf("no slot %q", name)
	return ota.FileSlot{}
}

// slotImage reads what a slot holds, boot then rootfs, imageSize long.
func (b *box) slotImage(name string) []byte {
	s := b.slot(name)
	boot, err := os.ReadFile(s.BootPath)
	if err != nil {
		b.t.Fatal(err)
	}
	rootfs, err := os.ReadFile(s.RootfsPath)
	if err != nil {
		b.t.Fatal(err)
	}
	return append(boot[:imageBootSize:imageBootSize], rootfs[:imageRootSize]...)
}

func (b *box) slotFiles(name string) [2][32]byte {
	s := b.slot(name)
	var sums [2][32]byte
	for i, p := range []string{s.BootPath, s.RootfsPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			b.t.Fatal(err)
		}
		sums[i] = sha256.Sum256(data)
	}
	return sums
}

// powerOn boots the board and checks that what boots is a whole, good
// firmware image: the property every test in this package is about.
func (b *box) powerOn() ota.BootInfo {
	b.t.Helper()
	info, err := b.board.PowerOn()
	if err != nil {
		b.t.Fatalf("box does not boot: %v", err)
	}
	img := b.slotImage(info.Slot)
	version, _, err := parseRunning(img[imageBootSize:])
	if err != nil {
		b.t.Fatalf("slot %s boots garbage: %v", info.Slot, err)
	}
	if !bytes.Equal(img[:imageBootSize], b.wantBoot(version, info.Slot)) ||
		!bytes.Equal(img[imageBootSize+100:], (firmware{version: version}).rootfs()[100:]) {
		b.t.Fatalf("slot %s (version %s) is damaged", info.Slot, version)
	}
	b.booted = info
	return info
}

// agent is what onaird would build at start-up on the running slot.
func (b *box) agent() *ota.Agent {
	b.t.Helper()
	img := b.slotImage(b.booted.Slot)
	version, keys, err := parseRunning(img[imageBootSize:])
	if err != nil {
		b.t.Fatal(err)
	}
	boardName := map[string]string{"pi": "pi4", "uboot": "zero2w"}[b.kind]
	cfg := ota.Config{
		DataDir: filepath.Join(b.dir, "data"), Board: boardName, Version: version, Keys: keys,
		Slots: [2]ota.Slot{b.slots[0], b.slots[1]}, Bootloader: b.bl, Clock: b.clock,
		HealthDeadline: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if b.kind == "pi" {
		cfg.CmdlineRoots = piRoots
	}
	if b.cfg != nil {
		b.cfg(&cfg)
	}
	a, err := ota.New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	return a
}

func healthy(context.Context) error { return nil }

// settle plays the daemon across boots: AfterBoot, and reboot when asked,
// until the box stays put. It returns the last report.
func (b *box) settle(health ota.HealthFunc) ota.Report {
	b.t.Helper()
	for range 12 {
		rep, err := b.agent().AfterBoot(context.Background(), health)
		if err != nil {
			b.t.Fatalf("after boot: %v", err)
		}
		if !rep.RebootNeeded {
			return rep
		}
		if err := b.agent().Reboot(context.Background()); err != nil {
			b.t.Fatal(err)
		}
		b.powerOn()
	}
	b.t.Fatal("box keeps rebooting")
	return ota.Report{}
}

// makeBundle builds a bundle file from boot and rootfs image files with
// the code onair-bundle create runs.
func (b *box) makeBundle(fw firmware, boardName string, keys ...signer) string {
	b.t.Helper()
	img := b.image(fw)
	name := fmt.Sprintf("onair-%s-%s-%d", boardName, fw.version, rand.Int())
	bootPath, rootfsPath := filepath.Join(b.dir, name+".boot"), filepath.Join(b.dir, name+".rootfs")
	if err := os.WriteFile(bootPath, img[:imageBootSize], 0o644); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(rootfsPath, img[imageBootSize:], 0o644); err != nil {
		b.t.Fatal(err)
	}
	opts := bundle.CreateOptions{Version: fw.version, Board: boardName, CreatedAt: time.Unix(0, 0)}
	for _, k := range keys {
		opts.Keys = append(opts.Keys, k.priv)
	}
	path := filepath.Join(b.dir, name+".bundle")
	f, err := os.Create(path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.CreateFromFiles(f, bootPath, rootfsPath, opts); err != nil {
		b.t.Fatal(err)
	}
	return path
}

func (b *box) boardName() string { return map[string]string{"pi": "pi4", "uboot": "zero2w"}[b.kind] }

func (b *box) runningVersion() string {
	v, _, err := parseRunning(b.slotImage(b.booted.Slot)[imageBootSize:])
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

var errCrash = errors.New("simulated power cut")
