package tryboot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/ota"
)

// DefaultDeviceTree is where the Pi firmware tells the kernel which boot
// partition it used and whether the boot is a tryboot.
const DefaultDeviceTree = "/proc/device-tree/chosen/bootloader"

// Tryboot is the Pi 4/5 Bootloader.
type Tryboot struct {
	// Selector holds autoboot.txt.
	Selector Selector
	// Partitions maps slot names to boot partition numbers, e.g.
	// {"A": 2, "B": 3}.
	Partitions map[string]int
	// DeviceTree is the firmware's chosen/bootloader node; default
	// DefaultDeviceTree.
	DeviceTree string
	// RebootFunc restarts the box with the given reboot argument ("" or
	// "0 tryboot"); default the reboot(2) system call.
	RebootFunc func(arg string) error
}

var _ ota.Bootloader = (*Tryboot)(nil)

func (t *Tryboot) partition(slot string) (int, error) {
	n, ok := t.Partitions[slot]
	if !ok {
		return 0, fmt.Errorf("tryboot: slot %q has no boot partition configured", slot)
	}
	return n, nil
}

func (t *Tryboot) slotOf(partition int) (string, error) {
	for name, n := range t.Partitions {
		if n == partition {
			return name, nil
		}
	}
	return "", fmt.Errorf("tryboot: booted from partition %d, which is no slot's", partition)
}

// Booted reads the firmware's report from the device tree.
func (t *Tryboot) Booted(context.Context) (ota.BootInfo, error) {
	dir := t.DeviceTree
	if dir == "" {
		dir = DefaultDeviceTree
	}
	partition, err := readCell(filepath.Join(dir, "partition"))
	if err != nil {
		return ota.BootInfo{}, err
	}
	// Firmware older than tryboot support has no such property: never a trial.
	trial, err := readCell(filepath.Join(dir, "tryboot"))
	if errors.Is(err, fs.ErrNotExist) {
		trial, err = 0, nil
	}
	if err != nil {
		return ota.BootInfo{}, err
	}
	slot, err := t.slotOf(int(partition))
	if err != nil {
		return ota.BootInfo{}, err
	}
	if trial == 0 {
		return ota.BootInfo{Slot: slot}, nil
	}
	// A tryboot boot stays one after Commit until the next reboot; once
	// [all] names this partition the next reboot no longer undoes it, so
	// it is no longer a trial.
	sel, err := t.read()
	if err != nil {
		return ota.BootInfo{}, err
	}
	return ota.BootInfo{Slot: slot, Trial: sel.Committed != int(partition)}, nil
}

// readCell reads a device tree property holding one big-endian u32.
func readCell(path string) (uint32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("tryboot: %w", err)
	}
	if len(data) != 4 {
		return 0, fmt.Errorf("tryboot: %s holds %d bytes, want 4", path, len(data))
	}
	return binary.BigEndian.Uint32(data), nil
}

func (t *Tryboot) read() (Selection, error) {
	data, err := t.Selector.Read()
	if err != nil {
		return Selection{}, err
	}
	return Parse(data)
}

func (t *Tryboot) write(sel Selection) error {
	if err := t.Selector.Write(Render(sel)); err != nil {
		return fmt.Errorf("tryboot: %w", err)
	}
	return nil
}

// ArmTrial points [tryboot] at slot and [all] at the running slot, in one
// write. The trial happens only on a reboot with the tryboot argument.
func (t *Tryboot) ArmTrial(ctx context.Context, slot string) error {
	info, err := t.Booted(ctx)
	if err != nil {
		return err
	}
	committed, err := t.partition(info.Slot)
	if err != nil {
		return err
	}
	trial, err := t.partition(slot)
	if err != nil {
		return err
	}
	return t.write(Selection{Committed: committed, Trial: trial})
}

// Commit points both sections at slot, so neither a normal boot nor a stray
// tryboot leaves it.
func (t *Tryboot) Commit(_ context.Context, slot string) error {
	n, err := t.partition(slot)
	if err != nil {
		return err
	}
	return t.write(Selection{Committed: n, Trial: n})
}

// Disarm points both sections at slot unless they already are.
func (t *Tryboot) Disarm(_ context.Context, slot string) error {
	n, err := t.partition(slot)
	if err != nil {
		return err
	}
	if cur, err := t.read(); err == nil && cur == (Selection{Committed: n, Trial: n}) {
		return nil
	}
	return t.write(Selection{Committed: n, Trial: n})
}

// Reboot restarts, with the tryboot argument when trial is set.
func (t *Tryboot) Reboot(_ context.Context, trial bool) error {
	arg := ""
	if trial {
		arg = "0 tryboot"
	}
	reboot := t.RebootFunc
	if reboot == nil {
		reboot = rebootSyscall
	}
	if err := reboot(arg); err != nil {
		return fmt.Errorf("tryboot: reboot %q: %w", arg, err)
	}
	return nil
}

// rebootSyscall restarts the kernel with an argument, which the Pi
// firmware driver passes on (that is how "0 tryboot" reaches the firmware).
// The caller has stopped its work; data is synced here.
func rebootSyscall(arg string) error {
	unix.Sync()
	if arg == "" {
		return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	p, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
