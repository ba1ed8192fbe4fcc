package state

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// The token endpoint's store work, per second: a code exchange and a
// refresh rotation do what the authorization server asks of the stores
// for them (signing aside), over Badger with its synced writes and over a
// real redis-server, with 1 thousand and 100 thousand grants already
// stored; set MCP_AUTH_BENCH_1M=1 for 1 million as well. Throughput should
// not depend on how many grants are stored.

const benchGrantLifetime = 30 * 24 * time.Hour

// benchGrantCounts are the stored grants each benchmark runs with.
func benchGrantCounts() []int {
	counts := []int{1_000, 100_000}
	if os.Getenv("MCP_AUTH_BENCH_1M") != "" {
		counts = append(counts, 1_000_000)
	}
	return counts
}

// benchStores runs bench for each store and count of stored grants. The
// store is opened and filled once, in a benchmark that only runs bench as
// its sub-benchmark "op", which is run again for each b.N.
func benchStores(b *testing.B, bench func(b *testing.B, stores *Stores)) {
	for _, kind := range []string{"badger", "redis"} {
		for _, n := range benchGrantCounts() {
			b.Run(fmt.Sprintf("%s/grants=%d", kind, n), func(b *testing.B) {
				var store storage.Store
				if kind == "badger" {
					store = storagetest.Badger(b)
				} else {
					r, err := storage.OpenRedis(b.Context(), redistest.Start(b), "", nil)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = r.Close() })
					store = r
				}
				stores := openBenchStores(b, store)
				prefillGrants(b, stores, n)
				b.Run("op", func(b *testing.B) { bench(b, stores) })
			})
		}
	}
}

func openBenchStores(b *testing.B, store storage.Store) *Stores {
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := Open(ctx, store, 0, time.Hour, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	return stores
}

// prefillGrants stores n grants of other users, many at once: concurrent
// writes share Badger's syncs and Redis's round trips.
func prefillGrants(b *testing.B, stores *Stores, n int) {
	const workers = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := stores.Grants.Create(context.Background(), benchGrant("prefill-"+strconv.FormatInt(i, 10)), benchGrantLifetime, benchGrantLifetime); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

func benchGrant(id string) *Grant {
	return &Grant{
		ID: id, ClientID: "client-1", User: User{Subject: "users:" + id}, Resource: "https://h.example/mcp",
		Scopes: []string{"mcp:tools"}, RefreshHash: Hash("refresh-" + id),
		CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(benchGrantLifetime).Unix(),
	}
}

// benchID numbers what the benchmarks create, unique within the process.
var benchID atomic.Int64

func newBenchID(kind string) string { return kind + "-" + strconv.FormatInt(benchID.Add(1), 10) }

func BenchmarkCodeExchange(b *testing.B) {
	benchStores(b, func(b *testing.B, stores *Stores) {
		ctx := context.Background()
		// Issuing the codes is /authorize's work, done beforehand.
		codes := make(chan string, b.N)
		for range b.N {
			code := newBenchID("code")
			if err := stores.Codes.Issue(ctx, code, &Code{User: User{Subject: "users:alice"}, IssuedAt: time.Now().UnixNano()}); err != nil {
				b.Fatal(err)
			}
			codes <- code
		}
		close(codes)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := exchangeCode(ctx, stores, <-codes); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
	})
}

// exchangeCode is the store work of redeeming code for an access token
// and a new grant.
func exchangeCode(ctx context.Context, stores *Stores, code string) error {
	ac, _, err := stores.Codes.Find(ctx, code)
	if err != nil {
		return err
	}
	if err := stores.Codes.Redeem(ctx, code); err != nil {
		return err
	}
	at := TokenID{ID: newBenchID("jti"), ExpiresAt: time.Now().Add(time.Hour).Unix()}
	if err := stores.Revocations.IndexAccessToken(ctx, ac.User.Subject, "client-1", at); err != nil {
		return err
	}
	grant := benchGrant(newBenchID("grant"))
	if err := stores.Grants.Create(ctx, grant, benchGrantLifetime, benchGrantLifetime); err != nil {
		return err
	}
	if _, err := stores.Revocations.RevokedSince(ctx, ac.User.Subject, "client-1", ac.IssuedAt); err != nil {
		return err
	}
	return stores.Codes.RememberRedemption(ctx, code, &Redemption{ClientID: "client-1", GrantID: grant.ID, AccessToken: at})
}

func BenchmarkRefreshRotation(b *testing.B) {
	benchStores(b, func(b *testing.B, stores *Stores) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine is a client refreshing its own grant.
			id := newBenchID("grant")
			if err := stores.Grants.Create(ctx, benchGrant(id), benchGrantLifetime, benchGrantLifetime); err != nil {
				b.Error(err)
				return
			}
			refresh := "refresh-" + id
			for pb.Next() {
				next, err := rotateRefresh(ctx, stores, refresh)
				if err != nil {
					b.Error(err)
					return
				}
				refresh = next
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rotations/s")
	})
}

// rotateRefresh is the store work of a refresh: the grant looked up by
// its refresh token, a new access token indexed, the grant rotated to a
// new refresh token, which it returns.
func rotateRefresh(ctx context.Context, stores *Stores, refresh string) (string, error) {
	g, err := stores.Grants.ByRefreshToken(ctx, refresh)
	if err != nil {
		return "", err
	}
	at := TokenID{ID: newBenchID("jti"), ExpiresAt: time.Now().Add(time.Hour).Unix()}
	if err := stores.Revocations.IndexAccessToken(ctx, g.User.Subject, g.ClientID, at); err != nil {
		return "", err
	}
	nextRefresh := newBenchID("refresh")
	next := *g
	next.RefreshHash, next.PreviousHash = Hash(nextRefresh), g.RefreshHash
	next.AccessTokenIDs = []TokenID{at}
	if err := stores.Grants.Rotate(ctx, g, &next, benchGrantLifetime); err != nil {
		return "", err
	}
	return nextRefresh, nil
}
