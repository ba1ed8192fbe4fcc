package state

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// A code is found until it is redeemed, redeemed once, and then found
// as redeemed with what its redemption issued, so that a replay can be
// punished; a code never issued is just unknown.
func TestCodeFoundRedeemedOnceThenKnownAsRedeemed(t *testing.T) {
	stores := openStores(t, storagetest.Badger(t))
	ctx := context.Background()
	codes := stores.Codes
	if err := codes.Issue(ctx, "the-code", &Code{Request: Request{ClientID: "c1"}, User: User{Subject: "users:alice"}, IssuedAt: 1}); err != nil {
		t.Fatal(err)
	}
	rec, redemption, err := codes.Find(ctx, "the-code")
	if err != nil || redemption != nil || rec.Request.ClientID != "c1" || rec.User.Subject != "users:alice" {
		t.Fatalf("Find before redemption: %+v %+v %v", rec, redemption, err)
	}
	if err := codes.Redeem(ctx, "the-code"); err != nil {
		t.Fatal(err)
	}
	if err := codes.Redeem(ctx, "the-code"); err == nil {
		t.Error("a code was redeemed twice")
	}
	issued := &Redemption{ClientID: "c1", CodeChallenge: "challenge", GrantID: "g1", AccessToken: TokenID{ID: "jti", ExpiresAt: 2}}
	if err := codes.RememberRedemption(ctx, "the-code", issued); err != nil {
		t.Fatal(err)
	}
	rec, redemption, err = codes.Find(ctx, "the-code")
	if !errors.Is(err, ErrCodeRedeemed) || rec != nil || redemption == nil || *redemption != *issued {
		t.Errorf("Find after redemption: %+v %+v %v; want ErrCodeRedeemed with %+v", rec, redemption, err, issued)
	}
	rec, redemption, err = codes.Find(ctx, "never-issued")
	if !errors.Is(err, storage.ErrNotFound) || rec != nil || redemption != nil {
		t.Errorf("Find of an unknown code: %+v %+v %v; want storage.ErrNotFound", rec, redemption, err)
	}
}

// Records are stored where their Kind says, and never under a secret in
// clear.
func TestKindKeyNamesWhereRecordsAreStored(t *testing.T) {
	db := storagetest.Badger(t)
	stores := openStores(t, db)
	ctx := context.Background()
	if err := stores.Codes.Issue(ctx, "the-code", &Code{}); err != nil {
		t.Fatal(err)
	}
	grant := &Grant{ID: "g1", RefreshHash: Hash("the-refresh-token"), ExpiresAt: 1 << 40}
	if err := stores.Grants.Create(ctx, grant, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := stores.Logins.StartLogin(ctx, "the-state", &UpstreamLogin{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{KindCode.Key("the-code"), KindGrant.Key("g1"), KindRefresh.Key("the-refresh-token"), KindLogin.Key("the-state")} {
		if _, err := db.Get(ctx, key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	for _, secret := range []string{"the-code", "the-refresh-token", "the-state"} {
		_ = db.List(ctx, "", func(key string, value []byte) error {
			if strings.Contains(key, secret) || bytes.Contains(value, []byte(secret)) {
				t.Errorf("%q is stored in clear under %s", secret, key)
			}
			return nil
		})
	}
}
