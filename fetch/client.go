package fetch

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"
)

// Options configures a client made by NewClient.
type Options struct {
	// AllowLoopback lets the client connect to loopback addresses, for
	// tests against a local server; private, link-local and other
	// internal addresses stay refused.
	AllowLoopback bool
	// RootCAs verifies server certificates; nil means the system pool.
	RootCAs *x509.CertPool
	// Timeout bounds dialing, the TLS handshake and the wait for response
	// headers. Bound the whole fetch with the request's context.
	Timeout time.Duration
}

// NewClient returns an HTTP client for URLs that others choose (client
// metadata documents, client key sets): it connects only to public unicast
// addresses (see CheckAddr), checked on the address actually dialed, uses
// no proxy and follows no redirect.
func NewClient(opts Options) *http.Client {
	dialer := &net.Dialer{
		Timeout:   opts.Timeout,
		KeepAlive: 30 * time.Second,
		Control:   dialControl(opts.AllowLoopback),
	}
	transport := &http.Transport{
		// Never a proxy, even one from the environment: the address check
		// must see the real target, not the proxy.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    opts.Timeout,
		ResponseHeaderTimeout:  opts.Timeout,
		MaxResponseHeaderBytes: 32 << 10,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: transport,
		// The overall deadline is set per request, on the context, so
		// that a body cut short by it is recognised as a timeout.
		// Redirects are not followed: each hop would need the same checks,
		// and a document must be served at its own URL anyway.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
