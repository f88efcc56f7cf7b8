package ota_test

import (
	"context"
	"errors"
	"testing"

	"github.com/onair/onair/ota"
)

// TestCrashBetweenEverySteps cuts power before each durable step of the
// state machine in turn (install, trial, commit, rollback) and checks that
// the box then boots a good slot, settles, and reports what runs.
func TestCrashBetweenEverySteps(t *testing.T) {
	for _, kind := range boards {
		for _, healthyUpdate := range []bool{true, false} {
			name := kind + "/healthy"
			health := ota.HealthFunc(healthy)
			if !healthyUpdate {
				name = kind + "/unhealthy"
				health = func(context.Context) error { return errors.New("no frames") }
			}
			t.Run(name, func(t *testing.T) {
				for k := 0; ; k++ {
					b := newBox(t, kind, v1)
					path := b.makeBundle(v2, b.boardName(), keyOld)
					crashedAt, trace := crashScenario(t, b, path, health, k)
					if crashedAt == "" {
						if k != len(trace) {
							t.Fatalf("%d steps, no crash at %d", len(trace), k)
						}
						t.Logf("crashed before each of %d steps: %v", len(trace), trace)
						return
					}
					b.board.PowerCut()
					b.powerOn()
					rep := b.settle(health)
					if rep.Phase != ota.PhaseIdle || rep.Slot != b.booted.Slot || rep.Version != b.runningVersion() {
						t.Fatalf("crash before %q: report %+v on %+v", crashedAt, rep, b.booted)
					}
					if !healthyUpdate && rep.Version != "1.0.0" {
						t.Fatalf("crash before %q: unhealthy update %s stays", crashedAt, rep.Version)
					}
					st, err := b.agent().State()
					// Before the first step nothing had started, so there is
					// nothing to report.
					if err != nil || (st.Last == nil && crashedAt != "save-installing") {
						t.Fatalf("crash before %q: no outcome recorded: %+v %v", crashedAt, st, err)
					}
				}
			})
		}
	}
}

// crashScenario runs install, trial boot and the verdict with a power cut
// before the k-th durable step (counted across all agents). It returns the
// step it crashed before ("" when the scenario ran out of steps first) and
// the names of the steps passed.
func crashScenario(t *testing.T, b *box, path string, health ota.HealthFunc, k int) (string, []string) {
	t.Helper()
	var trace []string
	crashedAt := ""
	hook := func(step string) error {
		if len(trace) == k {
			crashedAt = step
			return errCrash
		}
		trace = append(trace, step)
		return nil
	}
	agent := func() *ota.Agent {
		a := b.agent()
		ota.SetStepHook(a, hook)
		return a
	}
	if _, err := agent().Install(context.Background(), ota.Request{Source: path}); err != nil {
		if errors.Is(err, errCrash) {
			return crashedAt, trace
		}
		t.Fatal(err)
	}
	if err := b.agent().Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.powerOn()
	for range 8 {
		rep, err := agent().AfterBoot(context.Background(), health)
		if errors.Is(err, errCrash) {
			return crashedAt, trace
		}
		if err != nil {
			t.Fatal(err)
		}
		if !rep.RebootNeeded {
			return "", trace
		}
		if err := b.agent().Reboot(context.Background()); err != nil {
			t.Fatal(err)
		}
		b.powerOn()
	}
	t.Fatal("scenario keeps rebooting")
	return "", nil
}
