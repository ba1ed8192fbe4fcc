package upstream

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
)

var googleUser = fakeidp.User{
	Subject:       "110169484474386276334",
	Email:         "bob@corp.example",
	EmailVerified: true,
	Name:          "Bob Example",
	Picture:       "https://lh3.googleusercontent.com/a/bob=s96-c",
	HostedDomain:  "corp.example",
}

func newGooglePair(t *testing.T, user fakeidp.User) (*fakeidp.OIDC, *Google) {
	t.Helper()
	idp := fakeidp.NewGoogle(t, user)
	g, err := NewGoogle(t.Context(), GoogleConfig{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, Issuer: idp.URL}, nil)
	if err != nil {
		t.Fatalf("NewGoogle: %v", err)
	}
	return idp, g
}

func TestGoogleLogin(t *testing.T) {
	idp, g := newGooglePair(t, googleUser)
	if g.Name() != "google" {
		t.Errorf("Name() = %q", g.Name())
	}
	u, _ := url.Parse(g.AuthCodeURL("state", "verifier", "nonce", callbackURL))
	if u.Path != "/o/oauth2/v2/auth" || u.Query().Get("scope") != "openid email profile" {
		t.Errorf("auth URL = %s", u)
	}

	id := mustLogin(t, g)
	want := Identity{Subject: googleUser.Subject, Email: googleUser.Email, Name: googleUser.Name, Picture: googleUser.Picture, HostedDomain: "corp.example"}
	if !identityEqual(*id, want) {
		t.Errorf("identity = %+v, want %+v", *id, want)
	}
	if n := idp.UserinfoRequests(); n != 0 {
		t.Errorf("userinfo fetched %d times; Google's ID token has everything", n)
	}
}

func TestGoogleUnverifiedEmail(t *testing.T) {
	u := googleUser
	u.EmailVerified = false
	_, g := newGooglePair(t, u)
	if id := mustLogin(t, g); id.Email != "" {
		t.Errorf("Email = %q, want none for an unverified address", id.Email)
	}
}

// Google vouches for Gmail addresses and for addresses in the account's
// own Workspace domain; any other verified address of a personal account
// (a work address kept after leaving) is dropped.
func TestGoogleEmailAuthority(t *testing.T) {
	for _, tc := range []struct {
		email, hd, wantEmail string
	}{
		{"bob@corp.example", "corp.example", "bob@corp.example"},
		{"Bob@CORP.example", "CORP.EXAMPLE", "Bob@CORP.example"},
		{"bob@gmail.com", "", "bob@gmail.com"},
		{"bob@corp.example", "", ""},
		{"bob@corp.example", "other.example", ""},
		{"bob@sub.corp.example", "corp.example", ""},
	} {
		u := googleUser
		u.Email, u.HostedDomain = tc.email, tc.hd
		_, g := newGooglePair(t, u)
		id := mustLogin(t, g)
		if id.Email != tc.wantEmail || id.HostedDomain != strings.ToLower(tc.hd) {
			t.Errorf("%s with hd %q: Email %q, HostedDomain %q; want %q, %q", tc.email, tc.hd, id.Email, id.HostedDomain, tc.wantEmail, strings.ToLower(tc.hd))
		}
	}
}

func TestGoogleIssuerAlias(t *testing.T) {
	// Google may write iss without the scheme ("accounts.google.com").
	alias := func(c map[string]any) { c["iss"] = strings.TrimPrefix(c["iss"].(string), "http://") }

	idp, g := newGooglePair(t, googleUser)
	idp.EditIDToken(alias)
	mustLogin(t, g)

	// A generic OIDC provider gets no such leniency.
	oidp, o := newOIDCPair(t, alice)
	oidp.EditIDToken(alias)
	_, err := login(t, o)
	wantErr(t, err, "issuer")
}

func TestGoogleDefaultIssuer(t *testing.T) {
	// Without an issuer, the real Google is used; with a dead context no
	// request leaves the machine, but the error names Google's URL.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := NewGoogle(ctx, GoogleConfig{ClientID: "c", ClientSecret: "s"}, nil)
	wantErr(t, err, "https://accounts.google.com/.well-known/openid-configuration")
}

// With Offline, the login asks Google for a refresh token (access_type
// offline, prompt consent) and the extra scopes; the token it returns
// refreshes, and Revoke at Google's revocation endpoint ends the refresh
// token with every access token issued from it.
func TestGoogleTokenRefreshAndRevoke(t *testing.T) {
	idp := fakeidp.NewGoogle(t, googleUser)
	drive := "https://www.googleapis.com/auth/drive.readonly"
	g, err := NewGoogle(t.Context(), GoogleConfig{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, Issuer: idp.URL, Scopes: []string{drive}, Offline: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(g.AuthCodeURL("state", "verifier", "nonce", callbackURL))
	q := u.Query()
	if q.Get("access_type") != "offline" || q.Get("prompt") != "consent" || q.Get("scope") != "openid email profile "+drive {
		t.Errorf("auth URL = %s", u)
	}
	tok := mustLogin(t, g).Token
	if tok == nil || !strings.HasPrefix(tok.AccessToken, "ya29.") || tok.RefreshToken == "" || tok.Expiry.IsZero() || !idp.Valid(tok.AccessToken) {
		t.Fatalf("login token %+v", tok)
	}
	fresh, err := g.Refresh(t.Context(), tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken != tok.RefreshToken || !idp.Valid(fresh.AccessToken) {
		t.Errorf("refreshed %+v: want a new access token and the same refresh token", fresh)
	}
	if err := g.Revoke(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	if revoked := idp.Revoked(); len(revoked) != 1 || revoked[0] != tok.RefreshToken {
		t.Errorf("revoked %d tokens, want the refresh token", len(revoked))
	}
	if idp.Valid(tok.AccessToken) || idp.Valid(fresh.AccessToken) {
		t.Error("access tokens still valid after their refresh token was revoked")
	}
	if _, err := g.Refresh(t.Context(), tok.RefreshToken); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("refresh after revocation: %v, want ErrInvalidGrant", err)
	}
}

// Without Offline, Google issues no refresh token.
func TestGoogleOnlineHasNoRefreshToken(t *testing.T) {
	_, g := newGooglePair(t, googleUser)
	u, _ := url.Parse(g.AuthCodeURL("state", "verifier", "nonce", callbackURL))
	if u.Query().Has("access_type") {
		t.Errorf("auth URL %s asks for offline access", u)
	}
	if tok := mustLogin(t, g).Token; tok == nil || tok.AccessToken == "" || tok.RefreshToken != "" {
		t.Errorf("login token %+v, want an access token only", tok)
	}
}
