package storage_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// A message published on a channel of a prefixed view reaches the
// subscribers of that channel in that view, and no other.
func TestNotifier(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) storage.Store{
		"badger": func(t *testing.T) storage.Store {
			db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
		"redis": func(t *testing.T) storage.Store {
			r, err := storage.OpenRedis(t.Context(), redistest.Start(t), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			subscribe := func(prefix string) (<-chan string, <-chan struct{}) {
				messages, listening := make(chan string, 10), make(chan struct{}, 100)
				storage.Prefixed(store, prefix).(storage.Notifier).Subscribe(ctx, "events",
					func(m []byte) { messages <- string(m) },
					func(up bool) {
						if up {
							select {
							case listening <- struct{}{}:
							default:
							}
						}
					})
				return messages, listening
			}
			mine, mineUp := subscribe("site/a/")
			theirs, theirsUp := subscribe("site/b/")
			for _, up := range []<-chan struct{}{mineUp, theirsUp} {
				select {
				case <-up:
				case <-time.After(5 * time.Second):
					t.Fatal("the subscription did not start")
				}
			}
			if err := storage.Prefixed(store, "site/a/").(storage.Notifier).Publish(ctx, "events", []byte("revoked x")); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-mine:
				if m != "revoked x" {
					t.Errorf("got %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the message did not arrive")
			}
			select {
			case m := <-theirs:
				t.Errorf("another key space got %q", m)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
