package uplink

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(receiverEnv) != "" {
		// Started by the network-namespace test as its far end.
		os.Exit(receiverMain())
	}
	goleak.VerifyTestMain(m)
}
