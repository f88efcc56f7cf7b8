package replay

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// statfsFree is the space an unprivileged writer can still use in dir's
// file system (the blocks reserved for root do not count).
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
