package oauth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// WriteJSON writes a JSON response that must not be cached (OAuth 2.1
// section 3.2.3: tokens, credentials and other sensitive data).
func WriteJSON(w http.ResponseWriter, status int, body any) {
	buf, err := json.Marshal(body)
	if err != nil {
		status, buf = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}

// errorBody is the body of an error response (RFC 6749 section 5.2).
type errorBody struct {
	Error       ErrorCode `json:"error"`
	Description string    `json:"error_description,omitempty"`
}

// WriteError writes e as a JSON error response, with its challenge and
// Retry-After, and logs its cause, if any, to logger (which may be nil):
// at error level when the server failed (5xx), else at debug level.
func WriteError(w http.ResponseWriter, logger *zap.Logger, e *Error) {
	if e.Cause != nil && logger != nil {
		log, msg := logger.Debug, "request refused"
		if e.Status >= http.StatusInternalServerError {
			log, msg = logger.Error, "request failed"
		}
		log(msg, zap.Int("status", e.Status), zap.String("error", string(e.Code)), zap.Error(e.Cause))
	}
	h := w.Header()
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	// A 429 always says when to come back; a 503 when it knows.
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable && e.RetryAfter > 0 {
		h.Set("Retry-After", RetryAfter(e.RetryAfter))
	}
	WriteJSON(w, e.Status, errorBody{e.Code, e.Description})
}

// RetryAfter formats wait as a Retry-After value: whole seconds, rounded
// up, at least 1.
func RetryAfter(wait time.Duration) string {
	return strconv.FormatInt(max(int64((wait+time.Second-1)/time.Second), 1), 10)
}
