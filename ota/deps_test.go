package ota_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules: the update code builds without cgo for the boards, and
// the bundle format (used by the workstation tool too) stays free of
// networking.
func TestImportRules(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go tool not found")
	}
	list := func(env []string, pkgs ...string) []string {
		t.Helper()
		cmd := exec.Command(goTool, append([]string{"list", "-deps"}, pkgs...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	pkgs := []string{"github.com/onair/onair/ota/...", "github.com/onair/onair/cmd/onair-bundle"}
	for _, arch := range [][]string{{"GOARCH=arm64"}, {"GOARCH=arm", "GOARM=7"}} {
		env := append([]string{"CGO_ENABLED=0", "GOOS=linux"}, arch...)
		for _, dep := range list(env, pkgs...) {
			if dep == "runtime/cgo" {
				t.Errorf("%v: ota depends on cgo", arch)
			}
		}
	}
	for _, dep := range list(nil, "github.com/onair/onair/ota/bundle") {
		// crypto/x509 (PEM keys) brings in package net; HTTP must not come.
		if dep == "net/http" {
			t.Errorf("ota/bundle depends on %s", dep)
		}
	}
}
