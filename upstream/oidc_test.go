package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
)

var alice = fakeidp.User{
	Subject:           "248289761001",
	Email:             "alice@example.com",
	EmailVerified:     true,
	Name:              "Alice Liddell",
	PreferredUsername: "alice",
	Picture:           "https://example.com/alice.png",
}

// newOIDCPair starts a fake provider and an OIDC client for it.
func newOIDCPair(t *testing.T, user fakeidp.User) (*fakeidp.OIDC, *OIDC) {
	t.Helper()
	idp := fakeidp.NewOIDC(t, user)
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil)
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	return idp, o
}

func TestOIDCLogin(t *testing.T) {
	idp, o := newOIDCPair(t, alice)
	if o.Name() != "oidc" {
		t.Errorf("Name() = %q", o.Name())
	}

	p := newLoginParams()
	authURL, err := url.Parse(o.AuthCodeURL(p.state, p.verifier, p.nonce, callbackURL))
	if err != nil {
		t.Fatal(err)
	}
	q := authURL.Query()
	for k, want := range map[string]string{
		"response_type":         "code",
		"client_id":             idp.ClientID,
		"redirect_uri":          callbackURL,
		"scope":                 "openid email profile",
		"state":                 p.state,
		"nonce":                 p.nonce,
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("auth URL %s = %q, want %q", k, got, want)
		}
	}
	if q.Get("code_challenge") == "" || strings.Contains(authURL.String(), p.verifier) {
		t.Error("auth URL must carry the S256 challenge and never the verifier")
	}

	code := authorize(t, o, p)
	id, err := o.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := Identity{Subject: alice.Subject, Username: "alice", Email: alice.Email, Name: alice.Name, Picture: alice.Picture}
	if !identityEqual(*id, want) {
		t.Errorf("identity = %+v, want %+v", *id, want)
	}
	if n := idp.UserinfoRequests(); n != 0 {
		t.Errorf("userinfo fetched %d times although the ID token had everything", n)
	}

	// The code is single-use: a replay is invalid_grant.
	_, err = o.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL)
	if !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("replayed code: err = %v, want ErrInvalidGrant", err)
	}

	// The key set is cached across logins.
	mustLogin(t, o)
	if n := idp.JWKSRequests(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func identityEqual(a, b Identity) bool {
	return a.Subject == b.Subject && a.Username == b.Username && a.Email == b.Email &&
		a.Name == b.Name && a.Picture == b.Picture && strings.Join(a.Orgs, ",") == strings.Join(b.Orgs, ",") &&
		a.HostedDomain == b.HostedDomain
}

func TestOIDCTokenEndpointAuthMethods(t *testing.T) {
	for _, tc := range []struct {
		methods []string
		wantErr string
	}{
		{methods: nil},
		{methods: []string{"client_secret_basic"}},
		{methods: []string{"client_secret_post"}},
		{methods: []string{"private_key_jwt"}, wantErr: "neither client_secret_basic nor client_secret_post"},
	} {
		t.Run(strings.Join(tc.methods, ","), func(t *testing.T) {
			idp := fakeidp.NewOIDC(t, alice)
			idp.EditDiscovery(func(doc map[string]any) {
				if tc.methods == nil {
					delete(doc, "token_endpoint_auth_methods_supported")
				} else {
					doc["token_endpoint_auth_methods_supported"] = tc.methods
				}
			})
			o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil)
			if tc.wantErr != "" {
				wantErr(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id := mustLogin(t, o); id.Subject != alice.Subject {
				t.Errorf("subject = %q", id.Subject)
			}
		})
	}
}

func TestOIDCScopes(t *testing.T) {
	idp := fakeidp.NewOIDC(t, alice)
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, Scopes: []string{"email", "groups"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(o.AuthCodeURL("s", "v", "n", callbackURL))
	if got := u.Query().Get("scope"); got != "openid email groups" {
		t.Errorf("scope = %q, want openid added in front", got)
	}
	mustLogin(t, o)
}

func TestOIDCWrongClientSecret(t *testing.T) {
	idp := fakeidp.NewOIDC(t, alice)
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: "wrong"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = login(t, o)
	wantErr(t, err, "invalid_client")
	if errors.Is(err, ErrInvalidGrant) {
		t.Error("a client authentication failure is not invalid_grant")
	}
}

func TestOIDCExchangeRejects(t *testing.T) {
	_, o := newOIDCPair(t, alice)

	t.Run("nonce mismatch", func(t *testing.T) {
		p := newLoginParams()
		code := authorize(t, o, p)
		_, err := o.Exchange(t.Context(), code, p.verifier, "some-other-nonce", callbackURL)
		wantErr(t, err, "nonce")
	})
	t.Run("wrong verifier", func(t *testing.T) {
		p := newLoginParams()
		code := authorize(t, o, p)
		_, err := o.Exchange(t.Context(), code, p.verifier[:len(p.verifier)-1]+"x", p.nonce, callbackURL)
		if !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("err = %v, want ErrInvalidGrant", err)
		}
	})
	t.Run("redirect URI mismatch", func(t *testing.T) {
		p := newLoginParams()
		code := authorize(t, o, p)
		_, err := o.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL+"/other")
		if !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("err = %v, want ErrInvalidGrant", err)
		}
	})
	t.Run("missing arguments", func(t *testing.T) {
		_, err := o.Exchange(t.Context(), "code", "verifier", "", callbackURL)
		wantErr(t, err, "no nonce")
		_, err = o.Exchange(t.Context(), "code", "", "nonce", callbackURL)
		wantErr(t, err, "no PKCE verifier")
		_, err = o.Exchange(t.Context(), "", "verifier", "nonce", callbackURL)
		wantErr(t, err, "no authorization code")
	})
}

func TestOIDCIDTokenClaims(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		edit    func(c map[string]any)
		wantErr string // "" means the login must succeed
	}{
		{"wrong aud", func(c map[string]any) { c["aud"] = "someone-else" }, "audience"},
		{"aud array without us", func(c map[string]any) { c["aud"] = []string{"a", "b"} }, "audience"},
		{"several aud, no azp", func(c map[string]any) { c["aud"] = []string{c["aud"].(string), "other"} }, "azp"},
		{"several aud, azp is us", func(c map[string]any) {
			c["aud"] = []string{"other", c["aud"].(string)}
			c["azp"] = c["aud"].([]string)[1]
		}, ""},
		{"azp is someone else", func(c map[string]any) { c["azp"] = "other" }, "azp"},
		{"aud not a string", func(c map[string]any) { c["aud"] = 42 }, "aud"},
		{"wrong iss", func(c map[string]any) { c["iss"] = "https://evil.example.com" }, "issuer"},
		{"iss with trailing slash", func(c map[string]any) { c["iss"] = c["iss"].(string) + "/" }, "issuer"},
		{"expired", func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }, "expired"},
		{"expired within skew", func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }, ""},
		{"no exp", func(c map[string]any) { delete(c, "exp") }, "exp"},
		{"exp not a number", func(c map[string]any) { c["exp"] = "tomorrow" }, "claims are invalid"},
		{"issued in the future", func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }, "future"},
		{"no iat", func(c map[string]any) { delete(c, "iat") }, "iat"},
		{"not yet valid", func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }, "not valid before"},
		{"no sub", func(c map[string]any) { delete(c, "sub") }, "sub"},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }, "nonce"},
		{"other nonce", func(c map[string]any) { c["nonce"] = "replayed" }, "nonce"},
		{"fractional dates", func(c map[string]any) { c["iat"] = float64(now.Unix()) + 0.5 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp, o := newOIDCPair(t, alice)
			idp.EditIDToken(tc.edit)
			_, err := login(t, o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				return
			}
			wantErr(t, err, tc.wantErr)
		})
	}
}

func TestOIDCIDTokenSignature(t *testing.T) {
	rogue := fakeidp.NewRSAKey(t)

	t.Run("unpublished key, published kid", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		mustLogin(t, o) // learn the real kid from the JWKS
		kid := idp.KeyID()
		idp.SetIDTokenSigner(func(c map[string]any) (string, error) { return fakeidp.SignRS256(rogue, kid, c) })
		_, err := login(t, o)
		wantErr(t, err, "signature does not verify")
	})
	t.Run("unpublished key, unknown kid", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.SetIDTokenSigner(func(c map[string]any) (string, error) { return fakeidp.SignRS256(rogue, "rogue", c) })
		_, err := login(t, o)
		wantErr(t, err, "no key", `"rogue"`)
		// The unknown kid made it refetch the key set once, no more.
		if n := idp.JWKSRequests(); n != 2 {
			t.Errorf("JWKS fetched %d times, want 2", n)
		}
	})
	t.Run("HS256 with the client secret", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.SetIDTokenSigner(func(c map[string]any) (string, error) {
			payload, _ := json.Marshal(c)
			tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), []byte(idp.ClientSecret)))
			return string(tok), err
		})
		_, err := login(t, o)
		wantErr(t, err, `"HS256" is not allowed`)
	})
	t.Run("alg none", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.SetIDTokenSigner(func(c map[string]any) (string, error) {
			payload, _ := json.Marshal(c)
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + ".", nil
		})
		_, err := login(t, o)
		wantErr(t, err, `"none" is not allowed`)
	})
	t.Run("not a JWS", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.SetIDTokenSigner(func(map[string]any) (string, error) { return "not.a.jwt", nil })
		_, err := login(t, o)
		wantErr(t, err, "ID token")
	})
	t.Run("no kid, single key", func(t *testing.T) {
		// Some providers omit kid; any published key may then verify.
		idp, o := newOIDCPair(t, alice)
		mustLogin(t, o)
		key := idp.SigningKey()
		idp.SetIDTokenSigner(func(c map[string]any) (string, error) {
			payload, _ := json.Marshal(c)
			tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key))
			return string(tok), err
		})
		mustLogin(t, o)
	})
}

func TestOIDCJWKSWithUnknownKeyType(t *testing.T) {
	// A key of a type we cannot use must not spoil the rest of the set.
	idp, o := newOIDCPair(t, alice)
	pub, err := jwk.Import(&idp.SigningKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, idp.KeyID())
	known, _ := json.Marshal(pub)
	body := `{"keys":[{"kty":"ML-DSA","kid":"future","alg":"ML-DSA-65","pub":"AAAA"},` + string(known) + `]}`
	idp.Handle(idp.Paths.JWKS, jsonStatusOK(body))
	mustLogin(t, o)
}

func TestOIDCOtherAlgorithms(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		alg  jwa.SignatureAlgorithm
		priv any
		pub  any
	}{
		{jwa.ES256(), ecKey, &ecKey.PublicKey},
		{jwa.EdDSA(), edKey, edKey.Public()},
		{jwa.PS256(), nil, nil}, // filled below: the fake's own RSA key
	} {
		t.Run(tc.alg.String(), func(t *testing.T) {
			idp, o := newOIDCPair(t, alice)
			priv, pubRaw := tc.priv, tc.pub
			if priv == nil {
				priv, pubRaw = idp.SigningKey(), &idp.SigningKey().PublicKey
			}
			pub, err := jwk.Import(pubRaw)
			if err != nil {
				t.Fatal(err)
			}
			_ = pub.Set(jwk.KeyIDKey, "k1")
			set := jwk.NewSet()
			_ = set.AddKey(pub)
			body, _ := json.Marshal(set)
			idp.Handle(idp.Paths.JWKS, jsonStatusOK(string(body)))
			idp.SetIDTokenSigner(func(c map[string]any) (string, error) {
				payload, _ := json.Marshal(c)
				hdr := jws.NewHeaders()
				_ = hdr.Set(jws.KeyIDKey, "k1")
				tok, err := jws.Sign(payload, jws.WithKey(tc.alg, priv, jws.WithProtectedHeaders(hdr)))
				return string(tok), err
			})
			mustLogin(t, o)
		})
	}
}

func jsonStatusOK(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
}

func TestOIDCConcurrentLogins(t *testing.T) {
	// Logins racing on a key rotation share one key-set refetch.
	idp, o := newOIDCPair(t, alice)
	mustLogin(t, o)
	idp.RotateKey()
	const n = 8
	params := make([]loginParams, n)
	codes := make([]string, n)
	for i := range n {
		params[i] = newLoginParams()
		codes[i] = authorize(t, o, params[i])
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := o.Exchange(t.Context(), codes[i], params[i].verifier, params[i].nonce, callbackURL)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := idp.JWKSRequests(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2", got)
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	idp, o := newOIDCPair(t, alice)
	mustLogin(t, o)
	idp.RotateKey()
	mustLogin(t, o)
	if n := idp.JWKSRequests(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (initial, and once for the new kid)", n)
	}
}

func TestOIDCEmailVerification(t *testing.T) {
	t.Run("unverified email dropped", func(t *testing.T) {
		u := alice
		u.EmailVerified = false
		idp, o := newOIDCPair(t, u)
		id := mustLogin(t, o)
		if id.Email != "" {
			t.Errorf("Email = %q, want none for an unverified address", id.Email)
		}
		if id.Subject != u.Subject || id.Name != u.Name {
			t.Errorf("identity = %+v", id)
		}
		// The ID token had no usable email, so userinfo was asked (and
		// said the same).
		if n := idp.UserinfoRequests(); n != 1 {
			t.Errorf("userinfo fetched %d times, want 1", n)
		}
	})
	t.Run("email_verified as string", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(func(c map[string]any) { c["email_verified"] = "true" })
		if id := mustLogin(t, o); id.Email != alice.Email {
			t.Errorf("Email = %q", id.Email)
		}
	})
	t.Run("email_verified missing", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(func(c map[string]any) { delete(c, "email_verified") })
		idp.Handle(idp.Paths.Userinfo, jsonHandler(map[string]any{"sub": alice.Subject, "email": alice.Email}))
		if id := mustLogin(t, o); id.Email != "" {
			t.Errorf("Email = %q, want none without email_verified", id.Email)
		}
	})
}

func jsonHandler(v any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

func TestOIDCUserinfo(t *testing.T) {
	thin := func(c map[string]any) {
		for _, k := range []string{"email", "email_verified", "name", "picture", "preferred_username"} {
			delete(c, k)
		}
	}
	t.Run("fills in missing claims", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(thin)
		id := mustLogin(t, o)
		want := Identity{Subject: alice.Subject, Username: "alice", Email: alice.Email, Name: alice.Name, Picture: alice.Picture}
		if !identityEqual(*id, want) {
			t.Errorf("identity = %+v, want %+v", *id, want)
		}
		if n := idp.UserinfoRequests(); n != 1 {
			t.Errorf("userinfo fetched %d times, want 1", n)
		}
	})
	t.Run("sub mismatch", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(thin)
		idp.Handle(idp.Paths.Userinfo, jsonHandler(map[string]any{"sub": "mallory", "email": "m@example.com", "email_verified": true}))
		_, err := login(t, o)
		wantErr(t, err, "userinfo sub")
	})
	t.Run("garbage", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(thin)
		idp.Handle(idp.Paths.Userinfo, garbage)
		_, err := login(t, o)
		wantErr(t, err, "userinfo", "invalid JSON")
	})
	t.Run("huge", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.EditIDToken(thin)
		idp.Handle(idp.Paths.Userinfo, huge)
		_, err := login(t, o)
		wantErr(t, err, "userinfo", "larger than")
	})
	t.Run("no endpoint", func(t *testing.T) {
		idp := fakeidp.NewOIDC(t, alice)
		idp.EditDiscovery(func(doc map[string]any) { delete(doc, "userinfo_endpoint") })
		o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		idp.EditIDToken(thin)
		id := mustLogin(t, o)
		if id.Subject != alice.Subject || id.Email != "" {
			t.Errorf("identity = %+v", id)
		}
	})
}

func TestNewOIDCDiscoveryErrors(t *testing.T) {
	idp := fakeidp.NewOIDC(t, alice)
	newFor := func(ctx context.Context, issuer string) error {
		_, err := NewOIDC(ctx, OIDCConfig{Issuer: issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil)
		return err
	}

	t.Run("http issuer off loopback", func(t *testing.T) {
		wantErr(t, newFor(t.Context(), "http://idp.example.com"), "must use https")
	})
	t.Run("bad issuer URLs", func(t *testing.T) {
		for _, iss := range []string{"", "idp.example.com", "ftp://idp.example.com", "https://idp.example.com/?x=1", "https://idp.example.com/#f", "https://u:p@idp.example.com"} {
			if err := newFor(t.Context(), iss); err == nil {
				t.Errorf("issuer %q accepted", iss)
			}
		}
	})
	t.Run("no client id", func(t *testing.T) {
		_, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL}, nil)
		wantErr(t, err, "client_id")
	})
	t.Run("404", func(t *testing.T) {
		err := newFor(t.Context(), idp.URL+"/nope")
		wantErr(t, err, idp.URL+"/nope/.well-known/openid-configuration", "404")
	})
	t.Run("connection refused", func(t *testing.T) {
		wantErr(t, newFor(t.Context(), "http://127.0.0.1:1"), "discovery")
	})
	t.Run("configured issuer has extra slash", func(t *testing.T) {
		// Same discovery URL, but the document says the issuer has no
		// trailing slash: the two must match exactly.
		wantErr(t, newFor(t.Context(), idp.URL+"/"), "not the configured issuer")
	})

	edits := []struct {
		name    string
		edit    func(doc map[string]any)
		wantErr string
	}{
		{"issuer mismatch", func(d map[string]any) { d["issuer"] = "https://evil.example.com" }, "not the configured issuer"},
		{"issuer with slash", func(d map[string]any) { d["issuer"] = d["issuer"].(string) + "/" }, "not the configured issuer"},
		{"no token endpoint", func(d map[string]any) { delete(d, "token_endpoint") }, "no token_endpoint"},
		{"no jwks_uri", func(d map[string]any) { delete(d, "jwks_uri") }, "no jwks_uri"},
		{"http token endpoint", func(d map[string]any) { d["token_endpoint"] = "http://idp.example.com/token" }, "token_endpoint \"http://idp.example.com/token\" must use https"},
		{"http userinfo endpoint", func(d map[string]any) { d["userinfo_endpoint"] = "http://idp.example.com/userinfo" }, "userinfo_endpoint"},
	}
	for _, tc := range edits {
		t.Run(tc.name, func(t *testing.T) {
			idp := fakeidp.NewOIDC(t, alice)
			idp.EditDiscovery(tc.edit)
			_, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil)
			wantErr(t, err, tc.wantErr)
		})
	}

	for name, h := range map[string]http.Handler{"garbage": garbage, "huge": huge} {
		t.Run(name, func(t *testing.T) {
			idp := fakeidp.NewOIDC(t, alice)
			idp.Handle(fakeidp.DiscoveryPath, h)
			err := newFor(t.Context(), idp.URL)
			wantErr(t, err, fakeidp.DiscoveryPath)
		})
	}
	t.Run("redirects", func(t *testing.T) {
		idp := fakeidp.NewOIDC(t, alice)
		other := fakeidp.NewOIDC(t, alice)
		// Same origin: followed.
		idp.Handle("/moved/.well-known/openid-configuration", http.RedirectHandler(idp.URL+fakeidp.DiscoveryPath, http.StatusMovedPermanently))
		idp.EditDiscovery(func(d map[string]any) { d["issuer"] = idp.URL + "/moved" })
		if err := newFor(t.Context(), idp.URL+"/moved"); err != nil {
			t.Errorf("same-origin redirect: %v", err)
		}
		// Another origin (here: another port): refused.
		idp.Handle(fakeidp.DiscoveryPath, http.RedirectHandler(other.URL+fakeidp.DiscoveryPath, http.StatusFound))
		wantErr(t, newFor(t.Context(), idp.URL), "refusing redirect", other.URL)
	})
	t.Run("html", func(t *testing.T) {
		idp := fakeidp.NewOIDC(t, alice)
		idp.Handle(fakeidp.DiscoveryPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>login</html>"))
		}))
		_, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: "c"}, nil)
		wantErr(t, err, "invalid JSON", "text/html")
	})
	t.Run("timeout", func(t *testing.T) {
		idp := fakeidp.NewOIDC(t, alice)
		idp.Handle(fakeidp.DiscoveryPath, stall)
		_, err := NewOIDC(shortCtx(t), OIDCConfig{Issuer: idp.URL, ClientID: "c"}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	})
}

func TestOIDCProviderFailures(t *testing.T) {
	t.Run("token endpoint garbage", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.Token, garbage)
		_, err := login(t, o)
		wantErr(t, err, "token")
	})
	t.Run("token endpoint huge", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.Token, huge)
		_, err := login(t, o)
		wantErr(t, err, "token")
	})
	t.Run("token endpoint 500 with HTML", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.Token, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("<html>" + strings.Repeat("oops ", 1000) + "</html>"))
		}))
		_, err := login(t, o)
		wantErr(t, err, "500")
		if len(err.Error()) > 300 {
			t.Errorf("error echoes the body: %d bytes", len(err.Error()))
		}
	})
	t.Run("no id_token", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.Token, jsonHandler(map[string]any{"access_token": "at", "token_type": "Bearer"}))
		_, err := login(t, o)
		wantErr(t, err, "no id_token")
	})
	t.Run("token endpoint timeout", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.Token, stall)
		p := newLoginParams()
		code := authorize(t, o, p)
		_, err := o.Exchange(shortCtx(t), code, p.verifier, p.nonce, callbackURL)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	})
	for name, h := range map[string]http.Handler{"garbage": garbage, "huge": huge, "404": http.NotFoundHandler()} {
		t.Run("jwks "+name, func(t *testing.T) {
			idp, o := newOIDCPair(t, alice)
			idp.Handle(idp.Paths.JWKS, h)
			_, err := login(t, o)
			wantErr(t, err, "signing keys", idp.Paths.JWKS)
		})
	}
	t.Run("jwks timeout", func(t *testing.T) {
		idp, o := newOIDCPair(t, alice)
		idp.Handle(idp.Paths.JWKS, stall)
		p := newLoginParams()
		code := authorize(t, o, p)
		_, err := o.Exchange(shortCtx(t), code, p.verifier, p.nonce, callbackURL)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	})
}

func TestOIDCDeniedAtProvider(t *testing.T) {
	// A denial comes back to the callback as error=access_denied; turning
	// it into ErrDenied is the caller's job. Check the fake does it the
	// way real providers do.
	idp, o := newOIDCPair(t, alice)
	idp.Deny(true)
	p := newLoginParams()
	loc := fakeidp.Authorize(t, o.AuthCodeURL(p.state, p.verifier, p.nonce, callbackURL))
	if q := loc.Query(); q.Get("error") != "access_denied" || q.Get("state") != p.state || q.Has("code") {
		t.Errorf("redirect = %s", loc)
	}
}

// An OIDC provider's revocation_endpoint from discovery revokes the access
// token when there is no refresh token; without the endpoint, Revoke says
// there is none.
func TestOIDCRevoke(t *testing.T) {
	idp, o := newOIDCPair(t, fakeidp.User{Subject: "u1", Email: "u1@example.com", EmailVerified: true, Name: "U"})
	tok := mustLogin(t, o).Token
	if tok == nil || tok.AccessToken == "" || tok.RefreshToken != "" {
		t.Fatalf("login token %+v: want an access token, and no refresh token without offline_access", tok)
	}
	if err := o.Revoke(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if revoked := idp.Revoked(); len(revoked) != 1 || revoked[0] != tok.AccessToken || idp.Valid(tok.AccessToken) {
		t.Errorf("revoked %d tokens; access token still valid: %v", len(revoked), idp.Valid(tok.AccessToken))
	}

	bare := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u1"})
	bare.EditDiscovery(func(doc map[string]any) { delete(doc, "revocation_endpoint") })
	without, err := NewOIDC(t.Context(), OIDCConfig{Issuer: bare.URL, ClientID: bare.ClientID, ClientSecret: bare.ClientSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := without.Revoke(t.Context(), tok); !errors.Is(err, ErrNoRevocation) {
		t.Errorf("Revoke without an endpoint: %v, want ErrNoRevocation", err)
	}
	if bare.Requests(fakeidp.RevocationPath) != 0 {
		t.Error("a revocation was sent to a provider that publishes no endpoint")
	}
}

// offline_access gets an OIDC refresh token, which refreshes; one the
// provider no longer knows is ErrInvalidGrant.
func TestOIDCRefresh(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u1"})
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		Scopes: []string{"openid", "offline_access"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := mustLogin(t, o).Token
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token with offline_access: %+v", tok)
	}
	fresh, err := o.Refresh(t.Context(), tok.RefreshToken)
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken != tok.RefreshToken || !idp.Valid(fresh.AccessToken) {
		t.Fatalf("Refresh: %+v %v", fresh, err)
	}
	_, err = o.Refresh(t.Context(), "1//unknown")
	if !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("unknown refresh token: %v, want ErrInvalidGrant", err)
	}
}
