//go:build linux

// Package disktest gives tests a small file system of their own, a tmpfs
// mounted for the test, that they can fill up and make read-only. It needs
// the right to mount (root, or CAP_SYS_ADMIN); without it the test is
// skipped with a message that says so.
package disktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Disk is a tmpfs mounted for one test.
type Disk struct {
	// Dir is where it is mounted.
	Dir string

	t testing.TB
}

// Mount mounts a tmpfs of size bytes in a new directory and unmounts it
// when the test ends.
func Mount(t testing.TB, size int64) *Disk {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system to fill needs root (or CAP_SYS_ADMIN); run the test as root to cover a full or read-only disk")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mounting a tmpfs is not permitted here (%v: %s); run the test where root may mount to cover a full or read-only disk", err, bytes.TrimSpace(out))
	}
	d := &Disk{Dir: dir, t: t}
	// Lazily: a process the test started may still hold files open.
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return d
}

// Free returns the bytes available on the disk.
func (d *Disk) Free() uint64 {
	d.t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(d.Dir, &st); err != nil {
		d.t.Fatal(err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}

// fillName is the file Fill writes and Unfill removes.
const fillName = ".fill"

// Fill writes a file that leaves only leave bytes free (rounded up to a
// page).
func (d *Disk) Fill(leave uint64) {
	d.t.Helper()
	free := d.Free()
	if free <= leave {
		return
	}
	f, err := os.OpenFile(filepath.Join(d.Dir, fillName), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		d.t.Fatal(err)
	}
	// Allocated, not sparse: tmpfs counts only pages written.
	if err := unix.Fallocate(int(f.Fd()), 0, st.Size(), int64(free-leave)); err != nil {
		d.t.Fatalf("filling the disk: %v", err)
	}
}

// Unfill removes what Fill wrote.
func (d *Disk) Unfill() {
	d.t.Helper()
	if err := os.Remove(filepath.Join(d.Dir, fillName)); err != nil {
		d.t.Fatal(err)
	}
}

// Remount mounts the disk again read-only or read-write. It returns the
// error of mount: the kernel refuses to make a file system read-only
// while a process holds a file on it open for writing.
func (d *Disk) Remount(readOnly bool) error {
	mode := "rw"
	if readOnly {
		mode = "ro"
	}
	out, err := exec.Command("mount", "-o", "remount,"+mode, d.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount -o remount,%s: %w: %s", mode, err, strings.TrimSpace(string(out)))
	}
	return nil
}
