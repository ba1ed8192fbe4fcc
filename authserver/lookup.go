package authserver

import (
	"context"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// tokenLookup finds what a token presented back to the server is.
type tokenLookup struct {
	verifier    gate.Verifier
	resources   gate.Resources
	revocations *state.Revocations
	grants      *state.Grants
}

// grant returns the grant whose refresh token is token, if it is the
// grant's current one (or the one rotated away within the grace window).
func (l *tokenLookup) grant(ctx context.Context, token string) (*state.Grant, bool) {
	if token == "" || len(token) > 200 {
		return nil, false
	}
	g, err := l.grants.ByRefreshToken(ctx, token)
	if err != nil || g.Revoked || time.Now().Unix() >= g.ExpiresAt {
		return nil, false
	}
	if h := state.Hash(token); h != g.RefreshHash && (h != g.PreviousHash || time.Now().After(time.Unix(0, g.PreviousUntil))) {
		return nil, false
	}
	return g, true
}

// accessToken returns the claims of a live access token issued by
// this server for any of its resources.
func (l *tokenLookup) accessToken(ctx context.Context, token string) (*tokens.AccessClaims, bool) {
	if strings.Count(token, ".") != 2 {
		return nil, false
	}
	for _, res := range l.resources {
		claims, err := l.verifier.Verify(ctx, token, res.URL)
		if err != nil {
			continue
		}
		if l.revocations.DeniedInStore(ctx, claims.JWTID) {
			return nil, false
		}
		return claims, true
	}
	return nil, false
}
