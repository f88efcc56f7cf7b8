//go:build cgo

package alsa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tone is a test signal: one sine per channel, at a given level.
type tone struct {
	rate   int
	freqs  []float64 // one per channel
	levels []float64 // dBFS of the sine's peak, one per channel
}

func (t tone) channels() int { return len(t.freqs) }

// sample is the value of channel ch at frame n, computed from the absolute
// frame index so that any stretch of the signal can be recomputed to check
// what came out.
func (t tone) sample(n int64, ch int) int16 {
	amp := 32767 * math.Pow(10, t.levels[ch]/20)
	return int16(math.Round(amp * math.Sin(2*math.Pi*t.freqs[ch]*float64(n)/float64(t.rate))))
}

// fifoMic plays a tone into a named pipe in real time. ALSA's file plugin
// reads its capture data from that pipe ("infile"), so alsa-lib, miniaudio
// and this package sit between what the test writes and what ReadAudio
// returns. The pipe also paces capture: the "null" slave PCM returns data as
// fast as it is asked, the pipe only as fast as the test writes.
type fifoMic struct {
	t    *testing.T
	path string
	tone tone
	fd   int

	mu      sync.Mutex
	paused  bool
	stop    chan struct{}
	stopped chan struct{}
}

// pcmConfig writes an ALSA configuration that loads the system one and adds
// the PCM "onairtest" (and, with asDefault, makes it the default), then
// points alsa-lib at it with ALSA_CONFIG_PATH. alsa-lib reads that variable
// on every config update, and miniaudio updates when a context is made.
func pcmConfig(t *testing.T, infile string, asDefault bool) {
	t.Helper()
	pcm := fmt.Sprintf(`{
	type file
	slave.pcm "null"
	file "/dev/null"
	infile %q
	format "raw"
	hint { show on description "OnAir test tone" }
}
`, infile)
	text := "</usr/share/alsa/alsa.conf>\npcm.onairtest " + pcm
	if asDefault {
		text += "pcm.!default " + pcm
	}
	path := filepath.Join(t.TempDir(), "asound.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALSA_CONFIG_PATH", path)
}

// startFIFOMic makes the pipe, writes lead buffers ahead so that capture
// starts at once, and keeps writing 20 ms of tone every 20 ms on an
// absolute schedule (a late tick catches up instead of drifting).
func startFIFOMic(t *testing.T, tn tone, asDefault bool) *fifoMic {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mic.fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	// O_RDWR never blocks on a FIFO and keeps a writer present, so
	// alsa-lib's open of the infile does not wait for us.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open fifo: %v", err)
	}
	pcmConfig(t, path, asDefault)
	m := &fifoMic{t: t, path: path, tone: tn, fd: fd, stop: make(chan struct{}), stopped: make(chan struct{})}
	go m.run()
	return m
}

const leadBuffers = 4

func (m *fifoMic) run() {
	defer close(m.stopped)
	frames := m.tone.rate / bufferDivisor
	chunk := make([]byte, frames*m.tone.channels()*2)
	var next int64 // frame index of the next chunk
	start := time.Now()
	for k := 0; ; k++ {
		if k >= leadBuffers {
			due := start.Add(time.Duration(k-leadBuffers) * 20 * time.Millisecond)
			select {
			case <-m.stop:
				return
			case <-time.After(time.Until(due)):
			}
		}
		m.mu.Lock()
		paused := m.paused
		m.mu.Unlock()
		if paused {
			continue
		}
		for i := 0; i < frames; i++ {
			for ch := 0; ch < m.tone.channels(); ch++ {
				binary.LittleEndian.PutUint16(chunk[2*(i*m.tone.channels()+ch):], uint16(m.tone.sample(next+int64(i), ch)))
			}
		}
		next += int64(frames)
		if _, err := unix.Write(m.fd, chunk); err != nil {
			m.t.Errorf("write fifo: %v", err)
			return
		}
	}
}

func (m *fifoMic) pause(p bool) {
	m.mu.Lock()
	m.paused = p
	m.mu.Unlock()
}

// close stops the writer. Close the Source first: while the writer is
// stopped, alsa-lib's read of the pipe blocks miniaudio's audio thread.
func (m *fifoMic) close() {
	close(m.stop)
	<-m.stopped
	unix.Close(m.fd)
}

// openMic opens the source and registers cleanup in the safe order.
func openMic(t *testing.T, m *fifoMic, cfg Config) *Source {
	t.Helper()
	s, err := Open(cfg, device.NewClock())
	if err != nil {
		m.close()
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		m.close()
	})
	return s
}

func dbfs(rms float64) float64 { return 20 * math.Log10(rms/32768) }

// channelRMS is the RMS of one channel of interleaved samples.
func channelRMS(samples []int16, channels, ch int) float64 {
	var sum float64
	n := 0
	for i := ch; i < len(samples); i += channels {
		v := float64(samples[i])
		sum += v * v
		n++
	}
	return math.Sqrt(sum / float64(n))
}

// readBuffers reads n buffers and checks the contract every buffer must keep:
// 20 ms of frames at the configured rate and channels, capture times that
// advance by exactly one buffer.
func readBuffers(t *testing.T, s *Source, n, channels int) []int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []int16
	var prev time.Duration
	for i := range n {
		f, err := s.ReadAudio(ctx)
		if err != nil {
			t.Fatalf("ReadAudio %d: %v", i, err)
		}
		if f.SampleRate != 48000 || f.Channels != channels || len(f.Samples) != 960*channels {
			t.Fatalf("buffer %d: %d Hz, %d channels, %d samples; want 48000 Hz, %d channels, %d samples",
				i, f.SampleRate, f.Channels, len(f.Samples), channels, 960*channels)
		}
		if f.Duration() != 20*time.Millisecond {
			t.Fatalf("buffer %d lasts %v, want 20ms", i, f.Duration())
		}
		if i > 0 && f.Capture-prev != 20*time.Millisecond {
			t.Fatalf("buffer %d captured at %v, %v after the previous one; want exactly 20ms", i, f.Capture, f.Capture-prev)
		}
		prev = f.Capture
		all = append(all, f.Samples...)
	}
	return all
}

func TestReadsToneThroughALSA(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device string
	}{
		{"by id", "onairtest"},
		{"by name part", "onair TEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tone{rate: 48000, freqs: []float64{440}, levels: []float64{-12}}
			m := startFIFOMic(t, tn, false)
			s := openMic(t, m, Config{Device: tc.device, SampleRate: 48000, Channels: 1})
			if got := s.Device().ID; got != "onairtest" {
				t.Fatalf("opened %q, want onairtest", got)
			}
			got := readBuffers(t, s, 50, 1)

			// alsa-lib read the pipe and miniaudio did not need to convert
			// S16 mono 48 kHz, so what comes out is what went in.
			want := make([]int16, len(got))
			for i := range want {
				want[i] = tn.sample(int64(i), 0)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("sample %d = %d, want %d (the tone as written)", i, got[i], want[i])
				}
			}
			gotDB, wantDB := dbfs(channelRMS(got, 1, 0)), dbfs(channelRMS(want, 1, 0))
			if math.Abs(gotDB-wantDB) > 1 {
				t.Fatalf("level %.2f dBFS RMS, want %.2f within 1 dB", gotDB, wantDB)
			}
			if s.Dropped() != 0 || s.Gaps() != 0 {
				t.Fatalf("dropped %d buffers, %d clock gaps; want none", s.Dropped(), s.Gaps())
			}
		})
	}
}

func TestStereoKeepsChannelsApart(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{440, 1000}, levels: []float64{-6, -20}}
	m := startFIFOMic(t, tn, false)
	s := openMic(t, m, Config{Device: "onairtest", Channels: 2})
	got := readBuffers(t, s, 25, 2)
	for ch, level := range tn.levels {
		wantDB := level - 10*math.Log10(2) // RMS of a sine is its peak over √2
		if gotDB := dbfs(channelRMS(got, 2, ch)); math.Abs(gotDB-wantDB) > 1 {
			t.Errorf("channel %d at %.2f dBFS RMS, want %.2f within 1 dB", ch, gotDB, wantDB)
		}
	}
}

func TestDefaultDevice(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{1000}, levels: []float64{-18}}
	m := startFIFOMic(t, tn, true)
	s := openMic(t, m, Config{})
	got := readBuffers(t, s, 10, 1)
	if gotDB, wantDB := dbfs(channelRMS(got, 1, 0)), -18-10*math.Log10(2); math.Abs(gotDB-wantDB) > 1 {
		t.Fatalf("level %.2f dBFS RMS, want %.2f within 1 dB", gotDB, wantDB)
	}
}

func TestListShowsConfiguredPCM(t *testing.T) {
	pcmConfig(t, "/dev/null", false)
	devices, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if d.ID == "onairtest" && d.Name == "OnAir test tone" && !d.Hardware() {
			return
		}
	}
	t.Fatalf("List() = %v, want it to include onairtest", devices)
}

func TestUnknownDeviceListsDevices(t *testing.T) {
	pcmConfig(t, "/dev/null", false)
	s, err := Open(Config{Device: "Blue Yeti"}, device.NewClock())
	if err == nil {
		s.Close()
		t.Fatal("Open of a missing device succeeded")
	}
	if !errors.Is(err, ErrNoDevice) {
		t.Fatalf("error %v does not wrap ErrNoDevice", err)
	}
	for _, want := range []string{`"Blue Yeti"`, `"OnAir test tone" (onairtest)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestContextCancelUnblocksRead(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{440}, levels: []float64{-12}}
	m := startFIFOMic(t, tn, false)
	s := openMic(t, m, Config{Device: "onairtest", StallTimeout: time.Minute})
	readBuffers(t, s, 1, 1)
	m.pause(true)
	defer m.pause(false) // Close needs the audio thread out of its read
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := s.ReadAudio(ctx); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the reader drain and block
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadAudio = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadAudio still blocked 2s after its context was cancelled")
	}
}

func TestStalledDeviceIsLost(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{440}, levels: []float64{-12}}
	m := startFIFOMic(t, tn, false)
	s := openMic(t, m, Config{Device: "onairtest", StallTimeout: 300 * time.Millisecond})
	readBuffers(t, s, 1, 1)
	m.pause(true)
	defer m.pause(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.ReadAudio(context.Background())
		if err == nil {
			if time.Now().After(deadline) {
				t.Fatal("still reading 5s after the device stalled")
			}
			continue
		}
		if !errors.Is(err, ErrDeviceLost) || !strings.Contains(err.Error(), "no audio from") {
			t.Fatalf("ReadAudio = %v, want ErrDeviceLost for a stall", err)
		}
		break
	}
	if _, err := s.ReadAudio(context.Background()); !errors.Is(err, ErrDeviceLost) {
		t.Fatalf("second ReadAudio = %v, want ErrDeviceLost again", err)
	}
}

// TestStoppedDeviceIsLost stops the device underneath the source, which
// drives miniaudio's real stop notification, the one ALSA triggers when a
// USB microphone is pulled.
func TestStoppedDeviceIsLost(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{440}, levels: []float64{-12}}
	m := startFIFOMic(t, tn, false)
	s := openMic(t, m, Config{Device: "onairtest", StallTimeout: time.Minute})
	readBuffers(t, s, 1, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := s.ReadAudio(context.Background()); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := s.dev.Stop(); err != nil {
		t.Fatalf("stop device: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrDeviceLost) || !strings.Contains(err.Error(), "stopped") {
			t.Fatalf("ReadAudio = %v, want ErrDeviceLost for a stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadAudio still blocked 5s after the device stopped")
	}
}

func TestCloseUnblocksReadAndIsIdempotent(t *testing.T) {
	tn := tone{rate: 48000, freqs: []float64{440}, levels: []float64{-12}}
	m := startFIFOMic(t, tn, false)
	s, err := Open(Config{Device: "onairtest", StallTimeout: time.Minute}, device.NewClock())
	if err != nil {
		m.close()
		t.Fatal(err)
	}
	defer m.close()
	readBuffers(t, s, 1, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := s.ReadAudio(context.Background()); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadAudio = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadAudio still blocked 5s after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.ReadAudio(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAudio after Close = %v, want ErrClosed", err)
	}
}
