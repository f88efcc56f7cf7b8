// Package otatest has fakes of the update agent's hardware for tests: a Pi
// firmware that honours autoboot.txt and the tryboot flag, a U-Boot that
// runs the bootcount script, file-backed slots and a clock moved by hand.
// The fakes drive the real ota/tryboot and ota/uboot code, so what the
// tests exercise is what runs on the box; only the firmware is pretend.
package otatest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/tryboot"
	"github.com/onair/onair/ota/uboot"
)

// Pi is a Raspberry Pi 4/5 firmware: on power-on it reads autoboot.txt from
// the selector, boots [tryboot]'s partition if the last reboot carried the
// tryboot argument (and forgets that flag, so it works once), otherwise
// [all]'s, and reports its choice in a device tree directory.
type Pi struct {
	// Selector is the boot-selector partition's autoboot.txt.
	Selector tryboot.Selector
	// Partitions maps slot names to boot partitions, {"A": 2, "B": 3}.
	Partitions map[string]int

	dtDir string
	mu    sync.Mutex
	// trybootFlag is the reboot argument the firmware keeps across a warm
	// reboot; a power cut loses it.
	trybootFlag bool
	reboots     int
}

// NewPi makes a Pi firmware whose device tree lives under dir.
func NewPi(dir string, sel tryboot.Selector) (*Pi, error) {
	p := &Pi{Selector: sel, Partitions: map[string]int{"A": 2, "B": 3}, dtDir: filepath.Join(dir, "device-tree")}
	if err := os.MkdirAll(p.dtDir, 0o755); err != nil {
		return nil, err
	}
	return p, nil
}

// Bootloader is the real tryboot code wired to this firmware.
func (p *Pi) Bootloader() *tryboot.Tryboot {
	return &tryboot.Tryboot{Selector: p.Selector, Partitions: p.Partitions, DeviceTree: p.dtDir, RebootFunc: p.reboot}
}

func (p *Pi) reboot(arg string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trybootFlag = strings.Contains(arg, "tryboot")
	p.reboots++
	return nil
}

// Reboots counts reboots requested through the bootloader.
func (p *Pi) Reboots() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reboots
}

// PowerCut loses the tryboot flag, as removing power does.
func (p *Pi) PowerCut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trybootFlag = false
}

// PowerOn boots: it picks the partition as the firmware would and returns
// the slot that runs.
func (p *Pi) PowerOn() (ota.BootInfo, error) {
	p.mu.Lock()
	trial := p.trybootFlag
	p.trybootFlag = false // one-shot, whatever happens next
	p.mu.Unlock()
	data, err := p.Selector.Read()
	if err != nil {
		return ota.BootInfo{}, fmt.Errorf("firmware: %w", err)
	}
	sel, err := tryboot.Parse(data)
	if err != nil {
		return ota.BootInfo{}, fmt.Errorf("firmware: %w", err)
	}
	part := sel.Committed
	if trial {
		part = sel.Trial
	}
	slot := ""
	for name, n := range p.Partitions {
		if n == part {
			slot = name
		}
	}
	if slot == "" {
		return ota.BootInfo{}, fmt.Errorf("firmware: boot_partition=%d is no slot", part)
	}
	flag := uint32(0)
	if trial {
		flag = 1
	}
	if err := writeCell(filepath.Join(p.dtDir, "partition"), uint32(part)); err != nil {
		return ota.BootInfo{}, err
	}
	if err := writeCell(filepath.Join(p.dtDir, "tryboot"), flag); err != nil {
		return ota.BootInfo{}, err
	}
	return ota.BootInfo{Slot: slot, Trial: trial}, nil
}

func writeCell(path string, v uint32) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return os.WriteFile(path, b[:], 0o644)
}

// NewFATSelector makes a real FAT boot-selector image in dir with mkfs.vfat
// and puts a 512-byte autoboot.txt selecting committed's partition on it
// with mcopy, as the image builder does. The test fails if dosfstools or
// mtools are missing: the point is to check against the real tools.
func NewFATSelector(tb testing.TB, dir string, sel tryboot.Selection) tryboot.FATPartition {
	tb.Helper()
	img := filepath.Join(dir, "bootsel.img")
	run(tb, "mkfs.vfat", "-C", "-n", "BOOTSEL", img, "4096")
	src := filepath.Join(dir, "autoboot.txt")
	if err := os.WriteFile(src, tryboot.Render(sel), 0o644); err != nil {
		tb.Fatal(err)
	}
	run(tb, "mcopy", "-i", img, src, "::autoboot.txt")
	return tryboot.FATPartition{Device: img}
}

func run(tb testing.TB, name string, args ...string) []byte {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found: install Debian packages dosfstools and mtools (apt-get install dosfstools mtools)", name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// Run runs a tool needed by a test (mtype, fsck.fat) and returns its
// output, failing the test when it is missing or fails.
func Run(tb testing.TB, name string, args ...string) []byte {
	tb.Helper()
	return run(tb, name, args...)
}

// UBoot is a U-Boot with the bootcount script described in ota/uboot: on
// power-on, while upgrade_available is 1 it counts the boot, and past
// bootlimit (1) it runs altbootcmd (switch back, clear the flag, save).
type UBoot struct {
	// Env is the environment, persisted in a file.
	Env *FileEnv
	// Slots are the slot names.
	Slots [2]string

	cmdline string
	mu      sync.Mutex
	reboots int
}

// NewUBoot makes a U-Boot whose environment and kernel command line live
// in dir, with committed as the boot slot. An existing environment is kept,
// so a second process sees the same board.
func NewUBoot(dir, committed string) (*UBoot, error) {
	u := &UBoot{Env: &FileEnv{Path: filepath.Join(dir, "uboot.env")}, Slots: [2]string{"A", "B"}, cmdline: filepath.Join(dir, "cmdline")}
	if _, err := os.Stat(u.Env.Path); errors.Is(err, os.ErrNotExist) {
		err := u.Env.Set(context.Background(), map[string]string{uboot.VarSlot: committed, uboot.VarUpgradeAvailable: "0", uboot.VarBootCount: "0", "bootlimit": "1"})
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Bootloader is the real U-Boot code wired to this fake.
func (u *UBoot) Bootloader() *uboot.UBoot {
	return &uboot.UBoot{Env: u.Env, Slots: u.Slots, Cmdline: u.cmdline, RebootFunc: u.reboot}
}

func (u *UBoot) reboot() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reboots++
	return nil
}

// Reboots counts reboots requested through the bootloader.
func (u *UBoot) Reboots() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reboots
}

// PowerCut does nothing: U-Boot keeps all its state in the environment.
func (u *UBoot) PowerCut() {}

// PowerOn runs the boot script and returns the slot that boots.
func (u *UBoot) PowerOn() (ota.BootInfo, error) {
	ctx := context.Background()
	env, err := u.Env.Load(ctx)
	if err != nil {
		return ota.BootInfo{}, fmt.Errorf("u-boot: %w", err)
	}
	if env[uboot.VarUpgradeAvailable] == "1" {
		count, _ := strconv.Atoi(env[uboot.VarBootCount])
		limit, _ := strconv.Atoi(env["bootlimit"])
		count++
		change := map[string]string{uboot.VarBootCount: strconv.Itoa(count)}
		if count > limit {
			// altbootcmd
			change[uboot.VarSlot] = u.other(env[uboot.VarSlot])
			change[uboot.VarUpgradeAvailable] = "0"
			change[uboot.VarBootCount] = "0"
		}
		if err := u.Env.Set(ctx, change); err != nil {
			return ota.BootInfo{}, fmt.Errorf("u-boot: saveenv: %w", err)
		}
		if env, err = u.Env.Load(ctx); err != nil {
			return ota.BootInfo{}, err
		}
	}
	slot := env[uboot.VarSlot]
	if slot != u.Slots[0] && slot != u.Slots[1] {
		return ota.BootInfo{}, fmt.Errorf("u-boot: boot_slot %q is no slot", slot)
	}
	if err := os.WriteFile(u.cmdline, []byte("console=serial0 rootwait onair.slot="+slot+"\n"), 0o644); err != nil {
		return ota.BootInfo{}, err
	}
	return ota.BootInfo{Slot: slot, Trial: env[uboot.VarUpgradeAvailable] == "1"}, nil
}

func (u *UBoot) other(slot string) string {
	if slot == u.Slots[0] {
		return u.Slots[1]
	}
	return u.Slots[0]
}

// FileEnv is a U-Boot environment kept in a JSON file and replaced
// atomically, like a redundant environment.
type FileEnv struct {
	// Path of the file.
	Path string
	mu   sync.Mutex
}

// Load reads all variables.
func (e *FileEnv) Load(context.Context) (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.load()
}

func (e *FileEnv) load() (map[string]string, error) {
	data, err := os.ReadFile(e.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("environment %s: %w", e.Path, err)
	}
	return env, nil
}

// Set changes vars in one atomic replacement of the file.
func (e *FileEnv) Set(_ context.Context, vars map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	env, err := e.load()
	if err != nil {
		return err
	}
	for k, v := range vars {
		env[k] = v
	}
	data, err := json.Marshal(env)
	if err != nil {
		return err
	}
	tmp := e.Path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, e.Path)
}

// MakeSlots creates file-backed slots A and B in dir: a boot and a rootfs
// file each, of fixed sizes, like partitions.
func MakeSlots(dir string, bootSize, rootfsSize int64) ([2]ota.FileSlot, error) {
	var slots [2]ota.FileSlot
	for i, name := range []string{"A", "B"} {
		s := ota.FileSlot{SlotName: name, BootPath: filepath.Join(dir, "boot"+name), RootfsPath: filepath.Join(dir, "rootfs"+name)}
		for _, f := range []struct {
			path string
			size int64
		}{{s.BootPath, bootSize}, {s.RootfsPath, rootfsSize}} {
			if err := os.WriteFile(f.path, nil, 0o644); err != nil {
				return slots, err
			}
			if err := os.Truncate(f.path, f.size); err != nil {
				return slots, err
			}
		}
		slots[i] = s
	}
	return slots, nil
}
