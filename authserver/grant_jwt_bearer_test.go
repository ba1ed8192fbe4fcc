package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// testIdP is the issuer of the identity provider of idjagGrant; its one
// key is idjagKey, under the kid "k1".
const testIdP = "https://idp.example"

var idjagKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

// idjagGrant is the jwt-bearer grant of a server trusting testIdP, whose
// clients are limited to idpClients when any are given, with rules edited
// by edit.
func idjagGrant(t testing.TB, edit func(*Config), idpClients ...string) *jwtBearerGrant {
	t.Helper()
	cfg := testConfig(t, storagetest.Badger(t))
	cfg.EnterpriseIdPs = []EnterpriseIdP{{
		Issuer:  testIdP,
		Clients: idpClients,
		Keys: func(_ context.Context, kid string, _ jwa.SignatureAlgorithm) ([]any, error) {
			if kid != "k1" {
				return nil, &tokens.InvalidTokenError{}
			}
			return []any{&idjagKey.PublicKey}, nil
		},
	}}
	if edit != nil {
		edit(&cfg)
	}
	s := newServer(t, cfg)
	return s.routes[pathToken].handler.(*tokenEndpoint).grants[GrantJWTBearer].(*jwtBearerGrant)
}

// signIDJAG signs payload, a claims set, with idjagKey as an ID-JAG.
func signIDJAG(t testing.TB, payload []byte) string {
	t.Helper()
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, "k1")
	_ = hdr.Set(jws.TypeKey, idJAGType)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), idjagKey, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// idjagClaims are the claims of a valid ID-JAG of testIdP for client c1.
func idjagClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": testIdP, "sub": "u1", "aud": testIssuer, "client_id": "c1", "resource": testResource,
		"jti": tokens.NewID(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "email": "u1@idp.example", "email_verified": true,
	}
}

// confidential is the client c1, authenticated with its secret.
func confidential(id string) *authenticatedClient {
	return &authenticatedClient{
		Client: &clients.Client{ClientID: id, GrantTypes: []string{GrantJWTBearer}, TokenEndpointAuthMethod: clients.AuthMethodClientSecretBasic},
		Method: clients.AuthMethodClientSecretBasic,
	}
}

func redeem(t testing.TB, h *jwtBearerGrant, client *authenticatedClient, claims map[string]any, params map[string]string) (*tokenResponse, *oauth.Error) {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if params == nil {
		params = map[string]string{}
	}
	params["assertion"] = signIDJAG(t, payload)
	return h.grant(context.Background(), client, params, nil)
}

// Which scopes a token gets: the ID-JAG's, or those the request narrows
// them to; OpenID scopes pass, offline_access is dropped (no refresh
// token is issued), and without any the resource's apply.
func TestJWTBearerScopes(t *testing.T) {
	h := idjagGrant(t, nil)
	for _, tc := range []struct {
		name    string
		scope   any // the claim; nil leaves it out
		request string
		want    string
		code    oauth.ErrorCode
	}{
		{name: "none: the resource's", want: "mcp:read mcp:write"},
		{name: "empty: the resource's", scope: "", want: "mcp:read mcp:write"},
		{name: "the ID-JAG's", scope: "mcp:write", want: "mcp:write"},
		{name: "openid passes, offline_access is dropped", scope: "openid offline_access mcp:read", want: "openid mcp:read"},
		{name: "duplicates once", scope: "mcp:read mcp:read", want: "mcp:read"},
		{name: "narrowed by the request", scope: "mcp:read mcp:write", request: "mcp:read", want: "mcp:read"},
		{name: "request with offline_access", scope: "mcp:read", request: "mcp:read offline_access", want: "mcp:read"},
		{name: "request beyond the ID-JAG", scope: "mcp:read", request: "mcp:write", code: oauth.InvalidScope},
		{name: "a scope no resource offers", scope: "mcp:read admin", code: oauth.InvalidScope},
		{name: "a scope in another case", scope: "MCP:READ", code: oauth.InvalidScope},
		{name: "scope as an array", scope: []string{"mcp:read"}, code: oauth.InvalidGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := idjagClaims()
			if tc.scope != nil {
				claims["scope"] = tc.scope
			}
			params := map[string]string{}
			if tc.request != "" {
				params["scope"] = tc.request
			}
			resp, oerr := redeem(t, h, confidential("c1"), claims, params)
			switch {
			case tc.code != "":
				if oerr == nil || oerr.Code != tc.code {
					t.Fatalf("got %v %v, want %s", resp, oerr, tc.code)
				}
			case oerr != nil:
				t.Fatalf("refused: %v", oerr)
			case resp.Scope != tc.want || resp.RefreshToken != "":
				t.Errorf("scope %q refresh %q, want scope %q and no refresh token", resp.Scope, resp.RefreshToken, tc.want)
			}
		})
	}
}

// grant_scope rules narrow what the ID-JAG grants to what the user may
// have, and allow rules decide who may use the server at all.
func TestJWTBearerRules(t *testing.T) {
	h := idjagGrant(t, func(cfg *Config) {
		cfg.Allow = AllowList{EmailDomains: []string{"idp.example"}}
		cfg.ScopeGrants = []ScopeGrant{
			{Scopes: []string{"mcp:read"}, To: AllowList{Everyone: true}},
			{Scopes: []string{"mcp:write"}, To: AllowList{Subjects: []string{EnterpriseSubject(testIdP, "admin")}}},
		}
	})
	claims := idjagClaims()
	claims["scope"] = "mcp:read mcp:write"
	if resp, oerr := redeem(t, h, confidential("c1"), claims, nil); oerr != nil || resp.Scope != "mcp:read" {
		t.Errorf("user: %v %v, want mcp:read", resp, oerr)
	}
	claims = idjagClaims()
	claims["sub"], claims["scope"] = "admin", "mcp:read mcp:write"
	if resp, oerr := redeem(t, h, confidential("c1"), claims, nil); oerr != nil || resp.Scope != "mcp:read mcp:write" {
		t.Errorf("admin: %v %v, want mcp:read mcp:write", resp, oerr)
	}
	// A user who may have none of what the ID-JAG grants gets nothing.
	claims = idjagClaims()
	claims["scope"] = "mcp:write"
	if _, oerr := redeem(t, h, confidential("c1"), claims, nil); oerr == nil || oerr.Code != oauth.InvalidScope {
		t.Errorf("user asking only for mcp:write: %v, want invalid_scope", oerr)
	}
	claims = idjagClaims()
	claims["email"] = "u1@other.example"
	if _, oerr := redeem(t, h, confidential("c1"), claims, nil); oerr == nil || oerr.Code != oauth.InvalidGrant {
		t.Errorf("user outside the allowed domain: %v, want invalid_grant", oerr)
	}
}

// A provider limited to some clients refuses its ID-JAGs to others, even
// those they were issued to.
func TestJWTBearerProviderClients(t *testing.T) {
	h := idjagGrant(t, nil, "c1")
	if _, oerr := redeem(t, h, confidential("c1"), idjagClaims(), nil); oerr != nil {
		t.Errorf("listed client: %v", oerr)
	}
	claims := idjagClaims()
	claims["client_id"] = "c2"
	if _, oerr := redeem(t, h, confidential("c2"), claims, nil); oerr == nil || oerr.Code != oauth.UnauthorizedClient {
		t.Errorf("unlisted client: %v, want unauthorized_client", oerr)
	}
	public := confidential("c1")
	public.Method = clients.AuthMethodNone
	if _, oerr := redeem(t, h, public, idjagClaims(), nil); oerr == nil || oerr.Code != oauth.UnauthorizedClient {
		t.Errorf("unauthenticated client: %v, want unauthorized_client", oerr)
	}
}

// The metadata advertises the grant and its profile only with a provider.
func TestJWTBearerMetadata(t *testing.T) {
	cfg := testConfig(t, storagetest.Badger(t))
	m := serverMetadata(&cfg)
	if slices.Contains(m.GrantTypesSupported, GrantJWTBearer) || m.AuthorizationGrantProfiles != nil {
		t.Errorf("without providers: %v %v", m.GrantTypesSupported, m.AuthorizationGrantProfiles)
	}
	cfg.EnterpriseIdPs = []EnterpriseIdP{{Issuer: testIdP}}
	m = serverMetadata(&cfg)
	if !slices.Contains(m.GrantTypesSupported, GrantJWTBearer) || !slices.Equal(m.AuthorizationGrantProfiles, []string{IDJAGProfile}) {
		t.Errorf("with a provider: %v %v", m.GrantTypesSupported, m.AuthorizationGrantProfiles)
	}
}

// FuzzJWTBearerGrant signs arbitrary claims sets with the trusted
// provider's key and checks that a token is issued only for an ID-JAG that
// keeps every rule, whatever the claims' types, spellings or duplicates:
// iss exactly the provider, aud holding the issuer exactly, client_id the
// client's, a jti and a sub, exp ahead and iat not, and a resource of the
// server; the token is then for that resource and that user. Nothing
// panics.
func FuzzJWTBearerGrant(f *testing.F) {
	h := idjagGrant(f, nil)
	good, _ := json.Marshal(idjagClaims())
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), `"iss"`, `"ISS"`, 1)))
	f.Add([]byte(strings.Replace(string(good), `"client_id":"c1"`, `"client_id":"c1","client_id":"c2"`, 1)))
	f.Add([]byte(strings.Replace(string(good), `"aud":"https://h.example"`, `"aud":["https://x.example","https://h.example"]`, 1)))
	f.Add([]byte(strings.Replace(string(good), testResource, testIssuer+"/mcp/", 1)))
	f.Add([]byte(`{"iss":"https://idp.example","aud":"https://h.example"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		params := map[string]string{"assertion": signIDJAG(t, payload)}
		resp, oerr := h.grant(context.Background(), confidential("c1"), params, nil)
		if oerr != nil {
			if oerr.Status >= 500 {
				t.Fatalf("server error for a claims set: %v", oerr)
			}
			return
		}
		var c struct {
			Iss      string          `json:"iss"`
			Sub      string          `json:"sub"`
			Aud      tokens.Audience `json:"aud"`
			ClientID string          `json:"client_id"`
			JTI      string          `json:"jti"`
			Exp      float64         `json:"exp"`
			Iat      float64         `json:"iat"`
			Resource tokens.Audience `json:"resource"`
		}
		if err := tokens.DecodeExact(payload, []string{"iss", "sub", "aud", "client_id", "jti", "exp", "iat", "resource"}, &c); err != nil {
			t.Fatalf("accepted claims that do not decode: %v: %s", err, payload)
		}
		now := float64(time.Now().Unix())
		switch {
		case c.Iss != testIdP, !slices.Contains(c.Aud, testIssuer), c.ClientID != "c1", c.JTI == "", c.Sub == "":
			t.Fatalf("accepted an ID-JAG breaking an identity rule: %s", payload)
		case c.Exp < now-idJAGSkew.Seconds(), c.Iat == 0, c.Iat > now+idJAGSkew.Seconds():
			t.Fatalf("accepted an ID-JAG out of its time: %s", payload)
		case len(c.Resource) == 0:
			t.Fatalf("accepted an ID-JAG without resource: %s", payload)
		}
		_, at := oauthtest.DecodeJWT(t, resp.AccessToken)
		if at["aud"] != testResource || at["sub"] != EnterpriseSubject(testIdP, c.Sub) || at["client_id"] != "c1" {
			t.Fatalf("token claims %v for %s", at, payload)
		}
	})
}

// An ID-JAG naming the provider's kid but signed with another key, or
// naming a kid the provider does not publish, is refused as invalid_grant.
func TestJWTBearerSignature(t *testing.T) {
	h := idjagGrant(t, nil)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(idjagClaims())
	for kid, want := range map[string]string{"k1": "signature is invalid", "k2": "not signed by a key"} {
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, kid)
		_ = hdr.Set(jws.TypeKey, idJAGType)
		tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), other, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		_, oerr := h.grant(context.Background(), confidential("c1"), map[string]string{"assertion": string(tok)}, nil)
		if oerr == nil || oerr.Code != oauth.InvalidGrant || !strings.Contains(oerr.Description, want) {
			t.Errorf("kid %s with another key: %v, want invalid_grant saying %q", kid, oerr, want)
		}
	}
}
