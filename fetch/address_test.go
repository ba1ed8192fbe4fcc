package fetch

import (
	"net/netip"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		ip            string
		allowLoopback bool
		ok            bool
	}{
		{"93.184.216.34", false, true},
		{"8.8.8.8", false, true},
		{"2606:4700:4700::1111", false, true},
		{"64:ff9b::5db8:d822", false, true}, // NAT64 of a public address

		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"127.255.0.9", false, false},
		{"::1", false, false},
		{"::1", true, true},
		{"::ffff:127.0.0.1", false, false},
		{"::ffff:127.0.0.1", true, true},
		{"10.0.0.1", true, false},
		{"172.16.5.4", true, false},
		{"192.168.1.1", true, false},
		{"100.64.0.1", true, false},
		{"100.127.255.254", true, false},
		{"169.254.169.254", true, false},
		{"0.0.0.0", true, false},
		{"0.1.2.3", true, false},
		{"224.0.0.1", true, false},
		{"239.255.255.250", true, false},
		{"255.255.255.255", true, false},
		{"240.0.0.1", true, false},
		{"192.0.2.1", true, false},
		{"198.18.0.1", true, false},
		{"::", true, false},
		{"fc00::1", true, false},
		{"fd12:3456::1", true, false},
		{"fe80::1", true, false},
		{"fec0::1", true, false},
		{"ff02::1", true, false},
		{"::ffff:10.0.0.1", true, false},
		{"::ffff:169.254.169.254", true, false},
		{"::ffff:192.168.1.1", true, false},
		{"::10.0.0.1", true, false},              // IPv4-compatible
		{"64:ff9b::a00:1", true, false},          // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", true, false},         // NAT64 of 127.0.0.1: not loopback here
		{"2002:a00:1::1", true, false},           // 6to4 of 10.0.0.1
		{"2001:0:4136:e378::1", true, false},     // Teredo
		{"2001:db8::1", true, false},             // documentation
		{"64:ff9b:1::a00:1", true, false},        // local-use NAT64
		{"fe80::1%eth0", true, false},            // zoned
		{"2002:5db8:d822::1", false, true},       // 6to4 of a public address
		{"100::1", true, false},                  // discard-only
		{"::ffff:93.184.216.34", false, true},    // mapped public
		{"2001:4860:4860::8888", false, true},    // public v6
		{"2600:1f18:4000::1234", false, true},    // public v6
		{"64:ff9b::c0a8:101", false, false},      // NAT64 of 192.168.1.1
		{"2002:c0a8:101::1", false, false},       // 6to4 of 192.168.1.1
		{"::ffff:100.64.1.1", false, false},      // mapped CGNAT
		{"::ffff:0.0.0.0", false, false},         // mapped unspecified
		{"::ffff:255.255.255.255", false, false}, // mapped broadcast
	}
	for _, tc := range tests {
		err := CheckAddr(netip.MustParseAddr(tc.ip), tc.allowLoopback)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%s, loopback=%v) = %v, want ok=%v", tc.ip, tc.allowLoopback, err, tc.ok)
		}
	}
}
