package layout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/tryboot"
	"github.com/onair/onair/ota/uboot"
)

// The layouts the images carry load, and name the partitions genimage makes.
func TestImageLayouts(t *testing.T) {
	for _, board := range []string{"pi4", "pi5", "zero2w"} {
		t.Run(board, func(t *testing.T) {
			dir := t.TempDir()
			src, err := os.ReadFile(filepath.Join("..", "..", "buildroot", "board", board, "firmware.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "firmware.yaml")
			os.WriteFile(path, src, 0o644)
			_, pub, err := bundle.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "ota-keys.pem"), pub, 0o644)
			l, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if l.Board != board {
				t.Fatalf("board %q", l.Board)
			}
			cfg, err := l.Config(Options{DataDir: dir, Version: "v1.2.3"})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Version != "1.2.3" || cfg.Keys.Len() != 1 || cfg.Slots[0].Name() != "A" || cfg.Slots[1].Name() != "B" {
				t.Fatalf("config %+v", cfg)
			}
			genimage, _ := os.ReadFile(filepath.Join("..", "..", "buildroot", "board", board, "genimage.cfg"))
			switch bl := cfg.Bootloader.(type) {
			case *tryboot.Tryboot:
				if bl.Partitions["A"] != 2 || bl.Partitions["B"] != 3 || bl.Selector.(tryboot.FATPartition).Device != "/dev/mmcblk0p1" {
					t.Fatalf("tryboot %+v", bl)
				}
				// The PARTUUIDs genimage gives rootfs A and B (partitions
				// 5 and 6 of the disk signature).
				want := map[string]string{"A": "PARTUUID=6f6e6169-05", "B": "PARTUUID=6f6e6169-06"}
				if len(cfg.CmdlineRoots) != 2 || cfg.CmdlineRoots["A"] != want["A"] || cfg.CmdlineRoots["B"] != want["B"] {
					t.Fatalf("cmdline roots %v, want %v", cfg.CmdlineRoots, want)
				}
				if !strings.Contains(string(genimage), "disk-signature = 0x6f6e6169") {
					t.Fatal("genimage.cfg does not set the disk signature the cmdline roots name")
				}
				if !strings.Contains(string(genimage), "partition boot-select") {
					t.Fatal("genimage.cfg has no boot-select partition")
				}
			case *uboot.UBoot:
				if board != "zero2w" {
					t.Fatalf("%s uses U-Boot", board)
				}
				if len(cfg.CmdlineRoots) != 0 {
					t.Fatalf("U-Boot board with cmdline roots %v", cfg.CmdlineRoots)
				}
			default:
				t.Fatalf("bootloader %T", bl)
			}
		})
	}
}

func TestRefusesBrokenLayouts(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":            "board: pi4\nbootloader: tryboot\nkeys: k\nboot_selector: /dev/x\nslots: {A: {boot: a, rootfs: b, boot_partition: 2, cmdline_root: PARTUUID=1-05}, B: {boot: c, rootfs: d, boot_partition: 3, cmdline_root: PARTUUID=1-06}}\nextra: 1\n",
		"no cmdline root":        "board: pi4\nbootloader: tryboot\nkeys: k\nboot_selector: /dev/x\nslots: {A: {boot: a, rootfs: b, boot_partition: 2}, B: {boot: c, rootfs: d, boot_partition: 3}}\n",
		"roots differ in length": "board: pi4\nbootloader: tryboot\nkeys: k\nboot_selector: /dev/x\nslots: {A: {boot: a, rootfs: b, boot_partition: 2, cmdline_root: PARTUUID=1-05}, B: {boot: c, rootfs: d, boot_partition: 3, cmdline_root: /dev/sda6}}\n",
		"same root":              "board: pi4\nbootloader: tryboot\nkeys: k\nboot_selector: /dev/x\nslots: {A: {boot: a, rootfs: b, boot_partition: 2, cmdline_root: PARTUUID=1-05}, B: {boot: c, rootfs: d, boot_partition: 3, cmdline_root: PARTUUID=1-05}}\n",
		"root with uboot":        "board: zero2w\nbootloader: uboot\nkeys: k\nslots: {A: {rootfs: b, cmdline_root: PARTUUID=1-05}, B: {rootfs: d, cmdline_root: PARTUUID=1-06}}\n",
		"no board":               "bootloader: uboot\nkeys: k\nslots: {A: {rootfs: b}, B: {rootfs: d}}\n",
		"one slot":               "board: zero2w\nbootloader: uboot\nkeys: k\nslots: {A: {rootfs: b}}\n",
		"logical boot":           "board: pi4\nbootloader: tryboot\nkeys: k\nboot_selector: /dev/x\nslots: {A: {boot: a, rootfs: b, boot_partition: 5}, B: {boot: c, rootfs: d, boot_partition: 3}}\n",
		"no selector":            "board: pi4\nbootloader: tryboot\nkeys: k\nslots: {A: {boot: a, rootfs: b, boot_partition: 2}, B: {boot: c, rootfs: d, boot_partition: 3}}\n",
		"other bootloader":       "board: pi4\nbootloader: grub\nkeys: k\nslots: {A: {rootfs: b}, B: {rootfs: d}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "firmware.yaml")
			os.WriteFile(path, []byte(body), 0o644)
			if _, err := Load(path); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}
