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

// events is where the endpoints report what happened: the error log, the
// audit log and the metrics. Entries never contain a secret.
type events struct {
	// logger is never nil (see New); audit and observer may be.
	logger   *zap.Logger
	audit    *zap.Logger
	observer Observer
}

// record writes an audit log entry: what happened, to which client and
// user, and the request's id.
func (e *events) record(ctx context.Context, event string, fields ...zap.Field) {
	if e.audit == nil {
		return
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		fields = append(fields, zap.String("request_id", id))
	}
	e.audit.Info(event, fields...)
}

// login counts a login and writes its audit entry.
func (e *events) login(ctx context.Context, upstream, outcome string, fields ...zap.Field) {
	if e.observer != nil {
		e.observer.Login(upstream, outcome)
	}
	event := map[string]string{"success": "user logged in", "denied": "login denied", "failed": "login failed"}[outcome]
	e.record(ctx, event, append(fields, zap.String("upstream", upstream))...)
}

// debug logs what helps an operator see why a request was refused.
func (e *events) debug(msg string, fields ...zap.Field) {
	e.logger.Debug(msg, fields...)
}

// tokensIssued counts issued tokens.
func (e *events) tokensIssued(grantType, clientID, sub string) {
	if e.observer != nil {
		e.observer.TokensIssued(grantType)
	}
	e.debug("tokens issued", zap.String("grant_type", grantType), zap.String("client_id", clientID), zap.String("sub", sub))
}

// clientRegistered counts a registration.
func (e *events) clientRegistered() {
	if e.observer != nil {
		e.observer.ClientRegistered()
	}
}

// refreshTokenReused counts a refresh token presented after rotation.
func (e *events) refreshTokenReused() {
	if e.observer != nil {
		e.observer.RefreshTokenReused()
	}
}
