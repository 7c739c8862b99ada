package jobs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// urlGuard keeps callbacks away from internal addresses (SSRF). A URL is
// refused when its host resolves to an address that is not globally
// routable (see globallyRoutable: loopback, private, link-local and the
// 169.254.169.254 metadata service, CGNAT, documentation, benchmarking,
// reserved, multicast, translation prefixes, ...), unless the
// allow-list admits the address. The check runs at submit time on the resolved addresses
// and again at connect time on the address actually dialled, so DNS
// rebinding between the two cannot slip through.
type urlGuard struct {
	allow []netip.Prefix
}

func newURLGuard(allow []string) (*urlGuard, error) {
	g := &urlGuard{}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			g.allow = append(g.allow, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", a)
		}
		g.allow = append(g.allow, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return g, nil
}

// allowed reports whether connecting to ip is permitted: it is in the
// allow-list, or it is globally routable.
func (g *urlGuard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return globallyRoutable(ip)
}

// globallyRoutable follows the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890): an address is routable unless it falls
// in a block that is not globally reachable, or is multicast, or (IPv6)
// lies outside the global unicast space 2000::/3. The more specific
// globally reachable blocks inside a refused one (anycast services) are
// admitted as the registry says. Addresses that embed an IPv4 address by
// a translation mechanism (NAT64, 6to4, Teredo, IPv4-compatible) are
// refused outright: the relay would reach whatever IPv4 address they
// carry, internal ones included. IPv4-mapped addresses are checked as
// the IPv4 address inside.
func globallyRoutable(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	for _, p := range globalExceptions {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range notGlobal {
		if p.Contains(ip) {
			return false
		}
	}
	return ip.Is4() || globalUnicast6.Contains(ip)
}

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// notGlobal are the blocks callbacks may not reach (see globallyRoutable).
var notGlobal = prefixes(
	// IPv4
	"0.0.0.0/8",          // "this network" (RFC 791)
	"10.0.0.0/8",         // private (RFC 1918)
	"100.64.0.0/10",      // shared address space, CGNAT (RFC 6598)
	"127.0.0.0/8",        // loopback (RFC 1122)
	"169.254.0.0/16",     // link-local, cloud metadata (RFC 3927)
	"172.16.0.0/12",      // private (RFC 1918)
	"192.0.0.0/24",       // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",       // documentation, TEST-NET-1 (RFC 5737)
	"192.88.99.0/24",     // 6to4 relay anycast, deprecated (RFC 7526)
	"192.168.0.0/16",     // private (RFC 1918)
	"198.18.0.0/15",      // benchmarking (RFC 2544)
	"198.51.100.0/24",    // documentation, TEST-NET-2 (RFC 5737)
	"203.0.113.0/24",     // documentation, TEST-NET-3 (RFC 5737)
	"224.0.0.0/4",        // multicast (RFC 5771)
	"240.0.0.0/4",        // reserved (RFC 1112)
	"255.255.255.255/32", // limited broadcast (RFC 919)
	// IPv6
	"::/128",         // unspecified (RFC 4291)
	"::1/128",        // loopback (RFC 4291)
	"::/96",          // IPv4-compatible, deprecated (RFC 4291)
	"64:ff9b::/96",   // NAT64 well-known prefix (RFC 6052)
	"64:ff9b:1::/48", // NAT64 local-use (RFC 8215)
	"100::/64",       // discard-only (RFC 6666)
	"2001::/23",      // IETF protocol assignments (RFC 2928), Teredo 2001::/32 included
	"2001:db8::/32",  // documentation (RFC 3849)
	"2002::/16",      // 6to4 (RFC 3056)
	"3fff::/20",      // documentation (RFC 9637)
	"5f00::/16",      // SRv6 SIDs (RFC 9602)
	"fc00::/7",       // unique local (RFC 4193)
	"fe80::/10",      // link-local (RFC 4291)
	"fec0::/10",      // site-local, deprecated (RFC 3879)
	"ff00::/8",       // multicast (RFC 4291)
)

// globalExceptions are the blocks the registries mark globally reachable
// inside a block of notGlobal.
var globalExceptions = prefixes(
	"192.0.0.9/32",    // Port Control Protocol anycast (RFC 7723)
	"192.0.0.10/32",   // TURN anycast (RFC 8155)
	"2001:1::1/128",   // Port Control Protocol anycast (RFC 7723)
	"2001:1::2/128",   // TURN anycast (RFC 8155)
	"2001:3::/32",     // AMT (RFC 7450)
	"2001:4:112::/48", // AS112-v6 (RFC 7535)
	"2001:20::/28",    // ORCHIDv2 (RFC 7343)
	"2001:30::/28",    // drone remote ID (RFC 9374)
)

func prefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// checkURL validates a callback URL and resolves its host; every address
// must be allowed. An IP literal is checked without any lookup.
func (g *urlGuard) checkURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in the URL are not allowed", raw)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	for _, ip := range addrs {
		if !g.allowed(ip) {
			return fmt.Errorf("%s resolves to %s, an address that is not globally routable (not in the callback allow-list)", host, ip)
		}
	}
	return nil
}

// control is a net.Dialer Control hook refusing disallowed addresses at
// connect time.
func (g *urlGuard) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("callback: dial %s: not an IP address", address)
	}
	if !g.allowed(ip) {
		return fmt.Errorf("callback: refusing to connect to %s: not a globally routable address", ip)
	}
	return nil
}

// client returns an HTTP client whose every connection passes the guard.
// It ignores proxy settings (the guard must see the real destination).
func (g *urlGuard) client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: g.control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
