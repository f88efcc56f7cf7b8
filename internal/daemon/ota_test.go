//go:build cgo

package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/fleet"
	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/tryboot"
)

// piBox is a Pi 4 on the test's disk: file-backed slots, a real FAT boot
// selector, and the firmware fake that honours tryboot.
type piBox struct {
	t    *testing.T
	dir  string
	pi   *otatest.Pi
	keys *bundle.Keyring
	priv ed25519.PrivateKey
}

func newPiBox(t *testing.T) *piBox {
	dir := t.TempDir()
	for _, name := range []string{"boot-a", "boot-b"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 256<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rootfs-a", "rootfs-b"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sel := otatest.NewFATSelector(t, dir, tryboot.Selection{Committed: 2, Trial: 2})
	pi, err := otatest.NewPi(dir, sel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pi.PowerOn(); err != nil {
		t.Fatal(err)
	}
	privPEM, pubPEM, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := bundle.ParseKeyring(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(privPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &piBox{t: t, dir: dir, pi: pi, keys: keys, priv: k.(ed25519.PrivateKey)}
}

// agent is what onaird builds at start on the running slot.
func (b *piBox) agent(version string, dataDir string) *ota.Agent {
	a, err := ota.New(ota.Config{
		DataDir: filepath.Join(dataDir, "ota"), Board: "pi4", Version: version, Keys: b.keys,
		Slots: [2]ota.Slot{
			ota.FileSlot{SlotName: "A", BootPath: filepath.Join(b.dir, "boot-a"), RootfsPath: filepath.Join(b.dir, "rootfs-a")},
			ota.FileSlot{SlotName: "B", BootPath: filepath.Join(b.dir, "boot-b"), RootfsPath: filepath.Join(b.dir, "rootfs-b")},
		},
		Bootloader: b.pi.Bootloader(), HealthDeadline: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return a
}

// bundle writes a signed bundle of version with random partition images.
func (b *piBox) bundle(version string) (path string, image []byte) {
	boot, rootfs := make([]byte, 64<<10), make([]byte, 300<<10)
	rand.Read(boot)
	rand.Read(rootfs)
	bp, rp := filepath.Join(b.dir, "new-boot-"+version), filepath.Join(b.dir, "new-rootfs-"+version)
	os.WriteFile(bp, boot, 0o644)
	os.WriteFile(rp, rootfs, 0o644)
	path = filepath.Join(b.dir, "onair-"+version+".bundle")
	f, err := os.Create(path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if _, err := bundle.CreateFromFiles(f, bp, rp, bundle.CreateOptions{Version: version, Board: "pi4", Keys: []ed25519.PrivateKey{b.priv}}); err != nil {
		b.t.Fatal(err)
	}
	return path, append(boot, rootfs...)
}

func (r *running) otaState(t *testing.T) map[string]any {
	t.Helper()
	code, body := r.admin(t, http.MethodGet, "/api/ota", "")
	if code != 200 {
		t.Fatalf("GET /api/ota: %d %s", code, body)
	}
	var st map[string]any
	json.Unmarshal([]byte(body), &st)
	return st
}

func (r *running) waitInstalled(t *testing.T) map[string]any {
	t.Helper()
	var st map[string]any
	waitFor(t, "the install to end", func() bool { st = r.otaState(t); return st["installing"] == false })
	return st
}

// TestUpdateThroughTheDaemon: an update goes in over the API while idle,
// the box reboots into its trial, the new daemon commits it once healthy;
// a tampered bundle is refused with the running slot untouched.
func TestUpdateThroughTheDaemon(t *testing.T) {
	box := newPiBox(t)
	data := t.TempDir()
	slotA, _ := os.ReadFile(filepath.Join(box.dir, "rootfs-a"))

	r := startWith(t, nil, Options{OTA: box.agent("1.0.0", data)})
	if fw := r.d.Status().Firmware; fw.Slot != "A" || fw.OTAState != "idle" {
		t.Fatalf("firmware %+v before the update", fw)
	}
	// A tampered bundle: refused, nothing armed, no reboot.
	good, image := box.bundle("1.1.0")
	raw, _ := os.ReadFile(good)
	raw[len(raw)-1000] ^= 0x40
	bad := filepath.Join(box.dir, "tampered.bundle")
	os.WriteFile(bad, raw, 0o644)
	if code, body := r.admin(t, http.MethodPost, "/api/ota", `{"source":"`+bad+`"}`); code != 202 {
		t.Fatalf("POST /api/ota: %d %s", code, body)
	}
	if st := r.waitInstalled(t); !strings.Contains(st["error"].(string), "sha256") && !strings.Contains(st["error"].(string), "hash") {
		t.Fatalf("tampered bundle: %v", st)
	}
	if now, _ := os.ReadFile(filepath.Join(box.dir, "rootfs-a")); !bytes.Equal(now, slotA) || box.pi.Reboots() != 0 {
		t.Fatal("a refused update touched the running slot or rebooted")
	}
	// An unknown version named by the operator: refused before writing.
	if code, _ := r.admin(t, http.MethodPost, "/api/ota", `{"source":"`+good+`","version":"9.9.9"}`); code != 202 {
		t.Fatal("POST")
	}
	if st := r.waitInstalled(t); !strings.Contains(st["error"].(string), "9.9.9") {
		t.Fatalf("version mismatch: %v", st)
	}

	// Live: the update installs but the reboot waits for the stop.
	r.goLive(t)
	if code, body := r.admin(t, http.MethodPost, "/api/ota", `{"source":"`+good+`","version":"1.1.0"}`); code != 202 {
		t.Fatalf("POST /api/ota: %d %s", code, body)
	}
	if code, _ := r.admin(t, http.MethodPost, "/api/ota", `{"source":"`+good+`"}`); code != 409 && r.otaState(t)["installing"] == true {
		t.Fatalf("a second install while one runs: %d, want 409", code)
	}
	if st := r.waitInstalled(t); st["error"] != "" {
		t.Fatalf("install: %v", st)
	}
	time.Sleep(300 * time.Millisecond)
	if box.pi.Reboots() != 0 {
		t.Fatal("the box rebooted in the middle of a live broadcast")
	}
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitFor(t, "the reboot into the trial", func() bool { return box.pi.Reboots() == 1 })
	r.stop()

	// Power on: the firmware tries B once; the new daemon commits it when healthy.
	info, err := box.pi.PowerOn()
	if err != nil || info.Slot != "B" || !info.Trial {
		t.Fatalf("after the reboot: %+v %v, want a trial of B", info, err)
	}
	r2 := startWith(t, nil, Options{OTA: box.agent("1.1.0", data)})
	defer r2.stop()
	waitFor(t, "the commit", func() bool { fw := r2.d.Status().Firmware; return fw.Slot == "B" && fw.OTAState == "idle" })
	if slotB, _ := os.ReadFile(filepath.Join(box.dir, "rootfs-b")); !bytes.Equal(slotB[:len(image)-64<<10], image[64<<10:]) {
		t.Fatal("slot B does not hold the bundle's root file system")
	}
	st := r2.otaState(t)
	last, _ := st["status"].(map[string]any)["last"].(map[string]any)
	if last["result"] != "committed" || last["version"] != "1.1.0" {
		t.Fatalf("last outcome %v", last)
	}
	// And the next power-on stays on B.
	r2.stop()
	if info, _ := box.pi.PowerOn(); info.Slot != "B" || info.Trial {
		t.Fatalf("after commit the box boots %+v", info)
	}
}

// Without a firmware layout (a developer's PC) updates are refused with the
// reason, over HTTP and MQTT alike.
func TestNoUpdatesOffTheImage(t *testing.T) {
	r := start(t, nil)
	defer r.stop()
	if code, body := r.admin(t, http.MethodPost, "/api/ota", `{"source":"https://updates.example.org/x.bundle"}`); code != 503 || !strings.Contains(body, "not an OnAir image") {
		t.Fatalf("POST /api/ota: %d %s", code, body)
	}
	if err := (controller{r.d}).OTA(t.Context(), fleetOTA("https://updates.example.org/x.bundle")); err == nil {
		t.Fatal("MQTT ota accepted without an updatable image")
	}
	if fw := r.d.Status().Firmware; fw.OTAState != "unavailable" {
		t.Fatalf("firmware %+v", fw)
	}
}

func fleetOTA(url string) fleet.OTAArgs { return fleet.OTAArgs{URL: url} }
