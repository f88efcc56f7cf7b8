package gpio

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules keeps gpio a leaf: it builds without cgo for the boards
// (arm64 and arm), imports no other package of the module (inputs reach the
// hub through the daemon, never the other way round), and the production
// package does not carry its fakes.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the go command about the module: checked in the native run")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	for _, env := range [][]string{
		{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"},
		{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"},
	} {
		cmd := exec.Command(goTool, "list", "-deps", ".")
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", env, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case dep == "runtime/cgo":
				t.Errorf("%v: gpio depends on cgo", env)
			case dep == "github.com/onair/onair/gpio":
			case strings.HasPrefix(dep, "github.com/onair/onair/"):
				t.Errorf("%v: gpio imports %s", env, dep)
			case dep == "net/http":
				t.Errorf("%v: gpio imports %s", env, dep)
			}
		}
	}
}
