package authserver

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

// SourceBucket returns the key that requests from ip are limited by: the
// address itself for IPv4 (or its first ipv4Prefix bits, for operators
// whose users share small networks with attackers), and its /64 for IPv6,
// since one subscriber commonly holds a whole /64. An IPv4-mapped IPv6
// address counts as IPv4. Anything that is not an IP address is its own
// bucket.
func SourceBucket(ip string, ipv4Prefix int) string {
	host := ip
	if h, _, err := net.SplitHostPort(ip); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ip
	}
	addr = addr.Unmap().WithZone("")
	bits := 64
	if addr.Is4() {
		bits = ipv4Prefix
		if bits <= 0 || bits > 32 {
			bits = 32
		}
	}
	prefix, _ := addr.Prefix(bits)
	return prefix.Masked().Addr().String() + "/" + strconv.Itoa(bits)
}

// sources names the source of a request for per-source limits.
type sources struct {
	// clientIP returns a request's client address; nil uses the
	// connection's remote address.
	clientIP   func(*http.Request) string
	ipv4Prefix int
}

// of is the per-source limit key of a request: its client address,
// bucketed by SourceBucket.
func (s sources) of(r *http.Request) string {
	return SourceBucket(s.address(r), s.ipv4Prefix)
}

// clientIP is the address of the client that sent r.
func (s sources) address(r *http.Request) string {
	if s.clientIP != nil {
		return s.clientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
