package board

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadPi(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")
	write(t, root, "proc/cpuinfo", "processor\t: 0\nHardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000abcdef12\nModel\t\t: Raspberry Pi 4\n")
	write(t, root, "sys/class/thermal/thermal_zone0/temp", "48312\n")
	write(t, root, "sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1/in0_lcrit_alarm", "1\n")
	r := Reader{Root: root}
	info := r.Read()
	want := Info{Model: "Raspberry Pi 4 Model B Rev 1.4", Serial: "10000000abcdef12", TemperatureC: 48.312, Throttled: true}
	if info != want {
		t.Fatalf("got %+v want %+v", info, want)
	}
	id, err := r.DeviceID()
	if err != nil || id != "onair-abcdef12" {
		t.Fatalf("DeviceID = %q, %v", id, err)
	}
}

func TestReadEmptyRoot(t *testing.T) {
	r := Reader{Root: t.TempDir()}
	info := r.Read()
	if info.Model != "unknown" || info.Serial != "" || info.Throttled {
		t.Fatalf("got %+v", info)
	}
	// Falls back to a MAC address; on a machine without one it says so.
	id, err := r.DeviceID()
	if err == nil && len(id) != len("onair-")+8 {
		t.Fatalf("DeviceID from MAC = %q", id)
	}
}
