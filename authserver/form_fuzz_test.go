package authserver

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzEndpointForm posts bodies, URL queries and Authorization headers to
// the form reading of /token, /revoke and /introspect, and then to the
// reading of client credentials. A refusal is a 4xx JSON error. Whatever
// is accepted must be what a strict reference parse by hand reads: no
// parameter but resource repeated (not even with an empty value), nothing
// in the URL, the same values; and accepted credentials use at most one
// method and name the client the Basic header (decoded by hand) or the
// body names.
func FuzzEndpointForm(f *testing.F) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("client-1:s%2Bcret"))
	f.Add("grant_type=authorization_code&code=abc&code_verifier=v&client_id=client-1&resource=https%3A%2F%2Fa%2Fmcp", "", "")
	f.Add("grant_type=refresh_token&refresh_token=r&resource=a&resource=b", "", basic)
	f.Add("token=t&client_id=client-1&client_secret=s", "", "")
	f.Add("token=t&client_id=&client_id=client-2", "", "")
	f.Add("client_secret=a&client_secret=", "", "")
	f.Add("token=t&client_id=client-2", "", basic)
	f.Add("token=t", "client_secret=s", "")
	f.Add("code=a;code=b&client_id=x", "", "")
	f.Add("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c", "", basic)
	f.Add("client_id=%zz", "", "basic !!!")
	f.Fuzz(func(t *testing.T, body, query, authorization string) {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		w := httptest.NewRecorder()
		params, resources, ok := readForm(w, r)
		reference, strictOK := referenceForm(body)
		if !ok {
			assertOAuthRefusal(t, w.Code, w.Body.Bytes())
			return
		}
		if r.URL.RawQuery != "" {
			t.Fatalf("accepted parameters in the URL: %q", r.URL.RawQuery)
		}
		if !strictOK {
			t.Fatalf("accepted a body the reference cannot parse: %q", body)
		}
		want := map[string]string{}
		var wantResources []string
		for k, vs := range reference {
			if k == "resource" {
				for _, v := range vs {
					if v != "" {
						wantResources = append(wantResources, v)
					}
				}
				continue
			}
			if len(vs) > 1 {
				t.Fatalf("accepted %q repeated: %q", k, body)
			}
			if vs[0] != "" {
				want[k] = vs[0]
			}
		}
		if !maps.Equal(params, want) || !slices.Equal(resources, wantResources) {
			t.Fatalf("read %v %v, the reference reads %v %v", params, resources, want, wantResources)
		}

		creds, oerr := readCredentials(r, params)
		if oerr != nil {
			if oerr.Status != http.StatusBadRequest && oerr.Status != http.StatusUnauthorized {
				t.Fatalf("credentials refused with %d", oerr.Status)
			}
			return
		}
		methods := 0
		for _, name := range []string{"client_secret", "client_assertion"} {
			if _, present := params[name]; present {
				methods++
			}
		}
		if authorization != "" {
			methods++
		}
		if methods > 1 || creds.clientID == "" {
			t.Fatalf("accepted credentials with %d methods, client %q", methods, creds.clientID)
		}
		if authorization != "" {
			id, secret, ok := referenceBasic(authorization)
			if !ok || id != creds.clientID || (params["client_id"] != "" && params["client_id"] != id) ||
				(secret == "") != (creds.method == "none") || creds.secret != secret {
				t.Fatalf("Basic %q read as client %q secret %q (%s); the reference reads %q %q %v",
					authorization, creds.clientID, creds.secret, creds.method, id, secret, ok)
			}
		}
	})
}

// referenceForm parses an application/x-www-form-urlencoded body by hand,
// keeping every value, and refuses what Go's parser refuses.
func referenceForm(body string) (map[string][]string, bool) {
	out := map[string][]string{}
	for _, pair := range strings.Split(body, "&") {
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			return nil, false
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(rawKey)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		out[key] = append(out[key], value)
	}
	return out, true
}

// referenceBasic decodes HTTP Basic client credentials by hand (RFC 6749
// section 2.3.1: form-urlencoded, then base64).
func referenceBasic(header string) (id, secret string, ok bool) {
	if len(header) < 6 || !strings.EqualFold(header[:6], "basic ") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[6:]))
	if err != nil {
		return "", "", false
	}
	i := strings.IndexByte(string(raw), ':')
	if i < 0 {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(string(raw[:i]))
	secret, err2 := url.QueryUnescape(string(raw[i+1:]))
	return id, secret, err1 == nil && err2 == nil && id != ""
}

// assertOAuthRefusal checks a refusal: a 4xx with an RFC 6749 error body.
func assertOAuthRefusal(t *testing.T, status int, body []byte) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if status < 400 || status >= 500 || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Fatalf("refused with %d %q", status, body)
	}
}

// FuzzPageForm posts bodies (with a URL query beside them) to the form
// reading of the consent and login pages, and sends the query alone as a
// GET. A refusal is a 400 page. Whatever is accepted is what the strict
// reference parse reads: no parameter repeated, not even with an empty
// value, the same values, and a POST's query ignored.
func FuzzPageForm(f *testing.F) {
	f.Add("request=r1&csrf=c&decision=approve", "")
	f.Add("decision=deny&decision=approve&request=r1&csrf=c", "")
	f.Add("state=s&csrf=c&username=alice&password=p%26w", "state=other")
	f.Add("username=&username=alice", "")
	f.Add("a=1;b=2", "state=%zz")
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			r := httptest.NewRequest(method, "/authorize/login", strings.NewReader(body))
			r.URL.RawQuery = query
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			form, ok := pageForm(w, r)
			raw := body
			if method == http.MethodGet {
				raw = query
			}
			if !ok {
				if w.Code != http.StatusBadRequest || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
					t.Fatalf("%s refused with %d %q", method, w.Code, w.Header().Get("Content-Type"))
				}
				continue
			}
			reference, strictOK := referenceForm(raw)
			want := map[string]string{}
			for k, vs := range reference {
				if len(vs) > 1 {
					t.Fatalf("%s accepted %q repeated: %q", method, k, raw)
				}
				if vs[0] != "" {
					want[k] = vs[0]
				}
			}
			// Go's query parser skips pairs it cannot read; the body's
			// parser refuses them.
			if method == http.MethodPost && !strictOK {
				t.Fatalf("POST accepted a body the reference cannot parse: %q", body)
			}
			if strictOK && !maps.Equal(form, want) {
				t.Fatalf("%s read %v, the reference reads %v", method, form, want)
			}
		}
	})
}
