package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Badger is a Store backed by an embedded Badger database in a local
// directory. It suits a single Caddy instance; Badger locks its directory, so
// only one process can have it open at a time.
type Badger struct {
	db     *badger.DB
	dir    string
	logger *zap.Logger

	// incrementLocks serialise increments of a key within this process
	// (the only one that can open the database): optimistic transactions
	// alone would make many concurrent increments of one counter retry
	// until they give up.
	incrementLocks [64]sync.Mutex

	// Only this process can open the database, so its notifications
	// stay within it.
	localNotifier

	// space holds writes back while the disk is nearly full.
	space diskSpace

	stopGC    chan struct{}
	gcDone    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Interface guard
var _ Store = (*Badger)(nil)

const (
	// headerLen is the size of the deadline header in front of every value.
	headerLen = 8

	// gcInterval is how often the value log is garbage-collected. Values
	// here are small and short-lived, so there is no need to be eager.
	gcInterval = 5 * time.Minute

	// gcDiscardRatio makes GC rewrite a value log file once at least half of
	// it is garbage.
	gcDiscardRatio = 0.5

	// maxTxnAttempts bounds retries of a read-write transaction that lost
	// to a concurrent one. A retry re-reads the key and so normally ends in
	// ErrNotFound or ErrConflict on the first or second attempt.
	maxTxnAttempts = 20
)

// OpenBadger opens (creating it if necessary) the Badger database in dir,
// tuned for a small memory footprint, and starts its background value-log
// garbage collection. Log messages go to logger, which may be nil. Callers
// must call Close when done.
func OpenBadger(dir string, logger *zap.Logger) (*Badger, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.Named("badger")

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: creating badger directory %q: %w", dir, err)
	}

	// Badger's defaults assume a dedicated database server (64 MiB
	// memtables, 256 MiB block cache, 1 GiB value log files); this store
	// holds a few megabytes of tokens next to a web server.
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).
		// Issued codes and rotated refresh tokens must survive a crash, or
		// a client could be handed a token the server then forgets.
		WithSyncWrites(true).
		WithLogger(badgerLogger{logger})

	db, err := badger.Open(opts)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("storage: badger database %q is locked, probably by another "+
				"Caddy process using the same storage directory; to apply a new config use "+
				"`caddy reload` instead of starting a second instance: %w", dir, err)
		}
		// Badger's errors do not wrap the file system's, so ask it directly.
		if werr := checkWritable(dir); werr != nil {
			return nil, fmt.Errorf("storage: badger database %q is not writable: Caddy must be able "+
				"to create and write files in it (check its owner and permissions, and that its "+
				"file system is not mounted read-only): %w", dir, werr)
		}
		return nil, fmt.Errorf("storage: opening badger database in %q: %w", dir, err)
	}

	b := &Badger{
		db:     db,
		dir:    dir,
		logger: logger,
		stopGC: make(chan struct{}),
		gcDone: make(chan struct{}),
		space:  diskSpace{dir: dir, reserve: badgerReserve, logger: logger, free: freeSpace},
	}
	go b.runGC()
	if err := checkSchema(context.Background(), b, fmt.Sprintf("badger database %q", dir)); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// checkWritable reports why a file cannot be created in dir, if it cannot.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// Close stops the background garbage collection and closes the database,
// giving up after CloseTimeout. It is safe to call more than once; later
// calls return the first result.
func (b *Badger) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = closeWithin(CloseTimeout, fmt.Sprintf("badger database %q", b.dir), func() error {
			// GC must not run against a closing database.
			close(b.stopGC)
			<-b.gcDone
			return b.db.Close()
		})
	})
	return b.closeErr
}

// runGC periodically reclaims value log space taken by deleted, overwritten
// and expired entries, which Badger does not do on its own.
func (b *Badger) runGC() {
	defer close(b.gcDone)
	ticker := time.NewTicker(gcInterval)
	defer ticker.Stop()
	for {
		select {
		case <-b.stopGC:
			return
		case <-ticker.C:
		}
		// Each successful run rewrites one file; keep going until there
		// is nothing worth rewriting (ErrNoRewrite) or we are stopped.
		for {
			err := b.db.RunValueLogGC(gcDiscardRatio)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) {
					b.logger.Warn("value log garbage collection failed", zap.Error(err))
				}
				break
			}
			select {
			case <-b.stopGC:
				return
			default:
			}
		}
	}
}

// Get implements Store.
func (b *Badger) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var value []byte
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		value, err = getLive(txn, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return value, nil
}

// Put implements Store.
func (b *Badger) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	return b.update(func(txn *badger.Txn) error {
		return txn.SetEntry(newEntry(key, value, ttl))
	})
}

// Create implements Store.
func (b *Badger) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	return b.update(func(txn *badger.Txn) error {
		// The read registers key with Badger's conflict detection, so of
		// two concurrent Creates only one can commit.
		_, err := getLive(txn, key)
		switch {
		case err == nil:
			return ErrConflict
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return txn.SetEntry(newEntry(key, value, ttl))
	})
}

// Take implements Store.
func (b *Badger) Take(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var value []byte
	err := b.update(func(txn *badger.Txn) error {
		var err error
		value, err = getLive(txn, key)
		if err != nil {
			return err
		}
		return txn.Delete([]byte(key))
	})
	if err != nil {
		return nil, err
	}
	return value, nil
}

// Swap implements Store.
func (b *Badger) Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	return b.update(func(txn *badger.Txn) error {
		current, err := getLive(txn, key)
		if err != nil {
			return err
		}
		if !bytes.Equal(current, old) {
			return ErrConflict
		}
		return txn.SetEntry(newEntry(key, value, ttl))
	})
}

// Increment implements Store.
func (b *Badger) Increment(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkWrite(ctx, ttl); err != nil {
		return 0, err
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	lock := &b.incrementLocks[h.Sum32()%uint32(len(b.incrementLocks))]
	lock.Lock()
	defer lock.Unlock()
	var count int64
	err := b.update(func(txn *badger.Txn) error {
		var value []byte
		live := false
		item, err := txn.Get([]byte(key))
		switch {
		case err == nil:
			value, live, err = decodeItem(item)
		case errors.Is(err, badger.ErrKeyNotFound):
			err = nil
		}
		if err != nil {
			return err
		}
		if !live {
			count = 1
			return txn.SetEntry(newEntry(key, []byte("1"), ttl))
		}
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil {
			return fmt.Errorf("storage: incrementing %q: the value is not a counter", key)
		}
		count = n + 1
		// The window's deadline, set by the first increment, stays.
		deadline, err := itemDeadline(item)
		if err != nil {
			return err
		}
		return txn.SetEntry(entryWithDeadline(key, strconv.AppendInt(nil, count, 10), deadline))
	})
	if err != nil {
		return 0, err
	}
	return count, nil
}

// Delete implements Store.
func (b *Badger) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.update(func(txn *badger.Txn) error {
		return txn.Delete([]byte(key))
	})
}

// List implements Store. It reads from a consistent snapshot taken when it
// starts, so fn may modify the store without disturbing the iteration.
func (b *Badger) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return b.walk(ctx, prefix, func(key string, value []byte, _ int64) error { return fn(key, value) })
}

// Dump implements Dumper, from one consistent snapshot.
func (b *Badger) Dump(ctx context.Context, fn func(Entry) error) error {
	return b.walk(ctx, "", func(key string, value []byte, deadline int64) error {
		e := Entry{Key: key, Value: value}
		if deadline != 0 {
			// Still live, so at least a nanosecond.
			e.TTL = max(time.Until(time.Unix(0, deadline)), 1)
		}
		return fn(e)
	})
}

// walk calls fn for every live entry whose key starts with prefix, in
// ascending key order, with its deadline (Unix nanoseconds, or zero for
// none), from a consistent snapshot.
func (b *Badger) walk(ctx context.Context, prefix string, fn func(key string, value []byte, deadline int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
			// A long listing should not outlive its request.
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			if isInternalKey(string(item.Key())) {
				continue
			}
			value, live, err := decodeItem(item)
			if err != nil {
				return err
			}
			if !live {
				continue
			}
			deadline, err := itemDeadline(item)
			if err != nil {
				return err
			}
			if err := fn(string(item.Key()), value, deadline); err != nil {
				return err
			}
		}
		return nil
	})
}

// update runs fn in a read-write transaction and commits it, retrying the
// whole transaction when it lost to a concurrent one. The retry sees the
// winner's write, so losers of Take, Create and Swap end up with
// ErrNotFound or ErrConflict as Store documents. While the disk is nearly
// full it refuses, before Badger could need space it cannot get.
func (b *Badger) update(fn func(txn *badger.Txn) error) error {
	if err := b.space.check(); err != nil {
		return err
	}
	var err error
	for attempt := range maxTxnAttempts {
		err = b.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		// Spread the retries of many simultaneous losers a little.
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
	return fmt.Errorf("storage: transaction kept conflicting after %d attempts: %w", maxTxnAttempts, err)
}

// getLive returns a copy of the live value under key, or ErrNotFound.
func getLive(txn *badger.Txn, key string) ([]byte, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	value, live, err := decodeItem(item)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, ErrNotFound
	}
	return value, nil
}

// decodeItem returns a copy of item's value without its deadline header
// and whether the entry is still live.
func decodeItem(item *badger.Item) (value []byte, live bool, err error) {
	err = item.Value(func(raw []byte) error {
		if len(raw) < headerLen {
			return fmt.Errorf("storage: corrupt badger entry %q: value shorter than its header", item.Key())
		}
		deadline := int64(binary.BigEndian.Uint64(raw))
		if deadline != 0 && time.Now().UnixNano() >= deadline {
			return nil
		}
		live = true
		// Badger's slice is only valid inside this callback.
		value = bytes.Clone(raw[headerLen:])
		if value == nil {
			value = []byte{}
		}
		return nil
	})
	return value, live, err
}

// newEntry encodes value for key with its deadline header.
//
// Badger expires entries at whole Unix seconds and compares with the
// current second, so on its own it can drop an entry up to a second early
// or keep it up to a second late. The header holds the exact deadline that
// every read checks; Badger's own expiry is set to the second after it, so
// Badger never hides a live entry but still garbage-collects dead ones.
func newEntry(key string, value []byte, ttl time.Duration) *badger.Entry {
	var deadline int64
	// A deadline past what int64 nanoseconds can hold (the year 2262) is
	// as good as none.
	if now := time.Now().UnixNano(); ttl > 0 && int64(ttl) <= math.MaxInt64-now {
		deadline = now + int64(ttl)
	}
	return entryWithDeadline(key, value, deadline)
}

// entryWithDeadline encodes value for key to expire at deadline (Unix
// nanoseconds), or never if it is zero.
func entryWithDeadline(key string, value []byte, deadline int64) *badger.Entry {
	raw := make([]byte, headerLen+len(value))
	binary.BigEndian.PutUint64(raw, uint64(deadline))
	copy(raw[headerLen:], value)
	e := badger.NewEntry([]byte(key), raw)
	if deadline != 0 {
		e.ExpiresAt = uint64(deadline/int64(time.Second)) + 1
	}
	return e
}

// itemDeadline returns the deadline in item's header.
func itemDeadline(item *badger.Item) (deadline int64, err error) {
	err = item.Value(func(raw []byte) error {
		if len(raw) < headerLen {
			return fmt.Errorf("storage: corrupt badger entry %q: value shorter than its header", item.Key())
		}
		deadline = int64(binary.BigEndian.Uint64(raw))
		return nil
	})
	return deadline, err
}

// badgerLogger routes Badger's log messages to zap. Badger is chatty at
// info level about routine work (compactions, replays), so that goes to
// debug.
type badgerLogger struct {
	l *zap.Logger
}

func (l badgerLogger) Errorf(format string, args ...any)   { l.log(zap.ErrorLevel, format, args) }
func (l badgerLogger) Warningf(format string, args ...any) { l.log(zap.WarnLevel, format, args) }
func (l badgerLogger) Infof(format string, args ...any)    { l.log(zap.DebugLevel, format, args) }
func (l badgerLogger) Debugf(format string, args ...any)   { l.log(zap.DebugLevel, format, args) }

func (l badgerLogger) log(level zapcore.Level, format string, args []any) {
	// Skip formatting the many debug messages nobody will see.
	if !l.l.Core().Enabled(level) {
		return
	}
	// Badger ends most messages with a newline; zap adds its own.
	l.l.Log(level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
