package authserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// registrationEndpoint registers clients.
type registrationEndpoint struct {
	issuer string
	// initialAccessToken, when set, is required (Config.RegistrationToken).
	initialAccessToken string
	// perSource limits registrations per source; perHour caps all of
	// them together, counted in the store (zero: no cap).
	perSource      *RateLimiter
	perHour        int
	sources        sources
	clients        *state.Clients
	unusedLifetime time.Duration
	// offeredGrants are grant types clients may register besides
	// authorization_code and refresh_token.
	offeredGrants []string
	log           *events
}

// ServeHTTP handles POST /register, dynamic client registration
// (RFC 7591). A client that never obtains a token expires after
// UnusedClientLifetime: some MCP clients register anew on every connection.
func (e *registrationEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "registration only accepts POST"))
		return
	}
	if token := e.initialAccessToken; token != "" {
		got, ok := gate.BearerToken(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			challenge := oauth.BearerChallenge{Realm: e.issuer, Code: oauth.InvalidToken}
			oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusUnauthorized, oauth.InvalidToken, "registration requires a valid initial access token").
				WithChallenge(challenge.String()))
			return
		}
	}
	if l := e.perSource; l != nil {
		if wait := l.Reserve(e.sources.of(r)); wait > 0 {
			oauth.WriteError(w, e.log.logger, tooManyRegistrations(wait, "too many registrations from this network; try again later"))
			return
		}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidClientMetadata, "the body must be application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidClientMetadata, "the body is too large or could not be read"))
		return
	}
	now := time.Now()
	client, secret, err := clients.NewRegistration(body, now, 0, e.offeredGrants...)
	if err != nil {
		var oerr *oauth.Error
		if errors.As(err, &oerr) {
			oauth.WriteError(w, e.log.logger, oerr)
			return
		}
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidClientMetadata, "the client metadata is invalid"))
		return
	}
	// Counted only now, so that malformed requests do not use up the
	// hour's registrations.
	if wait, err := e.registrationsFull(r.Context(), now); err != nil || wait > 0 {
		if err != nil {
			oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the client could not be registered").
				WithCause(fmt.Errorf("counting registrations: %w", err)))
			return
		}
		e.log.logger.Warn("registration cap reached", zap.Int("registrations_per_hour", e.perHour))
		oauth.WriteError(w, e.log.logger, tooManyRegistrations(wait, "this server takes no more registrations this hour; try again later"))
		return
	}
	if err := e.clients.Save(r.Context(), client, e.unusedLifetime); err != nil {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the client could not be saved").
			WithCause(fmt.Errorf("saving registered client: %w", err)))
		return
	}
	e.log.clientRegistered()
	e.log.record(r.Context(), "client registered", zap.String("client_id", client.ClientID), zap.String("client_name", client.ClientName),
		zap.Strings("redirect_uris", client.RedirectURIs), zap.String("auth_method", client.TokenEndpointAuthMethod))
	oauth.WriteJSON(w, http.StatusCreated, clients.RegistrationResponse(client, secret))
}

// registrationsFull counts one registration against the hour's cap and,
// when it is over, returns how long until the next hour.
func (e *registrationEndpoint) registrationsFull(ctx context.Context, now time.Time) (time.Duration, error) {
	if e.perHour <= 0 {
		return 0, nil
	}
	hour := now.Truncate(time.Hour)
	n, err := e.clients.CountRegistration(ctx, hour)
	if err != nil || n <= int64(e.perHour) {
		return 0, err
	}
	return hour.Add(time.Hour).Sub(now), nil
}

// tooManyRegistrations refuses a registration over a limit until wait has
// passed.
func tooManyRegistrations(wait time.Duration, description string) *oauth.Error {
	return &oauth.Error{Status: http.StatusTooManyRequests, Code: oauth.InvalidRequest, Description: description, RetryAfter: wait}
}
