package state

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// newGrant stores a grant of alice's with one access token and returns it
// as its refresh token finds it.
func newGrant(t *testing.T, grants *Grants, refreshToken string) *Grant {
	t.Helper()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	created := &Grant{ID: "g1", ClientID: "c1", User: User{Subject: "users:alice"}, RefreshHash: Hash(refreshToken),
		AccessTokenIDs: []TokenID{{ID: "first", ExpiresAt: exp}}, ExpiresAt: time.Now().Add(24 * time.Hour).Unix()}
	if err := grants.Create(ctx, created, 24*time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	g, err := grants.ByRefreshToken(ctx, refreshToken)
	if err != nil || g.ID != "g1" {
		t.Fatalf("ByRefreshToken: %+v %v", g, err)
	}
	return g
}

// rotated is what a refresh makes of g: a new refresh token and one more
// access token.
func rotated(g *Grant, refreshToken, jti string) *Grant {
	next := *g
	next.PreviousHash, next.RefreshHash = g.RefreshHash, Hash(refreshToken)
	next.AccessTokenIDs = append(append([]TokenID(nil), g.AccessTokenIDs...), TokenID{ID: jti, ExpiresAt: time.Now().Add(time.Hour).Unix()})
	return &next
}

// Of two rotations of what was read once, one wins; the loser's refresh
// token is not looked up.
func TestGrantRotatesOnceFromOneReading(t *testing.T) {
	db := storagetest.Badger(t)
	grants := openStores(t, db).Grants
	ctx := context.Background()
	g := newGrant(t, grants, "rt0")
	if err := grants.Rotate(ctx, g, rotated(g, "rt1", "second"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := grants.Rotate(ctx, g, rotated(g, "rt2", "third"), time.Hour); !errors.Is(err, ErrGrantRotated) {
		t.Fatalf("second rotation of one reading: %v, want ErrGrantRotated", err)
	}
	if _, err := grants.ByRefreshToken(ctx, "rt2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the losing rotation's refresh token is looked up: %v", err)
	}
	if now, err := grants.ByRefreshToken(ctx, "rt1"); err != nil || now.RefreshHash != Hash("rt1") {
		t.Errorf("the winning rotation: %+v %v", now, err)
	}
	if n := countKeys(t, db, keyRefresh); n != 2 {
		t.Errorf("%d refresh tokens looked up, want 2 (the first and the current)", n)
	}
}

// A rotation after the grant was revoked issues nothing.
func TestGrantRevokedRotatesNoMore(t *testing.T) {
	grants := openStores(t, storagetest.Badger(t)).Grants
	ctx := context.Background()
	g := newGrant(t, grants, "rt0")
	if revoked, err := grants.Revoke(ctx, g.ID); err != nil || revoked == nil || !revoked.Revoked {
		t.Fatalf("Revoke: %+v %v", revoked, err)
	}
	if err := grants.Rotate(ctx, g, rotated(g, "rt1", "second"), time.Hour); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("rotation of a revoked grant: %v, want ErrGrantEnded", err)
	}
	if revoked, err := grants.Revoke(ctx, g.ID); err != nil || revoked != nil {
		t.Errorf("second Revoke: %+v %v, want nothing to revoke", revoked, err)
	}
}

// swapOnce runs before just before the first Swap; Swaps that before
// makes go through.
type swapOnce struct {
	storage.Store
	done   bool
	before func()
}

func (s *swapOnce) Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error {
	if !s.done {
		s.done = true
		s.before()
	}
	return s.Store.Swap(ctx, key, old, value, ttl)
}

// A revocation that finds its grant rotated since it read it revokes what
// the rotation wrote, access token included.
func TestGrantRevocationFollowsARotation(t *testing.T) {
	db := storagetest.Badger(t)
	grants := openStores(t, db).Grants
	ctx := context.Background()
	g := newGrant(t, grants, "rt0")
	rotatedMeanwhile := false
	revoking := openStores(t, &swapOnce{Store: db, before: func() {
		if err := grants.Rotate(ctx, g, rotated(g, "rt1", "second"), time.Hour); err != nil {
			t.Errorf("rotation: %v", err)
		}
		rotatedMeanwhile = true
	}})
	revoked, err := revoking.Grants.Revoke(ctx, g.ID)
	if err != nil || revoked == nil {
		t.Fatalf("Revoke: %+v %v", revoked, err)
	}
	if !rotatedMeanwhile {
		t.Fatal("the rotation did not run")
	}
	if n := countKeys(t, db, keyGrant); n != 0 {
		t.Errorf("%d grants left", n)
	}
	if n := countKeys(t, db, keyDenied); n != 2 {
		t.Errorf("%d access tokens denied, want both the first and the rotation's", n)
	}
}

// lostAnswer is a store whose Swaps fail as a connection lost after the
// store applied them would: written says whether the write went through,
// and retried makes the Swap report what its client's retry would see.
type lostAnswer struct {
	storage.Store
	written, retried bool
}

var errConnectionLost = errors.New("connection reset by peer")

func (s *lostAnswer) Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error {
	if s.written {
		if err := s.Store.Swap(ctx, key, old, value, ttl); err != nil {
			return err
		}
	}
	if s.retried && s.written {
		return storage.ErrConflict // the retry finds the value it wrote
	}
	return errConnectionLost
}

// A store that fails during a rotation leaves the grant usable whichever
// way the rotation went: a lost answer is no revocation, the new refresh
// token is still looked up when the write went through, and a retried
// write that finds its own value counts as done.
func TestGrantRotationSurvivesALostAnswer(t *testing.T) {
	for _, tc := range []struct {
		name             string
		written, retried bool
		want             string // the refresh token the grant holds after
	}{
		{"not written", false, false, "rt0"},
		{"written, answer lost", true, false, "rt1"},
		{"written, retry finds it", true, true, "rt1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.Badger(t)
			newGrant(t, openStores(t, db).Grants, "rt0")
			grants := openStores(t, &lostAnswer{Store: db, written: tc.written, retried: tc.retried}).Grants
			ctx := context.Background()
			g, err := grants.ByRefreshToken(ctx, "rt0")
			if err != nil {
				t.Fatal(err)
			}
			err = grants.Rotate(ctx, g, rotated(g, "rt1", "second"), time.Hour)
			switch {
			case tc.retried && err != nil:
				t.Errorf("Rotate: %v, want success: the retry found its own write", err)
			case !tc.retried && (err == nil || errors.Is(err, ErrGrantEnded) || errors.Is(err, ErrGrantRotated)):
				t.Errorf("Rotate: %v, want the store's error, which ends nothing", err)
			}
			now, err := grants.ByRefreshToken(ctx, tc.want)
			if err != nil || now.RefreshHash != Hash(tc.want) {
				t.Errorf("the grant by its current refresh token %s: %+v %v", tc.want, now, err)
			}
		})
	}
}

// An access token past its exp may still pass a verifier that allows for
// clock skew: revoking its user, through the index, or its grant denies
// it still.
func TestRevocationReachesTokensWithinTheSkewAfterExpiry(t *testing.T) {
	stores := openStores(t, storagetest.Badger(t))
	ctx := context.Background()
	justExpired := time.Now().Add(-10 * time.Second).Unix()
	if err := stores.Revocations.IndexAccessToken(ctx, "users:alice", "c1", TokenID{ID: "indexed", ExpiresAt: justExpired}); err != nil {
		t.Fatal(err)
	}
	g := newGrant(t, stores.Grants, "rt0")
	if err := stores.Grants.Rotate(ctx, g, &Grant{ID: g.ID, ClientID: g.ClientID, User: g.User, RefreshHash: Hash("rt1"),
		AccessTokenIDs: []TokenID{{ID: "listed", ExpiresAt: justExpired}}, ExpiresAt: g.ExpiresAt}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := stores.RevokeUser(ctx, "users:alice"); err != nil {
		t.Fatal(err)
	}
	for _, jti := range []string{"indexed", "listed"} {
		if !stores.Revocations.DeniedInStore(ctx, jti) {
			t.Errorf("%s token 10 s past its exp is not denied", jti)
		}
	}
}
