package authserver

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"go.uber.org/zap"
)

// The authorization server's own pages: consent, the built-in login, and
// errors that must not redirect. They load nothing from anywhere, cannot be
// framed (clickjacking, OAuth 2.1 section 7.11) and are never cached. Each
// template file defines one page; head.html is the start every page shares.
//
//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// renderPage writes one of the pages with the headers every page gets.
func renderPage(w http.ResponseWriter, status int, name string, data map[string]any) {
	nonce := randomToken()
	data["Nonce"] = nonce
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// waitPage answers status (429, or 503 when the server, or a host it
// depends on, is busy)
// with a page saying how long to wait, and the same in Retry-After.
func waitPage(w http.ResponseWriter, status int, wait time.Duration, message string) {
	w.Header().Set("Retry-After", oauth.RetryAfter(wait))
	renderPage(w, status, "wait", map[string]any{"Title": "Please wait", "Message": message, "Wait": humanWait(wait)})
}

// humanWait says how long wait is, rounded up to a whole second or minute.
func humanWait(wait time.Duration) string {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	switch {
	case secs == 1:
		return "1 second"
	case secs < 120:
		return strconv.Itoa(secs) + " seconds"
	default:
		return strconv.Itoa((secs+59)/60) + " minutes"
	}
}

// errorPage answers an authorization request that cannot be sent back to
// the client, because the client or its redirect URI is not trusted.
func errorPage(w http.ResponseWriter, status int, message string) {
	renderPage(w, status, "error", map[string]any{"Title": "Authorization failed", "Message": message})
}

// serverError logs why a step of the authorization flow failed and says
// on a page what the user can do.
func serverError(w http.ResponseWriter, logger *zap.Logger, what string, err error) {
	logger.Error(what, zap.Error(err))
	if errors.Is(err, storage.ErrNotFound) {
		errorPage(w, http.StatusBadRequest, "This request has expired. Start again from the app.")
		return
	}
	errorPage(w, http.StatusServiceUnavailable, "The server could not complete this step. Try again.")
}
