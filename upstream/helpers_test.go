package upstream

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
)

// callbackURL is the authorization server's callback in these tests. The
// fakes never call it; they only redirect the "browser" there.
const callbackURL = "https://as.example.com/oauth/callback"

// loginParams are the per-login values the authorization server generates.
type loginParams struct {
	state, verifier, nonce string
}

func newLoginParams() loginParams {
	return loginParams{
		state:    oauth2.GenerateVerifier()[:20],
		verifier: oauth2.GenerateVerifier(),
		nonce:    oauth2.GenerateVerifier()[:24],
	}
}

// authorize starts a login at r and plays the browser at the fake provider,
// returning the code it redirected back with.
func authorize(t *testing.T, r Redirector, p loginParams) string {
	t.Helper()
	loc := fakeidp.Authorize(t, r.AuthCodeURL(p.state, p.verifier, p.nonce, callbackURL))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != callbackURL {
		t.Fatalf("redirected to %s, want %s", got, callbackURL)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		t.Fatalf("provider redirected with error=%s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != p.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), p.state)
	}
	if q.Get("code") == "" {
		t.Fatal("no code in redirect")
	}
	return q.Get("code")
}

// login runs a whole login at r: authorize, then Exchange.
func login(t *testing.T, r Redirector) (*Identity, error) {
	t.Helper()
	p := newLoginParams()
	code := authorize(t, r, p)
	return r.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL)
}

// mustLogin is login that fails the test on error.
func mustLogin(t *testing.T, r Redirector) *Identity {
	t.Helper()
	id, err := login(t, r)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return id
}

// wantErr fails the test unless err is non-nil and mentions every one of
// the fragments.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", fragments)
	}
	t.Logf("error as expected: %v", err)
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

// garbage answers every request with a 200 that is not JSON.
var garbage = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"this is": not json`))
})

// huge answers with 2 MiB of syntactically valid JSON.
var huge = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"padding":"`))
	_, _ = w.Write([]byte(strings.Repeat("x", 2<<20)))
	_, _ = w.Write([]byte(`"}`))
})

// stall never answers; it returns when the client gives up. It reads the
// body first: the server notices a client hanging up only once it is
// consumed.
var stall = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
})

// shortCtx returns a context that ends soon, for timeout tests.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}
