package authserver

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// cookieName is the browser cookie's name, one per issuer: browsers send a
// host's cookies to every port and path of it, so sites on one host (local
// sites on several ports, issuers with paths) would otherwise share one
// cookie and overwrite each other's. https issuers use the __Host- prefix,
// which keeps the cookie to this host, secure and unscoped by Domain.
func cookieName(issuer string) string {
	name := "mcp_auth_" + state.Hash(issuer)[:12]
	if strings.HasPrefix(issuer, "https://") {
		return "__Host-" + name
	}
	return name
}

// browserCookie binds a flow to the browser that started it.
type browserCookie struct {
	// name is cookieName of the issuer; secure is set for https issuers.
	name   string
	secure bool
}

// browserID returns the browser's id cookie, setting a new one if needed.
func (b browserCookie) id(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(b.name); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	id := randomToken()
	http.SetCookie(w, &http.Cookie{
		Name: b.name, Value: id, Path: "/",
		Secure: b.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return id
}

// sameBrowser reports whether r comes from the browser whose id hashes to want.
func (b browserCookie) same(r *http.Request, want string) bool {
	c, err := r.Cookie(b.name)
	return err == nil && subtle.ConstantTimeCompare([]byte(state.Hash(c.Value)), []byte(want)) == 1
}
