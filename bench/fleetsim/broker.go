package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// broker is the MQTT broker of one run.
type broker struct {
	url string
	// pid is the broker's own process, whose CPU and RSS are measured apart;
	// 0 when it runs in this process (mochi) or elsewhere (a URL).
	pid  int
	stop func() error
}

// startBroker starts what -broker names: "mochi" in this process,
// "mosquitto" as a child process on a free loopback port, or connects to
// nothing and returns a tcp:// URL as given.
func startBroker(kind, dir string, noDelay bool) (*broker, error) {
	switch {
	case kind == "mochi":
		return startMochi()
	case kind == "mosquitto":
		return startMosquitto(dir, noDelay)
	case strings.Contains(kind, "://"):
		return &broker{url: kind, stop: func() error { return nil }}, nil
	}
	return nil, fmt.Errorf("-broker %q: want mochi, mosquitto or a URL like tcp://127.0.0.1:1883", kind)
}

var errBrokerStopped = errors.New("fleetsim: broker stopped")

func startMochi() (*broker, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mochi: listen: %w", err)
	}
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mochi: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("fleetsim", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mochi: %w", err)
	}
	if err := srv.Serve(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mochi: serve: %w", err)
	}
	stop := func() error {
		// mochi v2.7.9's Close can deadlock when a client leaves at the same
		// moment (see fleet/helpers_test.go): drop the clients first and
		// wait until they are gone.
		_ = ln.Close()
		for _, cl := range srv.Clients.GetAll() {
			cl.Stop(errBrokerStopped)
		}
		for deadline := time.Now().Add(10 * time.Second); srv.Clients.Len() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		return srv.Close()
	}
	return &broker{url: "tcp://" + ln.Addr().String(), stop: stop}, nil
}

// mosquittoConf is Debian's mosquitto with two changes from its defaults:
// no persistence (a fresh broker per run) and a deep queue for the one
// subscriber (the observer) that receives N replies at once, so that the
// observer is never what drops a message.
const mosquittoConf = `listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
`

// mosquittoNoDelay turns Nagle's algorithm off on the broker's client
// sockets. Mosquitto leaves it on by default: a small packet that follows
// another one not yet acknowledged waits for the peer's delayed ACK (40 ms
// on Linux), which is what a command's reply does.
const mosquittoNoDelay = "set_tcp_nodelay true\n"

func startMosquitto(dir string, noDelay bool) (*broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, statErr := os.Stat(bin); statErr != nil {
			return nil, errors.New("mosquitto is not installed: apt-get install mosquitto")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Appendf(nil, mosquittoConf, port)
	if noDelay {
		text = append(text, mosquittoNoDelay...)
	}
	if err := os.WriteFile(conf, text, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("mosquitto does not listen on %s: %w", addr, err)
		}
	}
	stop := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			return nil
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return errors.New("mosquitto did not stop on SIGINT; killed")
		}
	}
	return &broker{url: "tcp://" + addr, pid: cmd.Process.Pid, stop: stop}, nil
}
