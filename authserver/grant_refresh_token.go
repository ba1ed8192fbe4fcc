package authserver

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// refreshGrace is how long the refresh token just rotated away still
// yields the same successor: clients that refresh twice at once (several
// tabs, retries) must not be logged out for it.
const refreshGrace = 30 * time.Second

// maxLiveAccessTokens bounds the access tokens of one grant that have not
// expired. The grant lists them all, so that revoking it denies them, and
// every refresh rewrites that list: a client refreshing in a loop would
// grow it without end. Real clients refresh when their token is about to
// expire and hold one or two; one that reaches the bound waits until its
// oldest token can no longer be used, rather than any token being
// forgotten.
const maxLiveAccessTokens = 32

// refreshTokenGrant redeems refresh tokens.
type refreshTokenGrant struct {
	grants      *state.Grants
	revocations *state.Revocations
	// upstreamTokens keeps users' tokens at the identity provider.
	upstreamTokens *state.UpstreamTokens
	resources      *resourceSet
	policy         *policy
	mint           *minter
	log            *events
}

// grant handles grant_type=refresh_token (OAuth 2.1 section 4.3). The
// token rotates on every use. Everything is checked before rotation, so a
// failed request never burns the token. A token presented again within the
// grace window returns the same successor; later, it means the token was
// stolen, and the whole grant is revoked. A grant is refused to a client
// that authenticates less strongly than when the grant was made, so a
// stolen refresh token of a private_key_jwt client is useless without
// its key.
func (h *refreshTokenGrant) grant(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error) {
	invalidGrant := oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the refresh token is invalid, expired or revoked")
	rt := params["refresh_token"]
	if rt == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "refresh_token is required")
	}
	unavailable := oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the server could not issue tokens")
	presented := state.Hash(rt)
	for attempt := 0; attempt < 5; attempt++ {
		g, err := h.grants.ByRefreshToken(ctx, rt)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, invalidGrant
		case err != nil:
			// The token may be good: the client must keep it and retry.
			return nil, unavailable.WithCause(fmt.Errorf("looking up the refresh token: %w", err))
		case g.Revoked || g.ClientID != client.ClientID:
			return nil, invalidGrant
		}
		if g.DPoPJKT != "" && proofKey(ctx) != g.DPoPJKT {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the refresh token is bound to a DPoP key the request does not prove")
		}
		if authStrength(client.Method) < authStrength(g.ClientAuth) {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the grant requires the client to authenticate with "+g.ClientAuth)
		}
		now := h.mint.now()
		if now.Unix() >= g.ExpiresAt {
			return nil, invalidGrant
		}
		// A refresh grants at most what the user consented to (RFC 6749
		// section 6), even where the resource now grants every scope up
		// front: that applies at authorization only.
		held := g.Scopes
		scopes := held
		if requested, ok := refreshScopes(params); ok {
			scopes = nil
			for _, sc := range requested {
				if !slices.Contains(held, sc) {
					return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidScope, "a requested scope exceeds the grant")
				}
				if !slices.Contains(scopes, sc) {
					scopes = append(scopes, sc)
				}
			}
		}
		// The rules may have changed since the login (a config reload):
		// apply today's to the identity recorded then.
		permitted, allowed := h.policy.admit(&g.User, held)
		if !allowed {
			_, _ = h.grants.Revoke(ctx, g.ID)
			h.log.record(ctx, "refresh refused: the user is no longer allowed; grant revoked", zap.String("client_id", client.ClientID), zap.String("sub", g.User.Subject))
			return nil, invalidGrant
		}
		scopes = slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return !slices.Contains(permitted, sc) })
		res, oerr := h.resources.resolve(resources, h.resources.byURL(g.Resource))
		if oerr != nil {
			return nil, oerr
		}
		if res.URL != g.Resource {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the resource differs from the one authorized")
		}

		switch {
		case presented == g.RefreshHash:
		case presented == g.PreviousHash && now.Before(time.Unix(0, g.PreviousUntil)):
			var resp tokenResponse
			if err := openSuccessor(rt, g.Successor, &resp); err != nil {
				return nil, invalidGrant
			}
			return &resp, nil
		default:
			_, _ = h.grants.Revoke(ctx, g.ID)
			h.log.refreshTokenReused()
			h.log.record(ctx, "refresh token reused; grant revoked", zap.String("client_id", client.ClientID), zap.String("sub", g.User.Subject))
			return nil, invalidGrant
		}

		if slices.ContainsFunc(g.Scopes, func(sc string) bool { return !slices.Contains(permitted, sc) }) {
			// The grant's live access tokens carry the withdrawn scopes.
			for _, t := range g.AccessTokenIDs {
				if err := h.revocations.DenyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
					return nil, unavailable.WithCause(err)
				}
			}
		}
		live := liveTokenIDs(g.AccessTokenIDs, now)
		if len(live) >= maxLiveAccessTokens {
			// Refused before rotating: the refresh token stays good.
			return nil, &oauth.Error{Status: http.StatusTooManyRequests, Code: oauth.InvalidRequest,
				Description: "the grant has too many live access tokens; refresh when the oldest expires", RetryAfter: untilOldestExpires(live, now)}
		}
		if g.UpstreamToken != "" || h.upstreamTokens.Kept() {
			// The user's token at the provider is gone (revoked, or it
			// could not be refreshed), or the grant is older than the
			// keeping of tokens: the backend cannot act as the user, so
			// the user must log in again.
			switch kept, err := h.upstreamTokens.Exists(ctx, g.UpstreamToken); {
			case err != nil:
				return nil, unavailable.WithCause(fmt.Errorf("looking up the upstream token: %w", err))
			case !kept:
				_, _ = h.grants.Revoke(ctx, g.ID)
				h.log.record(ctx, "refresh refused: the user's token at the identity provider is gone; grant revoked", zap.String("client_id", client.ClientID), zap.String("sub", g.User.Subject))
				return nil, invalidGrant
			}
		}
		resp, at, err := h.mint.accessToken(ctx, client.Client, g.User, res, scopes, g.UpstreamToken)
		if err != nil {
			return nil, unavailable.WithCause(fmt.Errorf("issuing tokens: %w", err))
		}
		issued := false
		defer func() {
			if !issued { // never handed out: revocations need not find it
				h.revocations.UnindexAccessToken(ctx, g.User.Subject, client.ClientID, at.ID)
			}
		}()
		resp.RefreshToken = randomToken()
		if resp.IDToken, err = h.mint.idToken(client.ClientID, g.User, scopes, ""); err != nil {
			return nil, unavailable.WithCause(err)
		}
		next := *g
		// Scopes the rules no longer give are gone for good.
		next.Scopes = permitted
		next.RefreshHash = state.Hash(resp.RefreshToken)
		next.PreviousHash = presented
		next.PreviousUntil = now.Add(refreshGrace).UnixNano()
		next.AccessTokenIDs = append(live, at)
		if next.Successor, err = sealSuccessor(rt, resp); err != nil {
			return nil, unavailable.WithCause(err)
		}
		switch err := h.grants.Rotate(ctx, g, &next, h.mint.refreshIdle); {
		case errors.Is(err, state.ErrGrantRotated):
			// A concurrent request rotated first: look again, now as a
			// replay within the grace window.
			continue
		case errors.Is(err, state.ErrGrantEnded):
			// Expired while the tokens were made, or revoked meanwhile
			// (Grants.Revoke): nothing is issued.
			return nil, invalidGrant
		case err != nil:
			return nil, unavailable.WithCause(err)
		}
		issued = true
		h.log.tokensIssued("refresh_token", client.ClientID, g.User.Subject)
		return resp, nil
	}
	return nil, invalidGrant
}

// liveTokenIDs are those of ids still usable at now, so still to be
// denied if the grant is revoked.
func liveTokenIDs(ids []state.TokenID, now time.Time) []state.TokenID {
	var out []state.TokenID
	for _, t := range ids {
		if now.Before(t.UsableUntil()) {
			out = append(out, t)
		}
	}
	return out
}

// untilOldestExpires is how long until the first of the live tokens ids
// is no longer usable.
func untilOldestExpires(ids []state.TokenID, now time.Time) time.Duration {
	oldest := slices.MinFunc(ids, func(a, b state.TokenID) int { return cmp.Compare(a.ExpiresAt, b.ExpiresAt) })
	return oldest.UsableUntil().Sub(now)
}

// sealSuccessor encrypts the response to a refresh with a key derived from
// the refresh token it rotated, so only a holder of that token can get the
// successor again during the grace window, and the store never holds a
// usable token.
func sealSuccessor(rt string, resp *tokenResponse) ([]byte, error) {
	gcm, err := successorCipher(rt)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

func openSuccessor(rt string, sealed []byte, resp *tokenResponse) error {
	gcm, err := successorCipher(rt)
	if err != nil {
		return err
	}
	if len(sealed) < gcm.NonceSize() {
		return errors.New("sealed successor is truncated")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, resp)
}

func successorCipher(rt string) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("mcp_auth refresh successor\x00" + rt))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
