package bundle

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a firmware version MAJOR.MINOR.PATCH. Only numbers: a version
// decides whether an update is a downgrade, so its order must be obvious.
type Version [3]uint32

// ParseVersion reads "1.4.2".
func ParseVersion(s string) (Version, error) {
	var v Version
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		// Leading zeros would give one version two spellings.
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return v, fmt.Errorf("version %q: part %q is not a plain number", s, p)
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return v, fmt.Errorf("version %q: part %q is not a plain number", s, p)
		}
		v[i] = uint32(n)
	}
	return v, nil
}

// String formats the version as ParseVersion reads it.
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	for i := range v {
		switch {
		case v[i] < w[i]:
			return -1
		case v[i] > w[i]:
			return 1
		}
	}
	return 0
}
