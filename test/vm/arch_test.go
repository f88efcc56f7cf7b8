package vm

import "time"

// arch is one architecture the rig boots: how Debian, Go and QEMU name it.
type arch struct {
	// name is ours (the Makefile's and the Pi's: armv7, not armhf).
	name string
	// deb is Debian's architecture.
	deb string
	// kernelMeta is the metapackage whose Depends names the current kernel.
	kernelMeta string
	// goarch and goarm build the test binaries.
	goarch, goarm string
	// cc is the C compiler of the cgo build.
	cc string
	// triplet is Debian's multiarch directory of the libraries.
	triplet string
	// qemu and machine start the VM; console is the kernel's serial device.
	qemu    string
	machine []string
	console string
	// cmdline is added to the kernel command line.
	cmdline string
	// gpio is true where the machine has the PL061 with the power button on
	// line 3 (the arm virt machines).
	gpio bool
	// daemon is true where the whole onaird also boots (daemon_test.go):
	// once, on the Pi's main architecture, because emulating a live
	// encoder and WebRTC costs about a minute.
	daemon bool
	// timeout bounds the whole VM run; emulated armv7 is the slowest.
	timeout time.Duration
}

var arches = []arch{
	{
		name: "amd64", deb: "amd64", kernelMeta: "linux-image-amd64",
		goarch: "amd64", cc: "gcc", triplet: "x86_64-linux-gnu",
		qemu: "qemu-system-x86_64", machine: []string{"-M", "pc", "-cpu", "max"},
		console: "ttyS0", timeout: 3 * time.Minute,
	},
	{
		name: "arm64", deb: "arm64", kernelMeta: "linux-image-arm64",
		goarch: "arm64", cc: "aarch64-linux-gnu-gcc", triplet: "aarch64-linux-gnu",
		// acpi=off: the device tree describes the PL061 and its power key.
		qemu: "qemu-system-aarch64", machine: []string{"-M", "virt,acpi=off", "-cpu", "cortex-a72"},
		console: "ttyAMA0", gpio: true, daemon: true, timeout: 3 * time.Minute,
	},
	{
		name: "armv7", deb: "armhf", kernelMeta: "linux-image-armmp",
		goarch: "arm", goarm: "7", cc: "arm-linux-gnueabihf-gcc", triplet: "arm-linux-gnueabihf",
		qemu: "qemu-system-arm", machine: []string{"-M", "virt", "-cpu", "cortex-a15"},
		// gpio_keys is built into the armmp kernel and would claim the
		// power button's line before our button could.
		console: "ttyAMA0", cmdline: "initcall_blacklist=gpio_keys_init", gpio: true, timeout: 4 * time.Minute,
	},
}

// archByName finds an architecture by our name.
func archByName(name string) (arch, bool) {
	for _, a := range arches {
		if a.name == name {
			return a, true
		}
	}
	return arch{}, false
}
