package gate

import (
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// BearerToken extracts the token of a "Bearer" Authorization header; the
// scheme is case-insensitive (RFC 9110 section 11.1).
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// DPoPToken extracts the token of a "DPoP" Authorization header (RFC 9449
// section 7.1); the scheme is case-insensitive.
func DPoPToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// isToken68 reports whether s has the b64token syntax of RFC 6750 section 2.1.
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" || len(s) > tokens.MaxTokenLength {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !token68Chars[body[i]] {
			return false
		}
	}
	return true
}

// token68Chars are the bytes of a b64token before its trailing "="s: a
// table, since every gated request checks a token of about a kilobyte.
var token68Chars = func() (chars [256]bool) {
	for _, r := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/" {
		chars[r] = true
	}
	return chars
}()
