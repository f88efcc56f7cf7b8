// Package ota is the box's A/B update agent. It installs a signed bundle
// (see ota/bundle and docs/bundle.md) into the slot that is not running,
// reads it back, arms one trial boot of it, and after that boot commits it
// when the daemon reports the box healthy within a deadline, or returns to
// the previous slot otherwise.
//
// A bundle may carry a boot partition image (kernel, DTBs, firmware files)
// besides the root file system. It is built for slot A; on boards whose boot
// partition names its rootfs in cmdline.txt (Pi 4/5, Config.CmdlineRoots)
// the agent rewrites that root= for the target slot after verifying the
// written bytes and before arming (see ota/cmdline).
//
// The hardware sits behind two small interfaces: a Slot (a boot + rootfs
// pair of block devices, or files in tests) and a Bootloader (Pi tryboot in
// ota/tryboot, U-Boot bootcount in ota/uboot). ota/otatest has fakes of both
// that behave like the real ones, including a trial that one reboot consumes.
package ota

import (
	"context"
	"errors"
	"time"
)

// Errors an install is refused with, besides the bundle errors of
// ota/bundle (bad signature, unknown key, truncated, oversized, hash
// mismatch), which Install returns wrapped.
var (
	ErrWrongBoard      = errors.New("bundle is for another board")
	ErrDowngrade       = errors.New("bundle version is older than the running one")
	ErrVersionMismatch = errors.New("bundle version is not the requested one")
	ErrTooLarge        = errors.New("bundle image does not fit the slot")
	ErrReadback        = errors.New("slot read back does not match the bundle")
	ErrBootImage       = errors.New("bundle boot image cannot be set up for the target slot")
	ErrBusy            = errors.New("an update is already in progress")
	ErrTrialPending    = errors.New("the running slot is an update on trial; it must be committed or rolled back first")
	ErrHealthDeadline  = errors.New("not healthy before the deadline")
	ErrDownload        = errors.New("download failed")
)

// BootInfo is what the bootloader says about the boot that is running.
type BootInfo struct {
	// Slot is the running slot's name ("A" or "B").
	Slot string
	// Trial is true when this boot is a one-time trial that the next reboot
	// undoes unless the slot is committed.
	Trial bool
}

// Bootloader selects the slot that boots. Each method that changes the
// selection makes ONE atomic write, so a power cut leaves either the old
// or the new selection, never a mix.
type Bootloader interface {
	// Booted reports the running slot and whether this is a trial boot.
	Booted(ctx context.Context) (BootInfo, error)
	// ArmTrial makes the next reboot (Reboot with trial) a single trial boot
	// of slot; every boot after it, and any boot after a power cut, runs the
	// committed slot.
	ArmTrial(ctx context.Context, slot string) error
	// Commit makes slot, the running trial, the slot every later boot runs.
	Commit(ctx context.Context, slot string) error
	// Disarm makes every following boot run slot and cancels any armed
	// trial. It is a no-op when that is already so.
	Disarm(ctx context.Context, slot string) error
	// Reboot restarts the box; trial says the reboot is to start the armed
	// trial (on a Pi the firmware's one-shot tryboot flag goes with it, and
	// without it no reboot ever starts a trial).
	Reboot(ctx context.Context, trial bool) error
}

// Clock is the time the agent waits on: download stalls, retry backoff and
// the health deadline. The wall clock never enters a decision.
type Clock interface {
	// After delivers once after d.
	After(d time.Duration) <-chan time.Time
	// AfterFunc calls f in its own goroutine after d unless stop is called
	// first; stop reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
