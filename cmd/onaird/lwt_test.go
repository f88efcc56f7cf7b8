//go:build cgo

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// fleetKeepAlive is the MQTT keepalive the fleet client asks for (fleet.go,
// SetKeepAlive). It is fixed there, not a config key, so the test mirrors it.
// A broker drops a silent client after 1.5 keepalives (MQTT 3.1.1, 3.1.2.10)
// and only then publishes its Will: that is the longest an operator waits.
const fleetKeepAlive = 30 * time.Second

// willWindow is the longest the Last Will may take after the box dies.
const willWindow = fleetKeepAlive * 3 / 2

// TestLastWillOnSIGKILL runs the real daemon against Debian's Mosquitto,
// kills it with SIGKILL (no chance to say goodbye) and checks that the broker
// publishes the Last Will "offline" on onair/<id>/availability within the
// keepalive window, retained; a restarted daemon says "online" again.
func TestLastWillOnSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("Last Will test with Debian's mosquitto runs without -short")
	}
	const deviceID = "lwt-box"
	const availability = "onair/" + deviceID + "/availability"

	dir := t.TempDir()
	bin := filepath.Join(dir, "onaird")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	broker := startTestMosquitto(t, dir)
	cfg := filepath.Join(dir, "onair.yaml")
	text := fmt.Sprintf("device_id: %s\n"+
		"video: {source: test, width: 320, height: 240}\naudio: {source: test}\nwebrtc: {udp_port: 0}\n"+
		"mqtt: {broker: %q}\n", deviceID, broker)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")

	watch := subscribe(t, broker, "lwt-observer", availability)

	first := startDaemon(t, bin, cfg, dataDir, filepath.Join(dir, "first.log"))
	watch.waitFor(t, "online", 30*time.Second, first.logPath)
	if retained, p := retainedNow(t, broker, availability); !retained || p != "online" {
		t.Fatalf("availability after start: retained=%v %q, want retained online", retained, p)
	}

	killed := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	seen := watch.waitFor(t, "offline", willWindow+5*time.Second, first.logPath)
	took := seen.Sub(killed)
	t.Logf("SIGKILL -> Last Will offline seen after %v (keepalive %v, window %v)", took.Round(time.Millisecond), fleetKeepAlive, willWindow)
	if took > willWindow {
		t.Fatalf("Last Will after %v, longer than 1.5 x keepalive (%v)", took, willWindow)
	}
	if retained, p := retainedNow(t, broker, availability); !retained || p != "offline" {
		t.Fatalf("availability after SIGKILL: retained=%v %q, want retained offline", retained, p)
	}

	second := startDaemon(t, bin, cfg, dataDir, filepath.Join(dir, "second.log"))
	restarted := time.Now()
	watch.waitFor(t, "online", 30*time.Second, second.logPath)
	t.Logf("restart -> online after %v", time.Since(restarted).Round(time.Millisecond))
	if retained, p := retainedNow(t, broker, availability); !retained || p != "online" {
		t.Fatalf("availability after the restart: retained=%v %q, want retained online", retained, p)
	}
}

// daemonProc is one run of onaird whose log goes to a file.
type daemonProc struct {
	cmd     *exec.Cmd
	logPath string
}

func startDaemon(t *testing.T, bin, cfg, dataDir, logPath string) *daemonProc {
	t.Helper()
	addr := freeLoopbackAddr(t)
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--data-dir", dataDir, "--listen", addr, "--admin-token", "t0ken")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A no-op for a process that is already gone.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	return &daemonProc{cmd: cmd, logPath: logPath}
}

// startTestMosquitto starts Debian's broker on a free loopback port for this
// test (never the system service) and returns its URL.
func startTestMosquitto(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, statErr := os.Stat(bin); statErr != nil {
			t.Fatal("mosquitto is not installed: apt-get install mosquitto")
		}
	}
	addr := freeLoopbackAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "tcp://" + addr
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// received is one message as the observer saw it.
type received struct {
	payload  string
	retained bool
	at       time.Time
}

// observer is an independent MQTT client (paho, its own session) that
// records what arrives on a topic.
type observer struct {
	messages chan received
}

func subscribe(t *testing.T, broker, clientID, topic string) *observer {
	t.Helper()
	o := &observer{messages: make(chan received, 64)}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case o.messages <- received{payload: string(m.Payload()), retained: m.Retained(), at: time.Now()}:
		default: // the test reads a handful; never block paho's loop
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe %s: %v", topic, tok.Error())
	}
	return o
}

// waitFor returns when payload arrives, skipping others; it fails the test
// (with the daemon's log) after timeout.
func (o *observer) waitFor(t *testing.T, payload string, timeout time.Duration, logPath string) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-o.messages:
			if m.payload == payload {
				return m.at
			}
		case <-deadline:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("no %q within %v; daemon log:\n%s", payload, timeout, log)
		}
	}
}

// retainedNow is what a newcomer to the broker finds on topic: the first
// message a fresh subscriber gets, and whether it came as retained.
func retainedNow(t *testing.T, broker, topic string) (bool, string) {
	t.Helper()
	o := subscribe(t, broker, fmt.Sprintf("lwt-newcomer-%d", time.Now().UnixNano()), topic)
	select {
	case m := <-o.messages:
		return m.retained, m.payload
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing retained on %s", topic)
		return false, ""
	}
}
