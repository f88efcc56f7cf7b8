package ota_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/tryboot"
)

var boards = []string{"pi", "uboot"}

var v1 = firmware{version: "1.0.0", trusts: []string{"old"}}
var v2 = firmware{version: "1.1.0", trusts: []string{"old"}}

func install(t *testing.T, b *box, path string) ota.Installed {
	t.Helper()
	var last ota.Progress
	inst, err := b.agent().Install(context.Background(), ota.Request{Source: path, Progress: func(p ota.Progress) {
		if p.Stage == last.Stage && p.Percent <= last.Percent {
			t.Errorf("progress went from %+v to %+v", last, p)
		}
		last = p
	}})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if last != (ota.Progress{Stage: "verify", Percent: 100}) {
		t.Errorf("last progress %+v", last)
	}
	return inst
}

// TestFullCycle: bundle -> install into the inactive slot -> trial reboot ->
// healthy -> committed; power cycles afterwards stay on the new slot.
func TestFullCycle(t *testing.T) {
	for _, kind := range boards {
		t.Run(kind, func(t *testing.T) {
			b := newBox(t, kind, v1)
			runningBefore := b.slotFiles("A")
			inst := install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
			if inst.Slot != "B" || inst.Version != "1.1.0" {
				t.Fatalf("installed %+v", inst)
			}
			if b.slotFiles("A") != runningBefore {
				t.Fatal("running slot changed during install")
			}
			if err := b.agent().Reboot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if info := b.powerOn(); info != (ota.BootInfo{Slot: "B", Trial: true}) {
				t.Fatalf("booted %+v, want a trial of B", info)
			}
			rep := b.settle(healthy)
			want := ota.Outcome{Version: "1.1.0", Result: ota.ResultCommitted}
			if rep.Slot != "B" || rep.Version != "1.1.0" || rep.Outcome == nil || *rep.Outcome != want {
				t.Fatalf("report %+v outcome %+v", rep, rep.Outcome)
			}
			// Quick power cycles never flip a committed slot.
			for range 5 {
				b.board.PowerCut()
				if info := b.powerOn(); info != (ota.BootInfo{Slot: "B"}) {
					t.Fatalf("power cycle booted %+v", info)
				}
				if rep := b.settle(healthy); rep.Outcome != nil || rep.Phase != ota.PhaseIdle {
					t.Fatalf("report after power cycle %+v", rep)
				}
			}
			// And the next update goes to A.
			inst = install(t, b, b.makeBundle(firmware{version: "1.2.0", trusts: []string{"old"}}, b.boardName(), keyOld))
			if inst.Slot != "A" {
				t.Fatalf("second update went to %s", inst.Slot)
			}
		})
	}
}

// TestUnhealthyRollsBack: a trial that reports unhealthy returns to the
// previous slot, and the boot after that reports why.
func TestUnhealthyRollsBack(t *testing.T) {
	for _, kind := range boards {
		t.Run(kind, func(t *testing.T) {
			b := newBox(t, kind, v1)
			install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
			b.agent().Reboot(context.Background())
			b.powerOn()
			rep, err := b.agent().AfterBoot(context.Background(), func(context.Context) error {
				return errors.New("camera pipeline produced no frames")
			})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.RebootNeeded || rep.Phase != ota.PhaseRollingBack {
				t.Fatalf("report %+v", rep)
			}
			b.agent().Reboot(context.Background())
			if info := b.powerOn(); info != (ota.BootInfo{Slot: "A"}) {
				t.Fatalf("booted %+v after rollback", info)
			}
			rep = b.settle(healthy)
			if rep.Outcome == nil || rep.Outcome.Result != ota.ResultRolledBack || rep.Version != "1.0.0" {
				t.Fatalf("report %+v %+v", rep, rep.Outcome)
			}
			if want := "camera pipeline produced no frames"; !contains(rep.Outcome.Reason, want) {
				t.Fatalf("reason %q lacks %q", rep.Outcome.Reason, want)
			}
		})
	}
}

// TestHealthDeadline: health that never answers is cut off by the deadline
// on the injected clock.
func TestHealthDeadline(t *testing.T) {
	b := newBox(t, "pi", v1)
	install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
	b.agent().Reboot(context.Background())
	b.powerOn()
	type result struct {
		rep ota.Report
		err error
	}
	done := make(chan result, 1)
	a := b.agent()
	go func() {
		rep, err := a.AfterBoot(context.Background(), func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("waiting for frames: %w", context.Cause(ctx))
		})
		done <- result{rep, err}
	}()
	b.clock.WaitForTimers(1, nil)
	b.clock.Advance(time.Minute)
	r := <-done
	if r.err != nil || r.rep.Phase != ota.PhaseRollingBack {
		t.Fatalf("report %+v, %v", r.rep, r.err)
	}
	b.agent().Reboot(context.Background())
	b.powerOn()
	rep := b.settle(healthy)
	if rep.Outcome == nil || !contains(rep.Outcome.Reason, ota.ErrHealthDeadline.Error()) {
		t.Fatalf("outcome %+v", rep.Outcome)
	}
}

// TestPowerCutDuringTrialRetried: losing power in the trial is not a
// failed update; the trial is armed again, and only after MaxTrialBoots
// interrupted trials is the update given up.
func TestPowerCutDuringTrialRetried(t *testing.T) {
	for _, kind := range boards {
		t.Run(kind, func(t *testing.T) {
			b := newBox(t, kind, v1)
			install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
			b.agent().Reboot(context.Background())
			b.powerOn()
			// The trial boots but power goes before health is judged.
			ctx, cancel := context.WithCancel(context.Background())
			_, err := b.agent().AfterBoot(ctx, func(ctx context.Context) error { cancel(); <-ctx.Done(); return ctx.Err() })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("AfterBoot: %v", err)
			}
			b.board.PowerCut()
			if info := b.powerOn(); info.Slot != "A" {
				t.Fatalf("after power cut in trial booted %+v", info)
			}
			rep, err := b.agent().AfterBoot(context.Background(), healthy)
			if err != nil || !rep.Retrying || !rep.RebootNeeded || rep.Outcome != nil {
				t.Fatalf("report %+v, %v", rep, err)
			}
			b.agent().Reboot(context.Background())
			b.powerOn()
			if rep := b.settle(healthy); rep.Outcome == nil || rep.Outcome.Result != ota.ResultCommitted {
				t.Fatalf("retry did not commit: %+v", rep)
			}
		})
	}
}

func TestTrialThatNeverReportsGivesUp(t *testing.T) {
	b := newBox(t, "uboot", v1)
	install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
	for {
		b.agent().Reboot(context.Background())
		info := b.powerOn()
		if info.Slot == "B" {
			// The new image hangs before onaird runs AfterBoot; the
			// watchdog resets it.
			b.board.PowerCut()
			b.powerOn()
		}
		rep, err := b.agent().AfterBoot(context.Background(), healthy)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.RebootNeeded {
			if rep.Outcome == nil || rep.Outcome.Result != ota.ResultRolledBack || rep.Slot != "A" {
				t.Fatalf("gave up with %+v %+v", rep, rep.Outcome)
			}
			return
		}
	}
}

// TestBadBundlesRefused: each bad bundle is refused with its own error and
// the running slot stays byte-identical; nothing is armed.
func TestBadBundlesRefused(t *testing.T) {
	b := newBox(t, "pi", v1)
	good := b.makeBundle(v2, b.boardName(), keyOld)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	h, err := bundle.ReadHeader(bytesReader(data))
	if err != nil {
		t.Fatal(err)
	}
	manifestAt := int64(16)
	sigAt := manifestAt + int64(len(h.RawManifest))
	variant := func(name string, mutate func([]byte) []byte) string {
		path := b.dir + "/" + name + ".bundle"
		if err := os.WriteFile(path, mutate(append([]byte(nil), data...)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	flip := func(off int64) func([]byte) []byte {
		return func(d []byte) []byte { d[off] ^= 0x04; return d }
	}
	bigImage := firmware{version: "1.1.0", trusts: []string{"old"}}
	cases := []struct {
		name      string
		source    string
		downgrade bool
		allow     bool
		want      error
	}{
		{"flipped bit in image", variant("image-bit", flip(h.Size()+imageBootSize+5000)), false, false, bundle.ErrHashMismatch},
		{"flipped bit in manifest", variant("manifest-bit", flip(manifestAt+30)), false, false, bundle.ErrBadSignature},
		{"flipped bit in signature", variant("sig-bit", flip(sigAt+bundle.KeyIDSize+20)), false, false, bundle.ErrBadSignature},
		{"wrong key", b.makeBundle(v2, b.boardName(), keyRogue), false, false, bundle.ErrUnknownKey},
		{"truncated", variant("truncated", func(d []byte) []byte { return d[:len(d)-4096] }), false, false, bundle.ErrTruncated},
		{"trailing data", variant("trailing", func(d []byte) []byte { return append(d, "more"...) }), false, false, bundle.ErrOversized},
		{"image larger than the slot", oversizedBundle(t, b, bigImage), false, false, ota.ErrTooLarge},
		{"downgrade", b.makeBundle(firmware{version: "0.9.0", trusts: []string{"old"}}, b.boardName(), keyOld), false, true, ota.ErrDowngrade},
		{"downgrade not allowed by config", b.makeBundle(firmware{version: "0.9.0", trusts: []string{"old"}}, b.boardName(), keyOld), true, false, ota.ErrDowngrade},
		{"wrong board", b.makeBundle(v2, "pi5", keyOld), false, false, ota.ErrWrongBoard},
		{"not a bundle", variant("garbage", func([]byte) []byte { return []byte("<html>404</html> and more bytes") }), false, false, bundle.ErrNotBundle},
	}
	seen := map[error]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b.slotFiles("A")
			b.cfg = func(cfg *ota.Config) { cfg.AllowDowngrade = c.allow }
			_, err := b.agent().Install(context.Background(), ota.Request{Source: c.source, Downgrade: c.downgrade})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			for _, other := range []error{bundle.ErrHashMismatch, bundle.ErrBadSignature, bundle.ErrUnknownKey, bundle.ErrTruncated,
				bundle.ErrOversized, ota.ErrTooLarge, ota.ErrDowngrade, ota.ErrWrongBoard, bundle.ErrNotBundle} {
				if other != c.want && errors.Is(err, other) {
					t.Fatalf("error %v is also %v", err, other)
				}
			}
			seen[c.want] = true
			if b.slotFiles("A") != before {
				t.Fatal("running slot changed")
			}
			b.agent().Reboot(context.Background())
			if info := b.powerOn(); info != (ota.BootInfo{Slot: "A"}) {
				t.Fatalf("after refusal booted %+v", info)
			}
			if rep := b.settle(healthy); rep.Phase != ota.PhaseIdle || rep.Slot != "A" {
				t.Fatalf("report %+v", rep)
			}
		})
	}
	b.cfg = nil
	// The same box still takes a good bundle, and a permitted downgrade.
	install(t, b, good)
	b.agent().Reboot(context.Background())
	b.powerOn()
	b.settle(healthy)
	b.cfg = func(cfg *ota.Config) { cfg.AllowDowngrade = true }
	if _, err := b.agent().Install(context.Background(), ota.Request{Source: b.makeBundle(v1, b.boardName(), keyOld), Downgrade: true}); err != nil {
		t.Fatalf("allowed downgrade: %v", err)
	}
}

// oversizedBundle is validly signed but its rootfs is larger than the slot.
func oversizedBundle(t *testing.T, b *box, fw firmware) string {
	t.Helper()
	img := append(b.image(fw), make([]byte, rootfsCapacity)...)
	path := b.dir + "/oversized.bundle"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = bundle.Create(f, bytesReader(img), bundle.CreateOptions{Version: fw.version, Board: b.boardName(),
		CreatedAt: time.Unix(0, 0), BootSize: imageBootSize, Keys: []ed25519PrivateKey{keyOld.priv}})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeyRotationEndToEnd: the old key signs until an image trusting both
// keys is installed; bundles signed only by the new key then install; once
// an image trusting only the new key runs, the old key is refused.
func TestKeyRotationEndToEnd(t *testing.T) {
	b := newBox(t, "pi", firmware{version: "1.0.0", trusts: []string{"old"}})
	step := func(fw firmware, keys ...signer) error {
		_, err := b.agent().Install(context.Background(), ota.Request{Source: b.makeBundle(fw, b.boardName(), keys...)})
		if err != nil {
			return err
		}
		b.agent().Reboot(context.Background())
		b.powerOn()
		if rep := b.settle(healthy); rep.Version != fw.version {
			t.Fatalf("running %s after installing %s", rep.Version, fw.version)
		}
		return nil
	}
	if err := step(firmware{version: "1.1.0", trusts: []string{"old"}}, keyNew); !errors.Is(err, bundle.ErrUnknownKey) {
		t.Fatalf("new key before rotation: %v", err)
	}
	if err := step(firmware{version: "1.1.0", trusts: []string{"old", "new"}}, keyOld, keyNew); err != nil {
		t.Fatalf("bundle signed by both keys: %v", err)
	}
	if err := step(firmware{version: "1.2.0", trusts: []string{"new"}}, keyNew); err != nil {
		t.Fatalf("bundle signed by the new key only: %v", err)
	}
	if err := step(firmware{version: "1.3.0", trusts: []string{"new"}}, keyOld); !errors.Is(err, bundle.ErrUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}
	if err := step(firmware{version: "1.3.0", trusts: []string{"new"}}, keyNew); err != nil {
		t.Fatal(err)
	}
}

func TestSecondInstallWhileArmed(t *testing.T) {
	b := newBox(t, "uboot", v1)
	install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
	// A newer bundle arrives before the reboot: it replaces the armed one.
	v3 := firmware{version: "1.2.0", trusts: []string{"old"}}
	install(t, b, b.makeBundle(v3, b.boardName(), keyOld))
	b.agent().Reboot(context.Background())
	b.powerOn()
	if rep := b.settle(healthy); rep.Version != "1.2.0" || rep.Outcome.Result != ota.ResultCommitted {
		t.Fatalf("report %+v", rep)
	}
}

func TestInstallRefusedDuringTrial(t *testing.T) {
	b := newBox(t, "pi", v1)
	path := b.makeBundle(v2, b.boardName(), keyOld)
	install(t, b, path)
	b.agent().Reboot(context.Background())
	b.powerOn()
	if _, err := b.agent().Install(context.Background(), ota.Request{Source: path}); !errors.Is(err, ota.ErrTrialPending) {
		t.Fatalf("install during trial: %v", err)
	}
}

// TestStrayTrialDisarmed: an image may ship autoboot.txt with [tryboot]
// pointing at the empty slot; the first boot clears it, and the agent's
// reboot never starts a trial it did not arm.
func TestStrayTrialDisarmed(t *testing.T) {
	b := newBox(t, "pi", v1)
	sel := tryboot.FATPartition{Device: b.dir + "/bootsel.img"}
	if err := sel.Write(tryboot.Render(tryboot.Selection{Committed: 2, Trial: 3})); err != nil {
		t.Fatal(err)
	}
	if err := b.agent().Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info := b.powerOn(); info != (ota.BootInfo{Slot: "A"}) {
		t.Fatalf("booted %+v", info)
	}
	b.settle(healthy)
	data, err := sel.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tryboot.Parse(data); err != nil || got != (tryboot.Selection{Committed: 2, Trial: 2}) {
		t.Fatalf("selection after first boot %+v, %v", got, err)
	}
}

func TestStatus(t *testing.T) {
	b := newBox(t, "uboot", v1)
	install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
	st, err := b.agent().Status(context.Background())
	if err != nil || st.Slot != "A" || st.Version != "1.0.0" || st.Phase != ota.PhaseArmed || st.Pending != "1.1.0" {
		t.Fatalf("status %+v, %v", st, err)
	}
	b.agent().Reboot(context.Background())
	b.powerOn()
	b.settle(healthy)
	st, err = b.agent().Status(context.Background())
	if err != nil || st.Slot != "B" || st.Version != "1.1.0" || st.Phase != ota.PhaseIdle || st.Last.Result != ota.ResultCommitted {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// TestDaemonCrashLoopInTrial: onaird restarting over and over in its trial
// boot is a verdict too, or the trial would never end.
func TestDaemonCrashLoopInTrial(t *testing.T) {
	b := newBox(t, "pi", v1)
	install(t, b, b.makeBundle(v2, b.boardName(), keyOld))
	b.agent().Reboot(context.Background())
	b.powerOn()
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := b.agent().AfterBoot(ctx, func(ctx context.Context) error { cancel(); return ctx.Err() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("AfterBoot: %v", err)
		}
	}
	rep, err := b.agent().AfterBoot(context.Background(), healthy)
	if err != nil || rep.Phase != ota.PhaseRollingBack || !rep.RebootNeeded {
		t.Fatalf("report %+v, %v", rep, err)
	}
	b.agent().Reboot(context.Background())
	b.powerOn()
	if rep := b.settle(healthy); rep.Version != "1.0.0" || rep.Outcome.Result != ota.ResultRolledBack {
		t.Fatalf("report %+v", rep)
	}
}
