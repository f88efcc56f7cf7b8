package uplink

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules keeps the uplink pure Go for the boards (arm64 and arm)
// and a plain sink: of the module it may use the hub, the media types and the
// shared RTP packetizer,
// never the encoder pipeline, the viewers' server or the daemon (bitrate
// requests go up through Options.SetBitrate).
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the go command about the module: checked in the native run")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	allowed := map[string]bool{
		"github.com/onair/onair/uplink": true, "github.com/onair/onair/broadcast": true,
		"github.com/onair/onair/media": true, "github.com/onair/onair/media/h264": true,
		"github.com/onair/onair/internal/rtppack": true,
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
				t.Errorf("%v: uplink depends on cgo", env)
			case strings.HasPrefix(dep, "github.com/onair/onair/") && !allowed[dep]:
				t.Errorf("%v: uplink imports %s", env, dep)
			}
		}
	}
}
