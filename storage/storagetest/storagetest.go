// Package storagetest is the contract test suite for storage.Store. Every
// backend runs it from its own tests:
//
//	func TestMyStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			s := openMyStore(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Badger opens a store for the tests of the packages above storage.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

const (
	// shortTTL is long enough that a slow (race-enabled, loaded) machine
	// still sees an entry before it expires, and short enough to keep the
	// suite fast. Badger's native expiry has whole-second granularity, so
	// a fractional TTL also catches a backend that rounds.
	shortTTL = 1500 * time.Millisecond

	// expiryMargin is how long after a deadline the suite waits before
	// requiring the entry to be gone.
	expiryMargin = 250 * time.Millisecond

	// contenders is the number of goroutines racing in concurrency tests.
	contenders = 100
)

// Run runs the contract suite against the backend that newStore opens.
// newStore is called once per subtest and must return a fresh, empty store;
// it should release the store with t.Cleanup.
//
// Besides what storage.Store documents, the suite requires that a method
// given an already canceled context returns the context's error without
// any effect, so that work for an abandoned request is not done.
//
// Run takes a few seconds, most of it waiting once for short TTLs to pass.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()

	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		assertNotFound(t, s, "k/missing")
	})

	t.Run("PutGet", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k/a", []byte("value a"), 0)
		mustPut(t, s, "k/b", []byte("value b"), time.Hour)
		assertValue(t, s, "k/a", []byte("value a"))
		assertValue(t, s, "k/b", []byte("value b"))
	})

	t.Run("PutOverwrite", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("first"), 0)
		mustPut(t, s, "k", []byte("second, longer"), 0)
		assertValue(t, s, "k", []byte("second, longer"))
		mustPut(t, s, "k", []byte("3"), time.Hour)
		assertValue(t, s, "k", []byte("3"))
	})

	t.Run("ValuesAreCopied", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()

		in := []byte("original")
		mustPut(t, s, "k/put", in, 0)
		copy(in, "XXXXXXXX")
		assertValue(t, s, "k/put", []byte("original"))

		out := mustGet(t, s, "k/put")
		copy(out, "YYYYYYYY")
		assertValue(t, s, "k/put", []byte("original"))

		in = []byte("created")
		if err := s.Create(ctx, "k/create", in, 0); err != nil {
			t.Fatalf("Create: %v", err)
		}
		copy(in, "XXXXXXX")
		assertValue(t, s, "k/create", []byte("created"))

		old, next := []byte("created"), []byte("swapped")
		if err := s.Swap(ctx, "k/create", old, next, 0); err != nil {
			t.Fatalf("Swap: %v", err)
		}
		copy(old, "XXXXXXX")
		copy(next, "XXXXXXX")
		assertValue(t, s, "k/create", []byte("swapped"))

		err := s.List(ctx, "k/", func(key string, value []byte) error {
			for i := range value {
				value[i] = 'Z'
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		assertValue(t, s, "k/put", []byte("original"))
		assertValue(t, s, "k/create", []byte("swapped"))
	})

	t.Run("EmptyValue", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		mustPut(t, s, "k/empty", []byte{}, 0)
		mustPut(t, s, "k/nil", nil, 0)
		assertValue(t, s, "k/empty", nil)
		assertValue(t, s, "k/nil", nil)

		// An empty value must still count as present.
		if err := s.Create(ctx, "k/empty", []byte("x"), 0); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("Create over empty value: got %v, want ErrConflict", err)
		}
		if err := s.Swap(ctx, "k/empty", nil, []byte("x"), 0); err != nil {
			t.Fatalf("Swap from empty value: %v", err)
		}
		assertValue(t, s, "k/empty", []byte("x"))
		got, err := s.Take(ctx, "k/nil")
		if err != nil || len(got) != 0 {
			t.Fatalf("Take empty value: got %q, %v; want empty, nil", got, err)
		}
		assertNotFound(t, s, "k/nil")
	})

	t.Run("BinaryValue", func(t *testing.T) {
		s := newStore(t)
		value := make([]byte, 0, 512+16)
		value = append(value, 0, 0, 0, 0, 0, 0, 0, 0) // looks like a zero header
		for i := range 256 {
			value = append(value, byte(i), 0)
		}
		value = append(value, 0, 0, 0, 0, 0, 0, 0, 0)
		mustPut(t, s, "k/bin", value, time.Hour)
		assertValue(t, s, "k/bin", value)
		mustPut(t, s, "k/zeros", make([]byte, 8), 0)
		assertValue(t, s, "k/zeros", make([]byte, 8))
	})

	t.Run("LargeValue", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		value := make([]byte, 1<<20)
		rand.Read(value)
		mustPut(t, s, "k/large", value, 0)
		assertValue(t, s, "k/large", value)

		next := bytes.Clone(value)
		next[0]++
		if err := s.Swap(ctx, "k/large", value, next, time.Hour); err != nil {
			t.Fatalf("Swap large value: %v", err)
		}
		got, err := s.Take(ctx, "k/large")
		if err != nil || !bytes.Equal(got, next) {
			t.Fatalf("Take large value: got %d bytes, %v; want the swapped-in value", len(got), err)
		}
		assertNotFound(t, s, "k/large")
	})

	t.Run("CreateAbsent", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(context.Background(), "k/new", []byte("v"), time.Hour); err != nil {
			t.Fatalf("Create: %v", err)
		}
		assertValue(t, s, "k/new", []byte("v"))
	})

	t.Run("CreateExisting", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("first"), 0)
		err := s.Create(context.Background(), "k", []byte("second"), 0)
		if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("Create over existing key: got %v, want ErrConflict", err)
		}
		assertValue(t, s, "k", []byte("first"))
	})

	t.Run("CreateAfterDelete", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("first"), 0)
		mustDelete(t, s, "k")
		if err := s.Create(context.Background(), "k", []byte("second"), 0); err != nil {
			t.Fatalf("Create after Delete: %v", err)
		}
		assertValue(t, s, "k", []byte("second"))
	})

	t.Run("Take", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("once"), time.Hour)
		got, err := s.Take(context.Background(), "k")
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		if !bytes.Equal(got, []byte("once")) {
			t.Fatalf("Take: got %q, want %q", got, "once")
		}
		assertNotFound(t, s, "k")
		if _, err := s.Take(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("second Take: got %v, want ErrNotFound", err)
		}
	})

	t.Run("TakeMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Take(context.Background(), "k/missing"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Take missing key: got %v, want ErrNotFound", err)
		}
	})

	t.Run("ConcurrentTake", func(t *testing.T) {
		s := newStore(t)
		for i := range 5 {
			key := fmt.Sprintf("code/%d", i)
			want := fmt.Appendf(nil, "code value %d", i)
			mustPut(t, s, key, want, time.Hour)

			var wins, losses atomic.Int64
			race(t, func() error {
				got, err := s.Take(context.Background(), key)
				switch {
				case err == nil:
					wins.Add(1)
					if !bytes.Equal(got, want) {
						return fmt.Errorf("winning Take got %q, want %q", got, want)
					}
				case errors.Is(err, storage.ErrNotFound):
					losses.Add(1)
				default:
					return fmt.Errorf("take: %w", err)
				}
				return nil
			})
			if wins.Load() != 1 || losses.Load() != contenders-1 {
				t.Fatalf("%s: %d Takes won and %d got ErrNotFound; want 1 and %d",
					key, wins.Load(), losses.Load(), contenders-1)
			}
			assertNotFound(t, s, key)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		for i := range 3 {
			key := fmt.Sprintf("client/%d", i)
			var (
				mu     sync.Mutex
				winner []byte
				n      atomic.Int64
				losses atomic.Int64
			)
			race(t, func() error {
				value := fmt.Appendf(nil, "contender %d", n.Add(1))
				err := s.Create(context.Background(), key, value, time.Hour)
				switch {
				case err == nil:
					mu.Lock()
					defer mu.Unlock()
					if winner != nil {
						return fmt.Errorf("both %q and %q won Create", winner, value)
					}
					winner = value
				case errors.Is(err, storage.ErrConflict):
					losses.Add(1)
				default:
					return fmt.Errorf("create: %w", err)
				}
				return nil
			})
			if winner == nil || losses.Load() != contenders-1 {
				t.Fatalf("%s: winner %q, %d got ErrConflict; want one winner and %d",
					key, winner, losses.Load(), contenders-1)
			}
			assertValue(t, s, key, winner)
		}
	})

	t.Run("Swap", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("v1"), time.Hour)
		if err := s.Swap(context.Background(), "k", []byte("v1"), []byte("v2"), time.Hour); err != nil {
			t.Fatalf("Swap: %v", err)
		}
		assertValue(t, s, "k", []byte("v2"))
	})

	t.Run("SwapWrongOld", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		mustPut(t, s, "k", []byte("v2"), 0)
		for _, old := range [][]byte{[]byte("v1"), []byte("v"), []byte("v22"), nil} {
			err := s.Swap(ctx, "k", old, []byte("v3"), 0)
			if !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("Swap with old %q: got %v, want ErrConflict", old, err)
			}
		}
		assertValue(t, s, "k", []byte("v2"))
	})

	t.Run("SwapMissing", func(t *testing.T) {
		s := newStore(t)
		err := s.Swap(context.Background(), "k/missing", []byte("a"), []byte("b"), 0)
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Swap on missing key: got %v, want ErrNotFound", err)
		}
		assertNotFound(t, s, "k/missing")
	})

	t.Run("ConcurrentSwap", func(t *testing.T) {
		s := newStore(t)
		const key = "family/counter"
		mustPut(t, s, key, counter(0), time.Hour)

		var successes atomic.Int64
		race(t, func() error {
			ctx := context.Background()
			// Bounded so that a backend that never lets anyone win fails
			// instead of hanging.
			for range 100 * contenders {
				old, err := s.Get(ctx, key)
				if err != nil {
					return fmt.Errorf("get: %w", err)
				}
				next := counter(binary.BigEndian.Uint64(old) + 1)
				err = s.Swap(ctx, key, old, next, time.Hour)
				switch {
				case err == nil:
					successes.Add(1)
					return nil
				case errors.Is(err, storage.ErrConflict):
					continue
				default:
					return fmt.Errorf("swap: %w", err)
				}
			}
			return errors.New("swap never succeeded")
		})
		final := binary.BigEndian.Uint64(mustGet(t, s, key))
		if final != uint64(successes.Load()) || final != contenders {
			t.Fatalf("counter is %d after %d successful Swaps; want both %d (lost update)",
				final, successes.Load(), contenders)
		}
	})

	t.Run("Increment", func(t *testing.T) {
		s := newStore(t)
		for want := int64(1); want <= 3; want++ {
			if got := mustIncrement(t, s, "count/a", time.Hour); got != want {
				t.Fatalf("Increment %d: got %d", want, got)
			}
		}
		assertValue(t, s, "count/a", []byte("3"))
		if got := mustIncrement(t, s, "count/b", 0); got != 1 {
			t.Fatalf("Increment of another key: got %d, want 1", got)
		}
		mustDelete(t, s, "count/a")
		if got := mustIncrement(t, s, "count/a", time.Hour); got != 1 {
			t.Fatalf("Increment after Delete: got %d, want 1", got)
		}
	})

	t.Run("IncrementNotACounter", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("not a number"), 0)
		if _, err := s.Increment(context.Background(), "k", 0); err == nil {
			t.Fatalf("Increment of a non-counter value succeeded")
		}
		assertValue(t, s, "k", []byte("not a number"))
	})

	t.Run("ConcurrentIncrement", func(t *testing.T) {
		s := newStore(t)
		var (
			mu   sync.Mutex
			seen = map[int64]bool{}
		)
		race(t, func() error {
			n, err := s.Increment(context.Background(), "count/race", time.Hour)
			if err != nil {
				return fmt.Errorf("increment: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[n] || n < 1 || n > contenders {
				return fmt.Errorf("increment returned %d twice or out of 1..%d", n, contenders)
			}
			seen[n] = true
			return nil
		})
		assertValue(t, s, "count/race", fmt.Appendf(nil, "%d", contenders))
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k/a", []byte("a"), 0)
		mustPut(t, s, "k/b", []byte("b"), 0)
		mustDelete(t, s, "k/a")
		assertNotFound(t, s, "k/a")
		assertValue(t, s, "k/b", []byte("b"))
	})

	t.Run("DeleteMissing", func(t *testing.T) {
		s := newStore(t)
		mustDelete(t, s, "k/missing")
		mustDelete(t, s, "k/missing")
	})

	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		// Inserted out of order; "p/B" < "p/a" < "p/aa" < "p/b" bytewise.
		for _, key := range []string{"p/b", "p/aa", "p/B", "p/a", "p", "pa/x", "o/a", "q/a", "P/a"} {
			mustPut(t, s, key, []byte("value of "+key), 0)
		}
		mustPut(t, s, "p/deleted", []byte("x"), 0)
		mustDelete(t, s, "p/deleted")

		got, values := listValues(t, s, "p/")
		want := []string{"p/B", "p/a", "p/aa", "p/b"}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q) visited %q; want %q", "p/", got, want)
		}
		for i, key := range got {
			if values[i] != "value of "+key {
				t.Fatalf("List(%q) gave %q the value %q; want %q", "p/", key, values[i], "value of "+key)
			}
		}

		got = list(t, s, "")
		want = []string{"P/a", "o/a", "p", "p/B", "p/a", "p/aa", "p/b", "pa/x", "q/a"}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q) visited %q; want %q", "", got, want)
		}
	})

	t.Run("ListNoMatch", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "a/1", []byte("x"), 0)
		if got := list(t, s, "b/"); len(got) != 0 {
			t.Fatalf("List(%q) visited %q; want nothing", "b/", got)
		}
	})

	t.Run("ListStops", func(t *testing.T) {
		s := newStore(t)
		for i := range 5 {
			mustPut(t, s, fmt.Sprintf("p/%d", i), []byte("x"), 0)
		}
		stop := errors.New("stop here")
		var visited []string
		err := s.List(context.Background(), "p/", func(key string, value []byte) error {
			visited = append(visited, key)
			if len(visited) == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("List returned %v; want the error fn returned", err)
		}
		if want := []string{"p/0", "p/1"}; !slices.Equal(visited, want) {
			t.Fatalf("List visited %q; want %q", visited, want)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		mustPut(t, s, "k/present", []byte("v"), 0)

		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with canceled context: got %v, want context.Canceled", op, err)
			}
		}
		_, err := s.Get(ctx, "k/present")
		check("Get", err)
		check("Put", s.Put(ctx, "k/put", []byte("v"), 0))
		check("Create", s.Create(ctx, "k/create", []byte("v"), 0))
		_, err = s.Take(ctx, "k/present")
		check("Take", err)
		check("Swap", s.Swap(ctx, "k/present", []byte("v"), []byte("w"), 0))
		check("Delete", s.Delete(ctx, "k/present"))
		_, err = s.Increment(ctx, "k/counter", 0)
		check("Increment", err)
		called := false
		check("List", s.List(ctx, "k/", func(string, []byte) error {
			called = true
			return nil
		}))
		if called {
			t.Errorf("List with canceled context called fn")
		}

		// None of them may have had an effect.
		assertNotFound(t, s, "k/put")
		assertNotFound(t, s, "k/create")
		assertNotFound(t, s, "k/counter")
		assertValue(t, s, "k/present", []byte("v"))
	})

	t.Run("NegativeTTL", func(t *testing.T) {
		// A deadline that passed while it was computed: the write is
		// refused, never stored as an entry that does not expire.
		s := newStore(t)
		ctx := context.Background()
		mustPut(t, s, "k/swap", []byte("old"), time.Hour)
		for name, write := range map[string]func(ttl time.Duration) error{
			"Put":       func(ttl time.Duration) error { return s.Put(ctx, "k/put", []byte("v"), ttl) },
			"Create":    func(ttl time.Duration) error { return s.Create(ctx, "k/create", []byte("v"), ttl) },
			"Swap":      func(ttl time.Duration) error { return s.Swap(ctx, "k/swap", []byte("old"), []byte("new"), ttl) },
			"Increment": func(ttl time.Duration) error { _, err := s.Increment(ctx, "k/increment", ttl); return err },
		} {
			for _, ttl := range []time.Duration{-1, -time.Millisecond, -time.Hour} {
				if err := write(ttl); !errors.Is(err, storage.ErrExpired) {
					t.Errorf("%s with ttl %v: %v, want ErrExpired", name, ttl, err)
				}
			}
		}
		assertNotFound(t, s, "k/put")
		assertNotFound(t, s, "k/create")
		assertNotFound(t, s, "k/increment")
		assertValue(t, s, "k/swap", []byte("old"))
	})

	t.Run("Expiry", func(t *testing.T) { runExpiry(t, newStore(t)) })
}

// expiryCase is one expiry scenario. All of them share a single wait for
// shortTTL to pass, which keeps the suite fast however few CPUs run it.
type expiryCase struct {
	name string
	// setup writes entries under prefix p, some with shortTTL.
	setup func(t *testing.T, s storage.Store, p string)
	// before, if set, checks while the short-TTL entries must still live.
	before func(t *testing.T, s storage.Store, p string)
	// after checks once they must be gone.
	after func(t *testing.T, s storage.Store, p string)
}

var expiryCases = []expiryCase{
	{
		name: "GetExpired",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"short", []byte("v"), shortTTL)
			mustPut(t, s, p+"long", []byte("v"), time.Hour)
		},
		before: func(t *testing.T, s storage.Store, p string) {
			assertValue(t, s, p+"short", []byte("v"))
		},
		after: func(t *testing.T, s storage.Store, p string) {
			assertNotFound(t, s, p+"short")
			assertValue(t, s, p+"long", []byte("v"))
		},
	},
	{
		name: "NoExpiry",
		setup: func(t *testing.T, s storage.Store, p string) {
			ctx := context.Background()
			mustPut(t, s, p+"zero", []byte("zero"), 0)
			if err := s.Create(ctx, p+"created", []byte("created"), storage.NoExpiry); err != nil {
				t.Fatalf("Create: %v", err)
			}
			// Replacing a short-lived entry replaces its TTL too.
			mustPut(t, s, p+"swapped", []byte("a"), shortTTL)
			if err := s.Swap(ctx, p+"swapped", []byte("a"), []byte("b"), 0); err != nil {
				t.Fatalf("Swap: %v", err)
			}
			mustPut(t, s, p+"overwritten", []byte("a"), shortTTL)
			mustPut(t, s, p+"overwritten", []byte("b"), 0)
		},
		after: func(t *testing.T, s storage.Store, p string) {
			assertValue(t, s, p+"zero", []byte("zero"))
			assertValue(t, s, p+"created", []byte("created"))
			assertValue(t, s, p+"swapped", []byte("b"))
			assertValue(t, s, p+"overwritten", []byte("b"))
		},
	},
	{
		name: "CreateOverExpired",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"k", []byte("old"), shortTTL)
		},
		before: func(t *testing.T, s storage.Store, p string) {
			err := s.Create(context.Background(), p+"k", []byte("early"), 0)
			if !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("Create before expiry: got %v, want ErrConflict", err)
			}
		},
		after: func(t *testing.T, s storage.Store, p string) {
			if err := s.Create(context.Background(), p+"k", []byte("new"), 0); err != nil {
				t.Fatalf("Create over expired entry: %v", err)
			}
			assertValue(t, s, p+"k", []byte("new"))
		},
	},
	{
		name: "TakeExpired",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"k", []byte("v"), shortTTL)
		},
		after: func(t *testing.T, s storage.Store, p string) {
			if got, err := s.Take(context.Background(), p+"k"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Take expired entry: got %q, %v; want ErrNotFound", got, err)
			}
		},
	},
	{
		name: "SwapExpired",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"k", []byte("v"), shortTTL)
		},
		after: func(t *testing.T, s storage.Store, p string) {
			err := s.Swap(context.Background(), p+"k", []byte("v"), []byte("w"), 0)
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Swap on expired entry: got %v, want ErrNotFound", err)
			}
			assertNotFound(t, s, p+"k")
		},
	},
	{
		name: "SwapAppliesNewTTL",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"k", []byte("v1"), 0)
			if err := s.Swap(context.Background(), p+"k", []byte("v1"), []byte("v2"), shortTTL); err != nil {
				t.Fatalf("Swap: %v", err)
			}
		},
		before: func(t *testing.T, s storage.Store, p string) {
			assertValue(t, s, p+"k", []byte("v2"))
		},
		after: func(t *testing.T, s storage.Store, p string) {
			assertNotFound(t, s, p+"k")
		},
	},
	{
		// A counter's window starts with its first increment: later
		// increments neither extend nor shorten it, and a new window
		// starts from 1.
		name: "IncrementWindow",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustIncrement(t, s, p+"short", shortTTL)
			mustIncrement(t, s, p+"short", time.Hour)
			mustIncrement(t, s, p+"long", time.Hour)
			mustIncrement(t, s, p+"long", shortTTL)
		},
		before: func(t *testing.T, s storage.Store, p string) {
			assertValue(t, s, p+"short", []byte("2"))
		},
		after: func(t *testing.T, s storage.Store, p string) {
			assertNotFound(t, s, p+"short")
			assertValue(t, s, p+"long", []byte("2"))
			if got := mustIncrement(t, s, p+"short", time.Hour); got != 1 {
				t.Fatalf("Increment after the window: got %d, want 1", got)
			}
		},
	},
	{
		name: "ListSkipsExpired",
		setup: func(t *testing.T, s storage.Store, p string) {
			mustPut(t, s, p+"1", []byte("v"), shortTTL)
			mustPut(t, s, p+"2", []byte("v"), 0)
			mustPut(t, s, p+"3", []byte("v"), shortTTL)
			mustPut(t, s, p+"4", []byte("v"), time.Hour)
		},
		before: func(t *testing.T, s storage.Store, p string) {
			if got, want := list(t, s, p), []string{p + "1", p + "2", p + "3", p + "4"}; !slices.Equal(got, want) {
				t.Fatalf("List before expiry visited %q; want %q", got, want)
			}
		},
		after: func(t *testing.T, s storage.Store, p string) {
			if got, want := list(t, s, p), []string{p + "2", p + "4"}; !slices.Equal(got, want) {
				t.Fatalf("List after expiry visited %q; want %q", got, want)
			}
		},
	},
}

// runExpiry runs expiryCases against s, each under its own key prefix.
func runExpiry(t *testing.T, s storage.Store) {
	prefix := func(c expiryCase) string { return "expiry/" + c.name + "/" }

	start := time.Now()
	for _, c := range expiryCases {
		c.setup(t, s, prefix(c))
	}
	setupDone := time.Now()

	for _, c := range expiryCases {
		if c.before == nil {
			continue
		}
		t.Run(c.name+"/Before", func(t *testing.T) {
			// The earliest short-TTL entry was written just after start.
			// A check that only got there after that deadline, on a very
			// slow machine, would fail for the wrong reason.
			if elapsed := time.Since(start); elapsed > shortTTL-expiryMargin {
				t.Skipf("took %v to get here; too slow to test a %v TTL", elapsed, shortTTL)
			}
			c.before(t, s, prefix(c))
		})
	}

	// Every short-TTL entry was written by setupDone.
	time.Sleep(time.Until(setupDone.Add(shortTTL + expiryMargin)))

	for _, c := range expiryCases {
		t.Run(c.name+"/After", func(t *testing.T) { c.after(t, s, prefix(c)) })
	}
}

// race runs fn in contenders goroutines released at the same moment and
// fails t with the errors fn returns.
func race(t *testing.T, fn func() error) {
	t.Helper()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, contenders)
	)
	for range contenders {
		wg.Go(func() {
			<-start
			if err := fn(); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// counter encodes n as a fixed-width value for the Swap tests.
func counter(n uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, n)
}

func mustPut(t *testing.T, s storage.Store, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Put(context.Background(), key, value, ttl); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustIncrement(t *testing.T, s storage.Store, key string, ttl time.Duration) int64 {
	t.Helper()
	n, err := s.Increment(context.Background(), key, ttl)
	if err != nil {
		t.Fatalf("Increment(%q): %v", key, err)
	}
	return n
}

func mustGet(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	value, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return value
}

func mustDelete(t *testing.T, s storage.Store, key string) {
	t.Helper()
	if err := s.Delete(context.Background(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

// assertValue fails t unless key holds want. A nil want means empty.
func assertValue(t *testing.T, s storage.Store, key string, want []byte) {
	t.Helper()
	got := mustGet(t, s, key)
	if !bytes.Equal(got, want) {
		if len(got) > 64 || len(want) > 64 {
			t.Fatalf("Get(%q): got %d bytes, want %d different bytes", key, len(got), len(want))
		}
		t.Fatalf("Get(%q): got %q, want %q", key, got, want)
	}
}

func assertNotFound(t *testing.T, s storage.Store, key string) {
	t.Helper()
	value, err := s.Get(context.Background(), key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q): got %q, %v; want ErrNotFound", key, value, err)
	}
}

// list returns the keys List visits for prefix, in order.
func list(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	keys, _ := listValues(t, s, prefix)
	return keys
}

// listValues returns the keys and values List visits for prefix, in order.
func listValues(t *testing.T, s storage.Store, prefix string) (keys, values []string) {
	t.Helper()
	err := s.List(context.Background(), prefix, func(key string, value []byte) error {
		keys = append(keys, key)
		values = append(values, string(value))
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys, values
}
