package gate

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// The gate's work per request, with the stores it asks: what a connected
// MCP client sends (a tools/call in its session).

const benchSession = "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b"

// benchBody is a tools/call as an MCP client sends it.
const benchBody = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"query":"caddy mcp auth","limit":10}}}`

// benchGate returns a gate whose /mcp needs mcp:tools and whose "search"
// tool needs mcp:search, with some revocations and alice's session bound,
// its stores, a request to it as a client in alice's session sends it
// (Body to be set), the request's body, and the ring that signed its token.
func benchGate(b *testing.B) (*Gate, *state.Stores, *state.Sessions, *http.Request, []byte, *tokens.KeyRing) {
	ring, db := newRing(b)
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := state.Open(ctx, db, 0, time.Hour, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs before it.
	b.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	for i := range 1000 { // some revocations, none of them this token
		if err := stores.Revocations.DenyAccessToken(b.Context(), "revoked-"+strconv.Itoa(i), time.Now().Add(time.Hour).Unix()); err != nil {
			b.Fatal(err)
		}
	}
	const issuer = "https://h.example"
	sessions := state.NewSessions(db, issuer)
	if err := sessions.Bind(b.Context(), benchSession, "users:alice"); err != nil {
		b.Fatal(err)
	}
	resources, err := NewResources(issuer, []ResourceConfig{{Path: "/mcp", Scopes: []string{"mcp:tools"}}})
	if err != nil {
		b.Fatal(err)
	}
	g, err := newGate(Config{
		Resources: resources, Verifier: tokens.NewVerifier(ring, issuer), Revocations: stores.Revocations,
		Sessions: sessions, ToolScopes: map[string][]string{"search": {"mcp:search"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	token, err := ring.MintAccessToken(tokens.AccessClaims{
		Issuer: issuer, Subject: "users:alice", Audience: tokens.Audience{issuer + "/mcp"},
		ClientID: "client-1", Scope: "mcp:tools mcp:search",
	}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(benchBody)
	req, _ := http.NewRequest(http.MethodPost, issuer+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mcp-Session-Id", benchSession)
	req.ContentLength = int64(len(body))
	return g, stores, sessions, req, body, ring
}

func BenchmarkDeniedTokensRevoked(b *testing.B) {
	_, stores, _, _, _, _ := benchGate(b)
	b.ReportAllocs()
	for b.Loop() {
		if revoked, err := stores.Revocations.Revoked("not-revoked"); err != nil || revoked {
			b.Fatal(revoked, err)
		}
	}
}

func BenchmarkSessionOwnedBy(b *testing.B) {
	_, _, sessions, _, _, _ := benchGate(b)
	b.ReportAllocs()
	for b.Loop() {
		if owned, _, err := sessions.OwnedBy(b.Context(), benchSession, "users:alice"); err != nil || !owned {
			b.Fatal(owned, err)
		}
	}
}

// BenchmarkGateDecision is all the gate does for a request: Decide (token,
// revocation, scopes, the tools/call body) and Apply (headers, the
// session's owner).
func BenchmarkGateDecision(b *testing.B) {
	g, _, _, req, body, _ := benchGate(b)
	token := req.Header.Get("Authorization")
	w := httptest.NewRecorder()
	reader := bytes.NewReader(nil)
	b.ReportAllocs()
	for b.Loop() {
		reader.Reset(body)
		req.Body = io.NopCloser(reader)
		req.Header.Set("Authorization", token) // Apply removes it
		d := g.Decide(req)
		if d.Claims == nil {
			b.Fatalf("refused: %d %s", d.Status, d.Reason)
		}
		if _, err := g.Apply(w, req, d); err != nil {
			b.Fatal(err)
		}
		req.Body.Close() // as the proxy's transport does once it sent the body
	}
}

// BenchmarkInspectJSONRPC is the gate's reading of a tools/call body.
func BenchmarkInspectJSONRPC(b *testing.B) {
	body := []byte(benchBody)
	var s rpcScanner
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if msgs, err := s.inspectJSONRPC(body); err != nil || string(msgs[0].Name) != "search" {
			b.Fatal(msgs, err)
		}
	}
}

// BenchmarkGateDecisionDPoP is BenchmarkGateDecision for a DPoP-bound
// token: each request carries a fresh proof, whose signature, claims and
// jti the gate checks. Making the proofs is not timed.
func BenchmarkGateDecisionDPoP(b *testing.B) {
	g, _, _, req, body, ring := benchGate(b)
	key := oauthtest.NewDPoPKey(b)
	token, err := ring.MintAccessToken(tokens.AccessClaims{
		Issuer: "https://h.example", Subject: "users:alice", Audience: tokens.Audience{"https://h.example/mcp"},
		ClientID: "client-1", Scope: "mcp:tools mcp:search", Confirmation: &tokens.Confirmation{JKT: key.JKT},
	}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	v := &dpop.Verifier{}
	v.Replay = dpop.NewMemoryReplay(v.Span(), 1<<20)
	g.cfg.DPoP = v
	w := httptest.NewRecorder()
	reader := bytes.NewReader(nil)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		proof := key.Proof(b, oauthtest.ProofClaims{Method: http.MethodPost, URL: "http://h.example/mcp", AccessToken: token})
		b.StartTimer()
		reader.Reset(body)
		req.Body = io.NopCloser(reader)
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)
		d := g.Decide(req)
		if d.Claims == nil {
			b.Fatalf("refused: %d %s", d.Status, d.Reason)
		}
		if _, err := g.Apply(w, req, d); err != nil {
			b.Fatal(err)
		}
		req.Body.Close()
	}
}
