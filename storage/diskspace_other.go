//go:build !(linux || darwin || freebsd)

package storage

// freeSpace cannot tell the free space here; writes are not held back.
func freeSpace(string) (uint64, bool, error) { return 0, false, nil }
