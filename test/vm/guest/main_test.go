package guest

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// guestEnv is set to 1 by the VM's init; the tests skip without it.
const guestEnv = "ONAIR_VM_GUEST"

// inGuest skips t outside the test VM: the tests load kernel modules, unbind
// drivers and wait for QMP button presses.
func inGuest(t *testing.T) {
	t.Helper()
	if os.Getenv(guestEnv) != "1" {
		t.Skip("runs inside the test VM only (test/vm/run.sh)")
	}
}

// testLogger sends our packages' logs into the test's output, so that they
// appear on the console next to the test that caused them.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// hostRequest asks the host to do something to the VM (see the package
// documentation). The line goes straight to stdout, which is the console, so
// that it is not held back with the test's own output.
func hostRequest(command string) {
	fmt.Fprintf(os.Stdout, "\nVMTEST-HOST %s\n", command)
}

// sysfsWrite writes one value into a sysfs attribute, as `echo value > path`.
func sysfsWrite(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o200); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// writeSysfs is sysfsWrite that ends the test when the kernel refuses.
func writeSysfs(t *testing.T, path, value string) {
	t.Helper()
	if err := sysfsWrite(path, value); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or timeout passes; it reports whether it
// held. Only conditions the kernel changes (device nodes appearing) are
// polled: everything our code reports is waited for on its own channels.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readText returns a file's content, or "" when it cannot be read.
func readText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
