package v4l2

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// defaultEDIDFile is the EDID the repository ships for HDMI bridges
// (video.edid); `go test -run TestDefaultEDIDFile -update-edid` writes it
// again from defaultEDIDSpec.
const defaultEDIDFile = "edid/edid-1080p30.bin"

var updateEDID = flag.Bool("update-edid", false, "rewrite "+defaultEDIDFile+" from defaultEDIDSpec")

func TestDefaultEDIDFile(t *testing.T) {
	built, err := buildEDID(defaultEDIDSpec)
	if err != nil {
		t.Fatal(err)
	}
	if *updateEDID {
		if err := os.WriteFile(defaultEDIDFile, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shipped, err := LoadEDID(defaultEDIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, built) {
		t.Fatalf("%s differs from what buildEDID makes of defaultEDIDSpec: run go test -run TestDefaultEDIDFile -update-edid", defaultEDIDFile)
	}
	if len(shipped) != 256 {
		t.Fatalf("%s is %d bytes, want 2 blocks", defaultEDIDFile, len(shipped))
	}
}

// TestDefaultEDIDPassesEdidDecode has the shipped EDID judged by an
// independent parser, Debian's edid-decode (make test installs it): it must
// conform without a failure or a warning and list the modes we promise.
func TestDefaultEDIDPassesEdidDecode(t *testing.T) {
	tool, err := exec.LookPath("edid-decode")
	if err != nil {
		t.Fatalf("edid-decode not installed (Debian package edid-decode, part of make test's packages): %v", err)
	}
	path, err := filepath.Abs(defaultEDIDFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "--check", path).CombinedOutput()
	report := string(out)
	if err != nil {
		t.Fatalf("edid-decode --check %s: %v\n%s", defaultEDIDFile, err, report)
	}
	for _, want := range []string{
		"EDID conformity: PASS",
		"DTD 1:  1920x1080   30.000000 Hz", // preferred
		"VIC  34:  1920x1080   30.000000 Hz",
		"VIC  33:  1920x1080   25.000000 Hz",
		"VIC   4:  1280x720    60.000000 Hz",
		"VIC  19:  1280x720    50.000000 Hz",
		"Source physical address: 1.0.0.0",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("edid-decode output lacks %q", want)
		}
	}
	if strings.Contains(report, "Warnings:") || strings.Contains(report, "Failures:") {
		t.Errorf("edid-decode reports problems:\n%s", report)
	}
	if t.Failed() {
		t.Logf("edid-decode output:\n%s", report)
	}
}

func TestCheckEDID(t *testing.T) {
	good, err := buildEDID(defaultEDIDSpec)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		edid []byte
		want string
	}{
		{"shipped", good, ""},
		{"empty", nil, "0 bytes"},
		{"half a block", good[:64], "64 bytes"},
		{"base block only, announcing one extension", good[:128], "announces 1 extension blocks, the file has 0"},
		{"bad header", corrupt(func(b []byte) []byte { b[0] = 1; return b }), "header"},
		{"base checksum", corrupt(func(b []byte) []byte { b[20]++; return b }), "block 0 checksum"},
		{"extension checksum", corrupt(func(b []byte) []byte { b[200]++; return b }), "block 1 checksum"},
		{"nine blocks", corrupt(func(b []byte) []byte {
			b = append(b, make([]byte, 7*edidBlockSize)...)
			return b
		}), "at most 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEDID(tt.edid)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckEDID: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadEDID) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckEDID = %v, want ErrBadEDID saying %q", err, tt.want)
			}
		})
	}
}

func TestLoadEDIDNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.bin")
	if err := os.WriteFile(path, make([]byte, 128), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadEDID(path)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, ErrBadEDID) {
		t.Fatalf("LoadEDID = %v, want ErrBadEDID naming %s", err, path)
	}
	if _, err := LoadEDID(filepath.Join(t.TempDir(), "missing.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadEDID of a missing file = %v, want os.ErrNotExist", err)
	}
}

// FuzzCheckEDID: EDID files come from the user's disk; CheckEDID must
// never panic and must accept only what it can vouch for.
func FuzzCheckEDID(f *testing.F) {
	good, err := buildEDID(defaultEDIDSpec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:128])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckEDID(b) != nil {
			return
		}
		if len(b)%edidBlockSize != 0 || int(b[126]) != len(b)/edidBlockSize-1 {
			t.Fatalf("CheckEDID accepted %d bytes with %d extensions", len(b), b[126])
		}
	})
}
