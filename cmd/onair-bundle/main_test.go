package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/otatest"
)

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("onair-bundle %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// TestKeygenCreateVerify runs the command as a release engineer would,
// including a rotation bundle signed with two keys.
func TestKeygenCreateVerify(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	runOK(t, "keygen", "-out", p("old"))
	runOK(t, "keygen", "-out", p("new"))
	if st, err := os.Stat(p("old.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", st.Mode(), err)
	}
	if err := run(context.Background(), []string{"keygen", "-out", p("old")}, &bytes.Buffer{}); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
	if err := os.WriteFile(p("boot.img"), bytes.Repeat([]byte("b"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("rootfs.img"), bytes.Repeat([]byte("r"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	runOK(t, "create", "-key", p("old.key"), "-key", p("new.key"), "-version", "2.0.1", "-board", "pi5",
		"-boot", p("boot.img"), "-rootfs", p("rootfs.img"), "-out", p("x.bundle"))

	// The new key alone verifies it, as a box after rotation would.
	out := runOK(t, "verify", "-keys", p("new.pub"), "-board", "pi5", p("x.bundle"))
	if !strings.Contains(out, "OK") || !strings.Contains(out, "version 2.0.1") || !strings.Contains(out, "boot 1000") {
		t.Fatalf("verify said %q", out)
	}
	f, err := os.Open(p("x.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pub, _ := os.ReadFile(p("old.pub"))
	kr, err := bundle.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(f, kr)
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.CreatedAt != "2023-11-14T22:13:20Z" || b.Manifest.BootSize != 1000 || b.Manifest.ImageSize != 6000 {
		t.Fatalf("manifest %+v", b.Manifest)
	}

	if err := run(context.Background(), []string{"verify", "-keys", p("new.pub"), "-board", "pi4", p("x.bundle")}, &bytes.Buffer{}); err == nil {
		t.Fatal("verify accepted the wrong board")
	}
	data, _ := os.ReadFile(p("x.bundle"))
	data[len(data)-1] ^= 1
	os.WriteFile(p("bad.bundle"), data, 0o644)
	err = run(context.Background(), []string{"verify", "-keys", p("new.pub"), p("bad.bundle")}, &bytes.Buffer{})
	if !errors.Is(err, bundle.ErrHashMismatch) {
		t.Fatalf("verify of a damaged bundle: %v", err)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"create"}, {"verify"}, {"keygen"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v, want usage", args, err)
		}
	}
	if err := run(context.Background(), []string{"create", "-key", "/nonexistent", "-version", "1.0.0", "-board", "pi4", "-rootfs", "/nonexistent", "-out", t.TempDir() + "/o"}, &bytes.Buffer{}); err == nil {
		t.Error("create with missing files succeeded")
	}
}

// TestBootRoot: with a real FAT boot image (mkfs.vfat, mcopy), create
// checks the root= its cmdline.txt names against -boot-root, and verify
// shows it.
func TestBootRoot(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	runOK(t, "keygen", "-out", p("k"))
	otatest.Run(t, "mkfs.vfat", "-C", p("boot-a.vfat"), "1024")
	if err := os.WriteFile(p("cmdline.txt"), []byte("console=tty1 root=PARTUUID=6f6e6169-05 rootwait ro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	otatest.Run(t, "mcopy", "-i", p("boot-a.vfat"), p("cmdline.txt"), "::cmdline.txt")
	if err := os.WriteFile(p("rootfs.img"), bytes.Repeat([]byte("r"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(root string) []string {
		return []string{"create", "-key", p("k.key"), "-version", "1.0.0", "-board", "pi4", "-boot", p("boot-a.vfat"),
			"-boot-root", root, "-rootfs", p("rootfs.img"), "-out", p("x.bundle")}
	}
	err := run(context.Background(), args("PARTUUID=6f6e6169-06"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "names root=PARTUUID=6f6e6169-05") {
		t.Fatalf("create with another -boot-root: %v", err)
	}
	if _, err := os.Stat(p("x.bundle")); err == nil {
		t.Fatal("a refused create left a bundle")
	}
	runOK(t, args("PARTUUID=6f6e6169-05")...)
	out := runOK(t, "verify", "-keys", p("k.pub"), p("x.bundle"))
	if !strings.Contains(out, "boot image: cmdline.txt root=PARTUUID=6f6e6169-05") {
		t.Fatalf("verify said %q", out)
	}
	err = run(context.Background(), []string{"create", "-key", p("k.key"), "-version", "1.0.0", "-board", "pi4",
		"-boot-root", "x", "-rootfs", p("rootfs.img"), "-out", p("y.bundle")}, &bytes.Buffer{})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-boot-root without -boot: %v", err)
	}
}
