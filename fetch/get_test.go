package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDoCapsTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: only the read can tell
		}
		_, _ = w.Write([]byte(strings.Repeat("x", 11)))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path  string
		limit int64
		ok    bool
	}{
		{"/", 11, true},
		{"/", 10, false},
		{"/chunked", 11, true},
		{"/chunked", 10, false},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		resp, err := Do(srv.Client(), req, tc.limit, nil)
		var tooLarge *TooLargeError
		switch {
		case tc.ok && (err != nil || len(resp.Body) != 11):
			t.Errorf("%s with limit %d: %v", tc.path, tc.limit, err)
		case !tc.ok && !errors.As(err, &tooLarge):
			t.Errorf("%s with limit %d: err = %v, want TooLargeError", tc.path, tc.limit, err)
		}
	}
}

func TestDoCheckRunsBeforeTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(strings.Repeat("x", 100)))
	}))
	defer srv.Close()
	refused := errors.New("refused")
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	_, err := Do(srv.Client(), req, 10, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return refused
		}
		return nil
	})
	if !errors.Is(err, refused) {
		t.Errorf("err = %v, want the check's error, not the size cap's", err)
	}
}

func TestDoTruncatedByDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := Do(srv.Client(), req, 1<<10, nil); err == nil {
		t.Error("a body cut short by the deadline passed for a whole one")
	}
}

func TestDoNamesItself(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("User-Agent"))
	}))
	defer srv.Close()
	for _, ua := range []string{"", "custom/1"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if ua != "" {
			req.Header.Set("User-Agent", ua)
		}
		if _, err := Do(srv.Client(), req, 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != UserAgent || got[1] != "custom/1" {
		t.Errorf("User-Agent sent: %q, want %q then the caller's own", got, UserAgent)
	}
	for v, want := range map[string]string{
		"v1.4.0":    "caddy-mcp-auth/v1.4.0 (+https://github.com/caddy-mcp-auth/caddy-mcp-auth)",
		"(devel)":   "caddy-mcp-auth/devel (+https://github.com/caddy-mcp-auth/caddy-mcp-auth)",
		"(unknown)": "caddy-mcp-auth/devel (+https://github.com/caddy-mcp-auth/caddy-mcp-auth)",
	} {
		if ua := userAgent(v); ua != want {
			t.Errorf("userAgent(%q) = %q, want %q", v, ua, want)
		}
	}
}
