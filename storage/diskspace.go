package storage

import (
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// badgerReserve is how much free space the file system of a Badger store
// must keep for it to accept writes. Badger grows its files by writing
// into memory mappings of them, and such a write on a full disk does not
// fail: the kernel kills the process (SIGBUS). The reserve covers what
// accepted writes can still make Badger need: the rest of the current
// memtable's log (twice its size), its flush into a table, and a
// compaction of small levels.
const badgerReserve = 64 << 20

// diskSpace refuses writes to a Badger store while its file system has
// less than the reserve free, and says once when that begins and once
// when it ends.
type diskSpace struct {
	dir     string
	reserve uint64
	logger  *zap.Logger
	// free reports the bytes available to this process on the file
	// system of dir; ok is false where it cannot tell.
	free func(dir string) (bytes uint64, ok bool, err error)

	mu    sync.Mutex
	full  bool
	since time.Time
}

// check returns an error naming the directory when a write must be
// refused for want of space.
func (d *diskSpace) check() error {
	free, ok, err := d.free(d.dir)
	if !ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: badger database %q: checking the free space of its disk: %w", d.dir, err)
	}
	full := free < d.reserve
	d.mu.Lock()
	if full != d.full {
		now := time.Now()
		if full {
			d.logger.Error("the disk of the state store is full: writes are refused (503) until space is freed",
				zap.String("dir", d.dir), zap.Uint64("free_bytes", free), zap.Uint64("needed_bytes", d.reserve))
		} else {
			d.logger.Info("the disk of the state store has space again: writes are accepted",
				zap.String("dir", d.dir), zap.Uint64("free_bytes", free), zap.Duration("full_for", now.Sub(d.since).Round(time.Millisecond)))
		}
		d.full, d.since = full, now
	}
	d.mu.Unlock()
	if full {
		return fmt.Errorf("storage: badger database %q: its disk is full: %d MiB free, and writing needs %d MiB free",
			d.dir, free>>20, d.reserve>>20)
	}
	return nil
}
