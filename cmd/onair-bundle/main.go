// Command onair-bundle makes signing keys and builds, signs and verifies
// OnAir update bundles on a workstation or in the image build.
//
//	onair-bundle keygen -out release          # release.key (secret), release.pub
//	onair-bundle create -key release.key -version 1.4.2 -board pi4 \
//	    [-boot boot-a.vfat [-boot-root PARTUUID=6f6e6169-05]] -rootfs rootfs.ext4 \
//	    -out onair-pi4-1.4.2.bundle
//	onair-bundle verify -keys trusted.pub [-board pi4] onair-pi4-1.4.2.bundle
//
// The format is described in docs/bundle.md.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onair/onair/ota/bundle"
	"github.com/onair/onair/ota/cmdline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "onair-bundle:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

const usage = "usage: onair-bundle keygen|create|verify [flags] (see -h of each)"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", flag.ErrHelp, usage)
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout)
	case "create":
		return create(ctx, args[1:], stdout)
	case "verify":
		return verify(ctx, args[1:], stdout)
	}
	return fmt.Errorf("%w: unknown command %q; %s", flag.ErrHelp, args[0], usage)
}

// stringList collects a repeated flag (-key a -key b).
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "path prefix: writes PREFIX.key (secret, mode 0600) and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: keygen -out PREFIX", flag.ErrHelp)
	}
	priv, pub, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	// O_EXCL: overwriting a signing key by accident would lock out every box
	// that trusts only the old one.
	f, err := os.OpenFile(*out+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return fmt.Errorf("write private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	if err := os.WriteFile(*out+".pub", pub, 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	kr, err := bundle.ParseKeyring(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: %s.key (keep secret), %s.pub (goes into the image)\n", kr.IDs()[0], *out, *out)
	return nil
}

func create(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	var keys stringList
	fs.Var(&keys, "key", "private key file; repeat to sign with several keys (key rotation)")
	version := fs.String("version", "", "firmware version MAJOR.MINOR.PATCH")
	board := fs.String("board", "", "board: pi4, pi5, zero2w")
	bootPath := fs.String("boot", "", "boot partition image (optional), as built for slot A")
	bootRoot := fs.String("boot-root", "", "root= that cmdline.txt in the boot image must name (Pi 4/5: slot A's rootfs; the box rewrites it for the slot it installs into)")
	rootfsPath := fs.String("rootfs", "", "root file system image")
	out := fs.String("out", "", "bundle file to write")
	created := fs.String("created-at", "", "creation time, RFC 3339 (default: SOURCE_DATE_EPOCH, else now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(keys) == 0 || *version == "" || *board == "" || *rootfsPath == "" || *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: create -key K [-key K2] -version V -board B [-boot IMG [-boot-root ROOT]] -rootfs IMG -out FILE", flag.ErrHelp)
	}
	if *bootRoot != "" {
		if *bootPath == "" {
			return fmt.Errorf("%w: -boot-root needs -boot", flag.ErrHelp)
		}
		if err := checkBootRoot(*bootPath, *bootRoot); err != nil {
			return err
		}
	}
	createdAt, err := creationTime(*created)
	if err != nil {
		return err
	}
	opts := bundle.CreateOptions{Version: *version, Board: *board, CreatedAt: createdAt}
	for _, k := range keys {
		data, err := os.ReadFile(k)
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		priv, err := bundle.ParsePrivateKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		opts.Keys = append(opts.Keys, priv)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Written next to the target and renamed at the end, so a failed or
	// interrupted run never leaves a plausible-looking partial bundle.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".onair-bundle-*")
	if err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	defer os.Remove(tmp.Name())
	m, err := bundle.CreateFromFiles(tmp, *bootPath, *rootfsPath, opts)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	fmt.Fprintf(stdout, "%s: version %s for %s, image %d bytes, sha256 %s, %d signature(s)\n",
		*out, m.Version, m.Board, m.ImageSize, m.ImageSHA256, len(opts.Keys))
	return nil
}

// checkBootRoot makes sure the boot image names root, so that a bundle the
// boxes would refuse after downloading it is not built at all.
func checkBootRoot(bootPath, root string) error {
	f, err := os.Open(bootPath)
	if err != nil {
		return fmt.Errorf("boot image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("boot image: %w", err)
	}
	got, err := cmdline.Root(f, st.Size())
	if err != nil {
		return fmt.Errorf("boot image %s: %w", bootPath, err)
	}
	if got != root {
		return fmt.Errorf("boot image %s: %s names root=%s, -boot-root says %s", bootPath, cmdline.FileName, got, root)
	}
	return nil
}

func creationTime(flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created-at: %w", err)
		}
		return t, nil
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		s, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		return time.Unix(s, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

func verify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	keysPath := fs.String("keys", "", "trusted public keys (one or more PEM blocks)")
	board := fs.String("board", "", "refuse a bundle for another board")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keysPath == "" || fs.NArg() != 1 {
		return fmt.Errorf("%w: verify -keys FILE [-board B] BUNDLE", flag.ErrHelp)
	}
	data, err := os.ReadFile(*keysPath)
	if err != nil {
		return fmt.Errorf("read keys: %w", err)
	}
	keys, err := bundle.ParseKeyring(data)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("open bundle: %w", err)
	}
	defer f.Close()
	b, err := bundle.Open(f, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if *board != "" && b.Manifest.Board != *board {
		return fmt.Errorf("%s: bundle is for %s, not %s", fs.Arg(0), b.Manifest.Board, *board)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, b.Image()); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	m := b.Manifest
	fmt.Fprintf(stdout, "%s: OK, signed by %s: version %s for %s, image %d bytes (boot %d), sha256 %s, created %s\n",
		fs.Arg(0), b.KeyID, m.Version, m.Board, m.ImageSize, m.BootSize, m.ImageSHA256, m.CreatedAt)
	if m.BootSize > 0 {
		// The image is verified now; what its boot partition names is
		// what a Pi 4/5 box rewrites for the slot it installs into.
		root, err := cmdline.Root(io.NewSectionReader(f, b.HeaderSize, m.BootSize), m.BootSize)
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "boot image: %s root=%s\n", cmdline.FileName, root)
		case errors.Is(err, cmdline.ErrNoFile):
			fmt.Fprintf(stdout, "boot image: no %s (the boot script passes root=)\n", cmdline.FileName)
		default:
			fmt.Fprintf(stdout, "boot image: %v\n", err)
		}
	}
	return nil
}
