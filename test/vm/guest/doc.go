// Package guest holds the tests that run inside the qemu-system VMs of
// test/vm: our camera, microphone and button code against the kernel's own
// virtual drivers (vivid, snd-aloop, QEMU's PL061 GPIO controller).
//
// The host side (package vm, test/vm/run.sh) compiles this package's tests
// with `go test -c` once per architecture, twice: statically with
// CGO_ENABLED=0 (camera, GPIO, the sound card through the kernel's control
// interface) and with cgo for ALSA through device/alsa (miniaudio), shipped
// with the shared libraries it needs. Both binaries run from the VM's init
// with ONAIR_VM_GUEST=1; anywhere else every test here skips, so `go test
// ./...` on a workstation passes over them.
//
// A test that needs the host to act prints one line to the console,
// "VMTEST-HOST <command>" (see hostRequest), and then waits for the effect:
// "system_powerdown" makes the host send that QMP command, which QEMU's arm
// virt machine turns into a 100 ms pulse on PL061 line 3, our button.
package guest
