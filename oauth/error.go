package oauth

import (
	"net/url"
	"time"
)

// ErrorCode is the error parameter of an OAuth error response.
type ErrorCode string

// The error codes this server sends.
const (
	// RFC 6749 section 4.1.2.1 and 5.2.
	InvalidRequest          ErrorCode = "invalid_request"
	InvalidClient           ErrorCode = "invalid_client"
	InvalidGrant            ErrorCode = "invalid_grant"
	UnauthorizedClient      ErrorCode = "unauthorized_client"
	UnsupportedGrantType    ErrorCode = "unsupported_grant_type"
	UnsupportedResponseType ErrorCode = "unsupported_response_type"
	InvalidScope            ErrorCode = "invalid_scope"
	AccessDenied            ErrorCode = "access_denied"
	TemporarilyUnavailable  ErrorCode = "temporarily_unavailable"
	// RFC 6750 section 3.1.
	InvalidToken      ErrorCode = "invalid_token"
	InsufficientScope ErrorCode = "insufficient_scope"
	// RFC 8707 section 2.
	InvalidTarget ErrorCode = "invalid_target"
	// RFC 9449 sections 5, 7.1 and 8.
	InvalidDPoPProof ErrorCode = "invalid_dpop_proof"
	UseDPoPNonce     ErrorCode = "use_dpop_nonce"
	// RFC 7591 section 3.2.2.
	InvalidRedirectURI    ErrorCode = "invalid_redirect_uri"
	InvalidClientMetadata ErrorCode = "invalid_client_metadata"
	// NotFound answers a discovery path that names no document; no RFC
	// defines it, but clients parse the body the same way.
	NotFound ErrorCode = "not_found"
)

// Error is a refusal of an OAuth request: what is sent to the client, and
// why it happened, which is only logged.
type Error struct {
	// Status is the HTTP status of the response.
	Status int
	// Code is the error parameter.
	Code ErrorCode
	// Description is the error_description parameter. It is sent, so it
	// never repeats client input.
	Description string
	// Cause is the failure behind the refusal, for logs; it is never sent.
	Cause error
	// RetryAfter is how long a client refused with 429 or 503 should wait;
	// it is sent as Retry-After.
	RetryAfter time.Duration
	// Challenge is the WWW-Authenticate value sent with the error, if any.
	Challenge string
}

// NewError returns an error response of status with code and description.
func NewError(status int, code ErrorCode, description string) *Error {
	return &Error{Status: status, Code: code, Description: description}
}

func (e *Error) Error() string {
	msg := string(e.Code) + ": " + e.Description
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// WithCause returns a copy of e caused by cause.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// WithChallenge returns a copy of e sent with the WWW-Authenticate value
// challenge.
func (e *Error) WithChallenge(challenge string) *Error {
	c := *e
	c.Challenge = challenge
	return &c
}

// RedirectParams are the parameters of e as an error authorization
// response (RFC 6749 section 4.1.2.1), which goes back to the client's
// redirect URI with its state.
func (e *Error) RedirectParams(state string) url.Values {
	params := url.Values{"error": {string(e.Code)}}
	if e.Description != "" {
		params.Set("error_description", e.Description)
	}
	if state != "" {
		params.Set("state", state)
	}
	return params
}
