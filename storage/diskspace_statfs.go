//go:build linux || darwin || freebsd

package storage

import "golang.org/x/sys/unix"

// freeSpace reports the bytes available to this process on the file
// system of dir.
func freeSpace(dir string) (uint64, bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, true, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}
