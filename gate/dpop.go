package gate

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// bindingRefusal is why checkBinding refused a request.
type bindingRefusal struct {
	status int
	code   oauth.ErrorCode
	reason string
}

// checkBinding enforces sender-constrained tokens (RFC 9449 section 7): a
// DPoP-bound token only with the DPoP scheme and a proof by its key for
// this request; the DPoP scheme only with such a token; and at a resource
// that requires DPoP, nothing else. A bearer token at a resource that
// does not require DPoP costs one nil check here.
func (g *Gate) checkBinding(r *http.Request, d *Decision, res *Resource, token string, claims *tokens.AccessClaims, dpopScheme bool) *bindingRefusal {
	cnf := claims.Confirmation
	switch {
	case cnf == nil && !dpopScheme && !res.RequireDPoP:
		return nil
	case cnf == nil && res.RequireDPoP:
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidToken, "this resource accepts only DPoP-bound tokens"}
	case cnf == nil:
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidToken, "the token is not DPoP-bound: send it with the Bearer scheme"}
	case cnf.JKT == "":
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidToken, "the token is bound to a key in a way this server cannot check"}
	case !dpopScheme:
		// RFC 9449 section 7.2: a stolen bound token must not pass as a
		// bearer token.
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidToken, "the token is DPoP-bound: send it with the DPoP scheme and a proof"}
	case g.cfg.DPoP == nil:
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidToken, "DPoP-bound tokens are not accepted here"}
	}
	v := g.cfg.DPoP
	if v.Nonces != nil {
		d.Nonce = v.Nonces.Issue(time.Now())
	}
	proof, err := dpop.ProofFrom(r.Header)
	if err == nil && proof == "" {
		err = &dpop.Error{Reason: "a DPoP-bound token needs a DPoP proof"}
	}
	if err == nil {
		_, err = v.Verify(r.Context(), dpop.Request{Proof: proof, Method: r.Method, URL: g.requestURL(r), AccessToken: token, BoundTo: cnf.JKT})
	}
	var refused *dpop.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused) && refused.NeedNonce:
		return &bindingRefusal{http.StatusUnauthorized, oauth.UseDPoPNonce, refused.Reason}
	case errors.As(err, &refused):
		return &bindingRefusal{http.StatusUnauthorized, oauth.InvalidDPoPProof, refused.Reason}
	}
	// The replay cache is full: the proof cannot be judged.
	return &bindingRefusal{http.StatusServiceUnavailable, "", err.Error()}
}

// requestURL is the URL the client used for r, as a proof's htu names it:
// the scheme it connected with, the Host it sent and the path exactly as
// sent, not a cleaned one.
func (g *Gate) requestURL(r *http.Request) string {
	scheme := "http"
	switch {
	case g.cfg.RequestScheme != nil:
		scheme = g.cfg.RequestScheme(r)
	case r.TLS != nil:
		scheme = "https"
	}
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath() // absolute-form request target
	}
	return scheme + "://" + r.Host + p
}
