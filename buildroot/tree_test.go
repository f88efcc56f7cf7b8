package buildroot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/ota/cmdline"
	"github.com/onair/onair/ota/layout"
)

// externalName is the br2-external name; Buildroot derives the
// BR2_EXTERNAL_<name>_PATH variable from it.
const externalName = "ONAIR"

// boards maps each defconfig's board name to its boot scheme.
var boards = map[string]string{
	"pi4":    "tryboot",
	"pi5":    "tryboot",
	"zero2w": "uboot",
}

// buildrootPaths are the files of Buildroot itself (relative to its top
// directory) that the defconfigs name. They exist in the pinned release
// (README.md, "Buildroot release"); the test cannot see Buildroot, so a new
// one has to be checked there by hand and added here.
var buildrootPaths = []string{
	"board/raspberrypi/patches",
	"board/raspberrypi/linux-4k-page-size.fragment",
}

// diskSignature is the MBR disk signature in the genimage configs: the
// cmdline.txt and boot.scr name root filesystems by PARTUUID <signature>-0N.
const diskSignature = "6f6e6169"

// walkTree calls fn for every file of the tree, leaving out image.sh's
// output directory (a whole Buildroot build) and hidden directories.
func walkTree(fn func(path string, d os.DirEntry) error) error {
	return filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "_output" || (path != "." && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		return fn(path, d)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestExternalDesc(t *testing.T) {
	desc := readFile(t, "external.desc")
	var name string
	for line := range strings.Lines(desc) {
		if v, ok := strings.CutPrefix(line, "name:"); ok {
			name = strings.TrimSpace(v)
		}
	}
	if name != externalName {
		t.Fatalf("external.desc: name %q, want %q", name, externalName)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_]+$`).MatchString(name) {
		t.Fatalf("external.desc: name %q: Buildroot allows only [A-Za-z0-9_]", name)
	}

	// Every reference to a br2-external path must use this tree's name: a
	// typo expands to an empty string in make and to a wrong path silently.
	ref := regexp.MustCompile(`BR2_EXTERNAL_([A-Za-z0-9_]+)_PATH`)
	err := walkTree(func(path string, d os.DirEntry) error {
		if strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
			if m[1] != externalName {
				t.Errorf("%s: uses %s, but external.desc names the tree %s", path, m[0], externalName)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// packageDirs lists package/<name> directories.
func packageDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("package")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("package/ holds no packages")
	}
	return names
}

// upper is Buildroot's package-name-to-variable rule.
func upper(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func TestPackagesWellFormed(t *testing.T) {
	assignment := regexp.MustCompile(`^([A-Za-z0-9_]+)\s*(?:\+=|\?=|:=|=)`)
	for _, name := range packageDirs(t) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("package", name)
			pkg := upper(name)

			config := readFile(t, filepath.Join(dir, "Config.in"))
			if !regexp.MustCompile(`(?m)^(menu)?config BR2_PACKAGE_` + pkg + `$`).MatchString(config) {
				t.Errorf("%s/Config.in does not define BR2_PACKAGE_%s", dir, pkg)
			}

			mk := readFile(t, filepath.Join(dir, name+".mk"))
			vars := map[string]bool{}
			for line := range strings.Lines(mk) {
				m := assignment.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				vars[m[1]] = true
				// A misspelt prefix is silently ignored by the package
				// infrastructure; insist on the package's own.
				if !strings.HasPrefix(m[1], pkg+"_") && !strings.HasPrefix(m[1], "HOST_"+pkg+"_") {
					t.Errorf("%s.mk sets %s: package variables start with %s_ or HOST_%s_", name, m[1], pkg, pkg)
				}
			}
			for _, suffix := range []string{"VERSION", "SITE", "SITE_METHOD", "LICENSE"} {
				if !vars[pkg+"_"+suffix] {
					t.Errorf("%s.mk does not set %s_%s", name, pkg, suffix)
				}
			}
			// The golang infrastructure of the pinned release stops the
			// build when a package sets <PKG>_INSTALL_BINS.
			if vars[pkg+"_INSTALL_BINS"] || vars["HOST_"+pkg+"_INSTALL_BINS"] {
				t.Errorf("%s.mk sets %s_INSTALL_BINS, which pkg-golang.mk rejects", name, pkg)
			}
			if !regexp.MustCompile(`(?m)^\$\(eval \$\((generic|golang|cmake|meson|autotools)-package\)\)$`).MatchString(mk) {
				t.Errorf("%s.mk never evaluates a target package infrastructure", name)
			}

			host := filepath.Join(dir, "Config.in.host")
			if _, err := os.Stat(host); err == nil {
				if !strings.Contains(readFile(t, host), "config BR2_PACKAGE_HOST_"+pkg+"\n") {
					t.Errorf("%s does not define BR2_PACKAGE_HOST_%s", host, pkg)
				}
				if !regexp.MustCompile(`(?m)^\$\(eval \$\(host-[a-z]+-package\)\)$`).MatchString(mk) {
					t.Errorf("%s exists but %s.mk defines no host package", host, name)
				}
			}

			// Files the .mk installs from its own directory.
			for _, m := range regexp.MustCompile(`\$\(`+pkg+`_PKGDIR\)/?([A-Za-z0-9_.-]+)`).FindAllStringSubmatch(mk, -1) {
				if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
					t.Errorf("%s.mk installs %s, which does not exist", name, m[1])
				}
			}
		})
	}
}

// kconfigSources returns the files a Config.in sources, relative to the tree.
func kconfigSources(t *testing.T, path string) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*source\s+"\$BR2_EXTERNAL_` + externalName + `_PATH/([^"]+)"`)
	var files []string
	for _, m := range re.FindAllStringSubmatch(readFile(t, path), -1) {
		files = append(files, m[1])
	}
	return files
}

func TestConfigSourcesEveryPackage(t *testing.T) {
	sourced := kconfigSources(t, "Config.in")
	for _, file := range sourced {
		if _, err := os.Stat(file); err != nil {
			t.Errorf("Config.in sources %s, which does not exist", file)
		}
	}
	for _, name := range packageDirs(t) {
		for _, file := range []string{"Config.in", "Config.in.host"} {
			path := "package/" + name + "/" + file
			if _, err := os.Stat(path); err != nil {
				continue
			}
			if !slices.Contains(sourced, path) {
				t.Errorf("Config.in does not source %s", path)
			}
		}
	}

	mk := readFile(t, "external.mk")
	if !strings.Contains(mk, "$(BR2_EXTERNAL_"+externalName+"_PATH)/package/*/*.mk") {
		t.Errorf("external.mk does not include every package/*/*.mk")
	}
}

// defconfig is one parsed configs/*_defconfig.
type defconfig struct {
	values map[string]string // symbol -> value without quotes; "n" for "is not set"
}

func parseDefconfig(t *testing.T, path string) defconfig {
	t.Helper()
	set := regexp.MustCompile(`^(BR2_[A-Za-z0-9_]+)=(.*)$`)
	unset := regexp.MustCompile(`^# (BR2_[A-Za-z0-9_]+) is not set$`)
	d := defconfig{values: map[string]string{}}
	scanner := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		var symbol, value string
		if m := set.FindStringSubmatch(line); m != nil {
			symbol, value = m[1], m[2]
			if strings.HasPrefix(value, `"`) {
				if len(value) < 2 || !strings.HasSuffix(value, `"`) {
					t.Errorf("%s:%d: unterminated string", path, n)
				}
				value = strings.Trim(value, `"`)
			}
		} else if m := unset.FindStringSubmatch(line); m != nil {
			symbol, value = m[1], "n"
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		} else {
			t.Errorf("%s:%d: not a Kconfig line: %q", path, n, line)
			continue
		}
		if _, dup := d.values[symbol]; dup {
			t.Errorf("%s:%d: %s set twice", path, n, symbol)
		}
		d.values[symbol] = value
	}
	return d
}

func TestDefconfigs(t *testing.T) {
	paths, err := filepath.Glob("configs/*_defconfig")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	ownSymbols := map[string]bool{}
	for _, name := range packageDirs(t) {
		for _, file := range []string{"Config.in", "Config.in.host"} {
			data, err := os.ReadFile(filepath.Join("package", name, file))
			if err != nil {
				continue
			}
			for _, m := range regexp.MustCompile(`(?m)^(?:menu)?config (BR2_[A-Za-z0-9_]+)$`).FindAllStringSubmatch(string(data), -1) {
				ownSymbols[m[1]] = true
			}
		}
	}
	externalPath := regexp.MustCompile(`\$\(BR2_EXTERNAL_` + externalName + `_PATH\)/(\S+)`)
	for _, path := range paths {
		board := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "onair_"), "_defconfig")
		seen = append(seen, board)
		t.Run(board, func(t *testing.T) {
			if _, ok := boards[board]; !ok {
				t.Fatalf("%s: unknown board %q (want onair_<board>_defconfig with a board of %v)", path, board, boards)
			}
			d := parseDefconfig(t, path)

			for symbol, want := range map[string]string{
				"BR2_PACKAGE_ONAIR":                    "y",
				"BR2_PACKAGE_ONAIR_BOARD":              board,
				"BR2_ROOTFS_POST_SCRIPT_ARGS":          board,
				"BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW": "n",
				"BR2_TARGET_ROOTFS_EXT2_4":             "y",
				"BR2_PACKAGE_HOST_GENIMAGE":            "y",
				"BR2_PACKAGE_HOST_MTOOLS":              "y",
				"BR2_PACKAGE_HOST_DOSFSTOOLS":          "y",
			} {
				if got := d.values[symbol]; got != want {
					t.Errorf("%s: %s=%q, want %q", path, symbol, got, want)
				}
			}
			if boards[board] == "uboot" && d.values["BR2_TARGET_UBOOT"] != "y" {
				t.Errorf("%s: board %s boots through U-Boot, but BR2_TARGET_UBOOT is not set", path, board)
			}

			for symbol, value := range d.values {
				if strings.HasPrefix(symbol, "BR2_PACKAGE_ONAIR") && !ownSymbols[symbol] {
					t.Errorf("%s: %s is not defined by package/onair", path, symbol)
				}
				for _, word := range strings.Fields(value) {
					if m := externalPath.FindStringSubmatch(word); m != nil {
						if _, err := os.Stat(m[1]); err != nil {
							t.Errorf("%s: %s names %s, which does not exist in the tree", path, symbol, m[1])
						}
						continue
					}
					if strings.HasPrefix(word, "board/") && !slices.Contains(buildrootPaths, word) {
						t.Errorf("%s: %s names Buildroot's %s, which is not in buildrootPaths (checked against the pinned release)", path, symbol, word)
					}
				}
			}

			for _, symbol := range []string{"BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT"} {
				m := externalPath.FindStringSubmatch(d.values[symbol])
				if m == nil {
					t.Errorf("%s: %s is not a script of this tree", path, symbol)
					continue
				}
				if info, err := os.Stat(m[1]); err == nil && info.Mode()&0o111 == 0 {
					t.Errorf("%s: %s is not executable", path, m[1])
				}
			}
			if _, err := os.Stat(filepath.Join("board", board, "genimage.cfg")); err != nil {
				t.Errorf("board %s has no genimage.cfg: %v", board, err)
			}
		})
	}
	for board := range boards {
		if !slices.Contains(seen, board) {
			t.Errorf("no configs/onair_%s_defconfig", board)
		}
	}
}

func TestScriptsExecutable(t *testing.T) {
	err := walkTree(func(path string, d os.DirEntry) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(data, []byte("#!")) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// Files under package/ are installed with their mode by the .mk
		// (Buildroot keeps them not executable); the rest is copied as is.
		if info.Mode()&0o111 == 0 && !strings.HasPrefix(path, "package/") {
			t.Errorf("%s starts with #! but is not executable", path)
		}
		if !bytes.Contains(data, []byte("set -euo pipefail")) {
			t.Errorf("%s does not set -euo pipefail", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBootFiles(t *testing.T) {
	// The update agent (ota/tryboot) rewrites autoboot.txt in place as one
	// 512-byte sector and keeps its size; the factory file has that size too.
	autoboot := readFile(t, "board/common/autoboot.txt")
	if len(autoboot) != 512 {
		t.Errorf("autoboot.txt is %d bytes, want exactly 512 (one sector, rewritten in place)", len(autoboot))
	}
	checkAutoboot(t, autoboot)
	for board, scheme := range boards {
		if scheme != "tryboot" {
			continue
		}
		cmdline := readFile(t, filepath.Join("board", board, "cmdline.txt"))
		if strings.Count(strings.TrimSuffix(cmdline, "\n"), "\n") != 0 {
			t.Errorf("board/%s/cmdline.txt: the firmware reads one line only", board)
		}
		for _, want := range []string{"root=PARTUUID=@ROOT_PARTUUID@", " ro ", "rootwait", "panic="} {
			if !strings.Contains(cmdline, want) {
				t.Errorf("board/%s/cmdline.txt lacks %q", board, want)
			}
		}
		config := readFile(t, filepath.Join("board", board, "config.txt"))
		if !strings.Contains(config, "dtparam=watchdog=on") {
			t.Errorf("board/%s/config.txt does not start the watchdog", board)
		}
		// The update agent rewrites root= in cmdline.txt (ota/cmdline); a
		// cmdline= here would make the firmware read another file.
		if regexp.MustCompile(`(?m)^\s*cmdline\s*=`).MatchString(config) {
			t.Errorf("board/%s/config.txt sets cmdline=; the update agent rewrites cmdline.txt", board)
		}
	}

	bootCmd := readFile(t, "board/zero2w/boot.cmd")
	for _, want := range []string{
		"root=PARTUUID=" + diskSignature + "-0${onair_rootpart}",
		"setenv onair_bootpart 2", "setenv onair_rootpart 5",
		"setenv onair_bootpart 3", "setenv onair_rootpart 6",
		"setenv altbootcmd", "setenv bootlimit 1",
		// Names shared with ota/uboot.
		`if test "${boot_slot}" = "B"`, "onair.slot=${boot_slot}",
		"upgrade_available", "bootcount",
	} {
		if !strings.Contains(bootCmd, want) {
			t.Errorf("board/zero2w/boot.cmd lacks %q", want)
		}
	}
	// fw_setenv finds the environment where S07onair-firmware mounts the
	// firmware partition, which genimage labels as the script looks for.
	fwEnv := readFile(t, "board/zero2w/fw_env.config")
	mountScript := readFile(t, "board/common/rootfs-overlay/etc/init.d/S07onair-firmware")
	for _, file := range []string{"/boot/firmware/uboot.env", "/boot/firmware/uboot-redund.env"} {
		if !strings.Contains(fwEnv, file) {
			t.Errorf("fw_env.config does not name %s", file)
		}
	}
	if !strings.Contains(mountScript, "MOUNTPOINT=/boot/firmware") || !strings.Contains(mountScript, "LABEL=ONAIR-FW") {
		t.Error("S07onair-firmware does not mount LABEL=ONAIR-FW on /boot/firmware")
	}
	if !strings.Contains(readFile(t, "board/zero2w/genimage.cfg"), `label = "ONAIR-FW"`) {
		t.Error(`board/zero2w/genimage.cfg does not label the firmware partition "ONAIR-FW"`)
	}
	fragment := readFile(t, "board/zero2w/uboot.fragment")
	for _, want := range []string{"CONFIG_BOOTCOUNT_LIMIT=y", "CONFIG_BOOTCOUNT_ENV=y", "CONFIG_ENV_IS_IN_FAT=y", "CONFIG_SYS_REDUNDAND_ENVIRONMENT=y"} {
		if !strings.Contains(fragment, want) {
			t.Errorf("board/zero2w/uboot.fragment lacks %s", want)
		}
	}
}

// checkFirmwareLayout compares the slots of the board's firmware.yaml, the
// update agent's view of the image, with the image: on the Pi 4/5 each
// slot's cmdline_root is what its boot partition's cmdline.txt names, so
// the agent's rewrite of root= in a bundle's boot image matches the card.
func checkFirmwareLayout(t *testing.T, board string, fatFile func(n int, name string) string) {
	t.Helper()
	l, err := layout.Load(filepath.Join("board", board, "firmware.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, partition := range map[string]int{"A": 2, "B": 3} {
		s := l.Slots[name]
		if want := fmt.Sprintf("/dev/mmcblk0p%d", partition); s.Boot != want {
			t.Errorf("firmware.yaml: slot %s boot %s, want %s", name, s.Boot, want)
		}
		if boards[board] != "tryboot" {
			continue
		}
		cmdline := fatFile(partition, "cmdline.txt")
		if !strings.Contains(cmdline, "root="+s.CmdlineRoot+" ") {
			t.Errorf("firmware.yaml: slot %s cmdline_root %s, but partition %d's cmdline.txt is %q", name, s.CmdlineRoot, partition, cmdline)
		}
	}
}

// checkBootRewrite does to a copy of the bundle's boot image what the
// update agent does when it installs it into slot B (ota/cmdline) and
// compares the result, read with mtools, with boot B of the SD card image.
func checkBootRewrite(t *testing.T, board, bootImage string, fatFile func(n int, name string) string) {
	t.Helper()
	l, err := layout.Load(filepath.Join("board", board, "firmware.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bootImage)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "boot-b-from-a.vfat")
	writeFile(t, copyPath, string(data), 0o644)
	f, err := os.OpenFile(copyPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := []string{l.Slots["A"].CmdlineRoot, l.Slots["B"].CmdlineRoot}
	if _, err := cmdline.SetRoot(f, int64(len(data)), known, l.Slots["B"].CmdlineRoot); err != nil {
		t.Fatalf("the agent's rewrite of boot-a.vfat for slot B: %v", err)
	}
	got := string(run(t, ".", []string{"MTOOLS_SKIP_CHECK=1"}, "mtype", "-i", copyPath, "::cmdline.txt"))
	if want := fatFile(3, "cmdline.txt"); got != want {
		t.Errorf("boot-a.vfat rewritten for slot B has cmdline.txt %q; boot B of the SD card has %q", got, want)
	}
	run(t, ".", nil, "fsck.fat", "-n", copyPath)
}

// tools maps each command the image test runs (itself or through genimage
// and post-image.sh) to the Debian package that provides it.
var tools = []struct{ command, debianPackage string }{
	{"genimage", "genimage"},
	{"mkdosfs", "dosfstools"},
	{"mcopy", "mtools"},
	{"mdir", "mtools"},
	{"mtype", "mtools"},
	{"fsck.fat", "dosfstools"},
	{"mke2fs", "e2fsprogs"},
	{"mkfs.ext4", "e2fsprogs"},
	{"e2fsck", "e2fsprogs"},
	{"sfdisk", "fdisk"},
	{"busybox", "busybox"},
}

// toolPath puts the sbin directories on PATH (mkdosfs, mke2fs and sfdisk live
// there and an unprivileged PATH often lacks them) and fails the test,
// naming the package to install, when a tool is missing.
func toolPath(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", os.Getenv("PATH")+":/usr/sbin:/sbin")
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool.command); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", tool.command, tool.debianPackage))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing tools: %s; install them: apt-get install genimage dosfstools mtools e2fsprogs fdisk busybox",
			strings.Join(missing, ", "))
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// bundleTool builds the real cmd/onair-bundle and makes a signing key pair
// with it, as image.sh does for a development build.
func bundleTool(t *testing.T) (tool, privateKey, publicKey string) {
	t.Helper()
	dir := t.TempDir()
	tool = filepath.Join(dir, "onair-bundle")
	run(t, ".", []string{"CGO_ENABLED=0"}, "go", "build", "-o", tool, "github.com/onair/onair/cmd/onair-bundle")
	prefix := filepath.Join(dir, "test")
	run(t, ".", nil, tool, "keygen", "-out", prefix)
	return tool, prefix + ".key", prefix + ".pub"
}

// fakeBuild lays out what Buildroot leaves for the post-image script of a
// board: kernel, DTBs, the rpi-firmware directory (with the board's real
// config.txt and cmdline.txt), U-Boot files, a small rootfs.ext4, and a
// .config. Its host directory holds onair-bundle: a wrapper that records its
// arguments and runs the real tool.
func fakeBuild(t *testing.T, board, bundleTool string) (binaries, hostDir, brConfig string) {
	t.Helper()
	base := t.TempDir()
	binaries = filepath.Join(base, "images")
	hostDir = filepath.Join(base, "host")
	firmware := filepath.Join(binaries, "rpi-firmware")

	writeFile(t, filepath.Join(firmware, "config.txt"), readFile(t, filepath.Join("board", board, "config.txt")), 0o644)
	switch boards[board] {
	case "tryboot":
		writeFile(t, filepath.Join(firmware, "cmdline.txt"), readFile(t, filepath.Join("board", board, "cmdline.txt")), 0o644)
		writeFile(t, filepath.Join(firmware, "start4.elf"), "firmware", 0o644)
		writeFile(t, filepath.Join(firmware, "overlays", "vc4-kms-v3d.dtbo"), "overlay", 0o644)
		writeFile(t, filepath.Join(binaries, "Image"), "arm64 kernel", 0o644)
		writeFile(t, filepath.Join(binaries, "bcm2711-rpi-4-b.dtb"), "dtb", 0o644)
	case "uboot":
		writeFile(t, filepath.Join(firmware, "bootcode.bin"), "bootcode", 0o644)
		writeFile(t, filepath.Join(firmware, "start.elf"), "firmware", 0o644)
		writeFile(t, filepath.Join(binaries, "u-boot.bin"), "u-boot", 0o644)
		writeFile(t, filepath.Join(binaries, "boot.scr"), readFile(t, filepath.Join("board", board, "boot.cmd")), 0o644)
		writeFile(t, filepath.Join(binaries, "zImage"), "arm kernel", 0o644)
		writeFile(t, filepath.Join(binaries, "bcm2710-rpi-zero-2-w.dtb"), "dtb", 0o644)
	}

	rootfsDir := filepath.Join(base, "target")
	writeFile(t, filepath.Join(rootfsDir, "etc", "onair", "version"), "1.2.3\n", 0o644)
	run(t, base, nil, "mkfs.ext4", "-q", "-L", "onair-root", "-d", rootfsDir, filepath.Join(binaries, "rootfs.ext4"), "32M")

	writeFile(t, filepath.Join(hostDir, "bin", "onair-bundle"), fmt.Sprintf(
		"#!/bin/sh\nset -eu\nprintf '%%s\\n' \"$@\" > \"$(dirname \"$0\")/onair-bundle.args\"\nexec '%s' \"$@\"\n", bundleTool), 0o755)

	brConfig = filepath.Join(base, ".config")
	config := readFile(t, filepath.Join("configs", "onair_"+board+"_defconfig")) +
		"BR2_PACKAGE_ONAIR_FIRMWARE_VERSION=\"1.2.3\"\n"
	writeFile(t, brConfig, config, 0o644)
	return binaries, hostDir, brConfig
}

// sfdiskTable is the part of `sfdisk --json` the test reads.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

type wantPartition struct {
	role     string
	typ      string
	sizeMiB  int64 // 0: extended, spans the logical partitions
	bootable bool
}

// layouts are the partition tables the update agent and the boot files rely
// on: boot A = 2, boot B = 3, rootfs A = 5, rootfs B = 6, data = 7.
var layouts = map[string][]wantPartition{
	"tryboot": {
		{"boot-select", "c", 16, true},
		{"boot-a", "c", 128, false},
		{"boot-b", "c", 128, false},
		{"extended", "f", 0, false},
		{"rootfs-a", "83", 512, false},
		{"rootfs-b", "83", 512, false},
		{"data", "83", 256, false},
	},
	"uboot": {
		{"firmware", "c", 32, true},
		{"boot-a", "c", 64, false},
		{"boot-b", "c", 64, false},
		{"extended", "f", 0, false},
		{"rootfs-a", "83", 512, false},
		{"rootfs-b", "83", 512, false},
		{"data", "83", 256, false},
	},
}

// TestSDCardImage runs the real post-image script, and through it Debian's
// genimage on the board's real genimage.cfg, on dummy partition contents,
// then reads the result back: partition table, boot files, filesystem labels,
// and the OTA bundle that the real onair-bundle signed.
func TestSDCardImage(t *testing.T) {
	toolPath(t)
	tool, key, publicKey := bundleTool(t)
	for board, scheme := range boards {
		t.Run(board, func(t *testing.T) {
			binaries, hostDir, brConfig := fakeBuild(t, board, tool)
			run(t, ".", []string{
				"HOST_DIR=" + hostDir,
				"BR2_CONFIG=" + brConfig,
				"ONAIR_SIGNING_KEY=" + key,
			}, "board/common/post-image.sh", binaries, board)

			image := filepath.Join(binaries, "sdcard.img")
			var table sfdiskTable
			if err := json.Unmarshal(run(t, ".", nil, "sfdisk", "--json", image), &table); err != nil {
				t.Fatalf("sfdisk --json: %v", err)
			}
			pt := table.PartitionTable
			if pt.Label != "dos" {
				t.Fatalf("partition table %q, want dos (MBR: the firmware's boot_partition counts MBR partitions)", pt.Label)
			}
			if pt.ID != "0x"+diskSignature {
				t.Errorf("disk signature %s, want 0x%s (PARTUUIDs in cmdline.txt and boot.scr)", pt.ID, diskSignature)
			}
			want := layouts[scheme]
			if len(pt.Partitions) != len(want) {
				t.Fatalf("%d partitions, want %d: %+v", len(pt.Partitions), len(want), pt.Partitions)
			}
			const mib = 1 << 20
			sector := pt.SectorSize
			for i, w := range want {
				p := pt.Partitions[i]
				if p.Type != w.typ {
					t.Errorf("partition %d (%s): type %s, want %s", i+1, w.role, p.Type, w.typ)
				}
				if p.Bootable != w.bootable {
					t.Errorf("partition %d (%s): bootable %v, want %v", i+1, w.role, p.Bootable, w.bootable)
				}
				if w.sizeMiB != 0 && p.Size*sector != w.sizeMiB*mib {
					t.Errorf("partition %d (%s): %d bytes, want %d MiB", i+1, w.role, p.Size*sector, w.sizeMiB)
				}
				if p.Start*sector%(4*mib) != 0 {
					t.Errorf("partition %d (%s): starts at byte %d, not on a 4 MiB boundary", i+1, w.role, p.Start*sector)
				}
				if i > 0 && i != 4 {
					prev := pt.Partitions[i-1]
					if prev.Type != "f" && p.Start < prev.Start+prev.Size {
						t.Errorf("partition %d (%s) overlaps partition %d", i+1, w.role, i)
					}
				}
			}
			extended := pt.Partitions[3]
			for i := 4; i < len(pt.Partitions); i++ {
				p := pt.Partitions[i]
				if p.Start < extended.Start || p.Start+p.Size > extended.Start+extended.Size {
					t.Errorf("logical partition %d lies outside the extended partition", i+1)
				}
			}

			offset := func(n int) string {
				return fmt.Sprintf("%s@@%d", image, pt.Partitions[n-1].Start*sector)
			}
			fatFile := func(n int, name string) string {
				return string(run(t, ".", []string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", "-n", "-i", offset(n), "::"+name, "-"))
			}

			for n, wantRoot := range map[int]string{2: "05", 3: "06"} {
				root := "root=PARTUUID=" + diskSignature + "-" + wantRoot
				switch scheme {
				case "tryboot":
					if cmdline := fatFile(n, "cmdline.txt"); !strings.Contains(cmdline, root+" ") {
						t.Errorf("partition %d cmdline.txt = %q, want %s", n, cmdline, root)
					}
					for _, f := range []string{"Image", "bcm2711-rpi-4-b.dtb", "start4.elf", "config.txt", "overlays/vc4-kms-v3d.dtbo"} {
						fatFile(n, f)
					}
				case "uboot":
					fatFile(n, "zImage")
					fatFile(n, "bcm2710-rpi-zero-2-w.dtb")
				}
			}

			switch scheme {
			case "tryboot":
				autoboot := fatFile(1, "autoboot.txt")
				checkAutoboot(t, autoboot)
			case "uboot":
				if config := fatFile(1, "config.txt"); !strings.Contains(config, "kernel=u-boot.bin") {
					t.Errorf("partition 1 config.txt does not start U-Boot:\n%s", config)
				}
				for _, f := range []string{"u-boot.bin", "boot.scr", "bootcode.bin", "start.elf", "bcm2710-rpi-zero-2-w.dtb"} {
					fatFile(1, f)
				}
			}

			labels := map[int]string{5: "onair-root", 6: "onair-root", 7: "onair-data"}
			for n, want := range labels {
				if got := ext4Label(t, image, pt.Partitions[n-1].Start*sector); got != want {
					t.Errorf("partition %d: ext4 label %q, want %q", n, got, want)
				}
			}

			args := strings.Fields(readFile(t, filepath.Join(hostDir, "bin", "onair-bundle.args")))
			// The flags of cmd/onair-bundle create: slot A's boot partition
			// image goes into the bundle; on the Pi 4/5 its cmdline.txt must
			// name slot A's rootfs, which the box rewrites for slot B.
			bootImage := filepath.Join(binaries, "boot-a.vfat")
			wantArgs := []string{"create", "-key", key, "-version", "1.2.3", "-board", board, "-boot", bootImage}
			if scheme == "tryboot" {
				wantArgs = append(wantArgs, "-boot-root", "PARTUUID="+diskSignature+"-05")
			}
			wantArgs = append(wantArgs,
				"-rootfs", filepath.Join(binaries, "rootfs.ext4"),
				"-out", filepath.Join(binaries, "onair-"+board+"-1.2.3.bundle"),
			)
			if !slices.Equal(args, wantArgs) {
				t.Errorf("onair-bundle called with\n%q\nwant\n%q", args, wantArgs)
			}
			bundle := wantArgs[len(wantArgs)-1]
			verified := string(run(t, ".", nil, tool, "verify", "-keys", publicKey, "-board", board, bundle))
			rootfs, err := os.Stat(filepath.Join(binaries, "rootfs.ext4"))
			if err != nil {
				t.Fatal(err)
			}
			boot, err := os.Stat(bootImage)
			if err != nil {
				t.Fatal(err)
			}
			// The boot image is partition 2 byte for byte, its size that of
			// the boot partitions.
			if p := pt.Partitions[1]; p.Size*sector != boot.Size() {
				t.Errorf("boot-a.vfat is %d bytes, boot partitions %d", boot.Size(), p.Size*sector)
			}
			wantVerify := []string{"OK", "version 1.2.3 for " + board,
				fmt.Sprintf("image %d bytes (boot %d)", rootfs.Size()+boot.Size(), boot.Size())}
			switch scheme {
			case "tryboot":
				wantVerify = append(wantVerify, "boot image: cmdline.txt root=PARTUUID="+diskSignature+"-05\n")
			case "uboot":
				wantVerify = append(wantVerify, "boot image: no cmdline.txt")
			}
			for _, want := range wantVerify {
				if !strings.Contains(verified, want) {
					t.Errorf("onair-bundle verify: %q lacks %q", verified, want)
				}
			}
			checkFirmwareLayout(t, board, fatFile)
			if scheme == "tryboot" {
				checkBootRewrite(t, board, bootImage, fatFile)
			}

			checkGrowData(t, image, table)
		})
	}
}

// checkAutoboot checks the boot selector the way the firmware reads it:
// [all] turns on A/B tryboot and boots partition 2; [tryboot] boots 3.
func checkAutoboot(t *testing.T, autoboot string) {
	t.Helper()
	sections := map[string]map[string]string{}
	section := "all"
	for line := range strings.Lines(autoboot) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.Trim(line, "[]")
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("autoboot.txt: %q is not key=value", line)
			continue
		}
		if sections[section] == nil {
			sections[section] = map[string]string{}
		}
		sections[section][key] = value
	}
	for _, c := range []struct{ section, key, want string }{
		{"all", "tryboot_a_b", "1"},
		{"all", "boot_partition", "2"},
		{"tryboot", "boot_partition", "3"},
	} {
		if got := sections[c.section][c.key]; got != c.want {
			t.Errorf("autoboot.txt [%s] %s=%q, want %q\n%s", c.section, c.key, got, c.want, autoboot)
		}
	}
}

// ext4Label reads the volume name from the ext4 superblock of the partition
// at offset bytes into image.
func ext4Label(t *testing.T, image string, offset int64) string {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	superblock := make([]byte, 1024)
	if _, err := f.ReadAt(superblock, offset+1024); err != nil {
		t.Fatal(err)
	}
	const magicOffset, nameOffset = 0x38, 0x78
	if magic := binary.LittleEndian.Uint16(superblock[magicOffset:]); magic != 0xef53 {
		t.Fatalf("no ext4 superblock at byte %d (magic %#x)", offset, magic)
	}
	return string(bytes.TrimRight(superblock[nameOffset:nameOffset+16], "\x00"))
}

// TestBuildFlagsInStep keeps check-package-build.sh running the command that
// package/onair/onair.mk gives Buildroot: same ldflags, build options and
// commands.
func TestBuildFlagsInStep(t *testing.T) {
	mk := readFile(t, "package/onair/onair.mk")
	script := readFile(t, "check-package-build.sh")
	mkVar := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*=\s*(.*)$`).FindStringSubmatch(mk)
		if m == nil {
			t.Fatalf("onair.mk does not set %s", name)
		}
		v := strings.ReplaceAll(strings.TrimSpace(m[1]), "$(ONAIR_FIRMWARE_VERSION)", "VERSION")
		return strings.ReplaceAll(v, "$(ONAIR_GOMOD)", "GOMOD")
	}
	scriptVar := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `="([^"]*)"$`).FindStringSubmatch(script)
		if m == nil {
			t.Fatalf("check-package-build.sh does not set %s", name)
		}
		v := strings.ReplaceAll(m[1], "${version}", "VERSION")
		return strings.ReplaceAll(v, "${GOMOD}", "GOMOD")
	}
	for _, name := range []string{"ONAIR_LDFLAGS", "ONAIR_BUILD_OPTS", "ONAIR_TAGS"} {
		if got, want := scriptVar(name), mkVar(name); got != want {
			t.Errorf("check-package-build.sh %s=%q, onair.mk has %q", name, got, want)
		}
	}
	for mkName, scriptName := range map[string]string{
		"ONAIR_BUILD_TARGETS":      "CGO_COMMANDS",
		"HOST_ONAIR_BUILD_TARGETS": "PURE_GO_COMMANDS",
	} {
		commands := strings.Fields(scriptVar(scriptName))
		for _, target := range strings.Fields(mkVar(mkName)) {
			if !slices.Contains(commands, target) {
				t.Errorf("onair.mk builds %s (%s), check-package-build.sh does not (%s)", target, mkName, scriptName)
			}
		}
	}
	if !strings.Contains(mk, "$(eval $(golang-package))") {
		t.Error("onair.mk does not use the golang-package infrastructure")
	}
}

// TestPostBuild runs post-build.sh on an empty target tree: the read-only
// root must point the daemon's default config and data_dir at the data
// partition, where S05onair-data creates them.
func TestPostBuild(t *testing.T) {
	for board := range boards {
		t.Run(board, func(t *testing.T) {
			target := t.TempDir()
			run(t, ".", []string{"SOURCE_DATE_EPOCH=1700000000"}, "board/common/post-build.sh", target, board)

			for link, want := range map[string]string{
				"etc/onair/onair.yaml": "/data/etc/onair.yaml",
				"var/lib/onair":        "/data/onair",
			} {
				got, err := os.Readlink(filepath.Join(target, link))
				if err != nil || got != want {
					t.Errorf("/%s -> %q (%v), want -> %s", link, got, err, want)
				}
			}
			if info, err := os.Stat(filepath.Join(target, "data")); err != nil || !info.IsDir() {
				t.Errorf("no /data mount point in the root filesystem: %v", err)
			}
			if got := strings.TrimSpace(readFile(t, filepath.Join(target, "etc/onair/build-time"))); got != "1700000000" {
				t.Errorf("/etc/onair/build-time = %q, want SOURCE_DATE_EPOCH", got)
			}
			_, err := os.Stat(filepath.Join(target, "etc/fw_env.config"))
			if hasUBoot := boards[board] == "uboot"; hasUBoot != (err == nil) {
				t.Errorf("/etc/fw_env.config present: %v, want %v (U-Boot boards only)", err == nil, hasUBoot)
			}
		})
	}

	// The other ends of those links.
	sample := readFile(t, "../config/onair.yaml")
	if !regexp.MustCompile(`(?m)^data_dir:\s*/var/lib/onair\b`).MatchString(sample) {
		t.Error("config/onair.yaml: data_dir is no longer /var/lib/onair, which the image links to /data/onair")
	}
	dataScript := readFile(t, "board/common/rootfs-overlay/etc/init.d/S05onair-data")
	for _, want := range []string{`"$MOUNTPOINT/etc"`, `"$MOUNTPOINT/onair"`, "MOUNTPOINT=/data", `"$MOUNTPOINT/etc/onair.yaml"`} {
		if !strings.Contains(dataScript, want) {
			t.Errorf("S05onair-data does not create %s", want)
		}
	}
	if !strings.Contains(readFile(t, "package/onair/onaird-supervise"), "CONFIG=/etc/onair/onair.yaml") {
		t.Error("onaird-supervise does not start onaird with /etc/onair/onair.yaml")
	}
}

// TestShellcheck runs shellcheck on every script of the tree: the target's
// BusyBox ash scripts and the build machine's bash scripts.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Fatal("shellcheck is missing; install it: apt-get install shellcheck")
	}
	var scripts []string
	err := walkTree(func(path string, d os.DirEntry) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte("#!")) {
			scripts = append(scripts, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) == 0 {
		t.Fatal("no scripts found")
	}
	cmd := exec.Command("shellcheck", scripts...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// checkGrowData runs the box's grow-data (under BusyBox, the box's shell) on
// the factory image, then on the image made larger as by a bigger card: the
// extended and data partitions must reach the end, the others stay put, and
// a second run must change nothing.
func checkGrowData(t *testing.T, image string, factory sfdiskTable) {
	t.Helper()
	grow := func() string {
		return strings.TrimSpace(string(run(t, ".", nil, "busybox", "sh",
			"board/common/rootfs-overlay/usr/libexec/onair/grow-data", image)))
	}
	table := func() sfdiskTable {
		var table sfdiskTable
		if err := json.Unmarshal(run(t, ".", nil, "sfdisk", "--json", image), &table); err != nil {
			t.Fatalf("sfdisk --json: %v", err)
		}
		return table
	}
	if out := grow(); out != "" {
		t.Errorf("grow-data on the factory image: %q, want no change", out)
	}

	const extraBytes = 64 << 20
	info, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, info.Size()+extraBytes); err != nil {
		t.Fatal(err)
	}
	if out := grow(); out != "grown" {
		t.Fatalf("grow-data on a larger card: %q, want grown", out)
	}
	grown := table().PartitionTable
	sectors := (info.Size() + extraBytes) / grown.SectorSize
	before := factory.PartitionTable.Partitions
	for i, p := range grown.Partitions {
		n := i + 1
		if p.Start != before[i].Start || p.Type != before[i].Type {
			t.Errorf("grow-data moved partition %d", n)
		}
		switch n {
		case 4, 7:
			if p.Start+p.Size != sectors {
				t.Errorf("partition %d ends at sector %d after grow-data, want the disk end %d", n, p.Start+p.Size, sectors)
			}
		default:
			if p.Size != before[i].Size {
				t.Errorf("grow-data resized partition %d", n)
			}
		}
	}
	if out := grow(); out != "" {
		t.Errorf("second grow-data: %q, want no change", out)
	}
}

// TestClockScripts runs the box's last-known-time and save-clock under
// BusyBox with ONAIR_ROOT pointing at a scratch tree.
func TestClockScripts(t *testing.T) {
	toolPath(t)
	root := t.TempDir()
	env := []string{"ONAIR_ROOT=" + root}
	const scripts = "board/common/rootfs-overlay/usr/libexec/onair/"
	lastKnown := func() int64 {
		var seconds int64
		out := strings.TrimSpace(string(run(t, ".", env, "busybox", "sh", scripts+"last-known-time")))
		if _, err := fmt.Sscan(out, &seconds); err != nil {
			t.Fatalf("last-known-time printed %q", out)
		}
		return seconds
	}
	saveClock := func(event string) {
		run(t, ".", env, "busybox", "sh", scripts+"save-clock", event)
	}
	saved := filepath.Join(root, "data", "clock", "last")
	writeSaved := func(content string) { writeFile(t, saved, content, 0o644) }

	if got := lastKnown(); got != 0 {
		t.Errorf("nothing known: last-known-time %d, want 0", got)
	}
	const buildTime = 1700000000
	writeFile(t, filepath.Join(root, "etc", "onair", "build-time"), fmt.Sprintln(buildTime), 0o644)
	if got := lastKnown(); got != buildTime {
		t.Errorf("before any save: last-known-time %d, want the build time %d", got, buildTime)
	}

	saveClock("shutdown") // data partition not mounted: nothing to do
	if _, err := os.Stat(saved); err == nil {
		t.Error("save-clock wrote without /data/clock")
	}

	if err := os.MkdirAll(filepath.Dir(saved), 0o755); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Unix()
	saveClock("step")
	after := time.Now().Unix()
	if got := lastKnown(); got < before || got > after {
		t.Errorf("after save-clock step: last-known-time %d, want between %d and %d", got, before, after)
	}

	future := fmt.Sprint(after + 1_000_000)
	writeSaved(future + "\n")
	saveClock("periodic")
	if got := strings.TrimSpace(readFile(t, saved)); got != future {
		t.Errorf("save-clock moved the saved time back from %s to %s", future, got)
	}

	writeSaved("12\n")
	saveClock("unsync")
	if got := strings.TrimSpace(readFile(t, saved)); got != "12" {
		t.Errorf("save-clock saved on unsync: %s", got)
	}

	writeSaved("garbage")
	if got := lastKnown(); got != buildTime {
		t.Errorf("unreadable saved time: last-known-time %d, want the build time", got)
	}
	saveClock("stratum")
	if got := lastKnown(); got < before {
		t.Errorf("save-clock did not replace an unreadable saved time: %d", got)
	}
	if _, err := os.Stat(saved + ".tmp"); err == nil {
		t.Error("save-clock left its temporary file")
	}
}

// TestSupervisorRestartsDaemon runs onaird-supervise under BusyBox with a
// stand-in onaird that fails once and then keeps running: the supervisor must
// start it again, pass --config, log the failure, and on TERM stop the daemon
// and exit.
func TestSupervisorRestartsDaemon(t *testing.T) {
	toolPath(t)
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	logged := filepath.Join(dir, "logged")
	// The first start fails at once; the second stays up (exec keeps its PID).
	writeFile(t, filepath.Join(dir, "onaird"), `#!/bin/sh
echo "$$ $*" >> '`+starts+`'
if [ "$(wc -l < '`+starts+`')" -lt 2 ]; then
	echo "first start fails"
	exit 3
fi
echo "running"
exec sleep 600
`, 0o755)
	writeFile(t, filepath.Join(dir, "bin", "logger"), `#!/bin/sh
if [ "$#" -gt 2 ]; then shift 2; fi
{ echo "$*"; cat; } >> '`+logged+`'
`, 0o755)

	cmd := exec.Command("busybox", "sh", "package/onair/onaird-supervise")
	cmd.Env = append(os.Environ(),
		"ONAIRD="+filepath.Join(dir, "onaird"),
		"ONAIR_RUN_DIR="+dir,
		"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()

	startLines := func() []string {
		data, _ := os.ReadFile(starts)
		var lines []string
		for line := range strings.Lines(string(data)) {
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
		}
		return lines
	}
	// The restart pause is real time (2 s after a quick failure).
	if !waitFor(20*time.Second, func() bool { return len(startLines()) >= 2 }) {
		t.Fatalf("onaird started %d times in 20 s, want a restart; supervisor output:\n%s", len(startLines()), output.String())
	}
	lines := startLines()
	for _, line := range lines {
		if !strings.HasSuffix(line, "--config /etc/onair/onair.yaml --watchdog /dev/watchdog") {
			t.Errorf("onaird started as %q, want --config /etc/onair/onair.yaml --watchdog /dev/watchdog", line)
		}
	}
	var daemonPID int
	fmt.Sscan(lines[1], &daemonPID)

	// The running daemon's output reaches syslog through the supervisor.
	wants := []string{"first start fails", "onaird exited (status 3)", "running"}
	logHas := func() bool {
		data, _ := os.ReadFile(logged)
		for _, want := range wants {
			if !strings.Contains(string(data), want) {
				return false
			}
		}
		return true
	}
	if !waitFor(10*time.Second, logHas) {
		data, _ := os.ReadFile(logged)
		t.Fatalf("syslog lacks one of %q:\n%s", wants, data)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("supervisor exited with %v after TERM:\n%s", err, output.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("supervisor still running 10 s after TERM:\n%s", output.String())
	}
	if err := syscall.Kill(daemonPID, 0); err == nil {
		syscall.Kill(daemonPID, syscall.SIGKILL)
		t.Errorf("onaird (pid %d) still runs after the supervisor stopped", daemonPID)
	}
}

// waitFor polls cond until it holds or timeout passes; it reports whether
// cond held. For outside processes only, which the test cannot step.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
