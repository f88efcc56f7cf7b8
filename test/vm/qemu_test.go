package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// bootTimeout bounds the time from starting QEMU to the init script's first
// line; armv7, the slowest, needs about 20 s on a loaded machine.
const bootTimeout = 90 * time.Second

// vmBoot is one boot of a guest image.
type vmBoot struct {
	arch   arch
	kernel string
	initrd string
	dir    string // for the QMP socket and QEMU's trace log
	// console receives every console line as it arrives.
	console func(line string)
	logf    func(format string, args ...any)
	// cpus is the number of virtual CPUs; 0 means 1.
	cpus int
	// extra is added to QEMU's command line (the daemon's network card).
	extra []string
	// input, when set, is the console's input (QEMU's stdin): the daemon's
	// init script reads commands from it.
	input io.Reader
	// binaries are the guest programs whose exit status judges the run;
	// nil: the guest tests' two.
	binaries []string
}

// qemuArgs builds QEMU's command line: no KVM (TCG), no default devices,
// the serial console on stdout, QMP on a socket, and -no-reboot so that the
// guest's reboot (or a kernel panic, with panic=-1) ends QEMU.
func (b vmBoot) qemuArgs() []string {
	args := append([]string{}, b.arch.machine...)
	args = append(args,
		"-accel", "tcg", "-m", "512", "-smp", fmt.Sprint(max(b.cpus, 1)),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-qmp", "unix:"+b.qmpPath()+",server=on,wait=off",
		"-kernel", b.kernel, "-initrd", b.initrd,
		"-append", strings.TrimSpace("console="+b.arch.console+" panic=-1 quiet "+b.arch.cmdline),
	)
	if b.arch.gpio {
		args = append(args, "-trace", "pl061_set_output", "-D", b.tracePath())
	}
	return append(args, b.extra...)
}

func (b vmBoot) qmpPath() string   { return filepath.Join(b.dir, "qmp.sock") }
func (b vmBoot) tracePath() string { return filepath.Join(b.dir, "qemu-trace.log") }

// run boots the VM and reads its console until QEMU exits or ctx ends (the
// VM is then killed). The error is about running QEMU; the guest's verdict
// is in the result.
func (b vmBoot) run(ctx context.Context) (*consoleResult, error) {
	// A guest that does not reach init within bootTimeout will not: the
	// VM is killed then rather than at the end of the whole run's time.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	booted := make(chan struct{})
	bootTimer := time.AfterFunc(bootTimeout, func() {
		select {
		case <-booted:
		default:
			cancel(fmt.Errorf("no init within %v of starting QEMU", bootTimeout))
		}
	})
	defer bootTimer.Stop()
	cmd := exec.CommandContext(ctx, b.arch.qemu, b.qemuArgs()...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = b.input
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.arch.qemu, err)
	}
	result := &consoleResult{binaries: b.binaries}
	var monitor *qmp
	defer func() {
		if monitor != nil {
			monitor.close()
		}
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		b.console(line)
		wasBooted := result.booted
		result.line(line, time.Since(start))
		if result.booted && !wasBooted {
			close(booted)
		}
		// Anywhere in the line: a kernel message may have begun it.
		_, request, ok := strings.Cut(line, "VMTEST-HOST ")
		if !ok {
			continue
		}
		command, _, _ := strings.Cut(request, " ")
		switch command {
		case "system_powerdown":
			if monitor == nil {
				if monitor, err = dialQMP(b.qmpPath()); err != nil {
					result.failures = append(result.failures, fmt.Sprintf("connect to QMP: %v", err))
					continue
				}
			}
			if err := monitor.execute(command); err != nil {
				result.failures = append(result.failures, fmt.Sprintf("QMP %s: %v", command, err))
			}
		case "led-blinked":
			// Checked in QEMU's trace after the run.
		default:
			result.failures = append(result.failures, fmt.Sprintf("unknown request from the guest: %q", request))
		}
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return result, fmt.Errorf("%s killed after %v: %w", b.arch.qemu, time.Since(start).Round(time.Second), context.Cause(ctx))
	}
	if waitErr != nil {
		return result, fmt.Errorf("%s: %w: %s", b.arch.qemu, waitErr, strings.TrimSpace(stderr.String()))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		b.logf("%s stderr: %s", b.arch.qemu, s)
	}
	return result, nil
}

// qmp is a minimal QEMU Machine Protocol client: enough to send commands
// without arguments and wait for their return.
type qmp struct {
	conn net.Conn
	dec  *json.Decoder
}

func dialQMP(path string) (*qmp, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	q := &qmp{conn: conn, dec: json.NewDecoder(conn)}
	var greeting map[string]json.RawMessage
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := q.dec.Decode(&greeting); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read QMP greeting: %w", err)
	}
	if _, ok := greeting["QMP"]; !ok {
		conn.Close()
		return nil, fmt.Errorf("not a QMP greeting: %v", greeting)
	}
	if err := q.execute("qmp_capabilities"); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// execute runs a command and waits for its answer, passing over events.
func (q *qmp) execute(command string) error {
	_ = q.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(q.conn).Encode(map[string]string{"execute": command}); err != nil {
		return fmt.Errorf("send %s: %w", command, err)
	}
	for {
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := q.dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: QEMU closed the QMP socket", command)
			}
			return fmt.Errorf("%s: read answer: %w", command, err)
		}
		switch {
		case msg.Error != nil:
			return fmt.Errorf("%s: %s: %s", command, msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return nil
		}
	}
}

func (q *qmp) close() { q.conn.Close() }

// readTrace returns QEMU's trace log, "" when there is none.
func (b vmBoot) readTrace() string {
	data, _ := os.ReadFile(b.tracePath())
	return string(data)
}
