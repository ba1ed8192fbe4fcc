package dpop

import (
	"net/url"
	"strings"
)

// NormalizeURL returns an absolute http(s) URL as a proof's htu is
// compared (RFC 9449 section 4.3): without query and fragment, with the
// normalisations of RFC 3986 sections 6.2.2.1, 6.2.2.2 and 6.2.3: scheme
// and host in lower case, percent-encodings in upper case and decoded
// where they encode an unreserved character, the scheme's default port
// and an empty path as "/". Dot segments are left as they are: the gate
// refuses them in the paths it protects. It reports false for anything
// else, such as a relative URL or one with user information.
func NormalizeURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch scheme {
	case "https":
		host = strings.TrimSuffix(host, ":443")
	case "http":
		host = strings.TrimSuffix(host, ":80")
	default:
		return "", false
	}
	host = strings.TrimSuffix(host, ":") // an empty port is the default one
	if host == "" {
		return "", false
	}
	p, ok := normalizePath(u.EscapedPath())
	if !ok {
		return "", false
	}
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, true
}

// normalizePath normalises the percent-encodings of an escaped path.
func normalizePath(p string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, true
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", false
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String(), true
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
