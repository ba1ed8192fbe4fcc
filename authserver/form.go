package authserver

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// pageForm reads the parameters of a request to a page: the query of a
// GET, the posted form (and only it) of a POST. Like the endpoints' forms,
// no parameter may repeat, so no reader takes another value than this one;
// anything else is answered with an error page.
func pageForm(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	values := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if err := r.ParseForm(); err != nil {
			errorPage(w, http.StatusBadRequest, "The form could not be read.")
			return nil, false
		}
		values = r.PostForm
	}
	form, _, oerr := singleValues(values)
	if oerr != nil {
		errorPage(w, http.StatusBadRequest, "The form could not be read: "+oerr.Description+".")
		return nil, false
	}
	return form, true
}

// maxBodyBytes caps every request body the authorization server reads.
const maxBodyBytes = 64 << 10

// singleValues parses a form or query, refusing repeated parameters
// (OAuth 2.1 section 3.1, 3.2) other than those in repeatable, even when
// all but one of the values are empty: a parser that takes the first value
// must never read another request than this one. Empty values count as
// absent.
func singleValues(values url.Values, repeatable ...string) (map[string]string, []string, *oauth.Error) {
	out := make(map[string]string, len(values))
	var repeated []string
	for k, vs := range values {
		if slices.Contains(repeatable, k) {
			for _, v := range vs {
				if v != "" {
					repeated = append(repeated, v)
				}
			}
			continue
		}
		if len(vs) > 1 {
			return nil, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "parameter "+safeName(k)+" is repeated")
		}
		if vs[0] != "" {
			out[k] = vs[0]
		}
	}
	return out, repeated, nil
}

// safeName keeps a parameter name printable for an error description.
func safeName(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

// readForm reads the POSTed form of the token, revocation and
// introspection endpoints, answering malformed requests itself. Only
// resource may repeat (RFC 8707). Parameters in the URL are refused: they
// would be read by parsers that merge query and body, and credentials must
// not travel there (OAuth 2.1 section 2.4.1).
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, []string, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauth.WriteError(w, nil, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "this endpoint only accepts POST"))
		return nil, nil, false
	}
	if r.URL.RawQuery != "" {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "parameters must be sent in the body, not the URL"))
		return nil, nil, false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "the body must be application/x-www-form-urlencoded"))
		return nil, nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "the body could not be read"))
		return nil, nil, false
	}
	params, resources, oerr := singleValues(r.PostForm, "resource")
	if oerr != nil {
		oauth.WriteError(w, nil, oerr)
		return nil, nil, false
	}
	return params, resources, true
}
