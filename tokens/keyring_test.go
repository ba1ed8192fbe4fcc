package tokens

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

func TestKeyRingPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)

	if _, err := store.Get(ctx, ringKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("fresh store already holds a ring (err %v)", err)
	}
	first := newRing(t, store, KeyRingConfig{RotationPeriod: 24 * time.Hour, RetainPeriod: time.Hour})
	if got := first.Algorithm(); got != "ES256" {
		t.Errorf("default Algorithm() = %q, want ES256", got)
	}
	stored, err := store.Get(ctx, ringKey)
	if err != nil {
		t.Fatalf("the first NewKeyRing persisted nothing: %v", err)
	}
	var keys []storedKey
	if err := json.Unmarshal(stored, &keys); err != nil {
		t.Fatalf("stored ring is not a key list: %v", err)
	}
	if len(keys) != 2 {
		t.Fatalf("stored %d keys, want 2 (the signing key and its published successor)", len(keys))
	}
	if n := len(jwksKeys(t, first.JWKS())); n != 2 {
		t.Fatalf("JWKS has %d keys, want 2", n)
	}
	tok := mint(t, first, time.Hour)

	// A restart: a new ring on the same store.
	second := newRing(t, store, KeyRingConfig{RotationPeriod: 24 * time.Hour, RetainPeriod: time.Hour})
	if !reflect.DeepEqual(jwksKeys(t, first.JWKS()), jwksKeys(t, second.JWKS())) {
		t.Fatalf("JWKS changed across restart:\nbefore %s\nafter  %s", first.JWKS(), second.JWKS())
	}
	after, err := store.Get(ctx, ringKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, after) {
		t.Errorf("restart rewrote the stored ring although no rotation was due")
	}
	claims, err := NewVerifier(second, testIssuer).Verify(ctx, tok, testAudience)
	if err != nil {
		t.Fatalf("restarted ring rejects a token of the previous instance: %v", err)
	}
	if claims.Subject != "user-123" {
		t.Errorf("sub = %q", claims.Subject)
	}
	if got, want := tokenKid(t, mint(t, second, time.Hour)), tokenKid(t, tok); got != want {
		t.Errorf("restarted ring signs with kid %s, want the same key %s", got, want)
	}
}

// rfc7638 computes a JWK thumbprint by hand from the required members of
// the key's type, in lexicographic order, independently of the jwx library.
func rfc7638(t *testing.T, k map[string]any) string {
	t.Helper()
	var members []string
	switch k["kty"] {
	case "EC":
		members = []string{"crv", "kty", "x", "y"}
	case "RSA":
		members = []string{"e", "kty", "n"}
	case "OKP":
		members = []string{"crv", "kty", "x"}
	default:
		t.Fatalf("unexpected kty %v", k["kty"])
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range members {
		v, ok := k[m].(string)
		if !ok {
			t.Fatalf("key lacks required member %q: %v", m, k)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", m, v)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return b64(sum[:])
}

func TestKeyRingAlgorithms(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		alg, kty, crv string
	}{
		{"ES256", "EC", "P-256"},
		{"RS256", "RSA", ""},
		{"EdDSA", "OKP", "Ed25519"},
	}
	private := []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			kr := newRing(t, openStore(t), testConfig(tc.alg))
			if got := kr.Algorithm(); got != tc.alg {
				t.Errorf("Algorithm() = %q, want %q", got, tc.alg)
			}

			claims := validClaims()
			claims.Email = "user@example.com"
			tok, err := kr.MintAccessToken(claims, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			h := tokenHeader(t, tok)
			if h["alg"] != tc.alg {
				t.Errorf("header alg = %v, want %s", h["alg"], tc.alg)
			}
			if h["typ"] != AccessTokenType {
				t.Errorf("header typ = %v, want %s", h["typ"], AccessTokenType)
			}
			sk, err := kr.signingKey()
			if err != nil {
				t.Fatal(err)
			}
			if h["kid"] != sk.kid {
				t.Errorf("header kid = %v, want the signing key's %s", h["kid"], sk.kid)
			}

			got, err := NewVerifier(kr, testIssuer).Verify(ctx, tok, testAudience)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != claims.Subject || got.ClientID != claims.ClientID || got.Email != claims.Email ||
				got.Issuer != testIssuer || !reflect.DeepEqual(got.Audience, claims.Audience) {
				t.Errorf("claims did not round-trip: got %+v, minted %+v", got, claims)
			}
			if got.Expiry-got.IssuedAt != 600 {
				t.Errorf("exp-iat = %d, want 600", got.Expiry-got.IssuedAt)
			}
			if len(got.JWTID) < 16 {
				t.Errorf("jti %q is too short", got.JWTID)
			}
			if !reflect.DeepEqual(got.Scopes(), []string{"mcp:tools", "mcp:resources"}) {
				t.Errorf("Scopes() = %q", got.Scopes())
			}

			keys := jwksKeys(t, kr.JWKS())
			if len(keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2", len(keys))
			}
			for _, k := range keys {
				for _, m := range private {
					if _, ok := k[m]; ok {
						t.Errorf("JWKS key %v publishes private member %q", k["kid"], m)
					}
				}
				for _, m := range []string{"kid", "kty", "alg", "use"} {
					if s, _ := k[m].(string); s == "" {
						t.Errorf("JWKS key lacks %q: %v", m, k)
					}
				}
				if k["use"] != "sig" || k["alg"] != tc.alg || k["kty"] != tc.kty {
					t.Errorf("JWKS key use/alg/kty = %v/%v/%v, want sig/%s/%s", k["use"], k["alg"], k["kty"], tc.alg, tc.kty)
				}
				if tc.crv != "" && k["crv"] != tc.crv {
					t.Errorf("crv = %v, want %s", k["crv"], tc.crv)
				}

				kid := k["kid"].(string)
				if want := rfc7638(t, k); kid != want {
					t.Errorf("kid %s is not the RFC 7638 thumbprint %s", kid, want)
				}
				parsed, err := jwk.ParseKey(mustJSON(t, k))
				if err != nil {
					t.Fatalf("JWKS key does not parse: %v", err)
				}
				if _, isPrivate := parsed.(interface{ D() ([]byte, bool) }); isPrivate {
					t.Errorf("JWKS key %s parses as a private key", kid)
				}
				tp, err := parsed.Thumbprint(crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if b64(tp) != kid {
					t.Errorf("kid %s != jwk thumbprint %s", kid, b64(tp))
				}
			}
		})
	}
}

func TestNewKeyRingRejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	tests := []struct {
		name string
		cfg  KeyRingConfig
		want []string // fragments the error must contain
	}{
		{"HS256", KeyRingConfig{Algorithm: "HS256", RotationPeriod: time.Hour, RetainPeriod: time.Hour}, []string{"unsupported", "HS256"}},
		{"none", KeyRingConfig{Algorithm: "none", RotationPeriod: time.Hour, RetainPeriod: time.Hour}, []string{"unsupported", "none"}},
		{"ES384", KeyRingConfig{Algorithm: "ES384", RotationPeriod: time.Hour, RetainPeriod: time.Hour}, []string{"unsupported", "ES384"}},
		{"lowercase", KeyRingConfig{Algorithm: "es256", RotationPeriod: time.Hour, RetainPeriod: time.Hour}, []string{"unsupported", "es256"}},
		{"zero rotation", KeyRingConfig{RotationPeriod: 0, RetainPeriod: time.Hour}, []string{"rotation period"}},
		{"negative retain", KeyRingConfig{RotationPeriod: time.Hour, RetainPeriod: -time.Second}, []string{"retain period"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := NewKeyRing(ctx, store, tc.cfg)
			if err == nil {
				t.Fatalf("NewKeyRing(%+v) succeeded, want an error", tc.cfg)
			}
			if kr != nil {
				t.Errorf("NewKeyRing returned a ring along with error %v", err)
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not mention %q", err, f)
				}
			}
		})
	}
	if _, err := store.Get(ctx, ringKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a rejected configuration persisted keys (err %v)", err)
	}
}

func TestScheduledRotationPublishesSuccessorFirst(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	cfg := testConfig("ES256")
	kr := newClockRing(t, openStore(t), cfg, clk)
	v := NewVerifier(kr, testIssuer)

	published := jwksKids(t, kr.JWKS())
	tok0 := mint(t, kr, 48*time.Hour)
	kid0 := tokenKid(t, tok0)
	var successor string
	for kid := range published {
		if kid != kid0 {
			successor = kid
		}
	}
	if len(published) != 2 || successor == "" {
		t.Fatalf("JWKS kids %v, want the signing key and a successor", published)
	}

	clk.Advance(cfg.RotationPeriod - time.Second)
	if kid := tokenKid(t, mint(t, kr, time.Hour)); kid != kid0 {
		t.Fatalf("successor %s signs before its time", kid)
	}

	// Past the rotation period the successor signs, without Rotate or Maintain.
	clk.Advance(2 * time.Second)
	tok1 := mint(t, kr, time.Hour)
	if kid := tokenKid(t, tok1); kid != successor {
		t.Fatalf("after the rotation period the token is signed by %s, want the published successor %s", kid, successor)
	}
	for _, tok := range []string{tok0, tok1} {
		if _, err := v.Verify(ctx, tok, testAudience); err != nil {
			t.Errorf("Verify(kid %s): %v", tokenKid(t, tok), err)
		}
	}

	// Maintain publishes the next successor and keeps the retired key.
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	now := jwksKids(t, kr.JWKS())
	if len(now) != 3 || !now[kid0] || !now[successor] {
		t.Fatalf("after Maintain JWKS kids = %v, want %s (retired), %s (signing) and a new successor", now, kid0, successor)
	}
	if kid := tokenKid(t, mint(t, kr, time.Hour)); kid != successor {
		t.Errorf("Maintain changed the signing key to %s", kid)
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	cfg := KeyRingConfig{Algorithm: "ES256", RotationPeriod: 24 * time.Hour, RetainPeriod: 2 * time.Hour}
	store := openStore(t)
	kr := newClockRing(t, store, cfg, clk)

	tok0 := mint(t, kr, time.Hour)
	kid0 := tokenKid(t, tok0)

	var tok1 string
	seen := map[string]bool{kid0: true}
	for i := 0; i < 3; i++ {
		before := jwksKids(t, kr.JWKS())
		if err := kr.Rotate(ctx); err != nil {
			t.Fatalf("Rotate #%d: %v", i+1, err)
		}
		tok := mint(t, kr, time.Hour)
		kid := tokenKid(t, tok)
		if seen[kid] {
			t.Fatalf("Rotate #%d: new tokens still use an earlier key %s", i+1, kid)
		}
		seen[kid] = true
		if !before[kid] {
			t.Fatalf("Rotate #%d: new signing key %s was not published before it signed (JWKS before: %v)", i+1, kid, before)
		}
		if !jwksKids(t, kr.JWKS())[kid] {
			t.Fatalf("Rotate #%d: signing key %s is not in the JWKS", i+1, kid)
		}
		if tok1 == "" {
			tok1 = tok
		}
	}

	v := NewVerifier(kr, testIssuer)
	for _, tok := range []string{tok0, tok1} {
		if _, err := v.Verify(ctx, tok, testAudience); err != nil {
			t.Fatalf("token of kid %s no longer verifies after rotation: %v", tokenKid(t, tok), err)
		}
	}

	// Still inside the retain period: the retired key stays published.
	clk.Advance(cfg.RetainPeriod - time.Second)
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if !jwksKids(t, kr.JWKS())[kid0] {
		t.Fatalf("key %s dropped before its retain period ended", kid0)
	}

	// Past it, the key is gone and its tokens fail for an unknown key (a
	// fresh verifier, so that no cached verification hides the lookup).
	clk.Advance(2 * time.Second)
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if jwksKids(t, kr.JWKS())[kid0] {
		t.Fatalf("key %s still published after its retain period", kid0)
	}
	_, err := NewVerifier(kr, testIssuer).Verify(ctx, tok0, testAudience)
	wantInvalid(t, err, tok0, "unknown key")

	// The removal is persisted: a restarted ring does not bring it back.
	restarted := newClockRing(t, store, cfg, clk)
	if jwksKids(t, restarted.JWKS())[kid0] {
		t.Errorf("restarted ring publishes removed key %s", kid0)
	}
	if _, err := NewVerifier(restarted, testIssuer).Verify(ctx, mint(t, kr, time.Hour), testAudience); err != nil {
		t.Errorf("current key does not verify after cleanup: %v", err)
	}
}

func TestIdleRingCatchesUp(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	cfg := KeyRingConfig{Algorithm: "EdDSA", RotationPeriod: time.Hour, RetainPeriod: time.Hour}
	kr := newClockRing(t, openStore(t), cfg, clk)

	// Nobody maintained the ring for many periods.
	clk.Advance(10 * cfg.RotationPeriod)
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	if len(kr.keys) != 2 {
		t.Fatalf("ring has %d keys after catching up, want 2 (signing + successor)", len(kr.keys))
	}
	if kr.keys[0].activeFrom.After(now) {
		t.Errorf("no key signs now")
	}
	if !kr.keys[1].activeFrom.After(now) {
		t.Errorf("successor is active from %v, want after now (%v)", kr.keys[1].activeFrom, now)
	}
}

func TestAlgorithmChange(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	esRing := newRing(t, store, testConfig("ES256"))
	esTok := mint(t, esRing, time.Hour)
	esKid := tokenKid(t, esTok)
	var esSuccessor string
	for kid := range jwksKids(t, esRing.JWKS()) {
		if kid != esKid {
			esSuccessor = kid
		}
	}

	rsRing := newRing(t, store, testConfig("RS256"))
	if got := rsRing.Algorithm(); got != "RS256" {
		t.Fatalf("Algorithm() = %q", got)
	}
	rsTok := mint(t, rsRing, time.Hour)
	if h := tokenHeader(t, rsTok); h["alg"] != "RS256" || h["kid"] == esKid {
		t.Fatalf("after switching to RS256 the token header is %v", h)
	}

	v := NewVerifier(rsRing, testIssuer)
	for _, tok := range []string{esTok, rsTok} {
		if _, err := v.Verify(ctx, tok, testAudience); err != nil {
			t.Errorf("Verify(%v): %v", tokenHeader(t, tok)["alg"], err)
		}
	}
	var rsaKeys int
	for _, k := range jwksKeys(t, rsRing.JWKS()) {
		switch {
		case k["kid"] == esKid:
			if k["alg"] != "ES256" {
				t.Errorf("old key has alg %v", k["alg"])
			}
		case k["kid"] == esSuccessor:
			t.Errorf("the ES256 successor that never signed is still published")
		case k["alg"] == "RS256" && k["kty"] == "RSA":
			rsaKeys++
		default:
			t.Errorf("unexpected key in JWKS: %v", k)
		}
	}
	if rsaKeys != 2 {
		t.Errorf("JWKS has %d RS256 keys, want 2 (signing + successor)", rsaKeys)
	}

	// The old instance, still configured for ES256, finds the new RSA key.
	if _, err := NewVerifier(esRing, testIssuer).Verify(ctx, rsTok, testAudience); err != nil {
		t.Errorf("ES256 instance cannot verify a token of the RS256 instance: %v", err)
	}

	// A restart with the new configuration changes nothing.
	stored, _ := store.Get(ctx, ringKey)
	newRing(t, store, testConfig("RS256"))
	if after, _ := store.Get(ctx, ringKey); !bytes.Equal(stored, after) {
		t.Errorf("restart with an unchanged algorithm rewrote the ring")
	}
}

// TestStaleSuccessorOfOtherAlgorithmDropped covers a ring whose current key
// already has the configured algorithm but whose published successor, which
// never signed, has another one (an instance with the old configuration
// planned it): the successor is replaced before it can sign.
func TestStaleSuccessorOfOtherAlgorithmDropped(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	cfg := testConfig("EdDSA")

	edStore := openStore(t)
	newClockRing(t, edStore, cfg, clk)
	esStore := openStore(t)
	newClockRing(t, esStore, testConfig("ES256"), clk)
	var ed, es []storedKey
	for store, keys := range map[storage.Store]*[]storedKey{edStore: &ed, esStore: &es} {
		raw, err := store.Get(ctx, ringKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, keys); err != nil {
			t.Fatal(err)
		}
	}
	// The EdDSA signing key followed by the ES256 successor.
	mixed := []storedKey{ed[0], es[1]}
	staleKid := func() string {
		k, err := parseStoredKey(es[1])
		if err != nil {
			t.Fatal(err)
		}
		return k.kid
	}()
	store := openStore(t)
	if err := store.Put(ctx, ringKey, mustJSON(t, mixed), 0); err != nil {
		t.Fatal(err)
	}

	kr := newClockRing(t, store, cfg, clk)
	if jwksKids(t, kr.JWKS())[staleKid] {
		t.Fatalf("the ES256 successor is still published by an EdDSA ring")
	}
	if n := len(jwksKeys(t, kr.JWKS())); n != 2 {
		t.Fatalf("JWKS has %d keys, want the EdDSA key and a new EdDSA successor", n)
	}
	clk.Advance(cfg.RotationPeriod + time.Second)
	if h := tokenHeader(t, mint(t, kr, time.Hour)); h["alg"] != "EdDSA" || h["kid"] == staleKid {
		t.Fatalf("after the rotation period the token header is %v, want an EdDSA key", h)
	}
}

func TestConcurrentRingsConverge(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	rings := []*KeyRing{newRing(t, store, testConfig("ES256")), newRing(t, store, testConfig("ES256"))}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, kr := range rings {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					var err error
					if (i+g)%2 == 0 {
						err = kr.Rotate(ctx)
					} else {
						err = kr.Maintain(ctx)
					}
					if err != nil {
						errs <- err
						return
					}
					if _, err := kr.MintAccessToken(validClaims(), time.Minute); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent rotation: %v", err)
	}

	for _, kr := range rings {
		if err := kr.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, err := rings[0].signingKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := rings[1].signingKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.kid != b.kid {
		t.Fatalf("rings sharing a store sign with different keys: %s and %s", a.kid, b.kid)
	}
	ka, kb := sortedKids(t, rings[0].JWKS()), sortedKids(t, rings[1].JWKS())
	if !reflect.DeepEqual(ka, kb) {
		t.Fatalf("rings publish different keys:\n%v\n%v", ka, kb)
	}
	// 10 rotations, each leaving one more key (none is past retention).
	if len(ka) != 12 {
		t.Errorf("JWKS has %d keys after 10 rotations, want 12", len(ka))
	}
	tok := mint(t, rings[0], time.Hour)
	if _, err := NewVerifier(rings[1], testIssuer).Verify(ctx, tok, testAudience); err != nil {
		t.Errorf("ring B rejects ring A's token: %v", err)
	}
}

func sortedKids(t *testing.T, doc []byte) []string {
	var kids []string
	for kid := range jwksKids(t, doc) {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	return kids
}

func TestVerifierReloadsForUnknownKid(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	store := openStore(t)
	a := newClockRing(t, store, testConfig("ES256"), clk)
	b := newClockRing(t, store, testConfig("ES256"), clk)
	vb := NewVerifier(b, testIssuer)

	// Two rotations on A: the second signing key is one B never saw.
	for i := 0; i < 2; i++ {
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tok := mint(t, a, time.Hour)
	kid := tokenKid(t, tok)
	if jwksKids(t, b.JWKS())[kid] {
		t.Fatalf("test setup: B already knows %s", kid)
	}
	if _, err := vb.Verify(ctx, tok, testAudience); err != nil {
		t.Fatalf("B does not find the key A created: %v", err)
	}
	if !jwksKids(t, b.JWKS())[kid] {
		t.Errorf("B's JWKS lacks %s after reloading", kid)
	}

	// Reloads are throttled to one a second.
	for i := 0; i < 2; i++ {
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tok2 := mint(t, a, time.Hour)
	_, err := vb.Verify(ctx, tok2, testAudience)
	wantInvalid(t, err, tok2, "unknown key")
	clk.Advance(time.Second)
	if _, err := vb.Verify(ctx, tok2, testAudience); err != nil {
		t.Fatalf("B does not reload a second later: %v", err)
	}
}

func TestCorruptRingData(t *testing.T) {
	ctx := context.Background()

	ecKey := func(mutate func(jwk.Key)) json.RawMessage {
		raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		_ = k.Set(jwk.AlgorithmKey, jwa.ES256())
		_ = k.Set(jwk.KeyUsageKey, jwk.ForSignature)
		_ = jwk.AssignKeyID(k)
		if mutate != nil {
			mutate(k)
		}
		return mustJSON(t, k)
	}
	ring := func(jwks ...json.RawMessage) []byte {
		var keys []storedKey
		for _, k := range jwks {
			keys = append(keys, storedKey{JWK: k, ActiveFrom: time.Now().Add(-time.Minute)})
		}
		return mustJSON(t, keys)
	}
	publicOnly := func() json.RawMessage {
		var k map[string]any
		_ = json.Unmarshal(ecKey(nil), &k)
		delete(k, "d")
		return mustJSON(t, k)
	}

	valid := ring(ecKey(nil))
	tests := []struct {
		name string
		data []byte
	}{
		{"not JSON", []byte("\x00\xffgarbage{")},
		{"truncated", valid[:len(valid)/2]},
		{"object instead of list", []byte(`{"keys":[]}`)},
		{"jwk is a string", []byte(`[{"jwk":"hello","active_from":"2024-01-01T00:00:00Z"}]`)},
		{"jwk is null", []byte(`[{"jwk":null,"active_from":"2024-01-01T00:00:00Z"}]`)},
		{"jwk lacks members", []byte(`[{"jwk":{"kty":"EC"},"active_from":"2024-01-01T00:00:00Z"}]`)},
		{"bad active_from", []byte(`[{"jwk":{},"active_from":"yesterday"}]`)},
		{"no kid", ring(ecKey(func(k jwk.Key) { _ = k.Remove(jwk.KeyIDKey) }))},
		{"no alg", ring(ecKey(func(k jwk.Key) { _ = k.Remove(jwk.AlgorithmKey) }))},
		{"unsupported alg", ring(ecKey(func(k jwk.Key) { _ = k.Set(jwk.AlgorithmKey, jwa.ES384()) }))},
		{"alg does not fit the key", ring(ecKey(func(k jwk.Key) { _ = k.Set(jwk.AlgorithmKey, jwa.EdDSA()) }))},
		{"symmetric key", ring(json.RawMessage(`{"kty":"oct","k":"c2VjcmV0","kid":"x","alg":"HS256"}`))},
		{"public key only", ring(publicOnly())},
		{"second key corrupt", ring(ecKey(nil), json.RawMessage(`{"kty":"EC","kid":"y","alg":"ES256"}`))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t)
			if err := store.Put(ctx, ringKey, tc.data, 0); err != nil {
				t.Fatal(err)
			}
			kr, err := NewKeyRing(ctx, store, testConfig("ES256"))
			if err == nil {
				t.Fatalf("NewKeyRing accepted corrupt ring data %q (JWKS %s)", tc.data, kr.JWKS())
			}
			if after, _ := store.Get(ctx, ringKey); !bytes.Equal(after, tc.data) {
				t.Errorf("NewKeyRing overwrote the corrupt data it could not read")
			}
		})
	}

	// A running ring whose stored data becomes corrupt keeps its keys.
	t.Run("while running", func(t *testing.T) {
		store := openStore(t)
		kr := newRing(t, store, testConfig("ES256"))
		tok := mint(t, kr, time.Hour)
		if err := store.Put(ctx, ringKey, []byte("not json"), 0); err != nil {
			t.Fatal(err)
		}
		if err := kr.Maintain(ctx); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("Maintain on corrupt data: err = %v, want a 'corrupt' error", err)
		}
		if err := kr.Rotate(ctx); err == nil {
			t.Errorf("Rotate on corrupt data succeeded")
		}
		v := NewVerifier(kr, testIssuer)
		if _, err := v.Verify(ctx, tok, testAudience); err != nil {
			t.Errorf("existing key stopped verifying: %v", err)
		}
		if _, err := kr.MintAccessToken(validClaims(), time.Minute); err != nil {
			t.Errorf("existing key stopped signing: %v", err)
		}
		// An unknown kid makes the ring re-read the corrupt store.
		other := mint(t, newRing(t, openStore(t), testConfig("ES256")), time.Hour)
		_, err := v.Verify(ctx, other, testAudience)
		wantInvalid(t, err, other, "unknown key")
	})
}

func TestRevokeDropsEveryStoredKey(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	a, b := newRing(t, store, testConfig("ES256")), newRing(t, store, testConfig("ES256"))
	// A retired key, the signing key and its published successor.
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	stored := jwksKids(t, a.JWKS())
	if len(stored) != 3 {
		t.Fatalf("test setup: %d keys, want 3", len(stored))
	}
	before := mint(t, b, time.Hour)
	va, vb := NewVerifier(a, testIssuer), NewVerifier(b, testIssuer)
	for _, v := range []*Verifier{va, vb} { // cached as verified
		if _, err := v.Verify(ctx, before, testAudience); err != nil {
			t.Fatal(err)
		}
	}

	revoked, err := a.Revoke(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(revoked) != len(stored) {
		t.Errorf("Revoke reports %v, the ring had %v", revoked, stored)
	}
	for kid := range jwksKids(t, a.JWKS()) {
		if stored[kid] {
			t.Errorf("key %s is still published after Revoke", kid)
		}
	}
	if n := len(jwksKids(t, a.JWKS())); n != 2 {
		t.Errorf("after Revoke, %d keys are published, want a signing key and its successor", n)
	}
	_, err = va.Verify(ctx, before, testAudience)
	wantInvalid(t, err, before, "unknown key")
	after := mint(t, a, time.Hour)
	if stored[tokenKid(t, after)] {
		t.Errorf("the ring still signs with a revoked key")
	}

	// Another instance drops the keys when it refreshes, cached
	// verifications included, and signs with the new key.
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = vb.Verify(ctx, before, testAudience)
	wantInvalid(t, err, before, "unknown key")
	if kid := tokenKid(t, mint(t, b, time.Hour)); kid != tokenKid(t, after) {
		t.Errorf("the other instance signs with %s, not the new key %s", kid, tokenKid(t, after))
	}
	if _, err := vb.Verify(ctx, after, testAudience); err != nil {
		t.Errorf("the other instance refuses a token of the new key: %v", err)
	}
	// Maintenance keeps the new ring: nothing planned brings a revoked key back.
	if err := b.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	for kid := range jwksKids(t, b.JWKS()) {
		if stored[kid] {
			t.Errorf("maintenance brought back revoked key %s", kid)
		}
	}
}
