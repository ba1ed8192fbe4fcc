package dpop

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// FuzzVerify checks that an accepted proof always names the thumbprint of
// the key in its own header and matches the request's method and URL, as
// read by a plain decoding of the proof, whatever the bytes.
func FuzzVerify(f *testing.F) {
	key := oauthtest.NewDPoPKey(f)
	// Proofs that are accepted for their request, for the fuzzer to vary.
	for _, c := range []oauthtest.ProofClaims{
		{Method: "POST", URL: target},
		{Method: "GET", URL: target + "?q=1", AccessToken: "tok"},
		{Method: "POST", URL: "HTTPS://MCP.EXAMPLE.COM:443/mcp", AccessToken: "tok", Extra: map[string]any{"HTU": "https://evil.example/"}},
	} {
		f.Add(key.Proof(f, c), c.Method, target, c.AccessToken)
	}
	f.Fuzz(func(t *testing.T, proof, method, url, token string) {
		v := newVerifier()
		got, err := v.Verify(context.Background(), Request{Proof: proof, Method: method, URL: url, AccessToken: token})
		if err != nil {
			return
		}
		parts := strings.Split(proof, ".")
		var header struct {
			JWK json.RawMessage `json:"jwk"`
		}
		var claims map[string]any
		if raw, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(raw, &header) != nil {
			t.Fatalf("accepted a proof whose header does not decode")
		}
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(raw, &claims) != nil {
			t.Fatalf("accepted a proof whose claims do not decode")
		}
		k, err := jwk.ParseKey(header.JWK)
		if err != nil {
			t.Fatalf("accepted a proof whose jwk does not parse: %v", err)
		}
		thumb, _ := k.Thumbprint(crypto.SHA256)
		if got.JKT != base64.RawURLEncoding.EncodeToString(thumb) {
			t.Fatalf("jkt %q is not the header key's thumbprint", got.JKT)
		}
		htu, _ := claims["htu"].(string)
		want, _ := NormalizeURL(url)
		if claims["htm"] != method || func() string { n, _ := NormalizeURL(htu); return n }() != want {
			t.Fatalf("accepted htm %v htu %q for %s %s", claims["htm"], htu, method, url)
		}
		if token != "" && claims["ath"] != oauthtest.ATH(token) {
			t.Fatalf("accepted ath %v for another token", claims["ath"])
		}
	})
}

// FuzzNormalizeURL checks that normalising is idempotent and keeps no
// query or fragment, so two spellings never compare by accident of order.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{target, "HTTP://A.example:80/%7e%2f?x#y", "https://[::1]:443/a", "https://a/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, ok := NormalizeURL(raw)
		if !ok {
			return
		}
		if strings.ContainsAny(n, "?#") {
			t.Fatalf("%q normalised to %q, with a query or fragment", raw, n)
		}
		again, ok := NormalizeURL(n)
		if !ok || again != n {
			t.Fatalf("%q normalised to %q, then to %q (%v)", raw, n, again, ok)
		}
	})
}
