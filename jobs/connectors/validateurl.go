package connectors

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// resolveTimeout bounds the DNS look-up of CheckURL: saving a connection must stay fast,
// and the dial-time guard is the real defence anyway.
const resolveTimeout = 2 * time.Second

// ValidateURL checks a destination URL when a connection is saved, with the default
// resolver. It returns a *FieldError for "config.url". See ClientOptions.CheckURL.
func ValidateURL(raw string, allowPrivate bool) error {
	return ClientOptions{AllowPrivate: allowPrivate}.CheckURL(context.Background(), "config.url", raw)
}

// CheckURL checks a destination URL when a connection is saved and returns a *FieldError
// naming field. The URL must be absolute http or https, with a host and no user info. Unless
// the policy allows private destinations it also refuses localhost and *.localhost, literal
// addresses the dial-time guard would refuse, IPv4 written in any form other than dotted
// decimal (2130706433, 0177.0.0.1, 0x7f.1, 127.1, ::ffff:127.0.0.1: such forms only serve
// to slip past filters), and host names that resolve only to refused addresses. A failed
// look-up is not an error: DNS may be down or not yet set up, and the dial-time guard
// still applies.
func (o ClientOptions) CheckURL(ctx context.Context, field, raw string) error {
	u, err := parseDestination(field, raw)
	if err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
	}
	host := normalizeHost(u.Hostname())
	g := o.guardian()

	if addr, err := netip.ParseAddr(host); err == nil { // IPv6, or canonical IPv4
		if addr.Zone() != "" {
			return bad("must not contain an IPv6 zone")
		}
		if err := o.checkAddr(g, addr); err != nil {
			return bad("points to a private or reserved address (%s)", addr.Unmap())
		}
		if addr.Is4In6() {
			return bad("write the IPv4 address %s in dotted-decimal form", addr.Unmap())
		}
		return nil
	}
	if endsInNumber(host) { // the host is an IPv4 address in some legacy form
		addr, ok := parseLegacyIPv4(host)
		if !ok {
			return bad("has an invalid IPv4 address")
		}
		if err := o.checkAddr(g, addr); err != nil {
			return bad("points to a private or reserved address (%s)", addr)
		}
		return bad("write the IPv4 address %s in dotted-decimal form", addr)
	}
	if !validHostname(host) {
		return bad("has an invalid host name")
	}
	if o.AllowPrivate {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return bad("must not point to localhost")
	}

	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	resolver := o.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if o.checkAddr(g, a) == nil {
			return nil
		}
	}
	return bad("resolves only to private or reserved addresses (%s)", addrs[0].Unmap())
}

// parseDestination is the syntax-only part of CheckURL, cheap enough to repeat before
// every attempt.
func parseDestination(field, raw string) (*url.URL, error) {
	bad := func(msg string) error { return &FieldError{Field: field, Message: msg} }
	if strings.TrimSpace(raw) == "" {
		return nil, bad("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("must be an http or https URL")
	}
	if u.User != nil {
		return nil, bad("must not contain a user name or password")
	}
	if normalizeHost(u.Hostname()) == "" {
		return nil, bad("must include a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad("has an invalid port")
		}
	}
	return u, nil
}

func normalizeHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// validHostname accepts dot-separated labels of letters, digits, '-' and '_' (plus any
// non-ASCII, which the client turns into punycode).
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r >= 0x80:
			default:
				return false
			}
		}
	}
	return true
}

// endsInNumber reports whether URL parsers (WHATWG) and inet_aton would read host as an
// IPv4 address: its last label is a number in decimal, octal or hex.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := parseIPv4Part(last)
	return ok
}

// parseLegacyIPv4 parses the forms inet_aton accepts: one to four parts, each decimal,
// octal (leading 0) or hex (0x), the last part filling the remaining bytes; so
// 2130706433, 0177.0.0.1, 0x7f.1 and 127.1 are all 127.0.0.1.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v = v<<8 | n
			continue
		}
		rest := uint(8 * (5 - len(parts))) // bits the last part fills
		if n >= 1<<rest {
			return netip.Addr{}, false
		}
		v = v<<rest | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" is zero to WHATWG
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}
