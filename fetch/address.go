// Package fetch is the one way the server fetches JSON from other hosts:
// an HTTP client that refuses internal addresses (SSRF) for URLs others
// choose, a size-capped reader of JSON responses, the Cache-Control rule
// for what is fetched, and a single-flight background refresher for values
// fetched off the request path.
package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrBlockedAddress is returned (wrapped) when a fetch would connect to an
// address the client refuses.
var ErrBlockedAddress = errors.New("address not allowed")

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

// CheckAddr returns ErrBlockedAddress unless ip is a public unicast
// address. Loopback addresses pass if allowLoopback is set.
// Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are
// judged by that address, so ::ffff:10.0.0.1 is as private as 10.0.0.1.
func CheckAddr(ip netip.Addr, allowLoopback bool) error {
	ip = ip.Unmap()
	if ip.Is6() {
		var v4 [4]byte
		switch {
		case nat64Prefix.Contains(ip):
			b := ip.As16()
			copy(v4[:], b[12:])
			return CheckAddr(netip.AddrFrom4(v4), false)
		case sixToFour.Contains(ip):
			b := ip.As16()
			copy(v4[:], b[2:6])
			return CheckAddr(netip.AddrFrom4(v4), false)
		}
	}
	if ip.IsLoopback() {
		if allowLoopback {
			return nil
		}
		return ErrBlockedAddress
	}
	if !ip.IsValid() || ip.Zone() != "" || ip.IsUnspecified() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return ErrBlockedAddress
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return ErrBlockedAddress
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
			return fmt.Errorf("%w: network %s", ErrBlockedAddress, network)
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBlockedAddress, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBlockedAddress, err)
		}
		if err := CheckAddr(ip, allowLoopback); err != nil {
			return fmt.Errorf("%w: %s", err, ip)
		}
		return nil
	}
}
