package jobs

import (
	"net/netip"
	"testing"
)

// TestSSRFSpecialPurposeRanges checks one address in every range the
// callback guard must refuse (the IANA special-purpose registries), at
// both checks: the resolved-address check and the dial-time hook, which
// sees the address actually connected to (so DNS rebinding between the
// two cannot bypass it).
func TestSSRFSpecialPurposeRanges(t *testing.T) {
	g, err := newURLGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ip   string
		ok   bool
	}{
		{"this network 0.0.0.0/8", "0.1.2.3", false},
		{"private 10/8", "10.200.0.1", false},
		{"CGNAT 100.64/10", "100.127.255.254", false},
		{"loopback 127/8", "127.3.2.1", false},
		{"link-local 169.254/16", "169.254.169.254", false},
		{"private 172.16/12", "172.31.0.1", false},
		{"IETF 192.0.0.0/24", "192.0.0.8", false},
		{"TEST-NET-1 192.0.2/24", "192.0.2.77", false},
		{"6to4 relay 192.88.99/24", "192.88.99.1", false},
		{"private 192.168/16", "192.168.255.1", false},
		{"benchmarking 198.18/15", "198.19.3.4", false},
		{"TEST-NET-2 198.51.100/24", "198.51.100.9", false},
		{"TEST-NET-3 203.0.113/24", "203.0.113.200", false},
		{"multicast 224/4", "239.255.255.250", false},
		{"reserved 240/4", "250.1.2.3", false},
		{"broadcast", "255.255.255.255", false},
		{"unspecified ::/128", "::", false},
		{"loopback ::1", "::1", false},
		{"IPv4-compatible ::/96", "::a00:1", false},
		{"IPv4-mapped private", "::ffff:10.0.0.1", false},
		{"IPv4-mapped loopback", "::ffff:127.0.0.1", false},
		{"NAT64 64:ff9b::/96", "64:ff9b::a9fe:a9fe", false},
		{"NAT64 local 64:ff9b:1::/48", "64:ff9b:1::1", false},
		{"discard 100::/64", "100::1", false},
		{"IETF 2001::/23", "2001:2::1", false},
		{"Teredo 2001::/32", "2001:0:4136:e378::1", false},
		{"documentation 2001:db8::/32", "2001:db8::1", false},
		{"6to4 2002::/16", "2002:a00:1::1", false},
		{"documentation 3fff::/20", "3fff::1", false},
		{"SRv6 5f00::/16", "5f00::1", false},
		{"unique local fc00::/7", "fd00:ec2::254", false},
		{"link-local fe80::/10", "fe80::1", false},
		{"site-local fec0::/10", "fec0::1", false},
		{"multicast ff00::/8", "ff02::1", false},
		{"outside 2000::/3", "4000::1", false},

		{"global IPv4", "8.8.8.8", true},
		{"global IPv4 next to 172.16/12", "172.32.0.1", true},
		{"global IPv4 next to 100.64/10", "100.128.0.1", true},
		{"TURN anycast in 192.0.0.0/24", "192.0.0.10", true},
		{"IPv4-mapped global", "::ffff:8.8.8.8", true},
		{"global IPv6", "2001:4860:4860::8888", true},
		{"AS112-v6 in 2001::/23", "2001:4:112::1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.ip)
			if got := g.allowed(ip); got != tc.ok {
				t.Errorf("allowed(%s) = %v, want %v", ip, got, tc.ok)
			}
			if err := g.control("tcp", netip.AddrPortFrom(ip, 443).String(), nil); (err == nil) != tc.ok {
				t.Errorf("dial-time control(%s) = %v, want ok=%v", ip, err, tc.ok)
			}
		})
	}
	// An allow-list entry admits a refused range, and only it.
	g, err = newURLGuard([]string{"198.18.0.0/15", "fec0::/10"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"198.19.0.1": true, "fec0::1": true, "10.0.0.1": false, "::ffff:198.18.0.1": true} {
		if got := g.allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("with allow-list: allowed(%s) = %v, want %v", ip, got, want)
		}
	}
}
