package connectors

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrBlocked is wrapped by the error of every dial the network policy refuses, so callers
// can tell an SSRF block (permanent) from a network failure (retryable) with errors.Is.
var ErrBlocked = errors.New("destination address not allowed")

// Transport limits of the outgoing client. There is deliberately no overall client timeout:
// each attempt's ctx deadline bounds waiting for headers and reading the body.
const (
	dialTimeout         = 5 * time.Second
	tlsHandshakeTimeout = 5 * time.Second
	maxIdleConnsPerHost = 64
)

// extraDenied are public-looking addresses that are in fact cloud-internal endpoints and
// not covered by the IANA special-purpose registries that ssrf blocks by default.
var extraDenied = []netip.Prefix{
	netip.MustParsePrefix("168.63.129.16/32"), // Azure WireServer / platform DNS
}

// ClientOptions is the outbound network policy. The same value configures the HTTP client
// (checked on the resolved address at dial time) and save-time validation (CheckURL), so
// the two never disagree.
type ClientOptions struct {
	// AllowPrivate turns the guard off so that every address may be dialled. It is meant
	// for local development and tests against loopback servers.
	AllowPrivate bool
	// AllowCIDRs are prefixes allowed although private or reserved, e.g. an operator's
	// internal network. They take precedence over the deny list.
	AllowCIDRs []netip.Prefix
	// Resolver resolves host names for dialling and for CheckURL; nil means
	// net.DefaultResolver. Tests inject one whose Dial answers from an in-memory server.
	Resolver *net.Resolver
	// OnBlock, if set, is called for every refused dial (feeds ssrf_blocked_total). It must
	// be safe for concurrent use.
	OnBlock func()

	// dialed, if set, sees every address the guard let through, just before connect().
	// Tests use it to fail if anything but loopback would ever be dialled.
	dialed func(network, address string)
}

// guardian builds the address checker: everything in the IANA special-purpose registries
// (loopback, RFC 1918, link-local and so cloud metadata, CGNAT 100.64/10, multicast,
// 0.0.0.0/8, …) is refused, and for IPv6 everything outside global unicast 2000::/3 is
// refused, which covers ::1, fc00::/7 (fd00:ec2::254), fe80::/10, IPv4-mapped ::ffff:0:0/96
// and NAT64 64:ff9b::/96. Any port is allowed: customers' webhooks listen on many.
func (o ClientOptions) guardian() *ssrf.Guardian {
	var v4, v6 []netip.Prefix
	for _, p := range o.AllowCIDRs {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
	}
	return ssrf.New(
		ssrf.WithAnyPort(),
		ssrf.WithAllowedV4Prefixes(v4...),
		ssrf.WithAllowedV6Prefixes(v6...),
		ssrf.WithDeniedV4Prefixes(extraDenied...),
	)
}

// checkAddr reports whether the policy allows addr. An IPv4-mapped IPv6 address is judged
// as the IPv4 address it maps to, which is what the kernel would connect to.
func (o ClientOptions) checkAddr(g *ssrf.Guardian, addr netip.Addr) error {
	if o.AllowPrivate {
		return nil
	}
	return g.SafeAddr(addr.Unmap())
}

// control returns the net.Dialer.Control hook. It runs after DNS resolution on the very
// address about to be connected, so a name that re-resolves to a private address between
// the save-time check and the attempt (DNS rebinding) is still refused.
func (o ClientOptions) control() func(network, address string, c syscall.RawConn) error {
	var g *ssrf.Guardian
	if !o.AllowPrivate {
		g = o.guardian()
	}
	if g == nil && o.dialed == nil {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		if g != nil {
			if err := g.Safe(network, address, c); err != nil {
				if o.OnBlock != nil {
					o.OnBlock()
				}
				return fmt.Errorf("%w: %w", ErrBlocked, err)
			}
		}
		if o.dialed != nil {
			o.dialed(network, address)
		}
		return nil
	}
}

// NewHTTPClient returns the one outgoing HTTP client: SSRF-guarded at dial time, blind to
// proxy environment variables (a proxy would connect on our behalf and bypass the guard),
// never following redirects (the 3xx response is returned and classified as a failure),
// with bounded dial and TLS handshake times. It has no overall timeout: every request's
// ctx deadline bounds it. Build one per process and share it; it pools connections.
func NewHTTPClient(opts ClientOptions) *http.Client {
	dialer := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Resolver:  opts.Resolver,
		Control:   opts.control(),
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true, // needed for HTTP/2 once DialContext is custom
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	var rt http.RoundTripper = transport
	if !opts.AllowPrivate {
		rt = &numericHostGuard{next: transport, onBlock: opts.OnBlock}
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// numericHostGuard refuses URLs whose host is IPv4 in a legacy numeric form (2130706433,
// 0177.0.0.1, 0x7f.1) before any look-up. Go's resolver rejects such names, but the C
// library's resolves them to the address they encode; refusing them outright keeps the
// outcome the same everywhere and matches the save-time check.
type numericHostGuard struct {
	next    *http.Transport
	onBlock func()
}

// RoundTrip implements http.RoundTripper.
func (g *numericHostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	host := normalizeHost(req.URL.Hostname())
	if _, err := netip.ParseAddr(host); err != nil && endsInNumber(host) {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper must close the body, even on error
		}
		if g.onBlock != nil {
			g.onBlock()
		}
		return nil, fmt.Errorf("%w: host %q is an IP address in non-standard notation", ErrBlocked, host)
	}
	return g.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (g *numericHostGuard) CloseIdleConnections() { g.next.CloseIdleConnections() }

// defaultClient is the strict client Do falls back on when a Request carries none, so a
// wiring mistake can never mean an unguarded request.
var defaultClient = sync.OnceValue(func() *http.Client { return NewHTTPClient(ClientOptions{}) })
