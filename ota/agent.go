package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/cmdline"
)

// Config is what the agent needs to know about the box.
type Config struct {
	// DataDir holds the update state; it must be on the data partition that
	// both slots mount.
	DataDir string
	// Board is this board's name as bundles name it (pi4, pi5, zero2w).
	Board string
	// Version is the running firmware's version (MAJOR.MINOR.PATCH).
	Version string
	// Keys are the trusted signing keys.
	Keys *bundle.Keyring
	// AllowDowngrade is ota.allow_downgrade; a downgrade needs it AND the
	// request's Downgrade.
	AllowDowngrade bool
	// Slots are the two slots, A and B.
	Slots [2]Slot
	// CmdlineRoots maps each slot's name to the root= value that the
	// cmdline.txt in its boot partition names (PARTUUID=6f6e6169-05): a
	// bundle carries one boot image, built for slot A, and the agent points
	// it at the target slot's root file system after writing it (see
	// ota/cmdline). Both values have the same length. Empty on boards whose
	// boot script passes root= itself (U-Boot), where boot A and boot B are
	// the same bytes and the boot image is installed as it is.
	CmdlineRoots map[string]string
	// Bootloader is this board's boot selection.
	Bootloader Bootloader
	// HealthDeadline bounds the wait for health on a trial boot. Default 5m.
	HealthDeadline time.Duration
	// MaxTrialBoots is how many times a trial boot is armed before an
	// update that never reports health is given up. Default 3.
	MaxTrialBoots int
	// ResumeEvery is how many image bytes are written between durable
	// resume points. Default 8 MiB.
	ResumeEvery int64
	// Download tunes HTTP downloads; zero values are sensible defaults.
	Download DownloadOptions
	// Clock defaults to real time.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Agent installs updates and decides their fate after each boot.
type Agent struct {
	cfg Config
	log *slog.Logger
	// busy makes installs exclusive without blocking: a second request is
	// refused with ErrBusy, not queued behind a long download.
	busy sync.Mutex
	// step, when set (tests only), is called before every durable step and
	// can stop the agent there, as a power cut would.
	step func(name string) error
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" || cfg.Board == "" || cfg.Keys == nil || cfg.Bootloader == nil {
		return nil, errors.New("ota: DataDir, Board, Keys and Bootloader are required")
	}
	if cfg.Keys.Len() == 0 {
		return nil, errors.New("ota: no trusted keys")
	}
	if _, err := bundle.ParseVersion(cfg.Version); err != nil {
		return nil, fmt.Errorf("ota: running %w", err)
	}
	for i, s := range cfg.Slots {
		if s == nil {
			return nil, fmt.Errorf("ota: slot %d missing", i)
		}
	}
	if cfg.Slots[0].Name() == cfg.Slots[1].Name() {
		return nil, fmt.Errorf("ota: both slots are named %q", cfg.Slots[0].Name())
	}
	if err := checkCmdlineRoots(cfg); err != nil {
		return nil, err
	}
	if cfg.HealthDeadline <= 0 {
		cfg.HealthDeadline = 5 * time.Minute
	}
	if cfg.MaxTrialBoots <= 0 {
		cfg.MaxTrialBoots = 3
	}
	if cfg.ResumeEvery <= 0 {
		cfg.ResumeEvery = 8 << 20
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("ota: data dir: %w", err)
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "ota")}, nil
}

func checkCmdlineRoots(cfg Config) error {
	roots := cfg.CmdlineRoots
	if len(roots) == 0 {
		return nil
	}
	a, b := roots[cfg.Slots[0].Name()], roots[cfg.Slots[1].Name()]
	switch {
	case len(roots) != 2 || a == "" || b == "":
		return fmt.Errorf("ota: CmdlineRoots must name the root= of both slots, %s and %s", cfg.Slots[0].Name(), cfg.Slots[1].Name())
	case a == b:
		return fmt.Errorf("ota: both slots' cmdline.txt would name root=%s", a)
	case len(a) != len(b):
		return fmt.Errorf("ota: root=%s and root=%s differ in length; cmdline.txt is only rewritten in place", a, b)
	case strings.ContainsAny(a+b, " \t\r\n"):
		return errors.New("ota: a root= value holds white space")
	}
	return nil
}

func (a *Agent) checkpoint(name string) error {
	if a.step == nil {
		return nil
	}
	if err := a.step(name); err != nil {
		return stopped{err}
	}
	return nil
}

// stopped is an error from the step hook. It stands for a power cut, so the
// agent writes nothing more (no failure record) on its way out.
type stopped struct{ error }

func (s stopped) Unwrap() error { return s.error }

func (a *Agent) save(step string, st State) error {
	if err := a.checkpoint(step); err != nil {
		return err
	}
	return saveState(a.cfg.DataDir, st)
}

// State returns the persisted update state.
func (a *Agent) State() (State, error) { return loadState(a.cfg.DataDir) }

func (a *Agent) otherSlot(name string) (Slot, error) {
	switch name {
	case a.cfg.Slots[0].Name():
		return a.cfg.Slots[1], nil
	case a.cfg.Slots[1].Name():
		return a.cfg.Slots[0], nil
	}
	return nil, fmt.Errorf("bootloader reports slot %q, which is not configured", name)
}

// Request asks for one install.
type Request struct {
	// Source is a local path or an http(s) URL of the bundle.
	Source string
	// Downgrade allows an older version, if the config allows it too.
	Downgrade bool
	// Version, when set, must equal the bundle's version (the fleet command
	// names the version it means to install).
	Version string
	// ImageSHA256, when set, must equal the signed manifest's image hash
	// (the fleet command's sha256: the operator names the exact build).
	ImageSHA256 string
	// Progress is called when the percentage of a stage changes.
	Progress func(Progress)
}

// Progress reports install progress.
type Progress struct {
	// Stage is "install" (download and write) or "verify" (read-back).
	Stage string
	// Percent is 0 to 100.
	Percent int
}

// Installed describes an armed update.
type Installed struct {
	// Version is the bundle's version.
	Version string
	// Slot is the slot it was written to.
	Slot string
	// KeyID names the trusted key whose signature was accepted.
	KeyID string
}

// Install writes the bundle at req.Source into the slot that is not
// running, verifies it and arms one trial boot of it; the caller then calls
// Reboot. On any error the running slot is untouched and nothing new is
// armed.
func (a *Agent) Install(ctx context.Context, req Request) (Installed, error) {
	if !a.busy.TryLock() {
		return Installed{}, ErrBusy
	}
	defer a.busy.Unlock()
	inst, err := a.install(ctx, req)
	if err != nil {
		// Not logged here: the caller reports it (reply, event, log) once.
		return Installed{}, fmt.Errorf("install %s: %w", req.Source, err)
	}
	a.log.Info("update armed for one trial boot", "version", inst.Version, "slot", inst.Slot, "key", inst.KeyID)
	return inst, nil
}

func (a *Agent) install(ctx context.Context, req Request) (Installed, error) {
	bl := a.cfg.Bootloader
	info, err := bl.Booted(ctx)
	if err != nil {
		return Installed{}, fmt.Errorf("ask bootloader: %w", err)
	}
	st, err := loadState(a.cfg.DataDir)
	if err != nil {
		return Installed{}, err
	}
	if st.Phase == PhaseTrial || st.Phase == PhaseRollingBack || info.Trial {
		return Installed{}, ErrTrialPending
	}
	target, err := a.otherSlot(info.Slot)
	if err != nil {
		return Installed{}, err
	}

	src, err := a.openSource(ctx, req.Source)
	if err != nil {
		return Installed{}, err
	}
	defer src.Close()
	b, err := bundle.Open(src, a.cfg.Keys)
	if err != nil {
		return Installed{}, err
	}
	m := b.Manifest
	if err := a.admit(m, req); err != nil {
		return Installed{}, err
	}

	boot, rootfs, err := target.Open()
	if err != nil {
		return Installed{}, err
	}
	img := &slotImage{boot: boot, rootfs: rootfs, bootSize: m.BootSize}
	defer img.Close()
	if err := fits(img, m); err != nil {
		return Installed{}, err
	}

	image, from := a.resume(st.Resume, b, src, target.Name())
	if from == 0 {
		st.Resume = nil
	}
	st.Phase, st.Target, st.TargetVersion = PhaseInstalling, target.Name(), m.Version
	st.Previous, st.PreviousVersion, st.TrialAttempts, st.TrialStarts, st.Reason = info.Slot, a.cfg.Version, 0, 0, ""
	if err := a.save("save-installing", st); err != nil {
		return Installed{}, err
	}
	// An earlier install may have armed the slot about to be overwritten; no
	// boot, even after a power cut, may find it half written.
	if err := a.checkpoint("disarm"); err != nil {
		return Installed{}, err
	}
	if err := bl.Disarm(ctx, info.Slot); err != nil {
		return Installed{}, fmt.Errorf("disarm before writing: %w", err)
	}
	a.log.Info("installing update", "version", m.Version, "slot", target.Name(), "bytes", m.ImageSize, "key", b.KeyID)
	if err := a.write(ctx, &st, m, image, from, img, req.Progress); err != nil {
		return Installed{}, a.abandon(st, err)
	}
	if err := a.checkpoint("sync"); err != nil {
		return Installed{}, err
	}
	if err := img.Sync(); err != nil {
		return Installed{}, a.abandon(st, err)
	}
	if err := a.checkpoint("readback"); err != nil {
		return Installed{}, err
	}
	if err := readBack(ctx, img, m, req.Progress); err != nil {
		return Installed{}, a.abandon(st, err)
	}
	// Armed only after this: a trial boot must never find the boot
	// partition naming the other slot's root file system.
	if err := a.setBootRoot(&st, img, m); err != nil {
		return Installed{}, a.abandon(st, err)
	}
	// The state says "armed" before the bootloader is: a power cut between
	// the two finds an armed state and an unarmed bootloader, and simply
	// arms again, whereas the other order could boot a trial nobody tracks.
	st.Phase, st.TrialAttempts, st.Resume = PhaseArmed, 1, nil
	if err := a.save("save-armed", st); err != nil {
		return Installed{}, err
	}
	if err := a.checkpoint("arm"); err != nil {
		return Installed{}, err
	}
	if err := bl.ArmTrial(ctx, target.Name()); err != nil {
		return Installed{}, a.abandon(st, fmt.Errorf("arm trial boot: %w", err))
	}
	return Installed{Version: m.Version, Slot: target.Name(), KeyID: b.KeyID.String()}, nil
}

// resume continues an earlier install of the same image into the same slot
// from its last durable point, when there is one and the source can jump
// there; otherwise the image is read from its start.
func (a *Agent) resume(r *ResumePoint, b *bundle.Bundle, src source, slot string) (*bundle.ImageReader, int64) {
	m := b.Manifest
	if r == nil || r.ImageSHA256 != m.ImageSHA256 || r.Slot != slot || r.Offset <= 0 || r.Offset >= m.ImageSize {
		return b.Image(), 0
	}
	image, err := b.ResumeImage(r.Offset, r.HashState)
	if err == nil {
		err = src.SkipTo(b.HeaderSize + r.Offset)
	}
	if err != nil {
		// The source has not moved (a failed seek, or a download whose
		// next request has not been made), so starting over is safe.
		a.log.Info("cannot resume, installing from the start", "err", err)
		return b.Image(), 0
	}
	a.log.Info("resuming install", "version", m.Version, "slot", slot, "offset", r.Offset)
	return image, r.Offset
}

// admit applies the box's policy to an authenticated manifest.
func (a *Agent) admit(m bundle.Manifest, req Request) error {
	if m.Board != a.cfg.Board {
		return fmt.Errorf("%w: bundle for %q, this is %q", ErrWrongBoard, m.Board, a.cfg.Board)
	}
	if req.Version != "" && req.Version != m.Version {
		return fmt.Errorf("%w: requested %s, bundle holds %s", ErrVersionMismatch, req.Version, m.Version)
	}
	if req.ImageSHA256 != "" && !strings.EqualFold(req.ImageSHA256, m.ImageSHA256) {
		return fmt.Errorf("%w: requested image sha256 %s, bundle holds %s", ErrVersionMismatch, req.ImageSHA256, m.ImageSHA256)
	}
	running, err := bundle.ParseVersion(a.cfg.Version)
	if err != nil {
		return err
	}
	next, err := bundle.ParseVersion(m.Version)
	if err != nil {
		return err
	}
	if next.Compare(running) < 0 {
		switch {
		case !req.Downgrade:
			return fmt.Errorf("%w: %s is older than %s and the request does not say downgrade", ErrDowngrade, m.Version, a.cfg.Version)
		case !a.cfg.AllowDowngrade:
			return fmt.Errorf("%w: %s is older than %s and ota.allow_downgrade is false", ErrDowngrade, m.Version, a.cfg.Version)
		}
	}
	return nil
}

// setBootRoot points the boot partition just written and verified at the
// target slot's root file system: the bundle's one boot image is built for
// slot A, so its cmdline.txt names slot A's rootfs. The edit is read back
// before anything is armed. A boot image without cmdline.txt, or whose
// root= is none of the slots', is refused.
func (a *Agent) setBootRoot(st *State, img *slotImage, m bundle.Manifest) error {
	roots := a.cfg.CmdlineRoots
	if m.BootSize == 0 || len(roots) == 0 {
		return nil
	}
	// From here on the boot partition differs from the signed image: a
	// write resumed after a power cut could no longer be verified against
	// its hash, so a later install of this bundle starts from the start.
	if st.Resume != nil {
		st.Resume = nil
		if err := a.save("save-no-resume", *st); err != nil {
			return err
		}
	}
	if err := a.checkpoint("cmdline"); err != nil {
		return err
	}
	root := roots[st.Target]
	known := []string{roots[a.cfg.Slots[0].Name()], roots[a.cfg.Slots[1].Name()]}
	want, err := cmdline.SetRoot(img.boot, m.BootSize, known, root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootImage, err)
	}
	if err := img.boot.Sync(); err != nil {
		return err
	}
	got, err := cmdline.Read(img.boot, m.BootSize)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrReadback, cmdline.FileName, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s reads %q after the rewrite, want %q", ErrReadback, cmdline.FileName, got, want)
	}
	a.log.Info("boot partition names its slot's root file system", "slot", st.Target, "root", root)
	return nil
}

func fits(img *slotImage, m bundle.Manifest) error {
	var bootCap int64
	if img.boot != nil {
		bootCap = img.boot.Size()
	}
	if m.BootSize > bootCap {
		return fmt.Errorf("%w: boot image of %d bytes, boot partition holds %d", ErrTooLarge, m.BootSize, bootCap)
	}
	if rest := m.ImageSize - m.BootSize; rest > img.rootfs.Size() {
		return fmt.Errorf("%w: rootfs image of %d bytes, partition holds %d", ErrTooLarge, rest, img.rootfs.Size())
	}
	return nil
}

// abandon records a failed install and returns err. The bootloader was
// disarmed before writing, so only the state needs to go back to idle.
func (a *Agent) abandon(st State, err error) error {
	if errors.As(err, new(stopped)) {
		return err
	}
	st.Phase = PhaseIdle
	// What was written stays good for a retry only when the source failed;
	// a bundle that proved bad must start over.
	if !errors.Is(err, ErrDownload) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		st.Resume = nil
	}
	st.Last = &Outcome{Version: st.TargetVersion, Result: ResultFailed, Reason: err.Error()}
	if serr := a.save("save-failed", st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

const chunkSize = 256 << 10

// write streams the image into the slot from image offset from. The
// bundle's image reader checks length and hash as the bytes pass, so nothing
// is buffered beyond one chunk and no free space the size of the image is
// needed. Every ResumeEvery bytes the slot is synced and the position saved.
func (a *Agent) write(ctx context.Context, st *State, m bundle.Manifest, r *bundle.ImageReader, from int64, img *slotImage, progress func(Progress)) error {
	buf := make([]byte, chunkSize)
	report := percentReporter("install", m.ImageSize, progress)
	off, lastResume := from, from
	report(off)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := img.WriteAt(buf[:n], off); werr != nil {
				return fmt.Errorf("write slot: %w", werr)
			}
			off += int64(n)
			report(off)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// ReadFull turns the image reader's final io.EOF into these;
			// a real failure (truncation, hash) comes back as itself.
			return nil
		default:
			return err
		}
		if off-lastResume >= a.cfg.ResumeEvery {
			if err := a.saveResume(st, m, r, img, off); err != nil {
				return err
			}
			lastResume = off
		}
	}
}

// saveResume makes the bytes so far durable, then records that they are.
func (a *Agent) saveResume(st *State, m bundle.Manifest, r *bundle.ImageReader, img *slotImage, off int64) error {
	if err := img.Sync(); err != nil {
		return err
	}
	hashState, err := r.HashState()
	if err != nil {
		return err
	}
	st.Resume = &ResumePoint{ImageSHA256: m.ImageSHA256, Slot: st.Target, Offset: off, HashState: hashState}
	return a.save("save-resume", *st)
}

// readBack hashes what the slot now holds, so what is armed is what was
// signed, not what was meant to be written.
func readBack(ctx context.Context, img *slotImage, m bundle.Manifest, progress func(Progress)) error {
	h := sha256.New()
	buf := make([]byte, chunkSize)
	report := percentReporter("verify", m.ImageSize, progress)
	for off := int64(0); off < m.ImageSize; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf)), m.ImageSize-off)
		k, err := img.ReadAt(buf[:n], off)
		h.Write(buf[:k])
		off += int64(k)
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return fmt.Errorf("%w: read slot at %d: %w", ErrReadback, off, err)
		}
		report(off)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.ImageSHA256 {
		return fmt.Errorf("%w: slot hashes to %s, bundle says %s", ErrReadback, got, m.ImageSHA256)
	}
	return nil
}

func percentReporter(stage string, total int64, progress func(Progress)) func(done int64) {
	last := -1
	return func(done int64) {
		if progress == nil || total <= 0 {
			return
		}
		p := int(done * 100 / total)
		if p != last {
			last = p
			progress(Progress{Stage: stage, Percent: p})
		}
	}
}

// source is a bundle being read that can jump ahead, to resume an install.
type source interface {
	io.ReadCloser
	// SkipTo continues reading at byte off of the bundle.
	SkipTo(off int64) error
}

func (a *Agent) openSource(ctx context.Context, src string) (source, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return openDownload(ctx, src, a.cfg.Download, a.cfg.Clock, a.log)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	return fileSource{f}, nil
}

type fileSource struct{ *os.File }

// SkipTo seeks. A pipe cannot, and then the install starts from zero.
func (f fileSource) SkipTo(off int64) error {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("bundle source %s: %w", f.Name(), err)
	}
	return nil
}

// httpClientFor exists so DownloadOptions can carry a client for tests and
// the daemon (proxies, CA pool) without the agent knowing.
func httpClientFor(o DownloadOptions) (*http.Client, func()) {
	if o.Client != nil {
		return o.Client, func() {}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = o.ConnectTimeout
	tr.ResponseHeaderTimeout = o.ConnectTimeout
	dialer := newDialer(o.ConnectTimeout)
	tr.DialContext = dialer.DialContext
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

// Status is the update part of the box's status document.
type Status struct {
	// Slot and Version are what runs.
	Slot    string `json:"slot"`
	Version string `json:"version"`
	// Phase is the update state (idle, installing, armed, trial, rolling_back).
	Phase Phase `json:"ota_state"`
	// Pending is the version being installed or tried, if any.
	Pending string `json:"pending,omitempty"`
	// Last is how the most recent update ended.
	Last *Outcome `json:"last,omitempty"`
}

// Status reports the running slot and the update state for status and MQTT.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	info, err := a.cfg.Bootloader.Booted(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("ota status: %w", err)
	}
	st, err := loadState(a.cfg.DataDir)
	if err != nil {
		return Status{}, fmt.Errorf("ota status: %w", err)
	}
	s := Status{Slot: info.Slot, Version: a.cfg.Version, Phase: st.Phase, Last: st.Last}
	if st.Phase != PhaseIdle {
		s.Pending = st.TargetVersion
	}
	return s, nil
}
