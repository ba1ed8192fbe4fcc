package authserver

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// dpopServer is an authorization server over HTTP, with its stores.
func dpopServer(t *testing.T, nonces *dpop.Nonces) (*oauthtest.Server, *state.Stores) {
	t.Helper()
	cfg := testConfig(t, storagetest.Badger(t))
	cfg.DPoPNonces = nonces
	return serve(t, newServer(t, cfg)), cfg.State
}

// storeCode stores an authorization code for alice to clientID, bound to
// the DPoP key jkt if set, and returns the token request that redeems it.
func storeCode(t *testing.T, stores *state.Stores, clientID, jkt string) url.Values {
	t.Helper()
	p := oauthtest.NewPKCE()
	code := randomToken()
	err := stores.Codes.Issue(context.Background(), code, &state.Code{
		Request: state.Request{ClientID: clientID, RedirectURI: "https://c.example/cb", CodeChallenge: p.Challenge,
			Resource: testResource, Scopes: []string{"mcp:read"}, DPoPJKT: jkt},
		User:     state.User{Subject: "users:alice", Username: "alice", Upstream: "users"},
		IssuedAt: time.Now().UnixNano(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {p.Verifier}, "client_id": {clientID}}
}

// tokenProof is a fresh proof for a token request at the test server.
func tokenProof(t *testing.T, key *oauthtest.DPoPKey, nonce string) http.Header {
	return http.Header{"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: testIssuer + pathToken, Nonce: nonce})}}
}

func boundTo(t *testing.T, token string) string {
	t.Helper()
	_, claims := oauthtest.DecodeJWT(t, token)
	cnf, _ := claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// A token request with a proof gets a DPoP token bound to the proof's key;
// a public client's refresh token is bound to it too, so a refresh without
// the key, or with another, is invalid_grant (RFC 9449 section 5).
func TestTokenRequestWithProofBindsTokensToTheKey(t *testing.T) {
	as, stores := dpopServer(t, nil)
	client := publicClient(t, as)
	key, other := oauthtest.NewDPoPKey(t), oauthtest.NewDPoPKey(t)

	ts := as.Exchange(t, storeCode(t, stores, client.ID, ""), tokenProof(t, key, ""))
	if ts.TokenType != "DPoP" || boundTo(t, ts.Access) != key.JKT {
		t.Fatalf("token_type %q, cnf.jkt %q; want DPoP bound to %q", ts.TokenType, boundTo(t, ts.Access), key.JKT)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Refresh}, "client_id": {client.ID}}
	for name, header := range map[string]http.Header{"no proof": nil, "another key": tokenProof(t, other, "")} {
		status, _, body := as.Token(t, refresh, header)
		if status != http.StatusBadRequest || body["error"] != string(oauth.InvalidGrant) {
			t.Fatalf("refresh with %s: %d %v, want invalid_grant", name, status, body)
		}
	}
	next := as.Exchange(t, refresh, tokenProof(t, key, ""))
	if next.TokenType != "DPoP" || boundTo(t, next.Access) != key.JKT {
		t.Fatalf("refreshed token_type %q bound to %q", next.TokenType, boundTo(t, next.Access))
	}

	// Without a proof, the same client gets bearer tokens, as before.
	bearer := as.Exchange(t, storeCode(t, stores, client.ID, ""), nil)
	if bearer.TokenType != "Bearer" || boundTo(t, bearer.Access) != "" {
		t.Fatalf("without a proof: token_type %q, cnf.jkt %q", bearer.TokenType, boundTo(t, bearer.Access))
	}
}

// A confidential client's refresh token is bound to its credentials, not
// to a DPoP key: a refresh may prove another key and gets a token bound to
// that one (RFC 9449 section 5).
func TestConfidentialClientRefreshMayProveAnotherKey(t *testing.T) {
	as, stores := dpopServer(t, nil)
	client := as.RegisterClient(t, map[string]any{"redirect_uris": []string{"https://c.example/cb"}, "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"authorization_code", "refresh_token"}})
	key, other := oauthtest.NewDPoPKey(t), oauthtest.NewDPoPKey(t)
	withBasic := func(h http.Header) http.Header { h.Set("Authorization", basic(client).Get("Authorization")); return h }
	ts := as.Exchange(t, storeCode(t, stores, client.ID, ""), withBasic(tokenProof(t, key, "")))
	next := as.Exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Refresh}}, withBasic(tokenProof(t, other, "")))
	if boundTo(t, next.Access) != other.JKT {
		t.Fatalf("refreshed token bound to %q, want the new key %q", boundTo(t, next.Access), other.JKT)
	}
}

// A code requested with dpop_jkt is redeemed only with a proof by that key
// (RFC 9449 section 10), and a failed attempt does not use it up.
func TestCodeBoundWithDPoPJKTNeedsThatKey(t *testing.T) {
	as, stores := dpopServer(t, nil)
	client := publicClient(t, as)
	key, other := oauthtest.NewDPoPKey(t), oauthtest.NewDPoPKey(t)
	form := storeCode(t, stores, client.ID, key.JKT)
	for name, header := range map[string]http.Header{"no proof": nil, "another key": tokenProof(t, other, "")} {
		status, _, body := as.Token(t, form, header)
		if status != http.StatusBadRequest || body["error"] != string(oauth.InvalidGrant) {
			t.Fatalf("code bound to a key, redeemed with %s: %d %v, want invalid_grant", name, status, body)
		}
	}
	if ts := as.Exchange(t, form, tokenProof(t, key, "")); boundTo(t, ts.Access) != key.JKT {
		t.Fatalf("token bound to %q", boundTo(t, ts.Access))
	}
}

// Proofs at the token endpoint are checked as at any endpoint: a proof is
// used once, names the token endpoint as published and the POST method.
func TestTokenEndpointRefusesBadProofs(t *testing.T) {
	as, stores := dpopServer(t, nil)
	client := publicClient(t, as)
	key := oauthtest.NewDPoPKey(t)
	used := tokenProof(t, key, "")
	as.Exchange(t, storeCode(t, stores, client.ID, ""), used)
	for name, header := range map[string]http.Header{
		"replayed proof":   used,
		"other htu":        {"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: testResource})}},
		"other htm":        {"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "GET", URL: testIssuer + pathToken})}},
		"two DPoP headers": {"Dpop": {tokenProof(t, key, "").Get("Dpop"), tokenProof(t, key, "").Get("Dpop")}},
		"not a JWT":        {"Dpop": {"garbage"}},
	} {
		status, _, body := as.Token(t, storeCode(t, stores, client.ID, ""), header)
		if status != http.StatusBadRequest || body["error"] != string(oauth.InvalidDPoPProof) {
			t.Errorf("%s: %d %v, want invalid_dpop_proof", name, status, body)
		}
	}
}

// With nonces on, a proof without the server's nonce is answered
// use_dpop_nonce with a DPoP-Nonce header; the retry with it succeeds
// (RFC 9449 section 8), and the code is not used up by the first attempt.
func TestTokenEndpointNonceRoundTrip(t *testing.T) {
	as, stores := dpopServer(t, dpop.NewNonces([]byte("key"), testIssuer))
	client := publicClient(t, as)
	key := oauthtest.NewDPoPKey(t)
	form := storeCode(t, stores, client.ID, "")
	status, hdr, body := as.Token(t, form, tokenProof(t, key, ""))
	nonce := hdr.Get("DPoP-Nonce")
	if status != http.StatusBadRequest || body["error"] != string(oauth.UseDPoPNonce) || nonce == "" {
		t.Fatalf("proof without nonce: %d %v nonce %q, want use_dpop_nonce with a nonce", status, body, nonce)
	}
	ts := as.Exchange(t, form, tokenProof(t, key, nonce))
	if boundTo(t, ts.Access) != key.JKT || ts.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("with the nonce: bound to %q, next nonce %q", boundTo(t, ts.Access), ts.Header.Get("DPoP-Nonce"))
	}
	// A bearer client is not asked for anything new.
	if bearer := as.Exchange(t, storeCode(t, stores, client.ID, ""), nil); bearer.TokenType != "Bearer" {
		t.Fatalf("bearer client got %q", bearer.TokenType)
	}
}
