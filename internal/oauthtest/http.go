package oauthtest

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// Do sends a request with c and returns the status, header and body,
// failing the test if the request cannot be made or read.
func Do(t testing.TB, c *http.Client, method, url string, header http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// Get fetches url with c and returns the status, header and body.
func Get(t testing.TB, c *http.Client, url string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return Do(t, c, http.MethodGet, url, header, nil)
}

// Bearer is an Authorization header carrying token.
func Bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// BasicAuth is the value of HTTP Basic client credentials, each part
// form-urlencoded first as OAuth requires (RFC 6749 section 2.3.1).
func BasicAuth(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

// CloneValues returns a deep copy of v, to vary one request of a test
// without touching the others.
func CloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// SubmitForm posts an HTML form as a browser does: form-encoded, with the
// Origin header of the page the form came from.
func SubmitForm(t testing.TB, c *http.Client, target, origin string, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	return Do(t, c, http.MethodPost, target, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {origin}}, []byte(form.Encode()))
}
