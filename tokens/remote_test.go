package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

func TestRemoteVerifierSlowDiscoveryFailsFast(t *testing.T) {
	var requests atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	defer close(release)
	v := NewRemoteVerifier(RemoteConfig{Issuer: srv.URL, HTTPClient: srv.Client()})

	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inv *InvalidTokenError
			if _, err := v.Verify(context.Background(), "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", testAudience); err == nil || errors.As(err, &inv) {
				t.Errorf("while the server hangs: %v, want an error that is not the token's fault", err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > remoteFetchWait+2*time.Second {
		t.Errorf("verifications took %v while discovery hung, want about %v", d, remoteFetchWait)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d discovery requests for 20 verifications, want 1 at a time", n)
	}
}

// A server whose issuer is https must name https endpoints in its
// metadata (OpenID Connect Discovery 1.0 section 3: jwks_uri MUST use
// https; RFC 8414 section 2): keys fetched over plain http could be
// swapped on the way, and tokens sent to introspection read. Such metadata
// is refused as the server's fault, and nothing is sent to the http
// endpoint.
func TestRemoteVerifierRefusesPlainEndpointsOfHTTPSIssuer(t *testing.T) {
	keys, err := json.Marshal(testKeySet(t, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	var plainRequests atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainRequests.Add(1)
		_, _ = w.Write(keys)
	}))
	defer plain.Close()
	var meta map[string]string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			_, _ = w.Write(keys)
			return
		}
		_ = json.NewEncoder(w).Encode(meta)
	}))
	defer srv.Close()
	verifier := func(endpoints map[string]string) *RemoteVerifier {
		meta = map[string]string{"issuer": srv.URL}
		maps.Copy(meta, endpoints)
		return NewRemoteVerifier(RemoteConfig{Issuer: srv.URL, IntrospectionClientID: "rs", IntrospectionSecret: "rs-secret", HTTPClient: srv.Client()})
	}

	if _, err := verifier(map[string]string{"jwks_uri": srv.URL + "/jwks"}).SigningKeys(context.Background(), "k1", jwa.ES256()); err != nil {
		t.Fatalf("https jwks_uri: %v", err)
	}
	for name, endpoints := range map[string]map[string]string{
		"http jwks_uri":               {"jwks_uri": plain.URL + "/jwks"},
		"HTTP jwks_uri in capitals":   {"jwks_uri": strings.Replace(plain.URL, "http", "HTTP", 1) + "/jwks"},
		"http introspection_endpoint": {"jwks_uri": srv.URL + "/jwks", "introspection_endpoint": plain.URL + "/introspect"},
	} {
		t.Run(name, func(t *testing.T) {
			plainRequests.Store(0)
			v := verifier(endpoints)
			var inv *InvalidTokenError
			if _, err := v.SigningKeys(context.Background(), "k1", jwa.ES256()); err == nil || errors.As(err, &inv) {
				t.Errorf("keys: %v, want the metadata refused", err)
			}
			if _, err := v.Verify(context.Background(), "an-opaque-token", testAudience); err == nil || errors.As(err, &inv) {
				t.Errorf("introspection: %v, want the metadata refused", err)
			}
			if n := plainRequests.Load(); n != 0 {
				t.Errorf("%d requests over plain http", n)
			}
		})
	}
}
