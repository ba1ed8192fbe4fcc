package handlers

import (
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
)

// serveRegister handles POST /register, dynamic client registration
// (RFC 7591). A client that never obtains a token expires after
// UnusedClientLifetime: some MCP clients register anew on every connection.
func (s *Site) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "registration only accepts POST")
		return
	}
	if token := s.AS.RegistrationToken; token != "" {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.Issuer+`", error="invalid_token"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_token", "registration requires a valid initial access token")
			return
		}
	}
	if l := s.AS.RegistrationLimit; l != nil && !l.Allow(s.clientIP(r)) {
		w.Header().Set("Retry-After", "60")
		writeJSONError(w, http.StatusTooManyRequests, "invalid_request", "too many registrations from this address; try again later")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is too large or could not be read")
		return
	}
	now := time.Now()
	client, secret, err := clients.NewRegistration(body, now, 0)
	if err != nil {
		var rerr *clients.RegistrationError
		if errors.As(err, &rerr) {
			writeJSONError(w, http.StatusBadRequest, rerr.Code, rerr.Description)
			return
		}
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "the client metadata is invalid")
		return
	}
	if err := s.AS.putJSON(r.Context(), keyClient+client.ClientID, client, s.AS.UnusedClientLifetime); err != nil {
		s.AS.Logger.Error("saving registered client", zap.Error(err))
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be saved")
		return
	}
	if s.AS.Observer != nil {
		s.AS.Observer.ClientRegistered()
	}
	s.audit(r.Context(), "client registered", zap.String("client_id", client.ClientID), zap.String("client_name", client.ClientName),
		zap.Strings("redirect_uris", client.RedirectURIs), zap.String("auth_method", client.TokenEndpointAuthMethod))
	writeJSON(w, http.StatusCreated, clients.RegistrationResponse(client, secret))
}

// clientIP is the address registrations are limited by.
func (s *Site) clientIP(r *http.Request) string {
	if s.AS.ClientIP != nil {
		return s.AS.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
