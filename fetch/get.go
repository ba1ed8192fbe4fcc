package fetch

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/version"
)

// UserAgent names this software, its version and where to read about it
// in every request the server sends to other hosts, so that their
// operators can tell who fetches their documents and key sets.
var UserAgent = userAgent(version.Module())

// userAgent returns the User-Agent for module version v. Builds from a
// checkout say "(devel)", whose parentheses a product version may not
// hold (RFC 9110 section 10.1.5).
func userAgent(v string) string {
	if v == "" || strings.ContainsAny(v, "() ") {
		v = "devel"
	}
	return "caddy-mcp-auth/" + v + " (+" + version.RepositoryURL + ")"
}

// TooLargeError says a response body exceeded the size allowed.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("response larger than %d bytes", e.Limit)
}

// Response is a response whose body was read in full.
type Response struct {
	StatusCode int
	Status     string
	Header     http.Header
	Body       []byte
}

// Do sends req with client and reads the response body, at most maxBytes
// of it. check, if not nil, looks at the response before its body is read
// (status, content type); an error from it is returned as is, with the
// body unread. Transport errors are returned as is, so callers can tell a
// refused address (ErrBlockedAddress) or a timeout; a body over maxBytes,
// by its Content-Length or by what arrives, is a *TooLargeError. The
// request is sent with UserAgent unless it names its own.
func Do(client *http.Client, req *http.Request, maxBytes int64, check func(*http.Response) error) (*Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if check != nil {
		if err := check(resp); err != nil {
			return nil, err
		}
	}
	if resp.ContentLength > maxBytes {
		return nil, &TooLargeError{Limit: maxBytes}
	}
	// Read one byte more than allowed to tell "exactly at the limit" from
	// "over it" without trusting Content-Length.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err == nil {
		// A deadline that strikes mid-body can surface as a clean but
		// truncated read; don't let that pass for the whole document.
		err = req.Context().Err()
	}
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, &TooLargeError{Limit: maxBytes}
	}
	return &Response{StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header, Body: body}, nil
}
