package clients

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// userAgent identifies our outbound fetches to the hosts serving metadata
// documents and key sets.
const userAgent = "caddy-mcp-auth (OAuth client metadata fetcher)"

// MetadataError says why a client metadata document, or a client's key
// set, could not be fetched or used. Error returns only Description, which
// is safe to show to the user and the client: it never contains the
// addresses a host resolved to or the body the server sent. Unwrap gives
// the underlying cause, for logs.
type MetadataError struct {
	Description string
	cause       error
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
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := fetch.Do(f.client, req, maxBytes, func(resp *http.Response) error {
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			return metadataErr(nil, "%s is served with a redirect, which is not followed", what)
		case resp.StatusCode != http.StatusOK:
			return metadataErr(nil, "%s could not be fetched: the server answered with status %d", what, resp.StatusCode)
		}
		mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return metadataErr(err, "%s is not served as JSON", what)
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
	return nil, networkErr(err, what)
}

// networkErr describes a failure to reach the host or read its answer.
func networkErr(err error, what string) *MetadataError {
	var e *MetadataError
	var ne net.Error
	switch {
	case errors.Is(err, fetch.ErrBlockedAddress):
		e = metadataErr(err, "%s host resolves to an address that is not allowed", what)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e = metadataErr(err, "%s could not be fetched: timed out", what)
	default:
		e = metadataErr(err, "%s could not be fetched", what)
	}
	e.network = true
	return e
}
