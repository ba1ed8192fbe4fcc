package authserver

import (
	"context"

	"go.uber.org/zap"
)

// Observer counts what the authorization server does, for metrics.
type Observer interface {
	ClientRegistered()
	// Login counts a finished login by upstream provider and outcome:
	// success, denied (not on the allow list) or failed.
	Login(upstream, outcome string)
	TokensIssued(grantType string)
	RefreshTokenReused()
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request, for audit logs.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// audit writes an audit log entry: what happened, to which client and
// user, and the request's id. Entries never contain a secret.
func (s *Site) audit(ctx context.Context, event string, fields ...zap.Field) {
	if s.AS.Audit == nil {
		return
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		fields = append(fields, zap.String("request_id", id))
	}
	s.AS.Audit.Info(event, fields...)
}

// observeLogin counts a login and writes its audit entry.
func (s *Site) observeLogin(ctx context.Context, upstream, outcome string, fields ...zap.Field) {
	if s.AS.Observer != nil {
		s.AS.Observer.Login(upstream, outcome)
	}
	event := map[string]string{"success": "user logged in", "denied": "login denied", "failed": "login failed"}[outcome]
	s.audit(ctx, event, append(fields, zap.String("upstream", upstream))...)
}

func (s *Site) logDebug(msg string, fields ...zap.Field) {
	if s.AS.Logger != nil {
		s.AS.Logger.Debug(msg, fields...)
	}
}

// tokensIssued counts issued tokens.
func (s *Site) tokensIssued(grantType, clientID, sub string) {
	if s.AS.Observer != nil {
		s.AS.Observer.TokensIssued(grantType)
	}
	s.logDebug("tokens issued", zap.String("grant_type", grantType), zap.String("client_id", clientID), zap.String("sub", sub))
}
