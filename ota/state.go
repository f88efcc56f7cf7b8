package ota

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Phase is where the update state machine stands.
type Phase string

// The phases, in the order an update goes through them.
const (
	// PhaseIdle: nothing in progress; the running slot is committed.
	PhaseIdle Phase = "idle"
	// PhaseInstalling: the inactive slot is being written. Never bootable.
	PhaseInstalling Phase = "installing"
	// PhaseArmed: the new slot is verified and one trial boot is armed.
	PhaseArmed Phase = "armed"
	// PhaseTrial: the trial boot has started; health decides.
	PhaseTrial Phase = "trial"
	// PhaseRollingBack: the trial was judged unhealthy; the next boot runs
	// the previous slot.
	PhaseRollingBack Phase = "rolling_back"
)

// Result is how an update ended.
type Result string

// Update results as reported after a boot.
const (
	ResultCommitted  Result = "committed"
	ResultRolledBack Result = "rolled_back"
	ResultFailed     Result = "failed"
)

// Outcome records how the last update ended.
type Outcome struct {
	// Version is the update's version.
	Version string `json:"version"`
	// Result is how it ended.
	Result Result `json:"result"`
	// Reason says why it did not commit.
	Reason string `json:"reason,omitempty"`
}

// State is what the agent keeps on the data partition, which both slots
// mount, so the slot that boots next knows what the other one was doing.
type State struct {
	// Phase is where the update stands.
	Phase Phase `json:"phase"`
	// Target and TargetVersion are the slot being updated and its new
	// version.
	Target        string `json:"target_slot,omitempty"`
	TargetVersion string `json:"target_version,omitempty"`
	// Previous and PreviousVersion are the slot that ran when the update
	// started, the one a rollback returns to.
	Previous        string `json:"previous_slot,omitempty"`
	PreviousVersion string `json:"previous_version,omitempty"`
	// TrialAttempts counts the times a trial was armed. A trial that is
	// cut short (power loss, hang, crash, even before the new slot's agent
	// runs) is armed again, and only after MaxTrialBoots attempts is the
	// update given up.
	TrialAttempts int `json:"trial_attempts,omitempty"`
	// TrialStarts counts AfterBoot calls during the current trial attempt:
	// a daemon that keeps restarting in its trial boot never gets to judge
	// its health, so after a few starts that is the verdict.
	TrialStarts int `json:"trial_starts,omitempty"`
	// Reason is why a trial is being rolled back.
	Reason string `json:"reason,omitempty"`
	// Last is the outcome of the most recent finished update.
	Last *Outcome `json:"last,omitempty"`
	// Resume marks how much of an unfinished install is safely in its slot,
	// so the same bundle continues from there after a power cut or a
	// download that gave up, instead of from zero.
	Resume *ResumePoint `json:"resume,omitempty"`
}

// ResumePoint is a durable position in an install.
type ResumePoint struct {
	// ImageSHA256 identifies the bundle's image.
	ImageSHA256 string `json:"image_sha256"`
	// Slot is where it was being written.
	Slot string `json:"slot"`
	// Offset is how many image bytes are written and synced.
	Offset int64 `json:"offset"`
	// HashState is the sha256 state after those bytes.
	HashState []byte `json:"hash_state"`
}

const stateFile = "ota-state.json"

func loadState(dir string) (State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return State{Phase: PhaseIdle}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read update state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("parse update state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Phase == "" {
		st.Phase = PhaseIdle
	}
	return st, nil
}

// saveState replaces the state file so that a power cut leaves the old or
// the new state, never a torn one: write a temporary file, fsync it, rename
// it over the old one, fsync the directory so the rename itself is durable.
func saveState(dir string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode update state: %w", err)
	}
	return writeFileAtomic(dir, stateFile, append(data, '\n'))
}

func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: sync: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save %s: open dir: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save %s: sync dir: %w", name, err)
	}
	return nil
}
