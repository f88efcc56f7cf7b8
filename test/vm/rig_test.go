package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/config"
)

// These tests check the rig itself and run in every `go test`, without
// QEMU.

func TestConsoleResult(t *testing.T) {
	good := []string{
		"[    1.234] some kernel line",
		"VMTEST BOOTED 2.33 6.1.0-50-arm64 aarch64",
		"VMTEST MODULES 2.78 vivid snd_aloop",
		"=== RUN   TestCameraCapture",
		"    --- PASS: TestCameraCapture/YUYV_1280x720 (0.28s)",
		"--- PASS: TestCameraCapture (1.40s)",
		"--- SKIP: TestButton (0.00s)",
		"VMTEST-HOST led-blinked line=4 min-changes=6",
		"PASS",
		"VMTEST EXIT static 0 4.67",
		"--- PASS: TestALSA (8.07s)",
		"VMTEST EXIT cgo 0 16.59\r",
		"VMTEST DONE 16.61",
	}
	tests := []struct {
		name    string
		lines   []string
		wantErr string // "" for a passing run
	}{
		{"pass", good, ""},
		{"no boot", []string{"[ 0.1] Linux version"}, "init never started"},
		{"no done", good[:len(good)-1], "no VMTEST DONE"},
		{"test failed", replace(good, "--- PASS: TestCameraCapture (1.40s)", "--- FAIL: TestCameraCapture (1.40s)"), "--- FAIL: TestCameraCapture"},
		{"binary failed", replace(good, "VMTEST EXIT cgo 0 16.59\r", "VMTEST EXIT cgo 2 16.59"), "cgo exited with status 2"},
		{"binary missing", remove(good, "VMTEST EXIT cgo 0 16.59\r"), "cgo did not report"},
		{"panic", append(append([]string{}, good[:8]...), append([]string{"panic: test timed out after 1m30s"}, good[8:]...)...), "panic: test timed out"},
		{"kernel panic", append([]string{"VMTEST BOOTED 1 x y", "[ 3.0] Kernel panic - not syncing: x"}, good[2:]...), "Kernel panic"},
		{"init failure", append([]string{"VMTEST FAIL modprobe vivid"}, good...), "VMTEST FAIL modprobe vivid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r consoleResult
			for i, l := range tc.lines {
				r.line(l, time.Duration(i)*time.Second)
			}
			err := r.err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want a pass, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error with %q, got %v", tc.wantErr, err)
			}
		})
	}
	var r consoleResult
	for i, l := range good {
		r.line(l, time.Duration(i)*time.Second)
	}
	if r.bootedAt != time.Second || r.modules != 2*time.Second {
		t.Errorf("booted at %v, modules at %v; want 1s, 2s", r.bootedAt, r.modules)
	}
	if len(r.leds) != 1 || r.leds[0] != (ledCheck{line: 4, minChanges: 6}) {
		t.Errorf("LED checks %+v", r.leds)
	}
	if got, want := r.summary(), "TestCameraCapture PASS (1.4s), TestButton SKIP (0.0s), TestALSA PASS (8.1s)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if r.tests[len(r.tests)-1].binary != "cgo" || r.tests[0].binary != "static" {
		t.Errorf("tests not attributed to their binaries: %+v", r.tests)
	}
}

func replace(lines []string, old, new string) []string {
	out := append([]string{}, lines...)
	for i := range out {
		if out[i] == old {
			out[i] = new
		}
	}
	return out
}

func remove(lines []string, drop string) []string {
	var out []string
	for _, l := range lines {
		if l != drop {
			out = append(out, l)
		}
	}
	return out
}

func TestLineChanges(t *testing.T) {
	trace := strings.Join([]string{
		"pl061_set_output /machine/unattached/device[9] setting output 4 to 1",
		"1234@1700000000.000001:pl061_set_output /machine/unattached/device[9] setting output 4 to 1",
		"pl061_set_output /machine/unattached/device[9] setting output 5 to 1",
		"pl061_set_output /machine/unattached/device[9] setting output 4 to 0",
		"pl061_set_output /machine/unattached/device[9] setting output 4 to 1",
		"pl061_set_output /machine/unattached/device[9] setting output 4 to 0",
		"something else",
	}, "\n")
	changes, last := lineChanges(trace, 4)
	if changes != 4 || last != 0 {
		t.Errorf("line 4: %d changes, last %d; want 4, 0", changes, last)
	}
	if changes, last := lineChanges(trace, 7); changes != 0 || last != -1 {
		t.Errorf("line 7: %d changes, last %d; want 0, -1", changes, last)
	}
}

func TestModuleName(t *testing.T) {
	for file, want := range map[string]string{
		"kernel/sound/drivers/snd-aloop.ko":                   "snd_aloop",
		"kernel/drivers/media/test-drivers/vivid/vivid.ko":    "vivid",
		"kernel/drivers/media/common/v4l2-tpg/v4l2-tpg.ko.xz": "v4l2_tpg",
	} {
		if got := moduleName(file); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", file, got, want)
		}
	}
}

// cpioEntry is one entry read back from a newc archive.
type cpioEntry struct {
	mode uint32
	rdev [2]uint32
	data string
}

// readCPIO parses a newc archive: the reader's half of the format, to check
// the writer against.
func readCPIO(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	entries := map[string]cpioEntry{}
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return uint32(v)
	}
	for {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic at %d: %q", off, b[off:off+6])
		}
		mode, size, rmaj, rmin, namesize := field(1), int(field(6)), field(9), field(10), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		off += 110 + namesize
		off = (off + 3) &^ 3
		data := string(b[off : off+size])
		off = (off + size + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return entries
		}
		entries[name] = cpioEntry{mode: mode, rdev: [2]uint32{rmaj, rmin}, data: data}
	}
}

func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	c.charDev("dev/console", 0o600, 5, 1)
	c.file("/bin/tool", 0o755, []byte("hello"))
	c.symlink("bin/sh", "busybox")
	c.file("lib/modules/x/modules.dep", 0o644, []byte("kernel/a.ko:\n"))
	c.file("bin/tool", 0o755, nil)
	if err := c.close(); err == nil || !strings.Contains(err.Error(), "added twice") {
		t.Fatalf("a duplicate entry should fail, got %v", err)
	}

	buf.Reset()
	c = newCPIO(&buf)
	c.charDev("dev/console", 0o600, 5, 1)
	c.file("/bin/tool", 0o755, []byte("hello"))
	c.symlink("bin/sh", "busybox")
	c.file("lib/modules/x/modules.dep", 0o644, []byte("kernel/a.ko:\n"))
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	want := map[string]cpioEntry{
		"dev":                       {mode: modeDir | 0o755},
		"dev/console":               {mode: modeCharDev | 0o600, rdev: [2]uint32{5, 1}},
		"bin":                       {mode: modeDir | 0o755},
		"bin/tool":                  {mode: modeFile | 0o755, data: "hello"},
		"bin/sh":                    {mode: modeSymlink | 0o777, data: "busybox"},
		"lib":                       {mode: modeDir | 0o755},
		"lib/modules":               {mode: modeDir | 0o755},
		"lib/modules/x":             {mode: modeDir | 0o755},
		"lib/modules/x/modules.dep": {mode: modeFile | 0o644, data: "kernel/a.ko:\n"},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || g != w {
			t.Errorf("%s: got %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d: %v", len(got), len(want), got)
	}
	// GNU cpio, when installed, must read it too.
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "lib/modules/x/modules.dep") {
			t.Errorf("cpio -t: %v\n%s", err, out)
		}
	}
}

func TestInitScript(t *testing.T) {
	for _, a := range arches {
		script := initScript(a, "")
		for _, want := range []string{"VMTEST BOOTED", "VMTEST DONE", "modprobe $m", "/lib/" + a.triplet, "reboot -f"} {
			if !strings.Contains(script, want) {
				t.Errorf("%s: init script lacks %q", a.name, want)
			}
		}
		// Every command the script runs must be a busybox applet we link.
		for _, cmd := range []string{"mount", "cut", "uname", "modprobe", "sync", "reboot"} {
			found := false
			for _, applet := range busyboxApplets {
				found = found || applet == cmd
			}
			if !found {
				t.Errorf("the init script runs %s, which is not among busyboxApplets", cmd)
			}
		}
		if sh, err := exec.LookPath("sh"); err == nil {
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: init script syntax: %v\n%s", a.name, err, out)
			}
		}
	}
	if s := initScript(arches[0], "TestLED"); !strings.Contains(s, "-test.run 'TestLED'") {
		t.Errorf("ONAIR_VM_RUN should narrow both binaries:\n%s", s)
	}
}

// The daemon's VM (daemon_test.go), checked without QEMU.

func TestDaemonConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(daemonConfig(40123)))
	if err != nil {
		t.Fatalf("the daemon's VM config does not load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"webrtc.udp_port", cfg.WebRTC.UDPPort, 40123},
		{"webrtc.additional_hosts", strings.Join(cfg.WebRTC.AdditionalHosts, ","), daemonUDPHost},
		{"http.listen", cfg.HTTP.Listen, ":8080"},
		{"http.admin_token", cfg.HTTP.AdminToken, daemonToken},
		{"video.source", cfg.Video.Source, "v4l2"},
		{"video size", fmt.Sprintf("%dx%d@%d", cfg.Video.Width, cfg.Video.Height, cfg.Video.FPS),
			fmt.Sprintf("%dx%d@%d", daemonWidth, daemonHeight, daemonFPS)},
		{"video.encoder", cfg.Video.Encoder, "x264"},
		{"audio.source", cfg.Audio.Source, "alsa"},
		{"gpio.button", cfg.GPIO.Button, "gpiochip0:3"},
		{"gpio.active_low", cfg.GPIO.ActiveLow, false},
		// A 100 ms QMP pulse must be a short press.
		{"gpio.long_press > 100ms", cfg.GPIO.LongPress.D() > 100*time.Millisecond, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDaemonInitScript(t *testing.T) {
	a, _ := archByName("arm64")
	script := daemonInitScript(a)
	for _, want := range []string{"VMTEST BOOTED", "modprobe $m", "virtio_net", "ifconfig eth0 10.0.2.15",
		"/bin/onaird -v --config /etc/onair/onair.yaml", "kill -TERM $pid", "VMTEST EXIT onaird", "VMTEST DONE", "reboot -f",
		vividDriver + "/unbind", vividDriver + "/bind"} {
		if !strings.Contains(script, want) {
			t.Errorf("the daemon's init script lacks %q", want)
		}
	}
	for _, cmd := range []string{"ifconfig", "route", "kill", "modprobe", "mount"} {
		if !slices.Contains(busyboxApplets, cmd) {
			t.Errorf("the daemon's init script runs %s, which is not among busyboxApplets", cmd)
		}
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("init script syntax: %v\n%s", err, out)
		}
	}
}

// The daemon in the VM is built as `make build-arm64` builds it.
func TestDaemonBuildLikeMakefile(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TAGS := (.*)$`).FindSubmatch(makefile)
	if m == nil || strings.TrimSpace(string(m[1])) != daemonTags {
		t.Errorf("the Makefile's TAGS are %q, the VM builds onaird with %q", m, daemonTags)
	}
}

func TestSDPCandidates(t *testing.T) {
	sdp := "v=0\r\n" +
		"a=candidate:1 1 udp 2130706431 10.0.2.15 40123 typ host\r\n" +
		"a=candidate:2 1 UDP 2130706431 127.0.0.2 40123 typ host\r\n" +
		"a=candidate:3 1 tcp 1 10.0.2.15 9 typ host tcptype active\r\n" +
		"a=end-of-candidates\r\n"
	got := sdpCandidates(sdp)
	want := []candidate{{"10.0.2.15", 40123, "host"}, {"127.0.0.2", 40123, "host"}}
	if !slices.Equal(got, want) {
		t.Errorf("candidates %+v, want %+v", got, want)
	}
}

func TestDaemonWanted(t *testing.T) {
	for run, want := range map[string]bool{"": true, "TestDaemon": true, "Daemon|TestLED": true, "TestLED": false, "[": false} {
		if got := daemonWanted(run); got != want {
			t.Errorf("daemonWanted(%q) = %v, want %v", run, got, want)
		}
	}
}
