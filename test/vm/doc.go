// Package vm runs the firmware's camera, microphone and button code against
// real Linux drivers, without the hardware: Debian's own kernels for amd64,
// arm64 and armhf boot in qemu-system without KVM, with the kernel's virtual
// drivers (vivid for a camera, snd-aloop for a sound card, QEMU's PL061 GPIO
// controller on the arm machines for a button and an LED) under the tests of
// test/vm/guest.
//
// TestVM does everything and is skipped unless ONAIR_VM=1 (test/vm/run.sh
// sets it, after installing what it needs): for each architecture in
// ONAIR_VM_ARCHES (default "amd64 arm64 armv7") it
//
//   - fetches the kernel (the linux-image metapackage's current ABI),
//     busybox-static and the runtime libraries of the cgo test binary (libc6,
//     libasound2, libatomic1, libasound2-data) with apt-get download, once,
//     into the cache directory ($ONAIR_VM_CACHE, else
//     $XDG_CACHE_HOME/onair-vm, else ~/.cache/onair-vm);
//   - extracts the kernel and the modules that vivid and snd-aloop need, and
//     runs depmod -b on them;
//   - compiles the guest tests with `go test -c`: statically (CGO_ENABLED=0)
//     and with cgo for device/alsa, whose shared libraries go along;
//   - writes an initramfs (busybox, modules, test binaries, libraries, an
//     init script) and boots it under TCG, with the console streamed into the
//     test log and QMP on a socket;
//   - answers the guest's requests (a QMP system_powerdown is a button press
//     on the arm machines), and fails on any failed guest test, a missing
//     "VMTEST DONE" line, a kernel panic or the timeout, after which the VM
//     is killed;
//   - on arm64, boots a second VM with the whole onaird (cgo, as `make
//     build-arm64` builds it) and a network card whose ports QEMU forwards
//     to the host, and plays crew and viewer from there: QMP button presses,
//     the status API and event stream, a WHEP viewer whose H.264 ffmpeg
//     decodes, vivid unplugged while live (daemon_test.go).
//
// The init script writes "VMTEST <word> ..." lines around the test binaries'
// `go test -v` output; consoleResult (console_test.go) says how a run is
// judged. The rig's own logic (console parsing, the cpio writer, the init
// script) is unit-tested in every `go test` run; only TestVM needs QEMU.
package vm
