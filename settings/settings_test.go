package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Get(); got.Title != nil || got.BitrateKbps != nil {
		t.Fatalf("fresh store has overrides: %+v", got)
	}
	title, kbps := "Keynote", 1800
	if err := s.Update(func(v *Settings) { v.Title = &title }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(v *Settings) { v.BitrateKbps = &kbps }); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := again.Get()
	if got.Title == nil || *got.Title != "Keynote" || got.BitrateKbps == nil || *got.BitrateKbps != 1800 {
		t.Fatalf("after reopen: %+v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestDamagedFileIsSetAside(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("{\"title\": "), 0o600)
	s, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
	if s == nil || s.Get().Title != nil {
		t.Fatal("a damaged file must leave a usable, empty store")
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".bad")); err != nil {
		t.Fatalf("damaged file not kept aside: %v", err)
	}
}

func TestFailedWriteKeepsSettings(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	title := "one"
	s.Update(func(v *Settings) { v.Title = &title })
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() == 0 {
		// root writes through directory permissions: use a vanished directory.
		os.Chmod(dir, 0o700)
		os.RemoveAll(dir)
	}
	other := "two"
	if err := s.Update(func(v *Settings) { v.Title = &other }); err == nil {
		t.Fatal("update into an unwritable directory succeeded")
	}
	if got := s.Get(); *got.Title != "one" {
		t.Fatalf("a failed update changed the settings to %q", *got.Title)
	}
}
