package ota_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
)

// TestResumeAfterPowerCut: power goes in the middle of a download; the
// next install of the same bundle asks the server only for the rest, and
// the result is verified like any other.
func TestResumeAfterPowerCut(t *testing.T) {
	for _, via := range []string{"http", "file"} {
		t.Run(via, func(t *testing.T) {
			b := newBox(t, "pi", v1)
			b.cfg = func(c *ota.Config) { c.ResumeEvery = 256 << 10 }
			path := b.makeBundle(v2, b.boardName(), keyOld)
			source := path
			var srv *bundleServer
			if via == "http" {
				srv = newBundleServer(t, path, nil)
				source = srv.URL + "/b.bundle"
			}
			saves := 0
			a := b.agent()
			ota.SetStepHook(a, func(step string) error {
				if step == "save-resume" {
					if saves++; saves == 3 {
						return errCrash
					}
				}
				return nil
			})
			if _, err := a.Install(context.Background(), ota.Request{Source: source}); !errors.Is(err, errCrash) {
				t.Fatalf("first install: %v", err)
			}
			b.board.PowerCut()
			b.powerOn()
			if rep := b.settle(healthy); rep.Outcome == nil || rep.Outcome.Result != ota.ResultFailed {
				t.Fatalf("report after the cut %+v", rep)
			}
			first := -1
			_, err := b.agent().Install(context.Background(), ota.Request{Source: source, Progress: func(p ota.Progress) {
				if first < 0 {
					first = p.Percent
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			// Two resume points of 256 KiB were saved before the cut.
			if want := int(512 << 10 * 100 / (imageBootSize + imageRootSize)); first != want {
				t.Fatalf("resumed install started at %d%%, want %d%%", first, want)
			}
			if srv != nil {
				h := headerSize(t, path)
				got := srv.rangeHeaders()
				want := fmt.Sprintf("bytes=%d-|\"bundle-v2\"", h+512<<10)
				if len(got) != 3 || got[1] != "|" || got[2] != want {
					t.Fatalf("requests (Range|If-Range) %q, want the second install to ask for %s", got, want)
				}
			}
			b.agent().Reboot(context.Background())
			b.powerOn()
			if rep := b.settle(healthy); rep.Version != "1.1.0" || rep.Outcome.Result != ota.ResultCommitted {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

// TestNoResumeIntoAnotherBundle: a resume point is only used for the same
// image; another bundle starts from zero and is still verified whole.
func TestNoResumeIntoAnotherBundle(t *testing.T) {
	b := newBox(t, "uboot", v1)
	b.cfg = func(c *ota.Config) { c.ResumeEvery = 256 << 10 }
	a := b.agent()
	saves := 0
	ota.SetStepHook(a, func(step string) error {
		if step == "save-resume" {
			if saves++; saves == 2 {
				return errCrash
			}
		}
		return nil
	})
	_, err := a.Install(context.Background(), ota.Request{Source: b.makeBundle(v2, b.boardName(), keyOld)})
	if !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	v3 := firmware{version: "1.2.0", trusts: []string{"old"}}
	first := -1
	_, err = b.agent().Install(context.Background(), ota.Request{Source: b.makeBundle(v3, b.boardName(), keyOld), Progress: func(p ota.Progress) {
		if first < 0 {
			first = p.Percent
		}
	}})
	if err != nil || first != 0 {
		t.Fatalf("install of another bundle: %v, first progress %d%%", err, first)
	}
}

func headerSize(t *testing.T, path string) int64 {
	t.Helper()
	data := readFile(t, path)
	h, err := bundle.ReadHeader(bytesReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return h.Size()
}

// TestNoResumeAfterBootRewrite: once the boot partition's cmdline.txt is
// rewritten for the target slot, the slot no longer hashes to the signed
// image, so a power cut after that point makes the next install of the
// same bundle start from zero instead of resuming past the boot partition
// (whose read-back would then fail).
func TestNoResumeAfterBootRewrite(t *testing.T) {
	b := newBox(t, "pi", v1)
	b.cfg = func(c *ota.Config) { c.ResumeEvery = 256 << 10 }
	path := b.makeBundle(v2, b.boardName(), keyOld)
	a := b.agent()
	var steps []string
	ota.SetStepHook(a, func(step string) error {
		steps = append(steps, step)
		if step == "save-armed" {
			return errCrash
		}
		return nil
	})
	if _, err := a.Install(context.Background(), ota.Request{Source: path}); !errors.Is(err, errCrash) {
		t.Fatalf("first install: %v", err)
	}
	if !slices.Contains(steps, "save-resume") || !slices.Contains(steps, "save-no-resume") {
		t.Fatalf("steps %v: no resume point was saved and dropped", steps)
	}
	b.board.PowerCut()
	b.powerOn()
	if rep := b.settle(healthy); rep.Outcome == nil || rep.Outcome.Result != ota.ResultFailed {
		t.Fatalf("report after the cut %+v", rep)
	}
	first := -1
	if _, err := b.agent().Install(context.Background(), ota.Request{Source: path, Progress: func(p ota.Progress) {
		if first < 0 {
			first = p.Percent
		}
	}}); err != nil || first != 0 {
		t.Fatalf("second install: %v, first progress %d%%", err, first)
	}
	b.agent().Reboot(context.Background())
	b.powerOn()
	if rep := b.settle(healthy); rep.Version != "1.1.0" || rep.Outcome.Result != ota.ResultCommitted {
		t.Fatalf("report %+v", rep)
	}
}
