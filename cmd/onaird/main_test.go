//go:build cgo

package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/internal/whepclient"
)

// TestSIGTERMStopsCleanly runs the real binary, connects a live viewer and
// sends SIGTERM: the daemon must exit 0 within 2 s and free its port.
func TestSIGTERMStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "onaird")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "onair.yaml")
	os.WriteFile(cfg, []byte("video: {source: test, width: 320, height: 240}\naudio: {source: test}\nwebrtc: {udp_port: 0}\n"), 0o644)
	cmd := exec.Command(bin, "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--admin-token", "t0ken")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	printed := make(chan string, 1)
	go func() {
		var all strings.Builder
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			all.WriteString(s.Text() + "\n")
		}
		printed <- all.String()
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	viewer, err := whepclient.Dial(ctx, base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/live", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("go live: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := viewer.WaitVideoFrames(ctx, 10); err != nil {
		t.Fatal(err)
	}

	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		took := time.Since(sent)
		t.Logf("SIGTERM -> exit in %v", took)
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, <-printed)
		}
		if took > 2*time.Second {
			t.Fatalf("took %v to stop, the contract is 2 s", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM")
	}
	log := <-printed
	if !strings.Contains(log, "Admin token: t0ken") || !strings.Contains(log, "Viewer:") {
		t.Fatalf("startup did not print the viewer link and admin token:\n%s", log)
	}
	// The port is free again.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port %s still taken after exit: %v", addr, err)
	}
	l2.Close()
}

func TestBadConfigFailsWithTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "onair.yaml")
	os.WriteFile(cfg, []byte("video:\n  fsp: 30\n"), 0o644)
	out, err := exec.Command("go", "run", ".", "--config", cfg, "--data-dir", dir).CombinedOutput()
	if err == nil {
		t.Fatal("a config with an unknown key started")
	}
	if !strings.Contains(string(out), "video.fsp: unknown key") {
		t.Fatalf("error does not name the key:\n%s", out)
	}
}
