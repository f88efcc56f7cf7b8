package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onair/onair/internal/whepclient"
	"github.com/onair/onair/status"
)

// The whole onaird, built as `make build-arm64` builds it (cgo, x264, Opus,
// miniaudio), boots in its own VM on vivid, snd-aloop and the PL061 button,
// with a network card whose HTTP and WebRTC ports QEMU forwards to the host.
// From the host, as a crew and a viewer would: the button goes live, a WHEP
// viewer receives H.264 that ffmpeg decodes, 20 presses are 20 toggles, the
// camera is unplugged while live, and SIGTERM stops the daemon cleanly.

// daemonModules are the guest's modules: the camera, the sound card and the
// network card (virtio-mmio and virtio-net are modules in Debian's kernels;
// virtio-net brings net_failover and failover).
var daemonModules = []string{"vivid", "snd-aloop", "virtio_mmio", "virtio_net"}

const (
	// daemonTags are the Makefile's TAGS (TestDaemonBuildLikeMakefile).
	daemonTags  = "dynamic"
	daemonToken = "vm-admin-token"
	// daemonUDPHost is the host address the guest's media port is forwarded
	// from, announced with webrtc.additional_hosts. Not 127.0.0.1: the
	// daemon announces its own loopback address anyway, and the media must
	// flow only if the configured extra candidate works.
	daemonUDPHost = "127.0.0.2"
	// The picture is small because TCG encodes it: a size vivid's webcam
	// input offers, so that the camera keeps it.
	daemonWidth, daemonHeight, daemonFPS = 320, 180, 15
	// daemonPresses are the button presses: the first goes live, and
	// after 20 toggles the broadcast is stopped again.
	daemonPresses = 20
	// daemonFrames is how many frames the viewer must receive and ffmpeg
	// decode: 3 s of video.
	daemonFrames = 3 * daemonFPS
	// pressRepeats bounds the presses repeated because the daemon never
	// saw them: QEMU times its 100 ms pulse on the host's clock, and a host
	// that stalls QEMU shortens it as the guest sees it (README: GPIO).
	pressRepeats = 3
)

// daemonConfig is the daemon's configuration file in the guest.
func daemonConfig(udpPort int) string {
	return fmt.Sprintf(`# onaird in the test VM (test/vm/daemon_test.go)
device_id: vm-arm64
data_dir: /tmp/onair
http:
  listen: ":8080"
  admin_token: %s
video:
  source: v4l2          # vivid, and nothing else
  device: /dev/video0
  width: %d
  height: %d
  fps: %d
  encoder: x264
  bitrate_kbps: 300
audio:
  source: alsa
  device: Loopback      # snd-aloop's capture side
webrtc:
  udp_port: %d          # the same port on both sides of QEMU's forward
  additional_hosts: [%s]
replay:
  enabled: false        # the guest's RAM is its disk
gpio:
  button: gpiochip0:3   # the PL061 line QMP's system_powerdown raises
  active_low: false
`, daemonToken, daemonWidth, daemonHeight, daemonFPS, udpPort, daemonUDPHost)
}

// daemonInitScript is the daemon's /init: the network as QEMU's user
// networking expects it (10.0.2.15, gateway 10.0.2.2), onaird in the
// background, and then commands from the console's input until "stop",
// which stops the daemon with SIGTERM, as the image's init system does.
func daemonInitScript(a arch) string {
	return initStart(daemonModules) + `ifconfig lo 127.0.0.1 up
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up || echo "VMTEST FAIL eth0"
route add default gw 10.0.2.2
export HOME=/tmp TMPDIR=/tmp LD_LIBRARY_PATH=/lib/` + a.triplet + `
/bin/onaird -v --config /etc/onair/onair.yaml </dev/null &
pid=$!
echo "VMTEST DAEMON $pid $(uptime)"
while read -r cmd; do
	case "$cmd" in
	unplug) echo ` + vividDevice + ` > ` + vividDriver + `/unbind; echo "VMTEST ACK unplug $?" ;;
	replug) echo ` + vividDevice + ` > ` + vividDriver + `/bind; echo "VMTEST ACK replug $?" ;;
	stop) break ;;
	esac
done
kill -TERM $pid
wait $pid
echo "VMTEST EXIT onaird $? $(uptime)"
echo "VMTEST DONE $(uptime)"
sync
reboot -f
`
}

// vivid's platform device, as the guest tests name it.
const (
	vividDriver = "/sys/bus/platform/drivers/vivid"
	vividDevice = "vivid.0"
)

// daemonImage is what goes into the daemon's initramfs.
type daemonImage struct {
	arch        arch
	busybox     string
	modulesRoot string
	daemon      string // onaird for the guest
	libs        map[string]string
	alsaShare   string
	config      string
}

func (g daemonImage) write(w io.Writer) error {
	c := newCPIO(w)
	baseLayout(c, g.busybox, g.modulesRoot, daemonInitScript(g.arch))
	c.hostFile("bin/onaird", g.daemon)
	c.file("etc/onair/onair.yaml", 0o644, []byte(g.config))
	sharedFiles(c, g.libs, g.alsaShare)
	return c.close()
}

// runDaemon builds onaird and its image, boots it and plays crew and
// viewer from the host.
func runDaemon(t *testing.T, a arch, cache, root string, packages *resolver) (tm timing) {
	tm.arch = a.name + " daemon"
	tm.verdict = "FAIL"
	start := time.Now()
	defer func() {
		tm.total = time.Since(start)
		if !t.Failed() {
			tm.verdict = "PASS"
		}
	}()
	out := t.Output()
	logf := func(format string, args ...any) { fmt.Fprintf(out, a.name+"-daemon: "+format+"\n", args...) }

	// 1. Packages: the guest tests' ones and the daemon's codec libraries,
	// in the versions it is built against.
	f := &fetcher{dir: filepath.Join(cache, "debs"), resolver: packages, logf: logf}
	codecs := []string{"libx264-dev", "libopus-dev"}
	extra := map[string]string{}
	for _, dev := range codecs {
		name, err := runtimePackage(packages, dev+":"+a.deb)
		if err != nil {
			t.Fatal(err)
		}
		extra[dev] = name + ":" + a.deb
	}
	guest, err := fetchGuest(f, a, cache, extra, daemonModules)
	if err != nil {
		t.Fatal(err)
	}
	kernel, dirs := guest.kernel, guest.dirs
	tm.fetch = time.Since(start)

	// 2. onaird, and the shared libraries it needs.
	step := time.Now()
	daemon := filepath.Join(cache, "build", a.name, "onaird")
	if err := buildDaemon(root, a, daemon); err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibs(daemon, a.triplet, guest.libDirs(a.triplet, append([]string{"libc6", "libasound2"}, codecs...)...), "libasound.so.2")
	if err != nil {
		t.Fatalf("libraries of onaird: %v", err)
	}
	tm.build = time.Since(step)
	logf("onaird built in %v; it takes %d shared libraries along", tm.build.Round(100*time.Millisecond), len(libs))

	// 3. The image, with the forwarded ports in its configuration.
	step = time.Now()
	httpPort, udpPort, err := freePorts()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	initrd := filepath.Join(work, "initramfs.cpio")
	img := daemonImage{
		arch: a, busybox: filepath.Join(dirs["busybox-static"], "bin", "busybox"), modulesRoot: kernel.modulesRoot,
		daemon: daemon, libs: libs, alsaShare: filepath.Join(dirs["libasound2-data"], "usr", "share", "alsa"),
		config: daemonConfig(udpPort),
	}
	file, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.write(file); err != nil {
		file.Close()
		t.Fatalf("write initramfs: %v", err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	tm.image = time.Since(step)

	// 4. Boot; the host plays crew and viewer while the console streams.
	step = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	input, toGuest, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer input.Close()
	defer toGuest.Close()
	console := newConsoleLog()
	boot := vmBoot{
		arch: a, kernel: kernel.image, initrd: initrd, dir: work, logf: logf,
		console: func(line string) {
			fmt.Fprintf(out, "%s| %s\n", a.name, line)
			console.add(line)
		},
		extra: []string{
			"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:8080,hostfwd=udp:%s:%d-:%d",
				httpPort, daemonUDPHost, udpPort, udpPort),
			"-device", "virtio-net-device,netdev=net0",
		},
		input:    input,
		binaries: []string{"onaird"},
		// A second CPU keeps the button's goroutine from waiting behind
		// the encoder for longer than QEMU's 100 ms pulse.
		cpus: 2,
	}
	type ran struct {
		result *consoleResult
		err    error
	}
	done := make(chan ran, 1)
	// The host's side gives up as soon as the VM is gone.
	driveCtx, vmGone := context.WithCancel(ctx)
	defer vmGone()
	go func() {
		result, err := boot.run(ctx)
		vmGone()
		done <- ran{result, err}
	}()
	var end ran
	ended := false
	defer func() {
		if !ended {
			cancel() // kills QEMU
			<-done
		}
	}()
	d := &daemonRun{
		t: t, logf: logf, console: console, toGuest: toGuest, udpPort: udpPort,
		base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), qmpPath: boot.qmpPath(),
		http: &http.Client{Timeout: 10 * time.Second},
	}
	defer d.close()
	d.drive(driveCtx)

	// 5. Stop: SIGTERM must end the daemon with status 0.
	stopAt := time.Now()
	if _, err := io.WriteString(toGuest, "stop\n"); err != nil {
		t.Errorf("tell the guest to stop: %v", err)
	}
	select {
	case end = <-done:
		ended = true
	case <-time.After(60 * time.Second):
		t.Fatalf("the guest did not stop the daemon and end within 60 s of \"stop\"")
	}
	tm.vm = time.Since(step)
	if end.err != nil {
		t.Errorf("VM: %v", end.err)
	}
	if end.result == nil {
		return tm
	}
	tm.boot, tm.modules = end.result.bootedAt, end.result.modules
	tm.tests = fmt.Sprintf("%s; onaird exit %d, %v after \"stop\"", strings.Join(d.summary, ", "),
		end.result.exits["onaird"], time.Since(stopAt).Round(100*time.Millisecond))
	if err := end.result.err(); err != nil {
		t.Errorf("guest: %v", err)
	}
	logf("VM ran %v (boot to init %v): %s", tm.vm.Round(100*time.Millisecond), tm.boot.Round(100*time.Millisecond), tm.tests)
	return tm
}

// daemonRun is the host's side of the daemon's VM.
type daemonRun struct {
	t       *testing.T
	logf    func(format string, args ...any)
	console *consoleLog
	toGuest *os.File // the console's input
	base    string   // the daemon's HTTP, forwarded
	udpPort int
	qmpPath string
	http    *http.Client

	monitor  *qmp
	events   *stateEvents
	viewer   *whepclient.Client
	presses  int // sent over QMP
	repeats  int // of presses the daemon never saw
	toggles  int
	firstLog int // the console line where the daemon's own log starts
	// summary is what went right, for the timing table.
	summary []string
}

func (d *daemonRun) close() {
	if d.viewer != nil {
		d.viewer.Close()
	}
	if d.events != nil {
		d.events.close()
	}
	if d.monitor != nil {
		d.monitor.close()
	}
}

// drive is the whole scenario; a failure ends the test, and the VM with it.
func (d *daemonRun) drive(ctx context.Context) {
	t := d.t
	st := d.waitHTTP(ctx)
	if st.State != "idle" || st.Video.Width != daemonWidth || st.Video.Height != daemonHeight ||
		st.Video.Encoder != "x264" || !st.CameraConnected || st.Video.Source != "/dev/video0" {
		t.Fatalf("the daemon should start idle on vivid at %dx%d with x264: %+v", daemonWidth, daemonHeight, st)
	}
	d.logf("daemon up: video %s %dx%d %s, audio %s", st.Video.Source, st.Video.Width, st.Video.Height, st.Video.Encoder, st.Audio.Source)
	if !strings.Contains(st.Audio.Source, "Loopback") {
		t.Errorf("audio source %q, want snd-aloop's Loopback", st.Audio.Source)
	}
	var err error
	if d.events, err = dialEvents(ctx, d.base); err != nil {
		t.Fatal(err)
	}
	if s, err := d.events.next(ctx, 10*time.Second); err != nil || s != "idle" {
		t.Fatalf("first state event %q (%v), want idle", s, err)
	}
	if d.monitor, err = dialQMP(d.qmpPath); err != nil {
		t.Fatalf("QMP: %v", err)
	}

	// The button goes live; a viewer on the host gets the picture through
	// the one forwarded UDP port.
	d.press(ctx, "live")
	d.watch(ctx)

	// The other presses toggle, one each, and the last one stops.
	for d.presses-d.repeats < daemonPresses {
		want := "live"
		if d.toggles%2 == 1 {
			want = "idle"
		}
		d.press(ctx, want)
	}
	pressLogs := d.console.count(d.firstLog, "msg=button press=short")
	ignored := d.console.count(d.firstLog, "button press ignored")
	d.logf("%d presses (%d repeated), %d toggles; the daemon logged %d short presses, %d ignored",
		d.presses, d.repeats, d.toggles, pressLogs, ignored)
	if d.toggles != daemonPresses || pressLogs != daemonPresses || ignored != 0 {
		t.Errorf("want %d toggles from %d presses the daemon handled, got %d toggles, %d handled, %d ignored",
			daemonPresses, daemonPresses, d.toggles, pressLogs, ignored)
	}
	if st := d.status(ctx); st.State != "idle" {
		t.Errorf("after %d toggles the broadcast should be stopped, status %q", daemonPresses, st.State)
	}
	if errs := d.console.matching(d.firstLog, "level=ERROR"); len(errs) > 0 {
		t.Errorf("the daemon logged errors while nothing went wrong:\n%s", strings.Join(errs, "\n"))
	}
	d.summary = append(d.summary, fmt.Sprintf("%d presses -> %d toggles (%d repeated)", d.presses-d.repeats, d.toggles, d.repeats))

	d.unplug(ctx)
}

// waitHTTP waits for the daemon's status through the forwarded port.
func (d *daemonRun) waitHTTP(ctx context.Context) status.Document {
	t := d.t
	if _, err := d.console.wait(ctx, 0, "VMTEST DAEMON"); err != nil {
		t.Fatalf("the guest did not start onaird: %v", err)
	}
	d.firstLog = d.console.len()
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var lastErr error
	for {
		st, err := d.getStatus(ctx)
		if err == nil {
			d.logf("HTTP answers %v after onaird started", time.Since(started).Round(100*time.Millisecond))
			return st
		}
		lastErr = err
		if line, ok := d.console.find(d.firstLog, "onaird stopped"); ok {
			t.Fatalf("onaird did not start: %s", line)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no answer from %s/api/status within 60 s: %v", d.base, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// press presses the button over QMP and waits for the broadcast to reach
// want, with nothing else on the way (going_live before live, stopping
// before idle), and for the daemon's log of the press, so that the next
// press finds everything settled.
//
// A press that changes nothing within 5 s, and that the button itself never
// reported (gpio's debug line "button press"), was lost on the line: the
// guest read the line after QEMU's pulse had ended. It is repeated, at most
// pressRepeats times a run. A press the button reported must toggle.
func (d *daemonRun) press(ctx context.Context, want string) {
	t := d.t
	via := map[string]string{"live": "going_live", "idle": "stopping"}[want]
	for {
		logAt := d.console.len()
		started := time.Now()
		d.presses++
		if err := d.monitor.execute("system_powerdown"); err != nil {
			t.Fatalf("press %d: %v", d.presses, err)
		}
		first, err := d.events.next(ctx, 5*time.Second)
		if errors.Is(err, errNoEvent) && d.console.count(logAt, `msg="button press"`) == 0 && d.repeats < pressRepeats {
			d.repeats++
			d.logf("press %d: no state change, and the button reported no press within 5 s: the pulse was lost, pressing again (%d/%d)",
				d.presses, d.repeats, pressRepeats)
			continue
		}
		if err != nil {
			t.Fatalf("press %d (want %s): %v", d.presses, want, err)
		}
		seen := []string{first}
		for seen[len(seen)-1] != want {
			if s := seen[len(seen)-1]; s != via {
				t.Fatalf("press %d: states %v, want %s then %s", d.presses, seen, via, want)
			}
			next, err := d.events.next(ctx, 30*time.Second)
			if err != nil {
				t.Fatalf("press %d: states %v, then %v", d.presses, seen, err)
			}
			seen = append(seen, next)
		}
		d.toggles++
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = d.console.waitCount(waitCtx, d.firstLog, "msg=button press=short", d.toggles)
		cancel()
		if err != nil {
			t.Fatalf("press %d: the daemon did not log its toggle: %v", d.presses, err)
		}
		d.logf("press %d: %s in %v", d.presses, strings.Join(seen, " -> "), time.Since(started).Round(10*time.Millisecond))
		return
	}
}

// watch connects a WHEP viewer while live and checks what it receives:
// the daemon's candidates all on the one UDP port, the extra host among
// them, and H.264 that ffmpeg decodes at the configured size.
func (d *daemonRun) watch(ctx context.Context) {
	t := d.t
	started := time.Now()
	var err error
	d.viewer, err = whepclient.Dial(ctx, d.base+"/api/whep", whepclient.Options{RecordH264: true, HTTP: d.http})
	if err != nil {
		t.Fatalf("WHEP: %v", err)
	}
	candidates := sdpCandidates(d.viewer.RemoteSDP())
	extra := false
	for _, c := range candidates {
		if c.port != d.udpPort {
			t.Errorf("candidate %s:%d is not on webrtc.udp_port %d", c.address, c.port, d.udpPort)
		}
		extra = extra || c.address == daemonUDPHost
	}
	if !extra || len(candidates) == 0 {
		t.Fatalf("the answer does not announce webrtc.additional_hosts' %s: %+v", daemonUDPHost, candidates)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := d.viewer.WaitVideoFrames(waitCtx, daemonFrames); err != nil {
		t.Fatalf("viewer: %v (stats %+v)", err, brief(d.viewer.Stats()))
	}
	stats := d.viewer.Stats()
	d.logf("viewer: %d frames (%d keyframes), %d audio packets in %v; candidates %+v", stats.VideoFrames, stats.Keyframes,
		stats.AudioPackets, time.Since(started).Round(100*time.Millisecond), candidates)
	if !stats.FirstFrameIsKeyframe {
		t.Errorf("the viewer's first frame should be a keyframe with SPS and PPS")
	}
	if stats.AudioPackets == 0 {
		t.Errorf("no Opus packets from the microphone")
	}
	path := filepath.Join(d.t.TempDir(), "viewer.h264")
	if err := os.WriteFile(path, d.viewer.H264(), 0o644); err != nil {
		t.Fatal(err)
	}
	decoded, err := decodeH264(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d.logf("ffmpeg decoded %d frames of %dx%d (%s) from %d received", decoded.frames, decoded.width, decoded.height, decoded.codec, stats.VideoFrames)
	if decoded.codec != "h264" || decoded.width != daemonWidth || decoded.height != daemonHeight || decoded.frames < daemonFrames {
		t.Errorf("ffmpeg decoded %+v, want at least %d frames of h264 %dx%d", decoded, daemonFrames, daemonWidth, daemonHeight)
	}
	d.summary = append(d.summary, fmt.Sprintf("WHEP %d frames decoded %dx%d", decoded.frames, decoded.width, decoded.height))
}

// unplug goes live with the API's button, which must be the same entry
// point as the GPIO button (the daemon's one press handler logs it), and
// unbinds vivid from its driver, as pulling a USB camera would: the
// broadcast goes on with the slate and the status says the camera is gone.
// Then vivid is bound again, and the API stops the broadcast.
func (d *daemonRun) unplug(ctx context.Context) {
	t := d.t
	gpioPresses := d.console.count(d.firstLog, `msg="button press"`)
	if _, err := d.admin(ctx, http.MethodPost, "/api/button", `{"press": "short"}`, http.StatusOK); err != nil {
		t.Fatalf("go live with the API's button: %v", err)
	}
	if st := d.status(ctx); st.State != "live" {
		t.Fatalf("POST /api/button from idle: state %q, want live", st.State)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := d.console.waitCount(waitCtx, d.firstLog, "msg=button press=short state=live", daemonPresses/2+1)
	cancel()
	if err != nil {
		t.Errorf("the API's press should go through the daemon's press handler, as the pin's do: %v", err)
	}
	if n := d.console.count(d.firstLog, `msg="button press"`); n != gpioPresses {
		t.Errorf("the API's press came through the GPIO button (%d pin presses, %d before)", n, gpioPresses)
	}
	framesAt := d.viewer.Stats().VideoFrames
	d.guest(ctx, "unplug")
	unplugged := time.Now()
	st, ok := d.waitStatus(ctx, 20*time.Second, func(st status.Document) bool { return !st.CameraConnected })
	if !ok {
		t.Fatalf("20 s after vivid was unbound the status still shows the camera: %+v", st)
	}
	d.logf("camera gone from the status after %v: state %s, error %q", time.Since(unplugged).Round(100*time.Millisecond), st.State, st.Error)
	if st.State != "live" || !strings.Contains(st.Error, "camera disconnected") {
		t.Errorf("without the camera the broadcast should go on, with the problem in the status: state %q, error %q", st.State, st.Error)
	}
	waitCtx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.viewer.WaitVideoFrames(waitCtx, framesAt+2*daemonFPS); err != nil {
		t.Errorf("the viewer should keep getting pictures (the slate) without the camera: %v", err)
	}
	d.summary = append(d.summary, "camera unplug seen")
	d.guest(ctx, "replug")
	replugged := time.Now()
	// The pipeline looks for the camera every 2 s while the slate shows.
	st, back := d.waitStatus(ctx, 20*time.Second, func(st status.Document) bool { return st.CameraConnected && st.Error == "" })
	if !back {
		t.Fatalf("20 s after vivid was bound again the daemon has not taken the camera back: %+v", st)
	}
	d.logf("camera back in the status after %v: state %s", time.Since(replugged).Round(100*time.Millisecond), st.State)
	if st.State != "live" {
		t.Errorf("the camera came back but the state is %q", st.State)
	}
	framesAt = d.viewer.Stats().VideoFrames
	waitCtx2, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := d.viewer.WaitVideoFrames(waitCtx2, framesAt+2*daemonFPS); err != nil {
		t.Errorf("the viewer should get pictures from the camera that came back: %v", err)
	}
	d.summary = append(d.summary, "camera back")
	if _, err := d.admin(ctx, http.MethodDelete, "/api/live", "", http.StatusOK); err != nil {
		t.Fatalf("stop through the API: %v", err)
	}
	if st := d.status(ctx); st.State != "idle" {
		t.Errorf("after DELETE /api/live the state is %q", st.State)
	}
}

// guest runs one of the init script's commands and waits for its answer.
func (d *daemonRun) guest(ctx context.Context, command string) {
	from := d.console.len()
	if _, err := io.WriteString(d.toGuest, command+"\n"); err != nil {
		d.t.Fatalf("guest %s: %v", command, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	line, err := d.console.wait(waitCtx, from, "VMTEST ACK "+command)
	if err != nil {
		d.t.Fatalf("guest %s: %v", command, err)
	}
	if !strings.HasSuffix(strings.TrimSpace(line), " 0") {
		d.t.Fatalf("guest %s failed: %s", command, line)
	}
}

// getStatus reads the full status document (admin token).
func (d *daemonRun) getStatus(ctx context.Context) (status.Document, error) {
	var st status.Document
	body, err := d.admin(ctx, http.MethodGet, "/api/status", "", http.StatusOK)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("status: %w: %s", err, body)
	}
	return st, nil
}

func (d *daemonRun) status(ctx context.Context) status.Document {
	st, err := d.getStatus(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// waitStatus polls the status until ok holds or timeout passes.
func (d *daemonRun) waitStatus(ctx context.Context, timeout time.Duration, ok func(status.Document) bool) (status.Document, bool) {
	deadline := time.Now().Add(timeout)
	for {
		st := d.status(ctx)
		if ok(st) {
			return st, true
		}
		if time.Now().After(deadline) {
			return st, false
		}
		select {
		case <-ctx.Done():
			return st, false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// admin makes an API call with the admin token and a JSON body (or none)
// and wants the status code.
func (d *daemonRun) admin(ctx context.Context, method, path, body string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+daemonToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(answer))
	}
	return answer, nil
}

// brief is the part of a viewer's stats worth printing.
func brief(s whepclient.Stats) string {
	return fmt.Sprintf("connected %v, first RTP %v, frames %d, keyframes %d, audio packets %d",
		!s.Connected.IsZero(), !s.FirstRTP.IsZero(), s.VideoFrames, s.Keyframes, s.AudioPackets)
}

// candidate is an ICE candidate of an SDP.
type candidate struct {
	address string
	port    int
	typ     string
}

var candidateLine = regexp.MustCompile(`(?m)^a=candidate:\S+ \d+ (?i:udp) \d+ (\S+) (\d+) typ (\S+)`)

// sdpCandidates lists the UDP candidates of an SDP.
func sdpCandidates(sdp string) []candidate {
	var out []candidate
	for _, m := range candidateLine.FindAllStringSubmatch(sdp, -1) {
		port, _ := strconv.Atoi(m[2])
		out = append(out, candidate{address: m[1], port: port, typ: m[3]})
	}
	return out
}

// decoded is what ffmpeg made of an H.264 stream.
type decoded struct {
	codec         string
	width, height int
	frames        int
}

// decodeH264 has ffprobe decode every frame of an Annex-B file; a stream
// ffmpeg decodes with errors is an error.
func decodeH264(ctx context.Context, path string) (decoded, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return decoded{}, fmt.Errorf("ffprobe %s (test/vm/run.sh installs ffmpeg): %w: %s", path, err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		return decoded{}, fmt.Errorf("ffmpeg could not decode the viewer's H.264 cleanly: %s", s)
	}
	var probe struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NBReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
		return decoded{}, fmt.Errorf("ffprobe's answer %s: %v", out, err)
	}
	s := probe.Streams[0]
	frames, _ := strconv.Atoi(s.NBReadFrames)
	return decoded{codec: s.CodecName, width: s.Width, height: s.Height, frames: frames}, nil
}

// freePorts finds a free TCP port on 127.0.0.1 for HTTP and a free UDP
// port on daemonUDPHost for the media.
func freePorts() (httpPort, udpPort int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("find a free TCP port: %w", err)
	}
	httpPort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	c, err := net.ListenPacket("udp", daemonUDPHost+":0")
	if err != nil {
		return 0, 0, fmt.Errorf("find a free UDP port on %s: %w", daemonUDPHost, err)
	}
	udpPort = c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return httpPort, udpPort, nil
}

// buildDaemon builds onaird for a with cgo, as the Makefile's build-<arch>
// does, into out.
func buildDaemon(root string, a arch, out string) error {
	if _, err := exec.LookPath(a.cc); err != nil {
		return fmt.Errorf("onaird for %s needs %s (test/vm/run.sh installs it): %w", a.name, a.cc, err)
	}
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-tags", daemonTags,
		"-ldflags", "-s -w -X github.com/onair/onair/internal/daemon.Version=vm", "-o", out, "./cmd/onaird")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm, "GOFLAGS=",
		"CGO_ENABLED=1", "CC="+a.cc,
		"PKG_CONFIG_LIBDIR=/usr/lib/"+a.triplet+"/pkgconfig:/usr/share/pkgconfig")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build onaird for %s: %w\n%s", a.name, err, output)
	}
	return nil
}

// runtimePackage is the library package a -dev package depends on
// ("libx264-dev:arm64" -> "libx264-164"): the one the daemon is linked
// against.
func runtimePackage(r *resolver, devSpec string) (string, error) {
	known, err := r.resolve(devSpec)
	p, ok := known[devSpec]
	if !ok {
		return "", fmt.Errorf("apt does not know %s (test/vm/run.sh installs it): %v", devSpec, err)
	}
	stem := strings.TrimSuffix(p.Name, "-dev")
	for _, dep := range strings.Split(p.Depends, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(dep), " ")
		if strings.HasPrefix(name, stem) && name != p.Name {
			return name, nil
		}
	}
	return "", fmt.Errorf("%s depends on no %s* library: %q", devSpec, stem, p.Depends)
}

// consoleLog keeps the console's lines for the host's side to wait on.
type consoleLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	start   time.Time
	booted  time.Duration
}

func newConsoleLog() *consoleLog {
	return &consoleLog{changed: make(chan struct{}), start: time.Now()}
}

func (c *consoleLog) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.booted == 0 && strings.HasPrefix(line, "VMTEST BOOTED") {
		c.booted = time.Since(c.start)
	}
	c.lines = append(c.lines, line)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *consoleLog) bootedAt() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.booted
}

func (c *consoleLog) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// find returns the first line from index from on that holds s.
func (c *consoleLog) find(from int, s string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines[min(from, len(c.lines)):] {
		if strings.Contains(l, s) {
			return l, true
		}
	}
	return "", false
}

// matching returns the lines from index from on that hold s.
func (c *consoleLog) matching(from int, s string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines[min(from, len(c.lines)):] {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func (c *consoleLog) count(from int, s string) int { return len(c.matching(from, s)) }

// wait waits for a line from index from on that holds s.
func (c *consoleLog) wait(ctx context.Context, from int, s string) (string, error) {
	lines, err := c.waitCount(ctx, from, s, 1)
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

// waitCount waits for n lines from index from on that hold s.
func (c *consoleLog) waitCount(ctx context.Context, from int, s string, n int) ([]string, error) {
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if lines := c.matching(from, s); len(lines) >= n {
			return lines, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d lines with %q on the console: %w", c.count(from, s), n, s, ctx.Err())
		case <-changed:
		}
	}
}

// stateEvents reads the state events of the daemon's event stream
// (GET /api/live/ws).
type stateEvents struct {
	conn   *websocket.Conn
	states chan string
	done   chan struct{}
	err    error // why the stream ended, once states is closed
}

var errNoEvent = errors.New("no state event")

func dialEvents(ctx context.Context, base string) (*stateEvents, error) {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := dialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/live/ws", nil)
	if err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	e := &stateEvents{conn: conn, states: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		defer close(e.states)
		for {
			var msg struct{ Type, State string }
			if err := conn.ReadJSON(&msg); err != nil {
				e.err = err
				return
			}
			if msg.Type == "state" {
				e.states <- msg.State
			}
		}
	}()
	return e, nil
}

// next returns the next state, errNoEvent when none comes within timeout.
func (e *stateEvents) next(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s, ok := <-e.states:
		if !ok {
			return "", fmt.Errorf("event stream ended: %w", e.err)
		}
		return s, nil
	case <-t.C:
		return "", fmt.Errorf("%w within %v", errNoEvent, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (e *stateEvents) close() {
	e.conn.Close()
	<-e.done
}
