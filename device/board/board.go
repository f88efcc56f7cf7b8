// Package board reads what the box knows about its own hardware: model,
// serial, temperature and throttling, and derives a stable device id.
package board

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Info describes the board.
type Info struct {
	Model        string  `json:"model"`
	Serial       string  `json:"serial"`
	TemperatureC float64 `json:"temperature_c"`
	Throttled    bool    `json:"throttled"`
}

// Reader reads board facts below a root directory ("/" on a box, a temp dir
// in tests) so that tests can lay out /proc and /sys files.
type Reader struct {
	Root string
}

// Read gathers what is available; missing files leave fields empty.
func (r Reader) Read() Info {
	var info Info
	if b, err := os.ReadFile(r.path("proc/device-tree/model")); err == nil {
		info.Model = strings.TrimRight(string(b), "\x00\n")
	} else if b, err := os.ReadFile(r.path("sys/class/dmi/id/product_name")); err == nil {
		info.Model = strings.TrimSpace(string(b))
	}
	if info.Model == "" {
		info.Model = "unknown"
	}
	info.Serial = r.serial()
	if b, err := os.ReadFile(r.path("sys/class/thermal/thermal_zone0/temp")); err == nil {
		if milli, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			info.TemperatureC = float64(milli) / 1000
		}
	}
	// The Pi firmware reports under-voltage and throttling through this
	// hwmon flag (raspberrypi-hwmon "in0_lcrit_alarm").
	matches, _ := filepath.Glob(r.path("sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon*/in0_lcrit_alarm"))
	for _, m := range matches {
		if b, err := os.ReadFile(m); err == nil && strings.TrimSpace(string(b)) == "1" {
			info.Throttled = true
		}
	}
	return info
}

func (r Reader) path(p string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

var serialLine = regexp.MustCompile(`(?m)^Serial\s*:\s*([0-9a-fA-F]+)\s*$`)

func (r Reader) serial() string {
	if b, err := os.ReadFile(r.path("proc/device-tree/serial-number")); err == nil {
		if s := strings.TrimRight(string(b), "\x00\n"); s != "" {
			return s
		}
	}
	if b, err := os.ReadFile(r.path("proc/cpuinfo")); err == nil {
		if m := serialLine.FindSubmatch(b); m != nil && strings.Trim(string(m[1]), "0") != "" {
			return string(m[1])
		}
	}
	return ""
}

// DeviceID derives a stable id: "onair-" and the last 8 hex digits of the
// board serial, else of the first hardware MAC address.
func (r Reader) DeviceID() (string, error) {
	if s := r.serial(); s != "" {
		return "onair-" + lastN(strings.ToLower(s), 8), nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("derive device id: list interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagLoopback != 0 || len(iface.HardwareAddr) < 6 || bytes.Equal(iface.HardwareAddr, make([]byte, len(iface.HardwareAddr))) {
			continue
		}
		return "onair-" + lastN(strings.ReplaceAll(iface.HardwareAddr.String(), ":", ""), 8), nil
	}
	return "", errors.New("derive device id: no board serial and no network interface with a MAC address; set device_id")
}

func lastN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
