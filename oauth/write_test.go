package oauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     *Error
		status  int
		body    string
		headers map[string]string
	}{
		{
			name:   "description sent",
			err:    NewError(http.StatusBadRequest, InvalidGrant, "the code is invalid"),
			status: http.StatusBadRequest,
			body:   `{"error":"invalid_grant","error_description":"the code is invalid"}`,
			headers: map[string]string{
				"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache",
				"Content-Length": "67", "Retry-After": "", "WWW-Authenticate": "",
			},
		},
		{
			name:    "no description",
			err:     NewError(http.StatusBadRequest, InvalidRequest, ""),
			status:  http.StatusBadRequest,
			body:    `{"error":"invalid_request"}`,
			headers: map[string]string{"Content-Length": "27"},
		},
		{
			name:    "429 waits at least a second",
			err:     &Error{Status: http.StatusTooManyRequests, Code: InvalidRequest, Description: "slow down"},
			status:  http.StatusTooManyRequests,
			body:    `{"error":"invalid_request","error_description":"slow down"}`,
			headers: map[string]string{"Retry-After": "1"},
		},
		{
			name:    "429 rounds up",
			err:     &Error{Status: http.StatusTooManyRequests, Code: InvalidClient, Description: "later", RetryAfter: 2*time.Second + time.Millisecond},
			status:  http.StatusTooManyRequests,
			body:    `{"error":"invalid_client","error_description":"later"}`,
			headers: map[string]string{"Retry-After": "3"},
		},
		{
			name:    "503 without a wait",
			err:     NewError(http.StatusServiceUnavailable, TemporarilyUnavailable, "down"),
			status:  http.StatusServiceUnavailable,
			body:    `{"error":"temporarily_unavailable","error_description":"down"}`,
			headers: map[string]string{"Retry-After": ""},
		},
		{
			name:    "503 with a wait",
			err:     &Error{Status: http.StatusServiceUnavailable, Code: TemporarilyUnavailable, Description: "down", RetryAfter: time.Minute},
			status:  http.StatusServiceUnavailable,
			body:    `{"error":"temporarily_unavailable","error_description":"down"}`,
			headers: map[string]string{"Retry-After": "60"},
		},
		{
			name:    "challenge",
			err:     NewError(http.StatusUnauthorized, InvalidClient, "client authentication failed").WithChallenge(BasicChallenge("https://as.test")),
			status:  http.StatusUnauthorized,
			body:    `{"error":"invalid_client","error_description":"client authentication failed"}`,
			headers: map[string]string{"WWW-Authenticate": `Basic realm="https://as.test"`},
		},
		{
			name:   "cause never sent",
			err:    NewError(http.StatusServiceUnavailable, TemporarilyUnavailable, "the server could not issue tokens").WithCause(errors.New("badger: secret-ish detail")),
			status: http.StatusServiceUnavailable,
			body:   `{"error":"temporarily_unavailable","error_description":"the server could not issue tokens"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, nil, tc.err)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Body.String(); got != tc.body {
				t.Errorf("body %s, want %s", got, tc.body)
			}
			for name, want := range tc.headers {
				if got := rec.Header().Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestWriteErrorLogsCause(t *testing.T) {
	for _, tc := range []struct {
		status int
		level  zapcore.Level
	}{
		{http.StatusServiceUnavailable, zapcore.ErrorLevel},
		{http.StatusBadRequest, zapcore.DebugLevel},
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		cause := errors.New("store unreachable")
		WriteError(httptest.NewRecorder(), zap.New(core), NewError(tc.status, InvalidRequest, "refused").WithCause(cause))
		entries := logs.All()
		if len(entries) != 1 || entries[0].Level != tc.level {
			t.Fatalf("%d: logged %v, want one entry at %v", tc.status, entries, tc.level)
		}
		if got := entries[0].ContextMap()["error"]; got != cause.Error() {
			t.Errorf("%d: logged error %v, want the cause", tc.status, got)
		}
	}

	core, logs := observer.New(zapcore.DebugLevel)
	WriteError(httptest.NewRecorder(), zap.New(core), NewError(http.StatusBadRequest, InvalidRequest, "refused"))
	if logs.Len() != 0 {
		t.Errorf("an error without a cause logged %v", logs.All())
	}
}

func TestWithCopies(t *testing.T) {
	base := NewError(http.StatusBadRequest, InvalidGrant, "the code is invalid")
	caused := base.WithCause(errors.New("x"))
	challenged := base.WithChallenge("Basic")
	if base.Cause != nil || base.Challenge != "" {
		t.Errorf("With* changed the original: %+v", base)
	}
	if !errors.Is(caused, caused.Cause) || caused.Code != base.Code || challenged.Challenge != "Basic" {
		t.Errorf("copies %+v, %+v", caused, challenged)
	}
	if got := caused.Error(); !strings.Contains(got, "invalid_grant") || !strings.HasSuffix(got, ": x") {
		t.Errorf("Error() = %q, want the code and the cause", got)
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusCreated, map[string]string{"client_id": "abc"})
	if rec.Code != http.StatusCreated || rec.Body.String() != `{"client_id":"abc"}` {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if h := rec.Header(); h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" || h.Get("Content-Length") != "19" {
		t.Errorf("headers %v", h)
	}

	rec = httptest.NewRecorder()
	WriteJSON(rec, http.StatusOK, func() {})
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != `{"error":"server_error"}` {
		t.Errorf("unmarshalable body: %d %s", rec.Code, rec.Body)
	}
}

func TestRedirectParams(t *testing.T) {
	for _, tc := range []struct {
		err   *Error
		state string
		want  string
	}{
		{NewError(http.StatusBadRequest, AccessDenied, "the user denied the request"), "xyz", "error=access_denied&error_description=the+user+denied+the+request&state=xyz"},
		{NewError(http.StatusBadRequest, InvalidRequest, ""), "", "error=invalid_request"},
	} {
		if got := tc.err.RedirectParams(tc.state).Encode(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.err.Code, got, tc.want)
		}
	}
}
