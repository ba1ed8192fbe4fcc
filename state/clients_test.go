package state

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// A block is kept by the hash of the client_id, listed with the id, and
// lifted once.
func TestClientBlockedListedAndUnblocked(t *testing.T) {
	db := storagetest.Badger(t)
	c := openStores(t, db).Clients
	ctx := context.Background()
	const id = "https://app.example/client.json"
	if err := c.Block(ctx, id, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	if blocked, err := c.IsBlocked(ctx, id); err != nil || !blocked {
		t.Fatalf("IsBlocked: %v %v", blocked, err)
	}
	if raw, err := db.Get(ctx, keyBlockedClient+Hash(id)); err != nil || string(raw) != `{"issuer":"","client_id":"`+id+`","blocked_at":1700000000}` {
		t.Errorf("stored block %s (%v) is not the record older releases wrote", raw, err)
	}
	if list, err := c.Blocked(ctx); err != nil || len(list) != 1 || list[0].ClientID != id || list[0].BlockedAt != 1700000000 {
		t.Errorf("Blocked: %+v %v", list, err)
	}
	if err := c.Unblock(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.Unblock(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Unblock: %v, want storage.ErrNotFound", err)
	}
	if blocked, err := c.IsBlocked(ctx, id); err != nil || blocked {
		t.Errorf("IsBlocked after Unblock: %v %v", blocked, err)
	}
}

// A registered client is found, marked used once, and deleted.
func TestClientRegisteredUsedAndDeleted(t *testing.T) {
	c := openStores(t, storagetest.Badger(t)).Clients
	ctx := context.Background()
	if err := c.Save(ctx, &clients.Client{ClientID: "c1", ClientName: "App"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "c1")
	if err != nil || got.ClientName != "App" || got.Used {
		t.Fatalf("Get: %+v %v", got, err)
	}
	if err := c.MarkUsed(ctx, got); err != nil || !got.Used {
		t.Fatalf("MarkUsed: %v, used %v", err, got.Used)
	}
	if again, err := c.Get(ctx, "c1"); err != nil || !again.Used {
		t.Errorf("after MarkUsed: %+v %v", again, err)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("List: %+v %v", list, err)
	}
	if err := c.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if exists, err := c.Exists(ctx, "c1"); err != nil || exists {
		t.Errorf("Exists after Delete: %v %v", exists, err)
	}
}

// An assertion's jti is used once per client, kept hashed under the
// client's namespace.
func TestClientAssertionUsedOnce(t *testing.T) {
	db := storagetest.Badger(t)
	c := openStores(t, db).Clients
	ctx := context.Background()
	if fresh, err := c.UseAssertion(ctx, "c1", "once", time.Minute); err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, err := c.UseAssertion(ctx, "c1", "once", time.Minute); err != nil || fresh {
		t.Errorf("second use: %v %v, want used", fresh, err)
	}
	if fresh, err := c.UseAssertion(ctx, "c2", "once", time.Minute); err != nil || !fresh {
		t.Errorf("another client's use: %v %v, want fresh", fresh, err)
	}
	if _, err := db.Get(ctx, "assertion-jti/c1/"+Hash("once")); err != nil {
		t.Errorf("jti record: %v", err)
	}
}

// An identity assertion grant's jti is used once per identity provider,
// whichever client presents it, and apart from client assertions' jtis; of
// concurrent uses, on Badger and on Redis, exactly one is the first.
func TestIdentityAssertionUsedOnce(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			db := openStore(t, kind)
			c := openStores(t, db).Clients
			ctx := context.Background()
			idpA, idpB := "https://a.example", "https://b.example"
			if fresh, err := c.UseIdentityAssertion(ctx, idpA, "j1", time.Minute); err != nil || !fresh {
				t.Fatalf("first use: %v %v", fresh, err)
			}
			if fresh, err := c.UseIdentityAssertion(ctx, idpA, "j1", time.Minute); err != nil || fresh {
				t.Errorf("second use: %v %v, want used", fresh, err)
			}
			if fresh, err := c.UseIdentityAssertion(ctx, idpB, "j1", time.Minute); err != nil || !fresh {
				t.Errorf("another provider's jti: %v %v, want fresh", fresh, err)
			}
			if fresh, err := c.UseAssertion(ctx, idpA, "j1", time.Minute); err != nil || !fresh {
				t.Errorf("a client assertion with the same jti: %v %v, want fresh", fresh, err)
			}
			if _, err := db.Get(ctx, "id-jag-jti/"+Hash(idpA)+"/"+Hash("j1")); err != nil {
				t.Errorf("jti record: %v", err)
			}
			var wg sync.WaitGroup
			var firsts atomic.Int32
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fresh, err := c.UseIdentityAssertion(ctx, idpA, "raced", time.Minute)
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
				t.Errorf("%d concurrent uses were told they were first, want 1", n)
			}
		})
	}
}
