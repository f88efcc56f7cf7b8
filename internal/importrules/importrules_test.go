// Package importrules holds tests of the project's import rules: what must
// stay pure Go (so it cross-compiles with CGO_ENABLED=0 and runs under
// qemu-user) and what the broadcast hub may never depend on.
package importrules

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Standard   bool
	CgoFiles   []string
	Deps       []string
}

func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	if testing.Short() {
		t.Skip("asks the go command about the module: checked once, in the native run")
	}
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Standard,CgoFiles,Deps"}, patterns...)...)
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", patterns, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/onair/onair"

// cgoAllowed are the edges where cgo lives, behind build tags, and what
// wires them in.
var cgoAllowed = []string{
	module + "/encoder/x264",
	module + "/encoder/opus",
	module + "/device/alsa",
	module + "/bench/encodecpu",
	module + "/internal/daemon",
	module + "/cmd/onaird",
}

// mediaLibraries may only be reached through the cgo edges above.
var mediaLibraries = []string{"github.com/pion/mediadevices", "github.com/gen2brain/malgo"}

func allowed(path string) bool {
	for _, a := range cgoAllowed {
		if path == a {
			return true
		}
	}
	return false
}

func TestPureGoPackages(t *testing.T) {
	all := list(t, "-deps", "./...")
	byPath := map[string]pkg{}
	for _, p := range all {
		byPath[p.ImportPath] = p
	}
	checked := 0
	for _, p := range list(t, "./...") {
		if allowed(p.ImportPath) {
			continue
		}
		checked++
		for _, dep := range append([]string{p.ImportPath}, p.Deps...) {
			d := byPath[dep]
			if d.Standard {
				continue // net and os/user have cgo variants; CGO_ENABLED=0 builds avoid them
			}
			if len(d.CgoFiles) > 0 {
				t.Errorf("%s must stay pure Go but depends on %s, which uses cgo", p.ImportPath, dep)
			}
			for _, lib := range mediaLibraries {
				if strings.HasPrefix(dep, lib) {
					t.Errorf("%s must stay pure Go but depends on the media library %s", p.ImportPath, dep)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked: is go list seeing the module?", checked)
	}
}

// boundaries are what a package may reach, beyond being pure Go: the module
// packages it may import (nil: any) and the import paths it must never
// reach, directly or not.
var boundaries = []struct {
	pkg, why string
	// module lists the only module packages allowed (besides pkg's own
	// subtree); nil allows any.
	module    []string
	forbidden []string
}{
	{pkg: "broadcast", why: "the hub fans out samples and knows nothing of any transport",
		module: []string{"media", "media/h264"},
		forbidden: []string{"github.com/pion/webrtc", "github.com/pion/ice", "github.com/pion/rtp", "net/http",
			"github.com/eclipse/paho.mqtt.golang", "periph.io/", "github.com/gorilla/websocket"}},
	{pkg: "gpio", why: "a leaf: inputs reach the hub through the daemon, and the fakes stay out of the product",
		module: []string{}, forbidden: []string{"net/http", module + "/gpio/gpiofake"}},
	{pkg: "uplink", why: "one more sink: bitrate requests go up through its options, never into the pipeline",
		module: []string{"broadcast", "media", "media/h264", "internal/rtppack"}},
	{pkg: "ota/bundle", why: "the bundle format is used by the workstation tool too and stays free of networking",
		forbidden: []string{"net/http"}},
}

func TestPackageBoundaries(t *testing.T) {
	for _, b := range boundaries {
		t.Run(b.pkg, func(t *testing.T) {
			pkgs := list(t, module+"/"+b.pkg)
			if len(pkgs) != 1 {
				t.Fatalf("go list found %d packages for %s", len(pkgs), b.pkg)
			}
			self := module + "/" + b.pkg
			for _, dep := range pkgs[0].Deps {
				for _, f := range b.forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("%s reaches %s: %s", b.pkg, dep, b.why)
					}
				}
				if b.module == nil || !strings.HasPrefix(dep, module+"/") || strings.HasPrefix(dep, self+"/") {
					continue
				}
				ok := false
				for _, m := range b.module {
					ok = ok || dep == module+"/"+m
				}
				if !ok {
					t.Errorf("%s imports %s: %s", b.pkg, dep, b.why)
				}
			}
		})
	}
}
