//go:build cgo

package guest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gen2brain/malgo"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/alsa"
	"github.com/onair/onair/media"
	"github.com/onair/onair/pipeline"
)

// The tone played into the loopback: 1 kHz at half of full scale, so its
// peak is -6.02 dBFS and its RMS -9.03 dBFS.
const (
	toneHz        = 1000
	toneAmplitude = 0.5
	sampleRate    = 48000
)

var (
	tonePeakDBFS = 20 * math.Log10(toneAmplitude)
	toneRMSDBFS  = 20 * math.Log10(toneAmplitude/math.Sqrt2)
)

// startMalgo starts a miniaudio device on the ALSA id (":1,0") with our
// format, for the test's own side of the loopback: the tone player and a
// second capture client. device/alsa is not used for these, so that they do
// not depend on the code under test. The returned stop reports an error when
// the device does not stop within 10 s.
func startMalgo(t *testing.T, kind malgo.DeviceType, id string, share malgo.ShareMode, data malgo.DataProc) (stop func() error) {
	t.Helper()
	// No log callback: after the card is gone, miniaudio logs every turn of
	// its busy loop (see CardGone), more than the console can carry.
	mctx, err := malgo.InitContext([]malgo.Backend{malgo.BackendAlsa}, malgo.ContextConfig{}, nil)
	if err != nil {
		t.Fatalf("init miniaudio: %v", err)
	}
	var devID malgo.DeviceID
	copy(devID[:], id)
	var pinner runtime.Pinner
	pinner.Pin(&devID)
	cfg := malgo.DefaultDeviceConfig(kind)
	sub := &cfg.Playback
	if kind == malgo.Capture {
		sub = &cfg.Capture
	}
	sub.Format, sub.Channels, sub.DeviceID, sub.ShareMode = malgo.FormatS16, 1, devID.Pointer(), share
	cfg.SampleRate = sampleRate
	dev, err := malgo.InitDevice(mctx.Context, cfg, malgo.DeviceCallbacks{Data: data})
	pinner.Unpin()
	if err != nil {
		mctx.Uninit()
		mctx.Free()
		t.Fatalf("init miniaudio device %s: %v", id, err)
	}
	if err := dev.Start(); err != nil {
		t.Fatalf("start miniaudio device %s: %v", id, err)
	}
	return sync.OnceValue(func() error {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Stop before Uninit: Uninit alone does not wake a worker that
			// spins on a disconnected PCM (see CardGone).
			_ = dev.Stop()
			dev.Uninit()
			mctx.Uninit()
			mctx.Free()
		}()
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("miniaudio device %s: Stop and Uninit still blocked after 10 s", id)
		}
	})
}

// playTone plays the tone into snd-aloop's device 0 of card; what is played
// there is captured on device 1. It opens the hw device itself (exclusive):
// the player is not under test, and dmix would only add work to the
// emulated CPU.
func playTone(t *testing.T, card int) (stop func() error) {
	var phase uint64
	return startMalgo(t, malgo.Playback, fmt.Sprintf(":%d,0", card), malgo.Exclusive, func(out, _ []byte, frames uint32) {
		for i := range int(frames) {
			s := toneAmplitude * 32767 * math.Sin(2*math.Pi*toneHz*float64(phase)/sampleRate)
			binary.LittleEndian.PutUint16(out[2*i:], uint16(int16(math.Round(s))))
			phase++
		}
	})
}

// bufferLevels measures one buffer as the pipeline's meter does.
func bufferLevels(samples []int16) (peakDBFS, rmsDBFS float64) {
	var peak, sum float64
	for _, s := range samples {
		x := float64(s) / 32768
		peak = max(peak, math.Abs(x))
		sum += x * x
	}
	return 20 * math.Log10(peak), 10 * math.Log10(sum/float64(len(samples)))
}

// frequency estimates a tone's frequency from its zero crossings.
func frequency(samples []int16, rate int) float64 {
	crossings := 0
	for i := 1; i < len(samples); i++ {
		if (samples[i-1] < 0) != (samples[i] < 0) {
			crossings++
		}
	}
	return float64(crossings) / 2 / (float64(len(samples)) / float64(rate))
}

// median of a non-empty list.
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestALSA runs device/alsa on snd-aloop: a tone played into one side of
// the loopback is captured from the other by card name, read by the
// pipeline's level meter, and the card's removal becomes a status problem.
func TestALSA(t *testing.T) {
	inGuest(t)
	card := loopbackCard(t)
	log := testLogger(t)

	devices, err := alsa.List()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var names []string
	found := false
	for _, d := range devices {
		names = append(names, d.String())
		found = found || (d.ID == fmt.Sprintf(":%d,1", card) && d.Hardware())
	}
	t.Logf("capture devices: %s", strings.Join(names, ", "))
	if !found {
		t.Fatalf("no hardware capture device :%d,1 among %s", card, strings.Join(names, ", "))
	}

	stopTone := playTone(t, card)
	defer stopTone()

	clock := device.NewClock()
	src, err := alsa.Open(alsa.Config{Device: "hw:CARD=Loopback,DEV=1", Logger: log}, clock)
	if err != nil {
		t.Fatalf("open by card name: %v", err)
	}
	t.Logf("opened %s", src)

	t.Run("Frames", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var peaks, rmss []float64
		var tone []int16
		last, lead := time.Duration(-1), time.Duration(-1<<62)
		// ringSlack is device/alsa's ring of four 20 ms periods.
		const ringSlack = 80 * time.Millisecond
		const buffers = 50 // one second
		for i := range buffers {
			f, err := src.ReadAudio(ctx)
			if err != nil {
				t.Fatalf("buffer %d: %v", i, err)
			}
			if f.SampleRate != sampleRate || f.Channels != 1 || len(f.Samples) != sampleRate/50 {
				t.Fatalf("buffer %d: %d Hz, %d channels, %d samples; want 48000 Hz mono, 960 samples", i, f.SampleRate, f.Channels, len(f.Samples))
			}
			// Capture times advance by the audio delivered, from an anchor
			// taken at the first callback (device/alsa's captureTimer): a
			// late first callback puts every later time a little ahead of
			// the clock, which the timer accepts up to its device ring.
			now := clock.Now()
			if f.Capture <= last || f.Capture > now+ringSlack {
				t.Fatalf("buffer %d captured at %v after %v (now %v)", i, f.Capture, last, now)
			}
			lead = max(lead, f.Capture-now)
			last = f.Capture
			if i >= buffers/2 { // past the start, where the loop may still be filling
				peak, rms := bufferLevels(f.Samples)
				peaks, rmss = append(peaks, peak), append(rmss, rms)
				tone = append(tone, f.Samples...)
			}
		}
		// Levels are medians over 20 ms buffers, so that an overrun of the
		// emulated machine spoils a buffer, not the measurement. The
		// frequency is counted over half a second: a gap costs a crossing
		// or two of a thousand.
		peak, rms, hz := median(peaks), median(rmss), frequency(tone, sampleRate)
		t.Logf("captured peak %.2f dBFS, RMS %.2f dBFS, %.0f Hz (played %.2f / %.2f dBFS, %d Hz); dropped %d, gaps %d; "+
			"capture times at most %v after the clock when read", peak, rms, hz, tonePeakDBFS, toneRMSDBFS, toneHz, src.Dropped(), src.Gaps(), lead)
		if math.Abs(rms-toneRMSDBFS) > 1 || math.Abs(peak-tonePeakDBFS) > 1 {
			t.Errorf("level %.2f / %.2f dBFS, want the tone's %.2f / %.2f within 1 dB", peak, rms, tonePeakDBFS, toneRMSDBFS)
		}
		if math.Abs(hz-toneHz) > toneHz*0.03 {
			t.Errorf("captured %.0f Hz, played %d Hz", hz, toneHz)
		}
	})

	// The rest hands src to the pipeline, which closes it.
	hub := &problemHub{problems: make(chan string, 8)}
	p := pipeline.New(pipeline.Video{Source: idleVideo{}, Encoder: nopVideoEncoder{}, Name: "none"},
		pipeline.Audio{Source: src, Encoder: nopAudioEncoder{}, Name: "loopback"}, hub, 1000, log)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()
	var runResult error
	stopPipeline := sync.OnceValue(func() bool {
		cancel()
		select {
		case runResult = <-runErr:
			return true
		case <-time.After(10 * time.Second):
			return false
		}
	})
	defer stopPipeline()

	t.Run("LevelMeter", func(t *testing.T) {
		var st pipeline.Stats
		ok := waitFor(10*time.Second, func() bool {
			st = p.Stats()
			return math.Abs(st.RMSDBFS-toneRMSDBFS) <= 1 && math.Abs(st.PeakDBFS-tonePeakDBFS) <= 1
		})
		t.Logf("pipeline meter: peak %.1f dBFS, RMS %.1f dBFS", st.PeakDBFS, st.RMSDBFS)
		if !ok {
			t.Errorf("meter reads %.1f / %.1f dBFS, want %.1f / %.1f within 1 dB", st.PeakDBFS, st.RMSDBFS, tonePeakDBFS, toneRMSDBFS)
		}
	})

	// The card goes away under the running pipeline, as a USB microphone
	// pulled out would. snd-aloop's remove (snd_card_free) waits, in an
	// uninterruptible sleep, until every file of the card is closed: the
	// unbind runs in a child process, so that this one can still exit (and
	// so close its files) should one of our closes hang.
	t.Run("CardGone", func(t *testing.T) {
		const driver = "/sys/bus/platform/drivers/snd_aloop"
		// A second capture client opened as device/alsa opens its device
		// (shared: dsnoop), but closed with Stop before Uninit: the
		// control for the way our Source closes.
		stopProbe := startMalgo(t, malgo.Capture, fmt.Sprintf(":%d,1", card), malgo.Shared, func(_, _ []byte, _ uint32) {})
		defer stopProbe()
		unbind := exec.Command("/bin/sh", "-c", "echo snd_aloop.0 > "+driver+"/unbind")
		unbind.Stdout, unbind.Stderr = os.Stdout, os.Stderr
		if err := unbind.Start(); err != nil {
			t.Fatalf("unbind: %v", err)
		}
		unbound := make(chan error, 1)
		go func() { unbound <- unbind.Wait() }()
		select {
		case problem := <-hub.problems:
			t.Logf("status problem: %s", problem)
			if !strings.Contains(problem, "microphone") || !strings.Contains(problem, alsa.ErrDeviceLost.Error()) {
				t.Errorf("problem %q should say the microphone was lost", problem)
			}
		case err := <-runErr:
			runErr <- err
			t.Fatalf("the pipeline stopped when the card went away: %v", err)
		case <-time.After(alsa.DefaultStallTimeout + 8*time.Second):
			t.Errorf("no status problem within %v of the card's removal", alsa.DefaultStallTimeout+8*time.Second)
		}
		st := p.Stats()
		t.Logf("meter after the card went away: peak %.1f dBFS, RMS %.1f dBFS", st.PeakDBFS, st.RMSDBFS)

		// Every file of the card is closed: the test's own clients, then
		// the pipeline, which closes the device/alsa Source.
		if err := stopTone(); err != nil {
			t.Errorf("tone player: %v", err)
		}
		if err := stopProbe(); err != nil {
			t.Errorf("second capture client: %v", err)
		} else {
			t.Logf("miniaudio capture on the vanished card: Stop then Uninit returned")
		}
		if !stopPipeline() {
			t.Errorf("the pipeline did not stop within 10 s of its cancellation after the card went away: "+
				"device/alsa's Source.Close (malgo Device.Uninit without Stop) does not return.\n%s\nthreads: %s", audioStacks(), threadStates())
		} else if runResult != nil {
			t.Errorf("pipeline run: %v", runResult)
		}
		select {
		case err := <-unbound:
			if err != nil {
				t.Errorf("unbind: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the card's removal did not finish: a file of the card is still open")
		}
		if err := sysfsWrite(driver+"/bind", "snd_aloop.0"); err != nil {
			t.Errorf("bind the loopback again: %v", err)
		}
	})
}

// threadStates lists this process's threads as the kernel sees them: R
// running (a busy loop, when it lasts), S sleeping, D uninterruptible, with
// where each sleeps.
func threadStates() string {
	var parts []string
	tasks, _ := filepath.Glob("/proc/self/task/*")
	for _, task := range tasks {
		stat := readText(task + "/stat")
		state := "?"
		if i := strings.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			state = stat[i+2 : i+3]
		}
		parts = append(parts, fmt.Sprintf("%s %s(%s)", filepath.Base(task), state, readText(task+"/wchan")))
	}
	return strings.Join(parts, ", ")
}

// audioStacks returns the stacks of the goroutines in miniaudio or
// device/alsa: the evidence of a hang in closing the microphone.
func audioStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "malgo") || strings.Contains(g, "device/alsa") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// idleVideo is a camera that never delivers: the video loop waits until the
// pipeline stops, which is all this test needs of it.
type idleVideo struct{}

func (idleVideo) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	<-ctx.Done()
	return media.VideoFrame{}, ctx.Err()
}
func (idleVideo) Close() error { return nil }

type nopVideoEncoder struct{}

func (nopVideoEncoder) Encode(media.VideoFrame, bool) (media.Sample, bool, error) {
	return media.Sample{}, false, nil
}
func (nopVideoEncoder) SetBitrate(int) error { return nil }
func (nopVideoEncoder) Close() error         { return nil }

type nopAudioEncoder struct{}

func (nopAudioEncoder) Encode(dst []media.Sample, _ media.AudioFrame) ([]media.Sample, error) {
	return dst, nil
}
func (nopAudioEncoder) Close() error { return nil }

// problemHub is the pipeline's view of the hub; it keeps the problems that
// the status would show.
type problemHub struct {
	problems chan string
}

func (h *problemHub) Publish(media.Sample)           {}
func (h *problemHub) KeyframeDue(time.Duration) bool { return false }
func (h *problemHub) SetProblem(problem string) {
	if problem == "" {
		return
	}
	select {
	case h.problems <- problem:
	default:
	}
}
