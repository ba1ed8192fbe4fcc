package mcpauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// UpstreamTokens keeps each user's token at the identity provider (github,
// google or oidc) from their login, for backends that call the provider's
// API as the user: the gate sets {http.auth.upstream.access_token} for
// `header_up`, refreshes the token shortly before it expires when the
// provider issued a refresh token, and answers 401 invalid_token, which
// sends the user through login again, when it is gone. Revoking a grant
// deletes its token and revokes it at the provider where the provider
// offers revocation. The tokens are stored sealed with AES-256-GCM; the
// MCP client never sees them. Off unless configured.
type UpstreamTokens struct {
	// Key is the 32-byte key, base64-encoded, that seals the tokens in
	// the store (generate one with `openssl rand -base64 32`). Give it as
	// a placeholder such as {env.MCP_UPSTREAM_TOKEN_KEY}, expanded when the
	// config loads, so it stays out of the saved config. Every instance
	// sharing the store needs it.
	Key string `json:"key"`
	// OldKeys still open the tokens sealed before the key was changed; a
	// token is sealed again with Key the first time the gate reads it.
	// Tokens no configured key opens count as gone: they are deleted and
	// their users log in again.
	OldKeys []string `json:"old_keys,omitempty"`
}

// revokeTimeout bounds a revocation at the provider, which runs after the
// answer to whoever revoked.
const revokeTimeout = 10 * time.Second

// sealer decodes the keys.
func (u *UpstreamTokens) sealer() (*state.Sealer, error) {
	repl := caddy.NewReplacer()
	decode := func(what, raw string) ([]byte, error) {
		raw = strings.TrimSpace(repl.ReplaceAll(raw, ""))
		if raw == "" {
			return nil, fmt.Errorf("%s is empty (is its environment variable set?)", what)
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if key, err := enc.DecodeString(raw); err == nil && len(key) == state.SealKeySize {
				return key, nil
			}
		}
		return nil, fmt.Errorf("%s must be %d bytes in base64 (openssl rand -base64 32)", what, state.SealKeySize)
	}
	current, err := decode("key", u.Key)
	if err != nil {
		return nil, err
	}
	var old [][]byte
	for _, raw := range u.OldKeys {
		k, err := decode("old_key", raw)
		if err != nil {
			return nil, err
		}
		old = append(old, k)
	}
	s, err := state.NewSealer(current, old...)
	if err != nil {
		return nil, fmt.Errorf("keys: %v", err)
	}
	return s, nil
}

// provision makes the site's store keep upstream tokens and returns what
// the gate finds them with. provider is the site's identity provider.
func (u *UpstreamTokens) provision(stores *state.Stores, provider upstream.Redirector, logger *zap.Logger) (*gate.UpstreamTokens, error) {
	keeper, ok := provider.(upstream.TokenKeeper)
	if !ok {
		return nil, errors.New("upstream_tokens: the upstream must be github, google or oidc, whose tokens backends can use")
	}
	sealer, err := u.sealer()
	if err != nil {
		return nil, fmt.Errorf("upstream_tokens: %v", err)
	}
	logger = logger.Named("upstream_tokens")
	found := gate.NewUpstreamTokens(stores.UpstreamTokens, keeper, logger)
	stores.UpstreamTokens.Keep(sealer, func(tok *state.UpstreamToken) {
		found.Forget(tok.ID)
		go revokeAtProvider(keeper, tok, logger)
	})
	return found, nil
}

// revokeAtProvider revokes a token whose grant ended, best effort.
func revokeAtProvider(keeper upstream.TokenKeeper, tok *state.UpstreamToken, logger *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	err := keeper.Revoke(ctx, &upstream.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken})
	switch {
	case errors.Is(err, upstream.ErrNoRevocation):
	case err != nil:
		logger.Warn("revoking a user's token at the identity provider failed; it stays valid there until it expires", zap.Error(err))
	default:
		logger.Debug("revoked a user's token at the identity provider")
	}
}
