package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
