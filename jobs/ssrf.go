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
// refused when its host resolves to a loopback, private (RFC 1918, RFC
// 4193), link-local (including the 169.254.169.254 metadata service),
// CGNAT, unspecified or multicast address, unless the allow-list admits
// the address. The check runs at submit time on the resolved addresses
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

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// allowed reports whether connecting to ip is permitted.
func (g *urlGuard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip) || !ip.IsValid())
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
			return fmt.Errorf("%s resolves to %s, a loopback, private, link-local or metadata address (not in the callback allow-list)", host, ip)
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
		return fmt.Errorf("callback: refusing to connect to %s: loopback, private, link-local or metadata address", ip)
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
