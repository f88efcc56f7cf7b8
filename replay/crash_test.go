package replay

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/internal/testexec"
)

// The crash test runs the recorder in a child process (this test binary,
// re-executed) and kills it with SIGKILL at a random moment; Open must then
// repair the replay so that ffmpeg plays all that was committed.

const (
	crashChildEnv = "REPLAY_CRASH_CHILD" // the replay directory
	crashMediaEnv = "REPLAY_CRASH_MEDIA" // where the parent left the test media
	crashSpeed    = 8                    // media seconds per wall second in the child
)

// crashChild records the test media at crashSpeed times real time and
// reports on stdout, after each sample, how much media it has fed and how
// much is committed (synced) to the file.
func crashChild() {
	mediaDir = os.Getenv(crashMediaEnv)
	samples, err := makeMedia(320, 240, 300, mediaSeconds)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := Open(Options{Dir: os.Getenv(crashChildEnv), Log: quietLog()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	start := time.Now()
	first := samples[0].Capture
	src := &sliceSource{samples: samples, before: func(i int) {
		due := start.Add((samples[i].Capture - first) / crashSpeed)
		time.Sleep(time.Until(due))
		in, _ := l.Get("crash")
		fmt.Fprintf(out, "fed %d committed %d\n", (samples[i].Capture - first).Milliseconds(), int64(in.DurationS*1000))
		out.Flush()
	}}
	l.Record(context.Background(), Meta{BroadcastID: "crash", Title: "Crash"}, src)
	os.Exit(3) // the parent kills the child long before the media ends
}

func TestCrashRepairsAndPlays(t *testing.T) {
	testMedia(t) // leaves the media in mediaDir for the children
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	for run := range 10 {
		killAfter := 200*time.Millisecond + time.Duration(rnd.Int64N(int64(1200*time.Millisecond)))
		t.Run(fmt.Sprint(run), func(t *testing.T) { crashOnce(t, killAfter) })
	}
}

func crashOnce(t *testing.T, killAfter time.Duration) {
	dir := t.TempDir()
	cmd := testexec.Self("-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashMediaEnv+"="+mediaDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The kill comes a random while after the child fed its first sample.
	first, ok := <-lines
	if !ok {
		cmd.Wait()
		t.Fatal("child ended before recording")
	}
	time.Sleep(killAfter)
	cmd.Process.Signal(syscall.SIGKILL)
	last := first
	for line := range lines {
		last = line
	}
	cmd.Wait()
	var fedMS, committedMS int64
	if _, err := fmt.Sscanf(last, "fed %d committed %d", &fedMS, &committedMS); err != nil {
		t.Fatalf("child said %q: %v", last, err)
	}
	fed, committed := float64(fedMS)/1000, float64(committedMS)/1000

	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	list := l.List()
	if committed == 0 && len(list) == 0 {
		t.Logf("killed after %v, fed %.2f s, nothing committed: no replay", killAfter, fed)
		return
	}
	if len(list) != 1 || list[0].ID != "crash" || list[0].Recording || list[0].Title != "Crash" {
		t.Fatalf("after the crash: %+v", list)
	}
	path := filepath.Join(dir, "crash.mp4")
	if msg := ffmpegDecode(t, path); msg != "" {
		t.Fatalf("ffmpeg on the repaired replay: %s", msg)
	}
	decoded := decodedVideoSeconds(t, path)
	t.Logf("killed after %v: fed %.2f s, committed %.2f s, repaired replay %.2f s (listed %.2f s), ffmpeg decodes %.2f s",
		killAfter, fed, committed, list[0].DurationS, decoded, decoded)
	// All that was committed plays, and at most about a fragment (plus
	// what waited in the queue) before the kill is lost.
	if decoded < committed-0.05 || decoded < fed-2 || decoded > fed+0.5 {
		t.Errorf("decoded %.2f s: want at least the %.2f s committed, within 2 s of the %.2f s fed", decoded, committed, fed)
	}
	if math.Abs(list[0].DurationS-decoded) > 0.1 {
		t.Errorf("listed duration %.2f s, decoded %.2f s", list[0].DurationS, decoded)
	}
	// Repair is done once: a second Open finds a finished replay.
	side, err := readSidecar(filepath.Join(dir, "crash.json"))
	if err != nil || !side.Finished || !strings.HasPrefix(side.Title, "Crash") {
		t.Fatalf("sidecar after repair: %+v, %v", side, err)
	}
}
