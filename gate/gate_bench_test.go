package gate

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// The gate's work per request, with the store it would otherwise ask:
// what a connected MCP client sends (a tools/call in its session).

// benchGate returns a site whose /mcp needs mcp:tools and whose "search"
// tool needs mcp:search, a request to it as a client in alice's session
// sends it (Body to be set), and the request's body.
func benchGate(b *testing.B) (*Site, *http.Request, []byte) {
	db := openBadger(b)
	ring, err := tokens.NewKeyRing(context.Background(), db, tokens.KeyRingConfig{RotationPeriod: 24 * time.Hour, RetainPeriod: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	stores := openState(b, db)
	for i := range 1000 { // some revocations, none of them this token
		if err := stores.Revocations.DenyAccessToken(b.Context(), "revoked-"+strconv.Itoa(i), time.Now().Add(time.Hour).Unix()); err != nil {
			b.Fatal(err)
		}
	}
	s, err := NewSite(SiteConfig{
		Issuer: "https://h.example", Ring: ring, Sessions: db,
		Resources:  []ResourceConfig{{Path: "/mcp", Scopes: []string{"mcp:tools"}}},
		ToolScopes: map[string][]string{"search": {"mcp:search"}},
		AS:         &AuthServer{State: stores, Logger: zap.NewNop()},
	})
	if err != nil {
		b.Fatal(err)
	}
	token, err := ring.MintAccessToken(tokens.AccessClaims{
		Issuer: s.Issuer, Subject: "users:alice", Audience: tokens.Audience{s.Issuer + "/mcp"},
		ClientID: "client-1", Scope: "mcp:tools mcp:search",
	}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"query":"caddy mcp auth","limit":10}}}`)
	req, _ := http.NewRequest(http.MethodPost, "https://h.example/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mcp-Session-Id", "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b")
	req.ContentLength = int64(len(body))
	if err := s.Sessions.Bind(b.Context(), "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b", "users:alice"); err != nil {
		b.Fatal(err)
	}
	return s, req, body
}

func BenchmarkDeniedTokensRevoked(b *testing.B) {
	s, _, _ := benchGate(b)
	b.ReportAllocs()
	for b.Loop() {
		if revoked, err := s.AS.State.Revocations.Revoked("not-revoked"); err != nil || revoked {
			b.Fatal(revoked, err)
		}
	}
}

func BenchmarkSessionOwnedBy(b *testing.B) {
	s, _, _ := benchGate(b)
	b.ReportAllocs()
	for b.Loop() {
		if owned, _, err := s.Sessions.OwnedBy(b.Context(), "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b", "users:alice"); err != nil || !owned {
			b.Fatal(owned, err)
		}
	}
}

// BenchmarkGateDecision is all the gate decides for a request: Authorize
// (token, revocation, scopes, the tools/call body) and the session's owner.
func BenchmarkGateDecision(b *testing.B) {
	s, req, body := benchGate(b)
	reader := bytes.NewReader(nil)
	b.ReportAllocs()
	for b.Loop() {
		reader.Reset(body)
		req.Body = io.NopCloser(reader)
		d := s.Authorize(req)
		if d.Claims == nil {
			b.Fatalf("refused: %d %s", d.Status, d.Reason)
		}
		if owned, _, err := s.Sessions.OwnedBy(req.Context(), d.SessionID, d.Claims.Subject); err != nil || !owned {
			b.Fatal(owned, err)
		}
	}
}
