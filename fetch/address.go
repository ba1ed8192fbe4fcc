package clients

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userAgent identifies our outbound fetches to the hosts serving metadata
// documents and key sets.
const userAgent = "caddy-mcp-auth (OAuth client metadata fetcher)"

// errBlockedAddress is returned (wrapped) when a fetch would connect to an
// address the fetcher refuses.
var errBlockedAddress = errors.New("address not allowed")

// MetadataError says why a client metadata document, or a client's key
// set, could not be fetched or used. Error returns only Description, which
// is safe to show to the user and the client: it never contains the
// addresses a host resolved to or the body the server sent. Unwrap gives
// the underlying cause, for logs.
type MetadataError struct {
	Description string
	cause       error
	// network is true for failures to reach the host at all (refused
	// address, timeout, TLS), which are negative-cached briefly.
	network bool
}

func (e *MetadataError) Error() string { return e.Description }

// Unwrap returns the cause of the failure, which may name internal
// addresses: log it, never send it.
func (e *MetadataError) Unwrap() error { return e.cause }

func metadataErr(cause error, format string, args ...any) *MetadataError {
	return &MetadataError{Description: fmt.Sprintf(format, args...), cause: cause}
}

// blockedPrefixes are special-purpose ranges (RFC 6890 and successors) the
// fetcher never connects to, beyond what netip's predicates cover: the
// "this network", shared (CGNAT), protocol-assignment, documentation,
// benchmarking and reserved IPv4 ranges, and the IPv6 ones that are
// unroutable, embed an address we cannot check (Teredo) or translate to a
// local IPv4 network.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"), // includes 255.255.255.255
	netip.MustParsePrefix("::/96"),       // IPv4-compatible (deprecated), ::, ::1
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"),
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// checkAddr returns errBlockedAddress unless ip is a public unicast
// address. Loopback addresses pass if allowLoopback is set (tests only).
// Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are
// judged by that address, so ::ffff:10.0.0.1 is as private as 10.0.0.1.
func checkAddr(ip netip.Addr, allowLoopback bool) error {
	ip = ip.Unmap()
	if ip.Is6() {
		var v4 [4]byte
		switch {
		case nat64Prefix.Contains(ip):
			b := ip.As16()
			copy(v4[:], b[12:])
			return checkAddr(netip.AddrFrom4(v4), false)
		case sixToFour.Contains(ip):
			b := ip.As16()
			copy(v4[:], b[2:6])
			return checkAddr(netip.AddrFrom4(v4), false)
		}
	}
	if ip.IsLoopback() {
		if allowLoopback {
			return nil
		}
		return errBlockedAddress
	}
	if !ip.IsValid() || ip.Zone() != "" || ip.IsUnspecified() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return errBlockedAddress
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return errBlockedAddress
		}
	}
	return nil
}

// dialControl vets the address a connection is about to be made to. It runs
// after name resolution, on the IP actually dialed, so a host that resolves
// to a public address when checked and to an internal one when used (DNS
// rebinding) still cannot reach inside.
func dialControl(allowLoopback bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return fmt.Errorf("%w: network %s", errBlockedAddress, network)
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("%w: %v", errBlockedAddress, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%w: %v", errBlockedAddress, err)
		}
		if err := checkAddr(ip, allowLoopback); err != nil {
			return fmt.Errorf("%w: %s", err, ip)
		}
		return nil
	}
}

// newHTTPClient returns the client all outbound fetches go through.
func newHTTPClient(opts FetcherOptions) *http.Client {
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
		// The overall deadline is set per request in get, on the context,
		// so that a body cut short by it is recognised as a timeout.
		// Redirects are not followed: each hop would need the same checks,
		// and a metadata document must be served at its own URL anyway.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is a fetched JSON body with the headers that matter for caching.
type response struct {
	body   []byte
	header http.Header
}

// get fetches url, which the caller has checked is https, and returns its
// body if the server answered 200 with JSON of at most maxBytes. what names
// the resource in error descriptions.
func (f *Fetcher) get(ctx context.Context, url, what string, maxBytes int64) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, metadataErr(err, "%s URL is invalid", what)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, networkErr(err, what)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, metadataErr(nil, "%s is served with a redirect, which is not followed", what)
	case resp.StatusCode != http.StatusOK:
		return nil, metadataErr(nil, "%s could not be fetched: the server answered with status %d", what, resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, metadataErr(err, "%s is not served as JSON", what)
	}
	if resp.ContentLength > maxBytes {
		return nil, metadataErr(nil, "%s is too large (limit %d bytes)", what, maxBytes)
	}
	// Read one byte more than allowed to tell "exactly at the limit" from
	// "over it" without trusting Content-Length.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err == nil {
		// A deadline that strikes mid-body can surface as a clean but
		// truncated read; don't let that pass for the whole document.
		err = ctx.Err()
	}
	if err != nil {
		return nil, networkErr(err, what)
	}
	if int64(len(body)) > maxBytes {
		return nil, metadataErr(nil, "%s is too large (limit %d bytes)", what, maxBytes)
	}
	return &response{body: body, header: resp.Header}, nil
}

// networkErr describes a failure to reach the host or read its answer.
func networkErr(err error, what string) *MetadataError {
	var e *MetadataError
	var ne net.Error
	switch {
	case errors.Is(err, errBlockedAddress):
		e = metadataErr(err, "%s host resolves to an address that is not allowed", what)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e = metadataErr(err, "%s could not be fetched: timed out", what)
	default:
		e = metadataErr(err, "%s could not be fetched", what)
	}
	e.network = true
	return e
}

// cacheTTL returns how long a response may be cached according to its
// Cache-Control header, clamped to [minTTL, maxTTL]: 0 for no-store (and
// no-cache, as the fetcher does not revalidate), max-age if given, and
// minTTL otherwise. The floor stops a host from making us refetch on
// every request with max-age=0; no-store remains its explicit way out.
func cacheTTL(h http.Header, minTTL, maxTTL time.Duration) time.Duration {
	ttl := minTTL
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				secs, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if err == nil && secs >= 0 {
					ttl = time.Duration(min(secs, int64(maxTTL/time.Second)+1)) * time.Second
				}
			}
		}
	}
	return min(max(ttl, minTTL), maxTTL)
}
