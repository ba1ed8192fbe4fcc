package state

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A DPoP proof is used once per key, across every instance sharing the
// store: of concurrent uses through two instances' stores, on Badger and on
// Redis, exactly one is the first. The nonce key is made once and then the
// same for every instance.
func TestDPoPProofUsedOnceAcrossInstances(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			db := openStore(t, kind)
			// Two instances: each opens its own stores over the shared one.
			a, b := openStores(t, db).Proofs, openStores(t, db).Proofs
			ctx := context.Background()
			if fresh, err := a.Use(ctx, "jkt1", "j1", time.Minute); err != nil || !fresh {
				t.Fatalf("first use: %v %v", fresh, err)
			}
			if fresh, err := b.Use(ctx, "jkt1", "j1", time.Minute); err != nil || fresh {
				t.Errorf("replay at the other instance: %v %v, want used", fresh, err)
			}
			if fresh, err := b.Use(ctx, "jkt2", "j1", time.Minute); err != nil || !fresh {
				t.Errorf("same jti of another key: %v %v, want fresh", fresh, err)
			}
			var wg sync.WaitGroup
			var firsts atomic.Int32
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := a
					if i%2 == 1 {
						p = b
					}
					fresh, err := p.Use(ctx, "jkt1", "raced", time.Minute)
					if err != nil {
						t.Error(err)
					}
					if fresh {
						firsts.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := firsts.Load(); n != 1 {
				t.Errorf("%d of 16 concurrent uses were first, want 1", n)
			}

			k1, err := DPoPNonceKey(ctx, db)
			if err != nil || len(k1) != 32 {
				t.Fatalf("nonce key: %x %v", k1, err)
			}
			if k2, err := DPoPNonceKey(ctx, db); err != nil || string(k2) != string(k1) {
				t.Fatalf("nonce key read again: %x %v, want %x", k2, err, k1)
			}
		})
	}
}
