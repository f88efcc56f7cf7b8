// Package tryboot is the Raspberry Pi 4/5 bootloader of the update agent:
// the firmware's tryboot with autoboot.txt (tryboot_a_b=1) on a small
// boot-selector FAT partition. The committed slot is the [all] section's
// boot_partition; a trial is the [tryboot] section's, used only for the one
// boot that follows a reboot with the "tryboot" argument. A power cut
// loses that argument, so it always comes back to the committed slot.
package tryboot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FileSize is the size autoboot.txt always has. At most one sector, so that
// rewriting it is one sector write, which an SD card completes or not; and
// always the same size, so the FAT directory entry never changes with it.
const FileSize = 512

// ErrAutoboot marks an autoboot.txt that the firmware could not use.
var ErrAutoboot = errors.New("invalid autoboot.txt")

// Selection is what autoboot.txt selects.
type Selection struct {
	// Committed is the boot partition of every normal boot ([all]).
	Committed int
	// Trial is the boot partition of a tryboot boot ([tryboot]).
	Trial int
}

// Render writes autoboot.txt for sel, padded with a comment to FileSize.
func Render(sel Selection) []byte {
	var b bytes.Buffer
	b.WriteString("# OnAir boot selector, rewritten in place by the update agent. Keep 512 bytes.\n")
	fmt.Fprintf(&b, "[all]\ntryboot_a_b=1\nboot_partition=%d\n", sel.Committed)
	fmt.Fprintf(&b, "[tryboot]\nboot_partition=%d\n", sel.Trial)
	pad := FileSize - b.Len() - 1
	b.WriteString(strings.Repeat("#", pad))
	b.WriteByte('\n')
	return b.Bytes()
}

// Parse reads autoboot.txt the way the firmware does: conditional sections
// in brackets, later settings override earlier ones, [tryboot] applies only
// to a tryboot boot, unknown conditions never apply (they name hardware
// this is not, as far as the selector file is concerned).
func Parse(data []byte) (Selection, error) {
	var sel Selection
	var err error
	if sel.Committed, err = partitionFor(data, false); err != nil {
		return Selection{}, err
	}
	if sel.Trial, err = partitionFor(data, true); err != nil {
		return Selection{}, err
	}
	return sel, nil
}

func partitionFor(data []byte, tryboot bool) (int, error) {
	active := true
	partition, abSeen := 0, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			cond, ok := strings.CutSuffix(line, "]")
			if !ok {
				return 0, fmt.Errorf("%w: section %q", ErrAutoboot, line)
			}
			switch strings.TrimPrefix(cond, "[") {
			case "all":
				active = true
			case "tryboot":
				active = tryboot
			default:
				active = false
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return 0, fmt.Errorf("%w: line %q", ErrAutoboot, line)
		}
		if !active {
			continue
		}
		switch strings.TrimSpace(key) {
		case "boot_partition":
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 1 || n > 127 {
				return 0, fmt.Errorf("%w: boot_partition %q", ErrAutoboot, value)
			}
			partition = n
		case "tryboot_a_b":
			abSeen = strings.TrimSpace(value) == "1"
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrAutoboot, err)
	}
	if !abSeen {
		return 0, fmt.Errorf("%w: tryboot_a_b=1 missing", ErrAutoboot)
	}
	if partition == 0 {
		return 0, fmt.Errorf("%w: no boot_partition", ErrAutoboot)
	}
	return partition, nil
}
