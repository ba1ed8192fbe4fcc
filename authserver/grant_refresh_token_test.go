package authserver

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// A refresh is refused, with the error OAuth 2.1 section 5.2 names, unless
// the token is a live one of this client's, presented with at least the
// authentication the grant was made with, for no more scope and no other
// resource than the grant's.
func TestRefreshRefusals(t *testing.T) {
	public, confidential := testClient(clients.AuthMethodNone), testClient(clients.AuthMethodClientSecretBasic)
	other := &authenticatedClient{Method: clients.AuthMethodNone, Client: &clients.Client{ClientID: "c2"}}
	for _, tc := range []struct {
		name string
		// grantee is the client the grant is made for, caller the one
		// that refreshes.
		grantee, caller *authenticatedClient
		params          map[string]string
		resources       []string
		code            oauth.ErrorCode
	}{
		{"unknown token", public, public, map[string]string{"refresh_token": "forged"}, nil, oauth.InvalidGrant},
		{"another client's token", public, other, nil, nil, oauth.InvalidGrant},
		{"weaker authentication than the grant's", confidential, public, nil, nil, oauth.InvalidGrant},
		{"a scope beyond the grant", public, public, map[string]string{"scope": "mcp:read mcp:write"}, nil, oauth.InvalidScope},
		{"another resource", public, public, nil, []string{"https://other.example/mcp"}, oauth.InvalidTarget},
		{"the grant's own", public, public, map[string]string{"scope": "mcp:read"}, []string{testResource}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, stores := codeServer(t, storagetest.Badger(t))
			issued, oerr := issueCode(t, s, stores, tc.grantee)()
			if oerr != nil {
				t.Fatal(oerr)
			}
			params := map[string]string{"refresh_token": issued.RefreshToken}
			for k, v := range tc.params {
				params[k] = v
			}
			resp, oerr := refreshGrant(s).grant(context.Background(), tc.caller, params, tc.resources)
			switch {
			case tc.code == "" && (oerr != nil || resp.RefreshToken == "" || resp.RefreshToken == issued.RefreshToken):
				t.Fatalf("%+v %v, want a rotated refresh token", resp, oerr)
			case tc.code != "" && (oerr == nil || oerr.Code != tc.code):
				t.Fatalf("%+v %v, want %s", resp, oerr, tc.code)
			}
		})
	}
}

// A refresh token presented again within the grace window gets the same
// successor; presented after its successor was rotated too, it was stolen,
// and the whole grant ends.
func TestRefreshTokenReuse(t *testing.T) {
	s, stores := codeServer(t, storagetest.Badger(t))
	client := testClient(clients.AuthMethodNone)
	issued, oerr := issueCode(t, s, stores, client)()
	if oerr != nil {
		t.Fatal(oerr)
	}
	refresh := func(rt string) (*tokenResponse, *oauth.Error) {
		return refreshGrant(s).grant(context.Background(), client, map[string]string{"refresh_token": rt}, nil)
	}
	second, oerr := refresh(issued.RefreshToken)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if again, oerr := refresh(issued.RefreshToken); oerr != nil || again.RefreshToken != second.RefreshToken {
		t.Fatalf("replay within the grace window: %+v %v, want the same successor", again, oerr)
	}
	third, oerr := refresh(second.RefreshToken)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if _, oerr := refresh(issued.RefreshToken); oerr == nil || oerr.Code != oauth.InvalidGrant {
		t.Fatalf("a token two rotations old: %v, want invalid_grant", oerr)
	}
	if _, oerr := refresh(third.RefreshToken); oerr == nil || oerr.Code != oauth.InvalidGrant {
		t.Fatalf("the newest token after a reuse: %v, want invalid_grant: the grant is revoked", oerr)
	}
}

// A client refreshing in a loop gets at most maxLiveAccessTokens live
// access tokens from one grant: the refresh beyond is refused with 429
// and Retry-After until the oldest can no longer be used, without
// rotating, so the same refresh token works then. Revoking the grant denies every live token.
func TestRefreshBoundsLiveAccessTokens(t *testing.T) {
	s, stores := codeServer(t, storagetest.Badger(t))
	clock := oauthtest.NewClock(time.Now().Truncate(time.Second))
	refreshGrant(s).mint.now = clock.Now
	client := testClient(clients.AuthMethodNone)
	first, oerr := issueCode(t, s, stores, client)()
	if oerr != nil {
		t.Fatal(oerr)
	}
	issuedAt := clock.Now()
	refresh := func(rt string) (*tokenResponse, *oauth.Error) {
		return refreshGrant(s).grant(context.Background(), client, map[string]string{"refresh_token": rt}, nil)
	}
	jtis := []string{jtiOf(t, first.AccessToken)}
	rt := first.RefreshToken
	for range maxLiveAccessTokens - 1 {
		clock.Advance(time.Second)
		resp, oerr := refresh(rt)
		if oerr != nil {
			t.Fatalf("refresh %d: %v", len(jtis), oerr)
		}
		jtis, rt = append(jtis, jtiOf(t, resp.AccessToken)), resp.RefreshToken
	}

	clock.Advance(time.Second)
	resp, oerr := refresh(rt)
	if oerr == nil || oerr.Status != http.StatusTooManyRequests || oerr.Code != oauth.InvalidRequest {
		t.Fatalf("refresh beyond %d live tokens: %+v %v, want 429 invalid_request", maxLiveAccessTokens, resp, oerr)
	}
	// The configured access-token lifetime, and the minute of clock skew
	// verifiers may allow after exp, during which the token must stay
	// deniable.
	oldestExpires := issuedAt.Add(time.Hour)
	oldestUnusable := oldestExpires.Add(time.Minute)
	if want := oldestUnusable.Sub(clock.Now()); oerr.RetryAfter != want {
		t.Fatalf("Retry-After %v, want %v: until the oldest token is no longer usable", oerr.RetryAfter, want)
	}
	clock.Advance(oldestExpires.Add(10 * time.Second).Sub(clock.Now()))
	if _, oerr := refresh(rt); oerr == nil || oerr.Status != http.StatusTooManyRequests {
		t.Fatalf("10 s after the oldest token's exp: %v, want 429: a skewed verifier may still take it", oerr)
	}
	clock.Advance(oldestUnusable.Add(-time.Second).Sub(clock.Now()))
	if _, oerr := refresh(rt); oerr == nil || oerr.Status != http.StatusTooManyRequests {
		t.Fatalf("a second before the oldest token is unusable: %v, want 429", oerr)
	}

	clock.Advance(time.Second)
	resp, oerr = refresh(rt)
	if oerr != nil {
		t.Fatalf("the refused refresh token once the oldest token is unusable: %v, want it to rotate", oerr)
	}
	jtis, rt = append(jtis[1:], jtiOf(t, resp.AccessToken)), resp.RefreshToken
	if _, oerr := refresh(rt); oerr == nil || oerr.Status != http.StatusTooManyRequests {
		t.Fatalf("the next refresh: %v, want 429: the grant is at the bound again", oerr)
	}

	g, err := stores.Grants.ByRefreshToken(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stores.Grants.Revoke(context.Background(), g.ID); err != nil {
		t.Fatal(err)
	}
	for i, jti := range jtis {
		if !stores.Revocations.DeniedInStore(context.Background(), jti) {
			t.Errorf("live token %d of %d is not denied after the grant's revocation", i+1, len(jtis))
		}
	}
}

// jtiOf is the jti of the access token at.
func jtiOf(t *testing.T, at string) string {
	t.Helper()
	_, claims := oauthtest.DecodeJWT(t, at)
	jti, _ := claims["jti"].(string)
	if jti == "" {
		t.Fatalf("access token without a jti: %v", claims)
	}
	return jti
}
