package clients

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Keys are generated once per test binary: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ec384     *ecdsa.PrivateKey
	ed            ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// publicJWK returns the public JWK of priv with kid (if not empty) set.
func publicJWK(t testing.TB, priv any, kid string) jwk.Key {
	t.Helper()
	key, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := key.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

// jwksJSON returns the JSON of a JWK Set holding keys.
func jwksJSON(t testing.TB, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticKeys is a key source that always returns the set in raw.
func staticKeys(t testing.TB, raw []byte) func(context.Context) (jwk.Set, error) {
	t.Helper()
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return func(context.Context) (jwk.Set, error) { return set, nil }
}

// sign returns a compact JWS of claims signed with priv under alg, with kid
// in the header if not empty.
func sign(t testing.TB, priv any, alg jwa.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := hdrs.Set(jws.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// usedAssertions is UsedAssertions in memory; err, when set, is every
// call's answer.
type usedAssertions struct {
	mu   sync.Mutex
	used map[[2]string]bool
	err  error
}

func newUsedAssertions() *usedAssertions { return &usedAssertions{used: map[[2]string]bool{}} }

func (u *usedAssertions) UseAssertion(_ context.Context, clientID, jti string, _ time.Duration) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return false, u.err
	}
	key := [2]string{clientID, jti}
	fresh := !u.used[key]
	u.used[key] = true
	return fresh, nil
}

// usedBy reports whether jti was recorded as used by clientID.
func (u *usedAssertions) usedBy(clientID, jti string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used[[2]string{clientID, jti}]
}

// docServer is a TLS server on 127.0.0.1 that counts requests per path.
type docServer struct {
	*httptest.Server
	mu      sync.Mutex
	handler map[string]http.HandlerFunc
	hits    map[string]*atomic.Int32
}

func newDocServer(t testing.TB) *docServer {
	t.Helper()
	ds := &docServer{handler: map[string]http.HandlerFunc{}, hits: map[string]*atomic.Int32{}}
	ds.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds.mu.Lock()
		h, ok := ds.handler[r.URL.Path]
		n := ds.hits[r.URL.Path]
		if n == nil {
			n = new(atomic.Int32)
			ds.hits[r.URL.Path] = n
		}
		ds.mu.Unlock()
		n.Add(1)
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(ds.Close)
	return ds
}

// untilTestEnds is a handler that writes what start writes, then nothing
// more until the test ends, whatever its request's context says: on a
// loaded machine that context once ended before the client's timeout, and
// a handler returning then sent an answer the client took for the
// server's. It is released before the server's Close, which waits for it.
func untilTestEnds(t testing.TB, start func(http.ResponseWriter)) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(w http.ResponseWriter, _ *http.Request) {
		start(w)
		<-release
	}
}

// handle serves path with h.
func (ds *docServer) handle(path string, h http.HandlerFunc) string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.handler[path] = h
	return ds.URL + path
}

// serveJSON serves body at path as application/json with the given
// Cache-Control (none if empty).
func (ds *docServer) serveJSON(path string, body func(url string) []byte, cacheControl string) string {
	url := ds.URL + path
	return ds.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		_, _ = w.Write(body(url))
	})
}

func (ds *docServer) count(path string) int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if n := ds.hits[path]; n != nil {
		return int(n.Load())
	}
	return 0
}

// fetcher returns a Fetcher that trusts ds's certificate and may dial
// loopback, with opts otherwise as given.
func (ds *docServer) fetcher(opts FetcherOptions) *Fetcher {
	pool := x509.NewCertPool()
	pool.AddCert(ds.Certificate())
	opts.RootCAs = pool
	opts.AllowLoopback = true
	return NewFetcher(opts)
}

// doc returns a metadata document for url: a minimal valid one, with the
// members in extra added, or removed where the value is nil.
func doc(url string, extra map[string]any) []byte {
	m := map[string]any{
		"client_id":     url,
		"client_name":   "Test Client",
		"redirect_uris": []string{"https://client.test/cb", "http://127.0.0.1/callback"},
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}
