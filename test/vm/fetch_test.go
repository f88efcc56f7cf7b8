package vm

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// cacheDir is where downloads, extracted packages and builds are kept
// between runs; never in the repository.
func cacheDir() (string, error) {
	dir := os.Getenv("ONAIR_VM_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir() // $XDG_CACHE_HOME, else ~/.cache
		if err != nil {
			return "", fmt.Errorf("find a cache directory (set ONAIR_VM_CACHE): %w", err)
		}
		dir = filepath.Join(base, "onair-vm")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make cache directory: %w", err)
	}
	return dir, nil
}

// debPackage is one binary package as apt-cache describes it.
type debPackage struct {
	Name, Version, Arch string
	Depends             string
}

// fileName is the name apt-get download gives the package's file: the
// version's epoch colon is written %3a.
func (p debPackage) fileName() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// aptShow returns apt's candidates of the specs ("libc6:arm64"), with one
// call of apt-cache, which takes seconds on a machine with three
// architectures' indexes. A spec apt does not know is missing from the map.
func aptShow(specs ...string) (map[string]debPackage, error) {
	out, err := exec.Command("apt-cache", append([]string{"show", "--no-all-versions"}, specs...)...).Output()
	found := map[string]debPackage{}
	for _, stanza := range strings.Split(string(out), "\n\n") {
		var p debPackage
		for _, line := range strings.Split(stanza, "\n") {
			key, value, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			switch key {
			case "Package":
				p.Name = value
			case "Version":
				p.Version = value
			case "Architecture":
				p.Arch = value
			case "Depends":
				p.Depends = value
			}
		}
		if p.Name != "" && p.Version != "" && p.Arch != "" {
			found[p.Name+":"+p.Arch] = p
		}
	}
	if len(found) == 0 && err != nil {
		return nil, fmt.Errorf("apt-cache show %s: %w", strings.Join(specs, " "), commandError(err))
	}
	return found, nil
}

// commandError adds a failed command's stderr to its error.
func commandError(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// resolver remembers apt's answers in the cache (resolved.json) until apt's
// package lists change, so that a run with everything cached asks apt
// nothing.
type resolver struct {
	mu    sync.Mutex
	path  string
	State struct {
		Lists    string                `json:"lists"` // newest modification of apt's lists
		Packages map[string]debPackage `json:"packages"`
	}
}

func newResolver(cache string) *resolver {
	r := &resolver{path: filepath.Join(cache, "resolved.json")}
	lists := listsStamp()
	if data, err := os.ReadFile(r.path); err == nil {
		_ = json.Unmarshal(data, &r.State)
	}
	if r.State.Lists != lists || r.State.Packages == nil {
		r.State.Lists, r.State.Packages = lists, map[string]debPackage{}
	}
	return r
}

// listsStamp is the newest modification time of apt's package lists.
func listsStamp() string {
	entries, _ := os.ReadDir("/var/lib/apt/lists")
	var newest time.Time
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest.UTC().Format(time.RFC3339Nano)
}

// resolve returns apt's candidates of the specs; those apt does not know
// are missing from the result.
func (r *resolver) resolve(specs ...string) (map[string]debPackage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]debPackage{}
	var ask []string
	for _, spec := range specs {
		if p, ok := r.State.Packages[spec]; ok {
			out[spec] = p
		} else {
			ask = append(ask, spec)
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	found, err := aptShow(ask...)
	if err != nil {
		return out, err
	}
	for _, spec := range ask {
		if p, ok := found[spec]; ok {
			out[spec], r.State.Packages[spec] = p, p
		}
	}
	if data, err := json.MarshalIndent(&r.State, "", "  "); err == nil {
		tmp := r.path + ".tmp"
		if os.WriteFile(tmp, data, 0o644) == nil {
			_ = os.Rename(tmp, r.path)
		}
	}
	return out, nil
}

// fetcher downloads Debian packages into the cache once.
type fetcher struct {
	dir      string // cache/debs
	resolver *resolver
	logf     func(format string, args ...any)
}

// fetchAll fetches name:arch of each spec and returns their files by spec.
// Without apt's index of a package (an offline machine, a foreign index
// that failed to update) the newest cached file of the package is used.
func (f *fetcher) fetchAll(specs ...string) (map[string]string, error) {
	known, err := f.resolver.resolve(specs...)
	if err != nil {
		f.logf("asking apt: %v", err)
	}
	files := map[string]string{}
	for _, spec := range specs {
		p, ok := known[spec]
		if !ok {
			name, arch, _ := strings.Cut(spec, ":")
			if cached := f.newestCached(name, arch); cached != "" {
				f.logf("apt does not know %s; using the cached %s", spec, filepath.Base(cached))
				files[spec] = cached
				continue
			}
			return nil, fmt.Errorf("apt does not know %s and the cache has no copy (dpkg --add-architecture, apt-get update?)", spec)
		}
		if files[spec], err = f.download(p); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// download returns the cached file of p, downloading it if needed.
func (f *fetcher) download(p debPackage) (string, error) {
	path := filepath.Join(f.dir, p.fileName())
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	var lastErr error
	// A mirror in the middle of a sync can fail a download: try again.
	for attempt := 1; attempt <= 3; attempt++ {
		cmd := exec.Command("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
			fmt.Sprintf("%s:%s=%s", p.Name, p.Arch, p.Version))
		cmd.Dir = f.dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		lastErr = fmt.Errorf("apt-get download %s:%s=%s: %w: %s", p.Name, p.Arch, p.Version, err, strings.TrimSpace(string(out)))
		f.logf("attempt %d: %v", attempt, lastErr)
		time.Sleep(time.Duration(attempt) * 3 * time.Second)
	}
	if _, err := os.Stat(path); err != nil {
		if lastErr == nil {
			lastErr = fmt.Errorf("apt-get download %s:%s did not write %s", p.Name, p.Arch, filepath.Base(path))
		}
		return "", lastErr
	}
	f.logf("downloaded %s in %v", filepath.Base(path), time.Since(start).Round(100*time.Millisecond))
	f.prune(p, path)
	return path, nil
}

// newestCached is the most recently downloaded file of name:arch, or "".
func (f *fetcher) newestCached(name, arch string) string {
	matches, _ := filepath.Glob(filepath.Join(f.dir, name+"_*_"+arch+".deb"))
	sort.Slice(matches, func(i, j int) bool {
		a, _ := os.Stat(matches[i])
		b, _ := os.Stat(matches[j])
		return a != nil && b != nil && a.ModTime().After(b.ModTime())
	})
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

// prune removes older versions of a package that was just downloaded; for
// a kernel, whose package name changes with its ABI, every other kernel of
// the architecture.
func (f *fetcher) prune(p debPackage, keep string) {
	name := p.Name
	if strings.HasPrefix(name, "linux-image-") {
		name = "linux-image-*"
	}
	matches, _ := filepath.Glob(filepath.Join(f.dir, name+"_*_"+p.Arch+".deb"))
	for _, m := range matches {
		if m != keep {
			_ = os.Remove(m)
		}
	}
}

// kernelSpec resolves the kernel metapackage of a to the package that holds
// the kernel ("linux-image-6.1.0-50-arm64:arm64").
func (f *fetcher) kernelSpec(a arch) (string, error) {
	spec := a.kernelMeta + ":" + a.deb
	known, err := f.resolver.resolve(spec)
	meta, ok := known[spec]
	if !ok {
		if cached := f.newestCached("linux-image-*", a.deb); cached != "" {
			name, _, _ := strings.Cut(filepath.Base(cached), "_")
			f.logf("apt does not know %s (%v); using the cached %s", spec, err, filepath.Base(cached))
			return name + ":" + a.deb, nil
		}
		return "", fmt.Errorf("apt does not know %s (%v)", spec, err)
	}
	for _, dep := range strings.Split(meta.Depends, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(dep), " ")
		if strings.HasPrefix(name, "linux-image-") {
			return name + ":" + a.deb, nil
		}
	}
	return "", fmt.Errorf("%s depends on no linux-image package: %q", spec, meta.Depends)
}

// extract unpacks a .deb into cache/x/<file name> once and returns the
// directory.
func extract(cache, deb string) (string, error) {
	dir := filepath.Join(cache, "x", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	stamp := filepath.Join(dir, ".extracted")
	if _, err := os.Stat(stamp); err == nil {
		return dir, nil
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, out)
	}
	return dir, os.WriteFile(stamp, nil, 0o644)
}

// guestKernel is what a guest needs of a kernel package.
type guestKernel struct {
	release     string // uname -r
	image       string // vmlinuz
	modulesRoot string // holds lib/modules/<release>: the modules, depmod'ed
	modules     int    // how many
}

// prepareKernel takes the kernel image and the named modules, with all they
// depend on, out of the kernel package deb into
// cache/kernel/<package>-<modules>, once. The whole package is unpacked to a
// scratch directory for depmod and thrown away afterwards: unpacked, a
// kernel is 400 MB, the part the guest needs about 10.
func prepareKernel(cache, deb string, modules []string) (guestKernel, error) {
	base := strings.TrimSuffix(filepath.Base(deb), ".deb")
	kernels := filepath.Join(cache, "kernel")
	dir := filepath.Join(kernels, base+"-"+strings.Join(modules, "+"))
	k := guestKernel{modulesRoot: filepath.Join(dir, "modules-root")}
	stamp := filepath.Join(dir, ".ready")
	if data, err := os.ReadFile(stamp); err == nil {
		if _, err := fmt.Sscan(string(data), &k.release, &k.modules); err == nil {
			k.image = filepath.Join(dir, "vmlinuz-"+k.release)
			return k, nil
		}
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(kernels, 0o755); err != nil {
		return k, err
	}
	scratch, err := os.MkdirTemp(kernels, "unpack-")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(scratch)
	if out, err := exec.Command("dpkg-deb", "-x", deb, scratch).CombinedOutput(); err != nil {
		return k, fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, out)
	}
	tree, err := openKernel(scratch)
	if err != nil {
		return k, err
	}
	files, err := tree.moduleClosure(modules...)
	if err != nil {
		return k, err
	}
	if _, err := tree.stageModules(dir, files); err != nil {
		return k, err
	}
	k.release, k.modules = tree.release, len(files)
	k.image = filepath.Join(dir, "vmlinuz-"+k.release)
	if err := copyFile(tree.image, k.image); err != nil {
		return k, err
	}
	// Kernels of packages no longer in the cache (an older ABI) go; this
	// package's other module sets (the daemon's image adds the network
	// card) stay.
	if entries, err := os.ReadDir(kernels); err == nil {
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, base+"-") || strings.HasPrefix(name, "unpack-") || !strings.HasPrefix(name, "linux-image-") {
				continue
			}
			arch := name[strings.LastIndex(name, "_")+1:]
			arch, _, _ = strings.Cut(arch, "-")
			if strings.HasSuffix(base, "_"+arch) {
				_ = os.RemoveAll(filepath.Join(kernels, name))
			}
		}
	}
	return k, os.WriteFile(stamp, []byte(fmt.Sprintf("%s %d\n", k.release, k.modules)), 0o644)
}

// kernelTree is an extracted kernel package.
type kernelTree struct {
	root    string // the package's extracted root
	release string // uname -r
	image   string // path of vmlinuz
}

func (k kernelTree) modulesDir() string {
	return filepath.Join(k.root, "lib", "modules", k.release)
}

// openKernel finds the kernel and its module tree in an extracted kernel
// package and runs depmod -b on the whole tree once (Debian's package leaves
// modules.dep to its postinst).
func openKernel(root string) (kernelTree, error) {
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return kernelTree{}, fmt.Errorf("%s: want one boot/vmlinuz-*, found %v", root, images)
	}
	k := kernelTree{root: root, image: images[0], release: strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")}
	if _, err := os.Stat(k.modulesDir()); err != nil {
		return k, fmt.Errorf("kernel %s: no modules: %w", k.release, err)
	}
	if _, err := os.Stat(filepath.Join(k.modulesDir(), "modules.dep")); err != nil {
		if out, err := exec.Command(depmod(), "-b", root, k.release).CombinedOutput(); err != nil {
			return k, fmt.Errorf("depmod -b %s %s: %w: %s", root, k.release, err, out)
		}
	}
	return k, nil
}

// moduleClosure returns the files (relative to the modules directory) of the
// named modules and of everything they depend on, from modules.dep.
func (k kernelTree) moduleClosure(names ...string) ([]string, error) {
	text, err := os.ReadFile(filepath.Join(k.modulesDir(), "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // file -> files it needs
	byName := map[string]string{} // module name (underscores) -> file
	for _, line := range strings.Split(string(text), "\n") {
		file, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		byName[moduleName(file)] = file
	}
	seen := map[string]bool{}
	var out []string
	var add func(file string)
	add = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		out = append(out, file)
		for _, d := range deps[file] {
			add(d)
		}
	}
	for _, n := range names {
		file, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("kernel %s has no module %s", k.release, n)
		}
		add(file)
	}
	sort.Strings(out)
	return out, nil
}

// moduleName is the kernel's name of a module file: kernel/a/snd-aloop.ko.xz
// is snd_aloop.
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// stageModules copies the module files into a fresh tree under dir, with the
// kernel's lists of built-in modules, and runs depmod -b there so that
// busybox's modprobe in the guest resolves dependencies itself. It returns
// the root of the staged tree (holding lib/modules/<release>).
func (k kernelTree) stageModules(dir string, files []string) (string, error) {
	root := filepath.Join(dir, "modules-root")
	_ = os.RemoveAll(root)
	dst := filepath.Join(root, "lib", "modules", k.release)
	for _, f := range append([]string{"modules.builtin", "modules.builtin.modinfo", "modules.order"}, files...) {
		src := filepath.Join(k.modulesDir(), f)
		if _, err := os.Stat(src); err != nil && strings.HasPrefix(f, "modules.") {
			continue // optional lists
		}
		if err := copyFile(src, filepath.Join(dst, f)); err != nil {
			return "", err
		}
	}
	if out, err := exec.Command(depmod(), "-b", root, k.release).CombinedOutput(); err != nil {
		return "", fmt.Errorf("depmod -b %s %s: %w: %s", root, k.release, err, out)
	}
	return root, nil
}

// depmod finds kmod's depmod, which is in /usr/sbin, outside a user's PATH.
func depmod() string {
	if p, err := exec.LookPath("depmod"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "depmod"
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// guestPackages is what a VM boots with: its kernel, prepared with modules,
// and the other packages extracted, by name.
type guestPackages struct {
	kernel    guestKernel
	kernelDeb string
	dirs      map[string]string // package name -> extracted tree
}

// fetchGuest fetches (into the cache, once) and extracts the kernel,
// busybox, libc, ALSA and the extra packages (name -> spec) of a.
func fetchGuest(f *fetcher, a arch, cache string, extra map[string]string, modules []string) (guestPackages, error) {
	var g guestPackages
	kernelSpec, err := f.kernelSpec(a)
	if err != nil {
		return g, fmt.Errorf("find the kernel: %w", err)
	}
	specs := map[string]string{
		"busybox-static":  "busybox-static:" + a.deb,
		"libc6":           "libc6:" + a.deb,
		"libasound2":      "libasound2:" + a.deb,
		"libasound2-data": "libasound2-data:all",
	}
	maps.Copy(specs, extra)
	all := []string{kernelSpec}
	for _, spec := range specs {
		all = append(all, spec)
	}
	debs, err := f.fetchAll(all...)
	if err != nil {
		return g, fmt.Errorf("fetch packages: %w", err)
	}
	g.kernelDeb, g.dirs = debs[kernelSpec], map[string]string{}
	for name, spec := range specs {
		if g.dirs[name], err = extract(cache, debs[spec]); err != nil {
			return g, err
		}
	}
	if g.kernel, err = prepareKernel(cache, g.kernelDeb, modules); err != nil {
		return g, fmt.Errorf("kernel: %w", err)
	}
	return g, nil
}

// libDirs are where the named packages keep their shared libraries.
func (g guestPackages) libDirs(triplet string, names ...string) []string {
	var dirs []string
	for _, name := range names {
		dirs = append(dirs, filepath.Join(g.dirs[name], "lib", triplet), filepath.Join(g.dirs[name], "usr", "lib", triplet))
	}
	return dirs
}
