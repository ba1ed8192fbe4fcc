package state

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTokenStore measures the token endpoint's store work, per
// second: a code exchange and a refresh rotation do what the
// authorization server asks of the stores for them (signing aside), over
// Badger with its synced writes and over a real redis-server, with 1
// thousand and 100 thousand grants already stored, or the counts listed
// in MCP_AUTH_BENCH_GRANTS (scripts/bench.sh sets "1000 100000 1000000").
// Throughput should not depend on how many grants are stored. Each count
// has a store of its own, filled to it first; then both operations run at
// every count in turn, MCP_AUTH_BENCH_ROUNDS times (default 1). A slow
// spell of the machine, or the compactions that follow filling the
// largest store, then fall on every count alike and show as the spread of
// one operation's rounds, not as a difference between counts.
func BenchmarkTokenStore(b *testing.B) {
	counts := benchGrantCounts(b)
	rounds := benchRounds(b)
	for _, kind := range storeKinds {
		b.Run(kind, func(b *testing.B) {
			filled := make([]*Stores, len(counts))
			for i, n := range counts {
				filled[i] = openStores(b, openStore(b, kind))
				prefillGrants(b, filled[i], n)
			}
			for range rounds { // the rounds are named grants=N, grants=N#01, ...
				for i, n := range counts {
					b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
						b.Run("code_exchange", func(b *testing.B) { benchCodeExchange(b, filled[i]) })
						b.Run("refresh_rotation", func(b *testing.B) { benchRefreshRotation(b, filled[i]) })
					})
				}
			}
		})
	}
}

const benchGrantLifetime = 30 * 24 * time.Hour

// benchGrantCounts are the counts of stored grants to measure at, in
// increasing order (the first is the ratio's base).
func benchGrantCounts(b *testing.B) []int {
	list := os.Getenv("MCP_AUTH_BENCH_GRANTS")
	if list == "" {
		return []int{1_000, 100_000}
	}
	var counts []int
	for _, f := range strings.Fields(list) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || (len(counts) > 0 && n < counts[len(counts)-1]) {
			b.Fatalf("MCP_AUTH_BENCH_GRANTS=%q: want counts of grants in increasing order", list)
		}
		counts = append(counts, n)
	}
	return counts
}

// benchRounds is how many times each operation runs at each count.
func benchRounds(b *testing.B) int {
	v := os.Getenv("MCP_AUTH_BENCH_ROUNDS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("MCP_AUTH_BENCH_ROUNDS=%q: want a count of at least 1", v)
	}
	return n
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

func benchCodeExchange(b *testing.B, stores *Stores) {
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

func benchRefreshRotation(b *testing.B, stores *Stores) {
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
