package gate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// errAmbiguousPath refuses a request path that parsers along the way
// (Caddy's matchers, the proxy, the backend's router) could read as
// different paths.
var errAmbiguousPath = errors.New("the request path has an encoded separator, a dot segment, an empty segment or a character that paths must not carry")

// gatePath returns the path the gate judges a request by, the way Caddy's
// path matcher reads it: decoded and lower-cased. It refuses a path whose
// raw form, the one reverse_proxy forwards, could name another resource to
// a different reader: an encoded "/", "\", ".", "%" or ";", a dot or empty
// segment or one ending in a dot or space, a backslash, a ";" (path
// parameters), a control character, or bytes that are not UTF-8 (overlong
// encodings of "/" and ".") once decoded. Without those, the decoded path has the raw path's segments,
// cleaning it changes nothing, and only letter case is left to fold.
func gatePath(u *url.URL) (string, error) {
	raw := u.EscapedPath() // what the backend receives
	if raw == "" {
		return "/", nil
	}
	if raw[0] != '/' {
		return "", errAmbiguousPath
	}
	segStart, last := 1, byte(0) // last: the segment's last byte, decoded
	for i := 1; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == '/' {
			// Windows, and Caddy's matchers there, ignore a segment's
			// trailing dots and spaces; this also refuses "." and "..".
			if i > segStart && (last == '.' || last == ' ') || i == segStart && i < len(raw) {
				return "", errAmbiguousPath
			}
			segStart = i + 1
			continue
		}
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", errAmbiguousPath
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if c == '/' || c == '.' || c == '%' {
				return "", errAmbiguousPath
			}
			i += 2
		}
		if c == '\\' || c == ';' || c < 0x20 || c == 0x7f {
			return "", errAmbiguousPath
		}
		last = c
	}
	if !utf8.ValidString(u.Path) {
		return "", errAmbiguousPath
	}
	return strings.ToLower(u.Path), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// checkPlainPath checks a configured path (a resource or a scope rule's
// path) for what no request that passes gatePath can match, so that a rule
// is never silently dead: it must be absolute, without percent-encoding,
// backslash, ";", control characters, empty segments or segments ending in
// a dot or space.
func checkPlainPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must start with /", p)
	}
	if strings.ContainsAny(p, `%\;`) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("path %q must be plain: no percent-encoding, backslash, semicolon or control character", p)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p[1:], "/"), "/") {
		if seg == "" && p != "/" || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
			return fmt.Errorf("path %q must not have empty segments, or segments ending in a dot or space", p)
		}
	}
	return nil
}
