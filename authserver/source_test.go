package authserver

import "testing"

func TestSourceBucket(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		prefix int
		want   string
	}{
		{"192.0.2.7", 32, "192.0.2.7/32"},
		{"192.0.2.7", 24, "192.0.2.0/24"},
		{"192.0.2.7", 0, "192.0.2.7/32"},
		{"192.0.2.7:4711", 32, "192.0.2.7/32"},
		{"::ffff:192.0.2.7", 32, "192.0.2.7/32"},
		{"::ffff:c000:0207", 24, "192.0.2.0/24"},
		{"2001:db8:1:2::1", 32, "2001:db8:1:2::/64"},
		{"2001:DB8:1:2:ffff:ffff:ffff:ffff", 32, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::5]:443", 32, "2001:db8:1:2::/64"},
		{"fe80::1%eth0", 32, "fe80::/64"},
		{"not an address", 32, "not an address"},
	} {
		if got := SourceBucket(tc.ip, tc.prefix); got != tc.want {
			t.Errorf("SourceBucket(%q, %d) = %q, want %q", tc.ip, tc.prefix, got, tc.want)
		}
	}
}
