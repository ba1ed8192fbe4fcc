package authserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// proofKeyCtx keys the thumbprint of the DPoP key a token request proved
// to hold: every grant's tokens are bound to it without code of its own.
type proofKeyCtx struct{}

// proofKey returns the thumbprint of the DPoP key the token request
// proved to hold, "" for a request without a proof.
func proofKey(ctx context.Context) string {
	jkt, _ := ctx.Value(proofKeyCtx{}).(string)
	return jkt
}

// tokenProofs checks the DPoP proofs of token requests (RFC 9449 section
// 5). A request without one gets bearer tokens, as before.
type tokenProofs struct {
	// endpoint is the token endpoint URL as published: the htu proofs
	// must name.
	endpoint string
	verifier *dpop.Verifier
}

// check verifies the request's proof, if any, and returns ctx with its
// key's thumbprint. With nonces on, the response carries a fresh nonce.
func (p *tokenProofs) check(w http.ResponseWriter, r *http.Request) (context.Context, *oauth.Error) {
	proof, err := dpop.ProofFrom(r.Header)
	if err == nil && proof == "" {
		return r.Context(), nil
	}
	if n := p.verifier.Nonces; n != nil {
		w.Header().Set(dpop.NonceHeader, n.Issue(time.Now()))
	}
	var checked *dpop.Proof
	if err == nil {
		checked, err = p.verifier.Verify(r.Context(), dpop.Request{Proof: proof, Method: r.Method, URL: p.endpoint})
	}
	var refused *dpop.Error
	switch {
	case errors.As(err, &refused) && refused.NeedNonce:
		return nil, oauth.NewError(http.StatusBadRequest, oauth.UseDPoPNonce, "the DPoP proof must carry the nonce given in the DPoP-Nonce header")
	case errors.As(err, &refused):
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidDPoPProof, refused.Reason)
	case err != nil:
		return nil, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the DPoP proof could not be checked").WithCause(err)
	}
	return context.WithValue(r.Context(), proofKeyCtx{}, checked.JKT), nil
}

// tokenType is the token_type of an access token bound to jkt, or of a
// bearer token when jkt is "" (RFC 9449 section 5).
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}

// validJKT reports whether s can be a base64url SHA-256 thumbprint, as
// dpop_jkt must be (RFC 9449 section 10).
func validJKT(s string) bool {
	return len(s) == 43 && !strings.Contains(s, ".") && tokens.IsCompactJWSText(s)
}
