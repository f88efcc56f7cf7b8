// Package uboot is the update agent's bootloader for boards without the
// Pi firmware's tryboot (Zero 2 W, Pi 3): U-Boot with a boot count.
//
// The U-Boot environment holds boot_slot (A or B), upgrade_available and
// bootcount; bootlimit is 1. U-Boot increments bootcount on every boot while
// upgrade_available is 1, and when it exceeds bootlimit runs altbootcmd,
// which switches boot_slot back, clears upgrade_available and saves. The
// boot script passes onair.slot=<slot> on the kernel command line. So an
// armed trial is booted once; the next boot without a commit, whatever
// caused it, returns to the previous slot. Every change here is one
// environment write (fw_setenv -s with a redundant environment writes the
// whole block at once), never several in a row.
package uboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/ota"
)

// Env is the U-Boot environment.
type Env interface {
	// Load returns all variables.
	Load(ctx context.Context) (map[string]string, error)
	// Set changes the given variables in one atomic write.
	Set(ctx context.Context, vars map[string]string) error
}

// Environment variable names shared with the U-Boot boot script.
const (
	VarSlot             = "boot_slot"
	VarUpgradeAvailable = "upgrade_available"
	VarBootCount        = "bootcount"
)

// UBoot is the U-Boot Bootloader.
type UBoot struct {
	// Env is the environment, normally FWEnv.
	Env Env
	// Slots are the two slot names, e.g. {"A", "B"}.
	Slots [2]string
	// Cmdline is the kernel command line file; default /proc/cmdline.
	Cmdline string
	// RebootFunc restarts the box; default the reboot(2) system call.
	RebootFunc func() error
}

var _ ota.Bootloader = (*UBoot)(nil)

// cmdlineParam names the running slot on the kernel command line.
const cmdlineParam = "onair.slot="

// Booted reads the running slot from the kernel command line; the boot is a
// trial while upgrade_available is set for that slot.
func (u *UBoot) Booted(ctx context.Context) (ota.BootInfo, error) {
	path := u.Cmdline
	if path == "" {
		path = "/proc/cmdline"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ota.BootInfo{}, fmt.Errorf("uboot: %w", err)
	}
	slot := ""
	for _, f := range strings.Fields(string(data)) {
		if v, ok := strings.CutPrefix(f, cmdlineParam); ok {
			slot = v
		}
	}
	if slot != u.Slots[0] && slot != u.Slots[1] {
		return ota.BootInfo{}, fmt.Errorf("uboot: kernel command line names slot %q, want %s or %s", slot, u.Slots[0], u.Slots[1])
	}
	env, err := u.Env.Load(ctx)
	if err != nil {
		return ota.BootInfo{}, fmt.Errorf("uboot: %w", err)
	}
	trial := env[VarUpgradeAvailable] == "1" && env[VarSlot] == slot
	return ota.BootInfo{Slot: slot, Trial: trial}, nil
}

func (u *UBoot) set(ctx context.Context, vars map[string]string) error {
	if err := u.Env.Set(ctx, vars); err != nil {
		return fmt.Errorf("uboot: %w", err)
	}
	return nil
}

// ArmTrial selects slot with the boot count armed, in one write.
func (u *UBoot) ArmTrial(ctx context.Context, slot string) error {
	return u.set(ctx, map[string]string{VarSlot: slot, VarUpgradeAvailable: "1", VarBootCount: "0"})
}

// Commit selects slot for good, in one write.
func (u *UBoot) Commit(ctx context.Context, slot string) error {
	return u.set(ctx, map[string]string{VarSlot: slot, VarUpgradeAvailable: "0", VarBootCount: "0"})
}

// Disarm selects slot for good unless that is already so.
func (u *UBoot) Disarm(ctx context.Context, slot string) error {
	env, err := u.Env.Load(ctx)
	if err == nil && env[VarSlot] == slot && env[VarUpgradeAvailable] != "1" {
		return nil
	}
	return u.Commit(ctx, slot)
}

// Reboot restarts the box; U-Boot needs no argument to start a trial, the
// environment says it all.
func (u *UBoot) Reboot(context.Context, bool) error {
	reboot := u.RebootFunc
	if reboot == nil {
		reboot = func() error {
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		}
	}
	if err := reboot(); err != nil {
		return fmt.Errorf("uboot: reboot: %w", err)
	}
	return nil
}

// FWEnv is the environment through libubootenv's fw_printenv and
// fw_setenv, configured by /etc/fw_env.config in the image.
type FWEnv struct {
	// PrintEnv and SetEnv are the tools; default found in PATH.
	PrintEnv, SetEnv string
}

// Load runs fw_printenv.
func (e FWEnv) Load(ctx context.Context) (map[string]string, error) {
	tool := e.PrintEnv
	if tool == "" {
		tool = "fw_printenv"
	}
	out, err := exec.CommandContext(ctx, tool).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	env := make(map[string]string)
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// Set runs fw_setenv -s with a script, which writes all variables in one
// environment write.
func (e FWEnv) Set(ctx context.Context, vars map[string]string) error {
	tool := e.SetEnv
	if tool == "" {
		tool = "fw_setenv"
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var script bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&script, "%s %s\n", k, vars[k])
	}
	cmd := exec.CommandContext(ctx, tool, "-s", "-")
	cmd.Stdin = &script
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out))
	}
	return nil
}
