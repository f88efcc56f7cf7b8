package vm

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// cpioWriter writes an initramfs: a cpio archive in the kernel's "newc"
// format, uncompressed (under emulation the kernel unpacks it faster than
// it would decompress it). Every entry belongs to root, whoever runs the
// rig, and parent directories are added as needed.
type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	seen map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), seen: map[string]bool{}}
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	_, c.err = fmt.Fprintf(c.w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if c.err != nil {
		return
	}
	c.write([]byte(name + "\x00"))
	c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// pad aligns to 4 bytes after n bytes.
func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// clean makes an archive path: relative, no trailing slash.
func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// dir adds a directory and its parents.
func (c *cpioWriter) dir(p string) {
	p = clean(p)
	if p == "" || c.seen[p] {
		return
	}
	c.dir(path.Dir(p))
	c.seen[p] = true
	c.header(p, modeDir|0o755, 0, 0, 0)
}

// file adds a regular file.
func (c *cpioWriter) file(p string, perm uint32, data []byte) {
	p = clean(p)
	c.dir(path.Dir(p))
	if c.seen[p] {
		c.err = fmt.Errorf("initramfs: %s added twice", p)
		return
	}
	c.seen[p] = true
	c.header(p, modeFile|perm, len(data), 0, 0)
	c.write(data)
	c.pad(len(data))
}

// hostFile adds a copy of a file of the host.
func (c *cpioWriter) hostFile(p, src string) {
	data, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	info, err := os.Stat(src)
	if err != nil {
		c.err = err
		return
	}
	c.file(p, uint32(info.Mode().Perm()), data)
}

// tree adds the files, directories and symbolic links under src at p.
func (c *cpioWriter) tree(p, src string) {
	if c.err != nil {
		return
	}
	c.err = filepath.WalkDir(src, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, name)
		dst := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			c.dir(dst)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(name)
			if err != nil {
				return err
			}
			c.symlink(dst, target)
		case d.Type().IsRegular():
			c.hostFile(dst, name)
		}
		return c.err
	})
}

func (c *cpioWriter) symlink(p, target string) {
	p = clean(p)
	c.dir(path.Dir(p))
	c.seen[p] = true
	c.header(p, modeSymlink|0o777, len(target), 0, 0)
	c.write([]byte(target))
	c.pad(len(target))
}

func (c *cpioWriter) charDev(p string, perm, major, minor uint32) {
	p = clean(p)
	c.dir(path.Dir(p))
	c.seen[p] = true
	c.header(p, modeCharDev|perm, 0, major, minor)
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// busyboxApplets are the commands the init script uses.
var busyboxApplets = []string{
	"sh", "mount", "mkdir", "cat", "cut", "echo", "modprobe", "lsmod", "reboot", "sleep",
	"dmesg", "ls", "uname", "sync", "tail", "grep",
	// The daemon's image: its network and its process.
	"ifconfig", "route", "kill",
}

// guestImage is what goes into one architecture's initramfs.
type guestImage struct {
	arch        arch
	busybox     string // static busybox of the guest's architecture
	modulesRoot string // holds lib/modules/<release>
	staticTest  string // the guest tests built with CGO_ENABLED=0
	cgoTest     string // the guest tests built with cgo, dynamically linked
	libs        map[string]string
	alsaShare   string // usr/share/alsa of libasound2-data
	// run narrows the guest tests (go test -run), "" for all.
	run string
}

// write writes the initramfs to w.
func (g guestImage) write(w io.Writer) error {
	c := newCPIO(w)
	baseLayout(c, g.busybox, g.modulesRoot, initScript(g.arch, g.run))
	c.hostFile("bin/onair-vmtest", g.staticTest)
	if g.cgoTest != "" {
		c.hostFile("bin/onair-vmtest-cgo", g.cgoTest)
		sharedFiles(c, g.libs, g.alsaShare)
	}
	return c.close()
}

// baseLayout adds what every image has: the directories init mounts on,
// the console, busybox, the kernel modules, the users and groups, and init.
func baseLayout(c *cpioWriter, busybox, modulesRoot, init string) {
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		c.dir(d)
	}
	// The kernel opens the console for init before init can mount devtmpfs.
	c.charDev("dev/console", 0o600, 5, 1)
	c.hostFile("bin/busybox", busybox)
	for _, a := range busyboxApplets {
		c.symlink("bin/"+a, "busybox")
	}
	c.file("init", 0o755, []byte(init))
	// As on the box: ALSA's dmix and dsnoop, which miniaudio tries first,
	// give their shared memory to the audio group and refuse to open
	// without it.
	c.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/tmp:/bin/sh\n"))
	c.file("etc/group", 0o644, []byte("root:x:0:\naudio:x:29:root\n"))
	c.tree("/", modulesRoot)
}

// sharedFiles adds what a dynamically linked cgo binary needs: its shared
// libraries (sharedLibs) and ALSA's configuration.
func sharedFiles(c *cpioWriter, libs map[string]string, alsaShare string) {
	names := make([]string, 0, len(libs))
	for p := range libs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		c.hostFile(p, libs[p])
	}
	// ALSA's configuration: alsa.conf and what it includes define the
	// PCMs miniaudio opens (dsnoop and dmix first, then hw); the use
	// case manager's files (ucm, ucm2) are not needed.
	c.hostFile("usr/share/alsa/alsa.conf", filepath.Join(alsaShare, "alsa.conf"))
	for _, d := range []string{"cards", "ctl", "pcm"} {
		c.tree("usr/share/alsa/"+d, filepath.Join(alsaShare, d))
	}
}

// initScript is the guest's /init. It prints "VMTEST <word>" lines that
// the host reads (see consoleResult) around the test binaries' output, then
// reboots, which ends QEMU (-no-reboot).
func initScript(a arch, run string) string {
	staticRun, cgoRun := "", "-test.run '^TestALSA$'"
	if run != "" {
		staticRun = "-test.run '" + run + "'"
		cgoRun = staticRun
	}
	return initStart(guestModules) + `export ONAIR_VM_GUEST=1 HOME=/tmp TMPDIR=/tmp
/bin/onair-vmtest -test.v -test.timeout 150s ` + staticRun + `
echo "VMTEST EXIT static $? $(uptime)"
if [ -x /bin/onair-vmtest-cgo ]; then
	LD_LIBRARY_PATH=/lib/` + a.triplet + ` /bin/onair-vmtest-cgo -test.v -test.timeout 90s ` + cgoRun + `
	echo "VMTEST EXIT cgo $? $(uptime)"
fi
echo "VMTEST DONE $(uptime)"
sync
reboot -f
`
}

// initStart begins every init script: the kernel's file systems, "VMTEST
// BOOTED", the modules, "VMTEST MODULES".
func initStart(modules []string) string {
	return `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
uptime() { cut -d' ' -f1 /proc/uptime; }
echo "VMTEST BOOTED $(uptime) $(uname -r) $(uname -m)"
for m in ` + strings.Join(modules, " ") + `; do
	modprobe $m || echo "VMTEST FAIL modprobe $m"
done
echo "VMTEST MODULES $(uptime)" $(cut -d' ' -f1 /proc/modules)
`
}

// sharedLibs finds what a dynamically linked binary needs at run time in
// the guest: its interpreter (ld.so) and the closure of its DT_NEEDED
// libraries plus those it dlopens (extra), in dirs (extracted Debian
// packages of the guest's architecture). The result maps paths in the guest
// to files of the host.
func sharedLibs(binary, triplet string, dirs []string, extra ...string) (map[string]string, error) {
	find := func(name string) (string, error) {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("no %s in %s", name, strings.Join(dirs, ", "))
	}
	out := map[string]string{}
	f, err := elf.Open(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(prog.Open())
		if err != nil {
			return nil, fmt.Errorf("%s: read interpreter: %w", binary, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		src, err := find(filepath.Base(interp))
		if err != nil {
			return nil, err
		}
		out[clean(interp)] = src
	}
	queue := append([]string{}, extra...)
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	queue = append(queue, needed...)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		guestPath := path.Join("lib", triplet, name)
		if _, ok := out[guestPath]; ok {
			continue
		}
		src, err := find(name)
		if err != nil {
			return nil, fmt.Errorf("%s needs %s: %w", filepath.Base(binary), name, err)
		}
		out[guestPath] = src
		lib, err := elf.Open(src)
		if err != nil {
			return nil, err
		}
		more, err := lib.ImportedLibraries()
		lib.Close()
		if err != nil {
			return nil, err
		}
		queue = append(queue, more...)
	}
	return out, nil
}
