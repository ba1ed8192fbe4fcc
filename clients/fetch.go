package clients

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// MetadataError says why a client metadata document, or a client's key
// set, could not be fetched or used. Error returns only Description, which
// is safe to show to the user and the client: it never contains the
// addresses a host resolved to or the body the server sent. Unwrap gives
// the underlying cause, for logs.
type MetadataError struct {
	Description string
	// RetryAfter is non-zero for a failure that is likely to pass: the
	// host could not be reached, refused us (401, 403, 429), failed (5xx)
	// or answered with something other than JSON, such as a bot-check
	// page. It is when the fetch will be tried again. Zero means the
	// document is gone or invalid, and asking again will not help until
	// its owner changes it.
	RetryAfter time.Duration
	cause      error
	// network is true for failures to reach the host at all (refused
	// address, timeout, TLS), which are negative-cached briefly.
	network bool
}

func (e *MetadataError) Error() string { return e.Description }

// Unwrap returns the cause of the failure, which may name internal
// addresses: log it, never send it.
func (e *MetadataError) Unwrap() error { return e.cause }

func metadataErr(cause error, format string, args ...any) *MetadataError {
	return &MetadataError{Description: fmt.Sprintf(format, args...), cause: cause}
}

// get fetches url, which the caller has checked is https, and returns the
// response if the server answered 200 with JSON of at most maxBytes. what
// names the resource in error descriptions.
func (f *Fetcher) get(ctx context.Context, url, what string, maxBytes int64) (*fetch.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, metadataErr(err, "%s URL is invalid", what)
	}
	// Some hosts answer browsers with HTML; ask for the document.
	req.Header.Set("Accept", "application/json")
	resp, err := fetch.Do(f.client, req, maxBytes, func(resp *http.Response) error {
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			return metadataErr(nil, "%s is served with a redirect, which is not followed", what)
		case resp.StatusCode != http.StatusOK:
			e := metadataErr(nil, "%s could not be fetched: the server answered with status %d", what, resp.StatusCode)
			if transientStatus(resp.StatusCode) {
				e.RetryAfter = f.retryInterval()
			}
			return e
		}
		mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			e := metadataErr(err, "%s is not served as JSON", what)
			e.RetryAfter = f.retryInterval()
			return e
		}
		return nil
	})
	var me *MetadataError
	var tooLarge *fetch.TooLargeError
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &me):
		return nil, me
	case errors.As(err, &tooLarge):
		return nil, metadataErr(nil, "%s is too large (limit %d bytes)", what, maxBytes)
	}
	return nil, f.networkErr(err, what)
}

// transientStatus reports whether an HTTP status says the host would not
// or could not answer now, rather than that the document is gone (404,
// 410) or was never there. Hosts behind bot protection answer data-centre
// addresses with 401 or 403 for a while.
func transientStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// retryInterval is how long a transient failure holds before the next
// fetch: the failure cache's time, and a second when it is disabled.
func (f *Fetcher) retryInterval() time.Duration {
	return max(f.opts.FailureCache, time.Second)
}

// networkErr describes a failure to reach the host or read its answer.
// All are transient but a refused address, which means the host now
// points inside the network, and a certificate that does not verify for
// the URL's host: no retry changes our answer to either.
func (f *Fetcher) networkErr(err error, what string) *MetadataError {
	var e *MetadataError
	var ne net.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, fetch.ErrBlockedAddress):
		e = metadataErr(err, "%s host resolves to an address that is not allowed", what)
	case errors.As(err, &certErr):
		e = metadataErr(err, "%s could not be fetched: the host's certificate is not valid for it", what)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e = metadataErr(err, "%s could not be fetched: timed out", what)
		e.RetryAfter = f.retryInterval()
	default:
		e = metadataErr(err, "%s could not be fetched", what)
		e.RetryAfter = f.retryInterval()
	}
	e.network = true
	return e
}
