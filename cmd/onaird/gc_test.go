package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesAnEnvironmentsGOGCAlone(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	if !tuneGC(func(string) (string, bool) { return "", false }) {
		t.Fatal("without GOGC: not set")
	}
	if now := debug.SetGCPercent(-1); now != gcPercent {
		t.Fatalf("without GOGC the runtime's percent is %d, want %d", now, gcPercent)
	}
	// -1: as the runtime would have read GOGC=off.
	if tuneGC(func(k string) (string, bool) { return "off", k == "GOGC" }) {
		t.Fatal("with GOGC=off: set anyway")
	}
	if now := debug.SetGCPercent(100); now != -1 {
		t.Fatalf("with GOGC=off the runtime's percent changed to %d", now)
	}
}
