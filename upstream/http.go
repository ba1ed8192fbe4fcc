package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// maxResponseSize caps how much of any provider response is read. Discovery
// documents, key sets, token responses and user records are a few KiB; a
// provider (or something impersonating one) sending more is broken or
// hostile, and must not make the authorization server buffer it.
const maxResponseSize = 1 << 20

// defaultHTTPTimeout bounds each provider request when the caller passes no
// HTTP client of its own. Callers' contexts can shorten it further.
const defaultHTTPTimeout = 30 * time.Second

// exchangeTimeout bounds a whole Exchange (token request, key fetch,
// user-info or API calls): the user is waiting at the callback.
const exchangeTimeout = 30 * time.Second

// maxRedirects bounds redirects followed on any provider request.
const maxRedirects = 5

// providerClient returns a copy of c (or, if c is nil, a client with a
// timeout: http.DefaultClient has none, and a stalled provider must not pin
// a goroutine forever) that follows redirects only within the origin of
// the original request. Token requests carry the client secret and code in
// their body, which Go would re-send to wherever a 307 points.
func providerClient(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Timeout = defaultHTTPTimeout
	}
	next := out.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if from := via[0].URL; req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
			return fmt.Errorf("refusing redirect from %s to another origin (%s)", redactURL(from), redactURL(req.URL))
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &out
}

// checkEndpoint reports whether raw is an absolute URL the authorization
// server may talk to: https, or plain http to a loopback host so tests and
// local development can run without certificates. what names the URL in
// the error ("issuer", "token_endpoint", ...).
func checkEndpoint(what, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a valid URL: %v", what, raw, err)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s %q is not an absolute URL", what, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s %q must not contain user info", what, raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, fmt.Errorf("%s %q must not contain a fragment", what, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%s %q must use https (plain http is allowed only for localhost, 127.0.0.1 and ::1)", what, raw)
		}
	default:
		return nil, fmt.Errorf("%s %q must use https", what, raw)
	}
	return u, nil
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP address. Other names that happen to resolve to loopback are
// not trusted, since resolution can change after the check.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// getJSON sends req and decodes a JSON response body into dst. It fails on
// non-2xx statuses, bodies over maxResponseSize and malformed JSON, naming
// the URL in every error. It returns the response headers for callers that
// need them (pagination links).
func getJSON(client *http.Client, req *http.Request, dst any) (http.Header, error) {
	where := req.Method + " " + redactURL(req.URL)
	resp, err := fetch.Do(client, req, maxResponseSize, nil)
	var tooLarge *fetch.TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%s: reading response: %w", where, err)
	case errors.As(err, new(*url.Error)):
		// Transport errors already name the URL; keep the chain so
		// callers can test for context.DeadlineExceeded.
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%s: reading response: %w", where, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, &statusError{where: where, status: resp.Status, code: resp.StatusCode, detail: errorDetail(resp.Body)}
	}
	if err := json.Unmarshal(resp.Body, dst); err != nil {
		// Say what came back: typically an HTML error or login page from a
		// proxy in front of the provider. The content type is not checked
		// up front because providers label JSON inconsistently.
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "" {
			mt = "no content type"
		}
		return resp.Header, fmt.Errorf("%s: invalid JSON response (%s): %v", where, mt, err)
	}
	return resp.Header, nil
}

// expectNoContent sends req and fails unless the answer is 2xx; the body
// is read (within maxResponseSize) only for an error's detail.
func expectNoContent(client *http.Client, req *http.Request) error {
	where := req.Method + " " + redactURL(req.URL)
	resp, err := fetch.Do(client, req, maxResponseSize, nil)
	switch {
	case errors.As(err, new(*url.Error)):
		return err
	case err != nil:
		return fmt.Errorf("%s: reading response: %w", where, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{where: where, status: resp.Status, code: resp.StatusCode, detail: errorDetail(resp.Body)}
	}
	return nil
}

// splitScopes splits a granted scope list: space-separated (OAuth) or
// comma-separated (GitHub).
func splitScopes(scope string) []string {
	return strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' || r == ',' })
}

// statusError is a non-2xx answer from a provider endpoint.
type statusError struct {
	where  string
	status string
	code   int
	detail string // the provider's own error message, sanitized; may be empty
}

func (e *statusError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("%s: HTTP %s: %s", e.where, e.status, e.detail)
	}
	return fmt.Sprintf("%s: HTTP %s", e.where, e.status)
}

// errorDetail extracts a human-readable message from a JSON error body in
// the shapes providers use (RFC 6749 error/error_description, GitHub's
// message). Anything else is dropped rather than echoed: the body might be
// a large HTML page.
func errorDetail(body []byte) string {
	var e struct {
		Error            any    `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var parts []string
	if s, ok := e.Error.(string); ok && s != "" {
		parts = append(parts, s)
	}
	if e.ErrorDescription != "" {
		parts = append(parts, e.ErrorDescription)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	return sanitize(strings.Join(parts, ": "))
}

// sanitize makes provider-supplied text safe to put in an error message
// that ends up in logs: control characters are replaced and the length is
// capped.
func sanitize(s string) string {
	const maxLen = 200
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxLen {
		s = s[:maxLen] + "…"
	}
	return strings.ToValidUTF8(s, "")
}

// redactURL returns u without its query string, which on provider URLs may
// carry codes or other one-time values that have no place in logs.
func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.ForceQuery = false
	c.User = nil
	return c.String()
}

// withExchangeTimeout bounds ctx by exchangeTimeout.
func withExchangeTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, exchangeTimeout)
}

// isStatus reports whether err is a statusError with one of the codes.
func isStatus(err error, codes ...int) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.code == c {
			return true
		}
	}
	return false
}
