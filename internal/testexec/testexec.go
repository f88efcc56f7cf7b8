// Package testexec starts the running test binary again as a child process
// (crash and kill tests), also when the tests run under qemu-user without
// binfmt_misc: then the kernel cannot start a foreign binary by itself, and
// the Makefile names the emulator in ONAIR_TEST_EMULATOR.
package testexec

import (
	"os"
	"os/exec"
)

// EmulatorEnv names the emulator that runs this architecture's binaries.
const EmulatorEnv = "ONAIR_TEST_EMULATOR"

// Self returns a command that runs this test binary with args.
func Self(args ...string) *exec.Cmd {
	if emu := os.Getenv(EmulatorEnv); emu != "" {
		return exec.Command(emu, append([]string{os.Args[0]}, args...)...)
	}
	return exec.Command(os.Args[0], args...)
}
