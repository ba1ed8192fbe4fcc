package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Identity tokens carry the issuer and keys of access tokens, so their
// audience must not name the issuer or a resource in any spelling.
func TestNewIdentityTokensRefusesOwnURLs(t *testing.T) {
	ring, _ := newRing(t)
	resources := mustResources(t, "/mcp")
	for _, audience := range []string{
		"https://h.example", "https://H.EXAMPLE:443/", "http://h.example", "https://h.example/mcp",
		"https://h.example/MCP/", "https://h.example/mcp?x#y", " https://h.example/mcp ",
	} {
		if _, err := NewIdentityTokens(ring, "https://h.example", resources, audience); err == nil {
			t.Errorf("audience %q accepted", audience)
		}
	}
	for _, audience := range []string{"urn:example:backend", "https://backend.example", "https://h.example/other"} {
		if _, err := NewIdentityTokens(ring, "https://h.example", resources, audience); err != nil {
			t.Errorf("audience %q: %v", audience, err)
		}
	}
}

// An identity token is reused for its access token, and never outlives it.
func TestIdentityTokenFollowsAccessToken(t *testing.T) {
	ring, _ := newRing(t)
	it, err := NewIdentityTokens(ring, "https://h.example", mustResources(t), "urn:example:backend")
	if err != nil {
		t.Fatal(err)
	}
	soon := &tokens.AccessClaims{JWTID: "a", Subject: "users:alice", Expiry: time.Now().Add(time.Minute).Unix()}
	first, err := it.For(soon)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := it.For(soon); err != nil || again != first {
		t.Errorf("not reused: %v", err)
	}
	if it.cache["a"].exp.Unix() != soon.Expiry {
		t.Errorf("expires %v, the access token %v", it.cache["a"].exp, time.Unix(soon.Expiry, 0))
	}
	other, err := it.For(&tokens.AccessClaims{JWTID: "b", Subject: "users:alice", Expiry: time.Now().Add(time.Hour).Unix()})
	if err != nil || other == first || strings.Count(other, ".") != 2 {
		t.Errorf("another access token's: %v", err)
	}
}
