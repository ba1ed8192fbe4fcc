package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// verifyEnv is an ES256 ring on a fake clock with a verifier for testIssuer.
type verifyEnv struct {
	clk *oauthtest.Clock
	kr  *KeyRing
	v   *Verifier
	kid string
}

func newVerifyEnv(t *testing.T) *verifyEnv {
	t.Helper()
	clk := newFakeClock()
	kr := newClockRing(t, openStore(t), testConfig("ES256"), clk)
	k, err := kr.signingKey()
	if err != nil {
		t.Fatal(err)
	}
	return &verifyEnv{clk: clk, kr: kr, v: NewVerifier(kr, testIssuer), kid: k.kid}
}

func (e *verifyEnv) sign(t *testing.T, typ string, claims any) string {
	t.Helper()
	tok, err := e.kr.Sign(typ, claims)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

func (e *verifyEnv) verify(tok string) (*AccessClaims, error) {
	return e.v.Verify(context.Background(), tok, testAudience)
}

func TestVerifyValidToken(t *testing.T) {
	e := newVerifyEnv(t)
	tok := mint(t, e.kr, time.Hour)
	c, err := e.verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	now := e.clk.Now().Unix()
	if c.Issuer != testIssuer || c.Subject != "user-123" || c.ClientID != "client-abc" ||
		c.IssuedAt != now || c.Expiry != now+3600 || c.JWTID == "" {
		t.Errorf("claims = %+v", c)
	}
	// Verified again from the cache, with the same result.
	c2, err := e.verify(tok)
	if err != nil || c2.JWTID != c.JWTID {
		t.Errorf("second Verify = %+v, %v", c2, err)
	}
}

func TestVerifyTokenType(t *testing.T) {
	e := newVerifyEnv(t)
	claims := claimsMap(e.clk.Now())
	tests := []struct {
		typ string
		ok  bool
	}{
		{"at+jwt", true},
		{"application/at+jwt", true},
		{"AT+JWT", true},
		{"Application/At+Jwt", true},
		{"JWT", false},
		{"jwt", false},
		{"application/jwt", false},
		{"", false},
		{"at+jwt ", false},
		{"at+jwt2", false},
		{"x/at+jwt", false},
		{"id_token+jwt", false},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			tok := e.sign(t, tc.typ, claims)
			_, err := e.verify(tok)
			if tc.ok {
				if err != nil {
					t.Fatalf("typ %q rejected: %v", tc.typ, err)
				}
				return
			}
			wantInvalid(t, err, tok, "token type")
		})
	}
	t.Run("missing typ", func(t *testing.T) {
		tok := forgeES256(t, e.kr, map[string]any{"alg": "ES256", "kid": e.kid}, claims)
		_, err := e.verify(tok)
		wantInvalid(t, err, tok, "token type")
	})
	t.Run("forged header, honest signature", func(t *testing.T) {
		// forgeES256 itself must produce tokens that verify, or the
		// rejections above prove nothing.
		tok := forgeES256(t, e.kr, map[string]any{"alg": "ES256", "kid": e.kid, "typ": "at+jwt"}, claims)
		if _, err := e.verify(tok); err != nil {
			t.Fatalf("hand-signed valid token rejected: %v", err)
		}
	})
}

func TestVerifyRejectsAlgNone(t *testing.T) {
	e := newVerifyEnv(t)
	payload := b64(mustJSON(t, claimsMap(e.clk.Now())))
	valid := mint(t, e.kr, time.Hour)
	validSig := valid[strings.LastIndexByte(valid, '.')+1:]
	for _, alg := range []string{"none", "None", "NONE", ""} {
		for _, sig := range []string{"", validSig} {
			h := b64(mustJSON(t, map[string]any{"alg": alg, "typ": "at+jwt", "kid": e.kid}))
			tok := h + "." + payload + "." + sig
			_, err := e.verify(tok)
			wantInvalid(t, err, tok, "algorithm does not match", "signature is invalid")
		}
	}
	// No alg at all.
	tok := b64(mustJSON(t, map[string]any{"typ": "at+jwt", "kid": e.kid})) + "." + payload + "."
	_, err := e.verify(tok)
	wantInvalid(t, err, tok, "algorithm does not match", "signature is invalid")
}

func TestVerifyRejectsAlgorithmConfusion(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			clk := newFakeClock()
			kr := newClockRing(t, openStore(t), testConfig(alg), clk)
			v := NewVerifier(kr, testIssuer)
			key, err := kr.signingKey()
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKIXPublicKey(key.publicRaw)
			if err != nil {
				t.Fatal(err)
			}
			publicJWK, err := json.Marshal(key.public)
			if err != nil {
				t.Fatal(err)
			}
			// The HMAC secrets an attacker would try: the public key as
			// published, in every common encoding.
			secrets := map[string][]byte{
				"PEM":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
				"DER":  der,
				"JWK":  publicJWK,
				"JWKS": kr.JWKS(),
			}
			payload := b64(mustJSON(t, claimsMap(clk.Now())))
			for name, secret := range secrets {
				for _, hs := range []string{"HS256", "hs256"} {
					input := b64(mustJSON(t, map[string]any{"alg": hs, "typ": "at+jwt", "kid": key.kid})) + "." + payload
					mac := hmac.New(sha256.New, secret)
					mac.Write([]byte(input))
					tok := input + "." + b64(mac.Sum(nil))
					_, err := v.Verify(context.Background(), tok, testAudience)
					if err == nil {
						t.Fatalf("%s token with the %s public key as HMAC secret accepted", hs, name)
					}
					if hs == "HS256" {
						wantInvalid(t, err, tok, "algorithm does not match")
					} else { // not a registered alg name: the JWS does not even parse
						wantInvalid(t, err, tok, "algorithm does not match", "signature is invalid")
					}
				}
			}

			// A genuine signature relabelled with another asymmetric alg.
			genuine := mint(t, kr, time.Hour)
			parts := strings.Split(genuine, ".")
			for _, other := range []string{"ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519"} {
				if other == alg {
					continue
				}
				h := b64(mustJSON(t, map[string]any{"alg": other, "typ": "at+jwt", "kid": key.kid}))
				tok := h + "." + parts[1] + "." + parts[2]
				_, err := v.Verify(context.Background(), tok, testAudience)
				wantInvalid(t, err, tok, "algorithm does not match")
			}
			if _, err := v.Verify(context.Background(), genuine, testAudience); err != nil {
				t.Fatalf("genuine %s token rejected: %v", alg, err)
			}
		})
	}
}

func TestVerifyRejectsUnknownKey(t *testing.T) {
	e := newVerifyEnv(t)
	claims := claimsMap(e.clk.Now())
	tests := map[string]string{
		"unknown kid": forgeES256(t, e.kr, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "no-such-key"}, claims),
		"no kid":      forgeES256(t, e.kr, map[string]any{"alg": "ES256", "typ": "at+jwt"}, claims),
		"empty kid":   forgeES256(t, e.kr, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": ""}, claims),
		// Another authorization server's key, even with our issuer in it.
		"foreign ring": mint(t, newRing(t, openStore(t), testConfig("ES256")), time.Hour),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.verify(tok)
			wantInvalid(t, err, tok, "unknown key")
		})
	}
}

// flip replaces the character at i of s with a different base64url one.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestVerifyRejectsTampering(t *testing.T) {
	e := newVerifyEnv(t)
	tok := mint(t, e.kr, time.Hour)
	other := mint(t, e.kr, time.Hour)
	p := strings.Split(tok, ".")
	q := strings.Split(other, ".")
	tests := map[string]string{
		"payload char":       p[0] + "." + flip(p[1], len(p[1])/2) + "." + p[2],
		"first payload char": p[0] + "." + flip(p[1], 0) + "." + p[2],
		"signature char":     p[0] + "." + p[1] + "." + flip(p[2], len(p[2])/2),
		"first sig char":     p[0] + "." + p[1] + "." + flip(p[2], 0),
		"swapped payload":    p[0] + "." + q[1] + "." + p[2],
		"truncated sig":      p[0] + "." + p[1] + "." + p[2][:len(p[2])-4],
		"empty sig":          p[0] + "." + p[1] + ".",
		// The same signature bytes, spelled with a non-zero unused bit.
		"non-canonical sig": p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] +
			string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", p[2][len(p[2])-1])|1]),
		"doubled sig": p[0] + "." + p[1] + "." + p[2] + p[2],
		"payload with claim added": p[0] + "." + b64(func() []byte {
			m := claimsMap(e.clk.Now())
			m["scope"] = "admin"
			return mustJSON(t, m)
		}()) + "." + p[2],
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			if bad == tok {
				t.Fatal("test bug: token unchanged")
			}
			_, err := e.verify(bad)
			wantInvalid(t, err, bad, "signature is invalid", "malformed", "not a JWT")
			if _, ok := e.v.cache.get(bad, e.kr.removals.Load()); ok {
				t.Errorf("rejected token was cached")
			}
		})
	}
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("the untampered token is rejected: %v", err)
	}
}

// TestVerifyRequiresCompactSerialization re-encodes a valid token in the
// JWS JSON serialization (with dots inside, to pass the cheap shape check)
// and in spellings lenient base64 decoders accept: an access token is a
// compact JWS in base64url and nothing else.
func TestVerifyRequiresCompactSerialization(t *testing.T) {
	e := newVerifyEnv(t)
	tok := mint(t, e.kr, time.Hour)
	p := strings.Split(tok, ".")
	flattened := mustJSON(t, map[string]any{
		"protected": p[0], "payload": p[1], "signature": p[2],
		"header": map[string]any{"x": "a..b"},
	})
	general := mustJSON(t, map[string]any{
		"payload":    p[1],
		"signatures": []any{map[string]any{"protected": p[0], "signature": p[2], "header": map[string]any{"x": "a..b"}}},
	})
	std := strings.NewReplacer("-", "+", "_", "/").Replace(tok)
	if std == tok {
		std = tok[:len(tok)-1] + "+"
	}
	for name, bad := range map[string]string{
		"flattened JSON":    string(flattened),
		"general JSON":      string(general),
		"leading space":     " " + tok,
		"trailing LF":       tok + "\n",
		"inner CRLF":        p[0] + "." + p[1][:10] + "\r\n" + p[1][10:] + "." + p[2],
		"padded signature":  tok + "==",
		"standard alphabet": std,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.verify(bad)
			wantInvalid(t, err, bad, "not a JWT", "signature is invalid")
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	e := newVerifyEnv(t)
	now := e.clk.Now()
	sec := func(d time.Duration) int64 { return now.Add(d).Unix() }
	tests := []struct {
		name   string
		change func(m map[string]any)
		reason string // "" means accepted
	}{
		{"valid", func(map[string]any) {}, ""},
		{"wrong iss", func(m map[string]any) { m["iss"] = "https://evil.example.com" }, "issuer"},
		{"iss with trailing slash", func(m map[string]any) { m["iss"] = testIssuer + "/" }, "issuer"},
		{"missing iss", func(m map[string]any) { delete(m, "iss") }, "issuer"},
		{"wrong aud", func(m map[string]any) { m["aud"] = "https://other.example.com/mcp" }, "not meant for this resource"},
		{"aud prefix", func(m map[string]any) { m["aud"] = testAudience + "/sub" }, "not meant for this resource"},
		{"aud array containing it", func(m map[string]any) { m["aud"] = []string{"https://other.example.com", testAudience} }, ""},
		{"aud array without it", func(m map[string]any) { m["aud"] = []string{"https://a.example.com", "https://b.example.com"} }, "not meant for this resource"},
		{"aud empty array", func(m map[string]any) { m["aud"] = []string{} }, "lacks required claims"},
		{"aud number", func(m map[string]any) { m["aud"] = 42 }, "malformed"},
		{"expired beyond skew", func(m map[string]any) { m["exp"] = sec(-31 * time.Second) }, "expired"},
		{"expired long ago", func(m map[string]any) { m["exp"] = sec(-24 * time.Hour) }, "expired"},
		{"expired within skew", func(m map[string]any) { m["exp"] = sec(-29 * time.Second) }, ""},
		{"expired at skew edge", func(m map[string]any) { m["exp"] = sec(-30 * time.Second) }, ""},
		{"nbf beyond skew", func(m map[string]any) { m["nbf"] = sec(31 * time.Second) }, "not valid yet"},
		{"nbf within skew", func(m map[string]any) { m["nbf"] = sec(29 * time.Second) }, ""},
		{"nbf past", func(m map[string]any) { m["nbf"] = sec(-time.Minute) }, ""},
		{"iat in the future", func(m map[string]any) { m["iat"] = sec(31 * time.Second) }, "issued in the future"},
		{"iat far in the future", func(m map[string]any) { m["iat"] = sec(24 * time.Hour); m["exp"] = sec(25 * time.Hour) }, "issued in the future"},
		{"iat within skew", func(m map[string]any) { m["iat"] = sec(29 * time.Second) }, ""},
		{"missing sub", func(m map[string]any) { delete(m, "sub") }, "lacks required claims"},
		{"empty sub", func(m map[string]any) { m["sub"] = "" }, "lacks required claims"},
		{"missing client_id", func(m map[string]any) { delete(m, "client_id") }, "lacks required claims"},
		{"missing jti", func(m map[string]any) { delete(m, "jti") }, "lacks required claims"},
		{"missing exp", func(m map[string]any) { delete(m, "exp") }, "lacks required claims"},
		{"missing iat", func(m map[string]any) { delete(m, "iat") }, "lacks required claims"},
		{"missing aud", func(m map[string]any) { delete(m, "aud") }, "lacks required claims"},
		{"exp as string", func(m map[string]any) { m["exp"] = "tomorrow" }, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := claimsMap(now)
			tc.change(m)
			tok := e.sign(t, AccessTokenType, m)
			c, err := e.verify(tok)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.Subject != m["sub"] {
					t.Errorf("sub = %q", c.Subject)
				}
				return
			}
			wantInvalid(t, err, tok, tc.reason)
		})
	}

	t.Run("payload not an object", func(t *testing.T) {
		for _, payload := range []any{"just a string", []int{1, 2}, nil, 12} {
			tok := e.sign(t, AccessTokenType, payload)
			_, err := e.verify(tok)
			wantInvalid(t, err, tok, "malformed", "lacks required claims", "issuer")
		}
	})
}

func TestVerifyGarbage(t *testing.T) {
	e := newVerifyEnv(t)
	random := make([]byte, 200)
	_, _ = rand.Read(random)
	valid := mint(t, e.kr, time.Hour)
	tests := map[string]string{
		"empty":              "",
		"one dot":            "a.b",
		"three parts":        "a.b.c",
		"two dots":           "..",
		"three dots":         "...",
		"four parts":         "a.b.c.d",
		"valid plus a part":  valid + ".AAAA",
		"random bytes":       string(random),
		"random with dots":   b64(random[:50]) + "." + b64(random[50:120]) + "." + b64(random[120:]),
		"not base64":         "!!!.@@@.###",
		"header not JSON":    b64([]byte("hello")) + "." + b64([]byte("{}")) + "." + b64([]byte("sig")),
		"header JSON array":  b64([]byte(`["alg"]`)) + "." + b64([]byte("{}")) + "." + b64([]byte("sig")),
		"JSON object":        `{"a":"b"}`,
		"too long":           strings.Repeat("A", MaxTokenLength) + ".B.C",
		"valid but too long": valid[:strings.IndexByte(valid, '.')] + strings.Repeat("A", MaxTokenLength) + valid[strings.IndexByte(valid, '.'):],
		"NUL bytes":          "\x00.\x00.\x00",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.verify(tok)
			wantInvalid(t, err, tok, "not a JWT", "signature is invalid", "too large", "token type", "unknown key", "algorithm does not match")
		})
	}
	_, err := e.verify(strings.Repeat("A", MaxTokenLength+1))
	wantInvalid(t, err, "", "too large")
}

func TestVerifyCachedToken(t *testing.T) {
	e := newVerifyEnv(t)
	tok := mint(t, e.kr, time.Minute)
	if _, err := e.verify(tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.v.cache.get(tok, e.kr.removals.Load()); !ok {
		t.Fatal("a verified token is not cached")
	}

	// The cache does not widen the audience.
	_, err := e.v.Verify(context.Background(), tok, "https://other.example.com/mcp")
	wantInvalid(t, err, tok, "not meant for this resource")

	// Nor does it outlive the token: accepted within the skew, then not.
	e.clk.Advance(time.Minute + 30*time.Second)
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("cached token rejected within the skew: %v", err)
	}
	e.clk.Advance(time.Second)
	_, err = e.verify(tok)
	wantInvalid(t, err, tok, "expired")

	// Another verifier (another issuer) has its own cache and checks.
	other := NewVerifier(e.kr, "https://other-issuer.example.com")
	_, err = other.Verify(context.Background(), mint(t, e.kr, time.Hour), testAudience)
	wantInvalid(t, err, "", "issuer")
}

func TestVerifiedCacheEviction(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newVerifiedCache(4)
	c.put("expired-1", &AccessClaims{Expiry: now.Unix() - 10}, 0, now)
	c.put("expired-2", &AccessClaims{Expiry: now.Unix() - 1}, 0, now)
	c.put("live-1", &AccessClaims{Expiry: now.Unix() + 100}, 0, now)
	c.put("live-2", &AccessClaims{Expiry: now.Unix() + 100}, 0, now)
	// Full: the expired entries make room, the live ones stay.
	c.put("live-3", &AccessClaims{Expiry: now.Unix() + 100}, 0, now)
	for key, want := range map[string]bool{"expired-1": false, "expired-2": false, "live-1": true, "live-2": true, "live-3": true} {
		if _, ok := c.get(key, 0); ok != want {
			t.Errorf("after sweep, cached(%s) = %v, want %v", key, ok, want)
		}
	}
	// Full of live entries: the cache starts over rather than growing.
	c.put("live-4", &AccessClaims{Expiry: now.Unix() + 100}, 0, now)
	c.put("live-5", &AccessClaims{Expiry: now.Unix() + 100}, 0, now)
	if n := len(c.entries); n > 4 {
		t.Errorf("cache grew to %d entries, max 4", n)
	}
	if _, ok := c.get("live-5", 0); !ok {
		t.Errorf("the newest entry is not cached")
	}
}

func TestVerifyConcurrent(t *testing.T) {
	e := newVerifyEnv(t)
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = mint(t, e.kr, time.Hour)
	}
	bad := flip(toks[0], len(toks[0])-10)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				tok := toks[(g+i)%len(toks)]
				if _, err := e.verify(tok); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if _, err := e.verify(bad); err == nil {
					t.Errorf("tampered token accepted")
					return
				}
			}
		}()
	}
	// Rotation while verifying.
	if err := e.kr.Rotate(context.Background()); err != nil {
		t.Error(err)
	}
	wg.Wait()
}
