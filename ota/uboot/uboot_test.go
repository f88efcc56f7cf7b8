package uboot_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/uboot"
)

// TestFakeUBoot: the trial is booted once, the next boot without commit
// returns to the old slot, commit sticks across power cycles.
func TestFakeUBoot(t *testing.T) {
	ctx := context.Background()
	u, err := otatest.NewUBoot(t.TempDir(), "A")
	if err != nil {
		t.Fatal(err)
	}
	bl := u.Bootloader()
	boot := func(want ota.BootInfo) {
		t.Helper()
		if _, err := u.PowerOn(); err != nil {
			t.Fatal(err)
		}
		got, err := bl.Booted(ctx)
		if err != nil || got != want {
			t.Fatalf("booted %+v, %v; want %+v", got, err, want)
		}
	}
	boot(ota.BootInfo{Slot: "A"})
	if err := bl.ArmTrial(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if info, err := bl.Booted(ctx); err != nil || info.Trial {
		t.Fatalf("armed but not rebooted: %+v %v", info, err)
	}
	boot(ota.BootInfo{Slot: "B", Trial: true})
	boot(ota.BootInfo{Slot: "A"}) // the trial is used up
	bl.ArmTrial(ctx, "B")
	boot(ota.BootInfo{Slot: "B", Trial: true})
	if err := bl.Commit(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		boot(ota.BootInfo{Slot: "B"})
	}
	if err := bl.Disarm(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	boot(ota.BootInfo{Slot: "B"})
}

// TestFWEnv runs the fw_printenv / fw_setenv code against stand-in tools
// that keep the environment in a file, checking that a change is one
// invocation of fw_setenv -s.
func TestFWEnv(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	calls := filepath.Join(dir, "calls")
	os.WriteFile(envFile, []byte("boot_slot=A\nupgrade_available=0\n"), 0o644)
	printenv := filepath.Join(dir, "fw_printenv")
	setenv := filepath.Join(dir, "fw_setenv")
	os.WriteFile(printenv, []byte("#!/bin/sh\ncat "+envFile+"\n"), 0o755)
	os.WriteFile(setenv, []byte(`#!/bin/sh
[ "$1" = -s ] && [ "$2" = - ] || exit 2
echo call >> `+calls+`
while read k v; do
  grep -v "^$k=" `+envFile+` > `+envFile+`.new; echo "$k=$v" >> `+envFile+`.new; mv `+envFile+`.new `+envFile+`
done
`), 0o755)
	e := uboot.FWEnv{PrintEnv: printenv, SetEnv: setenv}
	ctx := context.Background()
	u := &uboot.UBoot{Env: e, Slots: [2]string{"A", "B"}, Cmdline: filepath.Join(dir, "cmdline")}
	os.WriteFile(u.Cmdline, []byte("root=/dev/mmcblk0p5 onair.slot=A quiet\n"), 0o644)
	if err := u.ArmTrial(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	env, err := e.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if env["boot_slot"] != "B" || env["upgrade_available"] != "1" || env["bootcount"] != "0" {
		t.Fatalf("env %v", env)
	}
	if n, _ := os.ReadFile(calls); string(n) != "call\n" {
		t.Fatalf("fw_setenv ran %q times, want once", n)
	}
	info, err := u.Booted(ctx)
	if err != nil || info != (ota.BootInfo{Slot: "A"}) {
		t.Fatalf("booted %+v %v", info, err)
	}
}
