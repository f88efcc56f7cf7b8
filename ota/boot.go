package ota

import (
	"context"
	"errors"
	"fmt"
)

// HealthFunc reports whether the box works: it returns nil as soon as it
// is healthy, or an error saying what is wrong when ctx ends first or when
// it knows the box cannot become healthy. The daemon passes its own checks
// (its loops respond, the media pipeline produces frames, the update source
// is reachable when one is configured).
type HealthFunc func(ctx context.Context) error

// Report is what the agent tells the daemon after a boot; the daemon
// publishes it (status, MQTT event, log).
type Report struct {
	// Slot and Version are what is running now.
	Slot    string
	Version string
	// Phase is the update state after this boot's decision.
	Phase Phase
	// Outcome is set when an update finished during or just before this boot
	// (committed, rolled back and why, failed and why).
	Outcome *Outcome
	// Retrying says a trial that did not happen (power cut) is armed again.
	Retrying bool
	// RebootNeeded asks the daemon to call the Agent's Reboot: a trial is
	// armed, or a rejected trial must return to the previous slot.
	RebootNeeded bool
}

// AfterBoot decides the fate of a pending update. The daemon calls it once
// per boot, as soon as it can judge its own health; on a trial boot it
// blocks until health says yes (commit) or the deadline passes (roll back).
// It is safe after a crash at any point: every branch is decided from the
// persisted state and what the bootloader says is running.
func (a *Agent) AfterBoot(ctx context.Context, health HealthFunc) (Report, error) {
	a.busy.Lock()
	defer a.busy.Unlock()
	rep, err := a.afterBoot(ctx, health)
	if err != nil {
		return rep, fmt.Errorf("ota after boot: %w", err)
	}
	args := []any{"slot", rep.Slot, "version", rep.Version, "phase", rep.Phase, "reboot_needed", rep.RebootNeeded}
	if rep.Outcome != nil {
		args = append(args, "update", rep.Outcome.Version, "result", rep.Outcome.Result, "reason", rep.Outcome.Reason)
	}
	a.log.Info("boot report", args...)
	return rep, nil
}

func (a *Agent) afterBoot(ctx context.Context, health HealthFunc) (Report, error) {
	bl := a.cfg.Bootloader
	info, err := bl.Booted(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("ask bootloader: %w", err)
	}
	st, err := loadState(a.cfg.DataDir)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Slot: info.Slot, Version: a.cfg.Version}
	onTarget := info.Slot == st.Target

	switch st.Phase {
	case PhaseIdle:
		if !info.Trial {
			// Make sure no stray trial is armed (a fresh image may ship
			// one); a no-op write-free check when all is in order.
			if err := a.disarm(ctx, "idle", info.Slot); err != nil {
				return rep, err
			}
		} else {
			// A trial nobody tracks (state lost): its content is unknown, so
			// go back to the other, committed slot.
			other, err := a.otherSlot(info.Slot)
			if err != nil {
				return rep, err
			}
			if err := a.disarm(ctx, "untracked trial", other.Name()); err != nil {
				return rep, err
			}
			rep.RebootNeeded = true
		}
	case PhaseInstalling:
		// The install was cut off; its slot was disarmed before writing.
		st.Phase = PhaseIdle
		st.Last = &Outcome{Version: st.TargetVersion, Result: ResultFailed, Reason: "install interrupted by a reboot or power loss"}
		if err := a.save("boot-save-interrupted", st); err != nil {
			return rep, err
		}
		rep.Outcome = st.Last
		if info.Trial || info.Slot != st.Previous {
			if err := a.disarm(ctx, "interrupted install", st.Previous); err != nil {
				return rep, err
			}
			rep.RebootNeeded = true
		}
	case PhaseArmed, PhaseTrial:
		switch {
		case onTarget && !info.Trial && st.Phase == PhaseTrial:
			// The bootloader committed but the state was not saved.
			return a.finishCommit(ctx, st, rep)
		case onTarget:
			return a.trial(ctx, st, rep, health)
		default:
			return a.retryOrGiveUp(ctx, st, rep)
		}
	case PhaseRollingBack:
		if info.Slot == st.Previous && !info.Trial {
			st.Phase = PhaseIdle
			st.Last = &Outcome{Version: st.TargetVersion, Result: ResultRolledBack, Reason: st.Reason}
			if err := a.save("boot-save-rolled-back", st); err != nil {
				return rep, err
			}
			rep.Outcome = st.Last
		} else {
			if err := a.disarm(ctx, "rollback", st.Previous); err != nil {
				return rep, err
			}
			rep.RebootNeeded = true
		}
	default:
		return rep, fmt.Errorf("unknown update phase %q in state file", st.Phase)
	}
	rep.Phase = st.Phase
	return rep, nil
}

func (a *Agent) disarm(ctx context.Context, why, slot string) error {
	if err := a.checkpoint("boot-disarm"); err != nil {
		return err
	}
	if err := a.cfg.Bootloader.Disarm(ctx, slot); err != nil {
		return fmt.Errorf("%s: return to slot %s: %w", why, slot, err)
	}
	return nil
}

// retryOrGiveUp handles a boot of the previous slot while a trial was armed
// or running: the trial boot never happened or never finished (power cut,
// hang, crash). It is armed again until MaxTrialBoots attempts were made.
func (a *Agent) retryOrGiveUp(ctx context.Context, st State, rep Report) (Report, error) {
	if st.TrialAttempts >= a.cfg.MaxTrialBoots {
		st.Phase = PhaseIdle
		st.Last = &Outcome{Version: st.TargetVersion, Result: ResultRolledBack,
			Reason: fmt.Sprintf("%d trial boots ended before the update reported healthy (power loss, hang or crash)", st.TrialAttempts)}
		if err := a.save("boot-save-gave-up", st); err != nil {
			return rep, err
		}
		rep.Phase, rep.Outcome = st.Phase, st.Last
		return rep, nil
	}
	st.Phase = PhaseArmed
	st.TrialAttempts++
	st.TrialStarts = 0
	if err := a.save("boot-save-rearmed", st); err != nil {
		return rep, err
	}
	if err := a.checkpoint("boot-rearm"); err != nil {
		return rep, err
	}
	if err := a.cfg.Bootloader.ArmTrial(ctx, st.Target); err != nil {
		return rep, fmt.Errorf("arm trial boot again: %w", err)
	}
	rep.Phase, rep.Retrying, rep.RebootNeeded = st.Phase, true, true
	return rep, nil
}

// maxTrialStarts bounds daemon restarts within one trial boot.
const maxTrialStarts = 3

// trial runs on the new slot's trial boot: health within the deadline
// commits, anything else rolls back.
func (a *Agent) trial(ctx context.Context, st State, rep Report, health HealthFunc) (Report, error) {
	st.Phase = PhaseTrial
	st.TrialStarts++
	if err := a.save("boot-save-trial", st); err != nil {
		return rep, err
	}
	var verdict error
	if st.TrialStarts > maxTrialStarts {
		verdict = fmt.Errorf("onaird started %d times during the trial without reporting healthy", st.TrialStarts-1)
	} else {
		verdict = a.judge(ctx, st, health)
	}
	if ctx.Err() != nil {
		// The daemon is stopping: no verdict. The next boot returns to the
		// previous slot and this counts as an interrupted trial.
		return rep, ctx.Err()
	}
	if verdict == nil {
		if err := a.checkpoint("boot-commit"); err != nil {
			return rep, err
		}
		if err := a.cfg.Bootloader.Commit(ctx, st.Target); err != nil {
			return rep, fmt.Errorf("commit slot %s: %w", st.Target, err)
		}
		return a.finishCommit(ctx, st, rep)
	}
	a.log.Warn("update unhealthy, rolling back", "version", st.TargetVersion, "err", verdict)
	st.Phase, st.Reason = PhaseRollingBack, verdict.Error()
	if err := a.save("boot-save-rolling-back", st); err != nil {
		return rep, err
	}
	if err := a.disarm(ctx, "rollback", st.Previous); err != nil {
		return rep, err
	}
	rep.Phase, rep.RebootNeeded = st.Phase, true
	return rep, nil
}

func (a *Agent) judge(ctx context.Context, st State, health HealthFunc) error {
	if a.cfg.Version != st.TargetVersion {
		return fmt.Errorf("slot %s runs version %s, the bundle said %s", st.Target, a.cfg.Version, st.TargetVersion)
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := a.cfg.Clock.AfterFunc(a.cfg.HealthDeadline, func() {
		cancel(fmt.Errorf("%w (%s)", ErrHealthDeadline, a.cfg.HealthDeadline))
	})
	defer stop()
	err := health(hctx)
	if err == nil {
		return nil
	}
	if cause := context.Cause(hctx); cause != nil && !errors.Is(err, cause) && ctx.Err() == nil {
		return fmt.Errorf("unhealthy: %w: %w", cause, err)
	}
	return fmt.Errorf("unhealthy: %w", err)
}

func (a *Agent) finishCommit(_ context.Context, st State, rep Report) (Report, error) {
	st.Phase = PhaseIdle
	st.Last = &Outcome{Version: st.TargetVersion, Result: ResultCommitted}
	if err := a.save("boot-save-committed", st); err != nil {
		return rep, err
	}
	rep.Phase, rep.Outcome = st.Phase, st.Last
	return rep, nil
}

// Reboot restarts the box through the bootloader, starting the armed trial
// when there is one. The daemon calls it after Install, or when a Report
// says RebootNeeded, once it has stopped its own work.
func (a *Agent) Reboot(ctx context.Context) error {
	st, err := loadState(a.cfg.DataDir)
	if err != nil {
		return err
	}
	trial := st.Phase == PhaseArmed
	a.log.Info("rebooting", "trial", trial, "slot", st.Target)
	if err := a.cfg.Bootloader.Reboot(ctx, trial); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}
