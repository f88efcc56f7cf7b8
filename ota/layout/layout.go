// Package layout reads the firmware layout file that an OnAir image carries
// on its read-only root file system (/etc/onair/firmware.yaml): which board
// it is, which bootloader selects the slot, where the two slots and the
// boot selector are, and which keys sign updates. It turns that into the
// update agent's configuration. A machine without the file (a developer's
// PC) is not an OnAir image and has no updates.
package layout

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/tryboot"
	"github.com/onair/onair/ota/uboot"
)

// DefaultPath is where the image keeps the file.
const DefaultPath = "/etc/onair/firmware.yaml"

// Layout is the file's content.
type Layout struct {
	// Board is the name bundles are built for: pi4, pi5, zero2w.
	Board string `yaml:"board"`
	// Bootloader is tryboot (Pi 4 and 5) or uboot (Zero 2 W, Pi 3).
	Bootloader string `yaml:"bootloader"`
	// Keys is a PEM file of the trusted public signing keys (several for
	// rotation); relative paths are relative to the layout file.
	Keys string `yaml:"keys"`
	// BootSelector is the FAT partition holding autoboot.txt (tryboot).
	BootSelector string `yaml:"boot_selector"`
	// Slots are A and B.
	Slots map[string]Slot `yaml:"slots"`
}

// Slot is one boot + root file system pair.
type Slot struct {
	Boot   string `yaml:"boot"`
	Rootfs string `yaml:"rootfs"`
	// BootPartition is the boot partition's number as autoboot.txt names
	// it (tryboot only).
	BootPartition int `yaml:"boot_partition"`
	// CmdlineRoot is the root= value of the cmdline.txt in the slot's boot
	// partition, e.g. PARTUUID=6f6e6169-05 (tryboot only: there the boot
	// partition names its rootfs; U-Boot's boot script passes root=
	// itself). A bundle's boot image is built for slot A and the agent
	// rewrites its root= to the target slot's value, in place, so A's and
	// B's values have the same length.
	CmdlineRoot string `yaml:"cmdline_root"`
}

// Load reads and checks the layout file; unknown keys are errors.
func Load(path string) (Layout, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Layout{}, fmt.Errorf("firmware layout: %w", err)
	}
	var l Layout
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return Layout{}, fmt.Errorf("firmware layout %s: %w", path, err)
	}
	if l.Keys != "" && !filepath.IsAbs(l.Keys) {
		l.Keys = filepath.Join(filepath.Dir(path), l.Keys)
	}
	if err := l.check(); err != nil {
		return Layout{}, fmt.Errorf("firmware layout %s: %w", path, err)
	}
	return l, nil
}

func (l Layout) check() error {
	var errs []error
	if l.Board == "" {
		errs = append(errs, errors.New("board: missing"))
	}
	if l.Keys == "" {
		errs = append(errs, errors.New("keys: missing"))
	}
	for _, name := range []string{"A", "B"} {
		s, ok := l.Slots[name]
		if !ok || s.Rootfs == "" {
			errs = append(errs, fmt.Errorf("slots.%s: needs at least rootfs", name))
			continue
		}
		if l.Bootloader == "tryboot" && (s.Boot == "" || s.BootPartition < 1 || s.BootPartition > 4) {
			errs = append(errs, fmt.Errorf("slots.%s: tryboot needs boot and a boot_partition of 1 to 4 (a primary partition)", name))
		}
		switch {
		case l.Bootloader == "tryboot" && s.CmdlineRoot == "":
			errs = append(errs, fmt.Errorf("slots.%s: tryboot needs cmdline_root, the root= its cmdline.txt names", name))
		case l.Bootloader != "tryboot" && s.CmdlineRoot != "":
			errs = append(errs, fmt.Errorf("slots.%s.cmdline_root: only for tryboot; U-Boot's boot script passes root= itself", name))
		case strings.ContainsAny(s.CmdlineRoot, " \t\r\n"):
			errs = append(errs, fmt.Errorf("slots.%s.cmdline_root %q: holds white space", name, s.CmdlineRoot))
		}
	}
	if a, b := l.Slots["A"].CmdlineRoot, l.Slots["B"].CmdlineRoot; a != "" && b != "" {
		switch {
		case a == b:
			errs = append(errs, fmt.Errorf("slots: A and B both have cmdline_root %s", a))
		case len(a) != len(b):
			errs = append(errs, fmt.Errorf("slots: cmdline_root %s and %s differ in length; the agent rewrites root= in place", a, b))
		}
	}
	if len(l.Slots) != 2 {
		errs = append(errs, fmt.Errorf("slots: want exactly A and B, have %d", len(l.Slots)))
	}
	switch l.Bootloader {
	case "tryboot":
		if l.BootSelector == "" {
			errs = append(errs, errors.New("boot_selector: tryboot needs the FAT partition holding autoboot.txt"))
		}
	case "uboot":
	default:
		errs = append(errs, fmt.Errorf("bootloader %q: want tryboot or uboot", l.Bootloader))
	}
	return errors.Join(errs...)
}

// Options are what the daemon adds to the layout.
type Options struct {
	DataDir        string
	Version        string
	AllowDowngrade bool
	Logger         *slog.Logger
}

// Config builds the update agent's configuration: keys read, slots and the
// board's bootloader set up.
func (l Layout) Config(opt Options) (ota.Config, error) {
	pem, err := os.ReadFile(l.Keys)
	if err != nil {
		return ota.Config{}, fmt.Errorf("firmware layout: trusted keys: %w", err)
	}
	keys, err := bundle.ParseKeyring(pem)
	if err != nil {
		return ota.Config{}, fmt.Errorf("firmware layout: trusted keys %s: %w", l.Keys, err)
	}
	cfg := ota.Config{
		DataDir: opt.DataDir, Board: l.Board, Version: strings.TrimPrefix(opt.Version, "v"), Keys: keys,
		AllowDowngrade: opt.AllowDowngrade, Logger: opt.Logger,
	}
	for i, name := range []string{"A", "B"} {
		s := l.Slots[name]
		cfg.Slots[i] = ota.FileSlot{SlotName: name, BootPath: s.Boot, RootfsPath: s.Rootfs}
		if s.CmdlineRoot != "" {
			if cfg.CmdlineRoots == nil {
				cfg.CmdlineRoots = map[string]string{}
			}
			cfg.CmdlineRoots[name] = s.CmdlineRoot
		}
	}
	switch l.Bootloader {
	case "tryboot":
		cfg.Bootloader = &tryboot.Tryboot{
			Selector:   tryboot.FATPartition{Device: l.BootSelector},
			Partitions: map[string]int{"A": l.Slots["A"].BootPartition, "B": l.Slots["B"].BootPartition},
		}
	case "uboot":
		cfg.Bootloader = &uboot.UBoot{Env: uboot.FWEnv{}, Slots: [2]string{"A", "B"}}
	}
	return cfg, nil
}
