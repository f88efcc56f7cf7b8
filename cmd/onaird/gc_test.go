package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesAnEnvironmentsGOGCAlone(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	noEnv := func(string) (string, bool) { return "", false }
	if got := tuneGC(noEnv); got != gcPercent {
		t.Fatalf("without GOGC: %d, want %d", got, gcPercent)
	}
	if now := debug.SetGCPercent(gcPercent); now != gcPercent {
		t.Fatalf("runtime's percent is %d, want %d", now, gcPercent)
	}

	debug.SetGCPercent(80) // as the runtime would have read GOGC=80
	withEnv := func(k string) (string, bool) { return "80", k == "GOGC" }
	if got := tuneGC(withEnv); got != 80 {
		t.Fatalf("with GOGC=80: %d", got)
	}
	if now := debug.SetGCPercent(80); now != 80 {
		t.Fatalf("runtime's percent changed to %d", now)
	}
}
