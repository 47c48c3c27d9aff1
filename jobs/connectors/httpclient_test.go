package connectors

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// onlyLoopback is a ClientOptions.dialed hook that fails the test if the client would
// connect anywhere but loopback: SSRF tests must never reach a real private address.
func onlyLoopback(t *testing.T) func(network, address string) {
	return func(network, address string) {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			t.Errorf("client would connect to %s %s", network, address)
		}
	}
}

// get sends one GET through client and returns the Result.
func getThrough(t *testing.T, client *http.Client, rawURL string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Do(ctx, client, req, nil)
	return r
}

// TestClientBlocksForbiddenAddresses covers S1 and S2 at dial time: every forbidden
// address, literal or reached through DNS, is refused in Dialer.Control before connect.
func TestClientBlocksForbiddenAddresses(t *testing.T) {
	t.Parallel()
	resolver := newFakeResolver(t, map[string][]string{
		"evil.test":   {"169.254.169.254"},
		"loop.test":   {"127.0.0.1", "::1"},
		"meta6.test":  {"fd00:ec2::254"},
		"mixed.test":  {"10.0.0.7", "192.168.1.1", "fc00::1"},
		"cgnat.test":  {"100.64.0.1"},
		"azure.test":  {"168.63.129.16"},
		"2130706433":  {"127.0.0.1"}, // as a C resolver (inet_aton) would answer
		"0177.0.0.1":  {"127.0.0.1"},
		"0x7f.1":      {"127.0.0.1"},
		"nat64.test":  {"64:ff9b::a9fe:a9fe"},
		"mapped.test": {"::ffff:a9fe:a9fe"},
	})
	urls := []string{
		"http://evil.test/latest/meta-data/",
		"http://loop.test:8080/",
		"http://meta6.test/",
		"https://mixed.test/",
		"http://cgnat.test/",
		"http://azure.test/",
		"http://2130706433/",
		"http://0177.0.0.1/",
		"http://0x7f.1/",
		"http://nat64.test/",
		"http://mapped.test/",
		"http://127.0.0.1/",
		"http://[::1]:9/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::ffff:169.254.169.254]/",
		"http://0.0.0.0/",
		"http://10.0.0.1/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
		"http://[fd00:ec2::254]/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[fe80::1]/",
	}
	var blocked atomic.Int64
	client := NewHTTPClient(ClientOptions{
		Resolver: resolver,
		OnBlock:  func() { blocked.Add(1) },
		dialed:   onlyLoopback(t),
	})
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			before := blocked.Load()
			r := getThrough(t, client, u)
			if strings.Contains(r.Message, "address family not supported") {
				t.Skip("no IPv6 on this machine")
			}
			if r.Outcome != Permanent || r.ErrorClass != ClassBlocked {
				t.Fatalf("got %s/%s (%s), want permanent/%s", r.Outcome, r.ErrorClass, r.Message, ClassBlocked)
			}
			if blocked.Load() == before {
				t.Error("OnBlock was not called")
			}
			if r.Request == "" {
				t.Error("Request summary is empty")
			}
		})
	}
}

// TestClientLoopback: a loopback server is refused by the strict client, reached with
// AllowPrivate, and reached through an AllowCIDRs hole (S4); the hole is exact.
func TestClientLoopback(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name string
		opts ClientOptions
		want Outcome
	}{
		{"strict", ClientOptions{}, Permanent},
		{"allow private", ClientOptions{AllowPrivate: true}, Succeeded},
		{"allow loopback CIDR", ClientOptions{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Succeeded},
		{"other CIDR only", ClientOptions{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}}, Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.dialed = onlyLoopback(t)
			before := hits.Load()
			r := getThrough(t, NewHTTPClient(tc.opts), srv.URL)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s (%s %s), want %s", r.Outcome, r.ErrorClass, r.Message, tc.want)
			}
			if reached := hits.Load() > before; reached != (tc.want == Succeeded) {
				t.Errorf("server reached = %v", reached)
			}
		})
	}
}

// TestClientFakeResolverIsUsed proves the dialer resolves through the injected resolver:
// a made-up name reaches the loopback server when private addresses are allowed.
func TestClientFakeResolverIsUsed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolver := newFakeResolver(t, map[string][]string{"sink.test": {"127.0.0.1"}})
	target := "http://sink.test:" + strconv.Itoa(port) + "/"

	if r := getThrough(t, NewHTTPClient(ClientOptions{Resolver: resolver, AllowPrivate: true, dialed: onlyLoopback(t)}), target); r.Outcome != Succeeded {
		t.Fatalf("allow private: %s %s", r.Outcome, r.Message)
	}
	if r := getThrough(t, NewHTTPClient(ClientOptions{Resolver: resolver, dialed: onlyLoopback(t)}), target); r.ErrorClass != ClassBlocked {
		t.Fatalf("strict: %s %s, want blocked", r.Outcome, r.ErrorClass)
	}
}

// TestClientDNSRebinding covers S2: the save-time check sees a public address, the
// attempt's own resolution sees loopback, and the dial-time guard refuses it.
func TestClientDNSRebinding(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{answer: func(name string, qtype dnsmessage.Type, n int) []netip.Addr {
		if name != "rebind.test" {
			return nil
		}
		if n == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}}
	opts := ClientOptions{Resolver: dns.resolver(), dialed: onlyLoopback(t)}
	if err := opts.CheckURL(t.Context(), "config.url", "https://rebind.test/hook"); err != nil {
		t.Fatalf("save-time check of the public answer: %v", err)
	}
	if r := getThrough(t, NewHTTPClient(opts), "http://rebind.test/hook"); r.ErrorClass != ClassBlocked {
		t.Fatalf("got %s/%s (%s), want blocked", r.Outcome, r.ErrorClass, r.Message)
	}
}

// TestGuardAllowCIDRs checks the guard itself (S4) without dialling anything.
func TestGuardAllowCIDRs(t *testing.T) {
	t.Parallel()
	control := ClientOptions{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/24"),
		netip.MustParsePrefix("fd12:3456::/32"),
	}}.control()
	tests := []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "10.1.0.5:443", true},
		{"tcp4", "10.1.0.255:8080", true},
		{"tcp4", "10.1.1.1:443", false},
		{"tcp4", "10.2.0.1:443", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[fd12:3456::1]:443", true},
		{"tcp6", "[fd00:ec2::254]:80", false},
		{"tcp4", "8.8.8.8:443", true},
		{"tcp4", "8.8.8.8:5432", true}, // any port
		{"tcp6", "[2606:4700::1111]:443", true},
		{"udp4", "8.8.8.8:53", false},
	}
	for _, tc := range tests {
		err := control(tc.network, tc.address, nil)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: err = %v, want ok = %v", tc.network, tc.address, err, tc.ok)
		}
	}
}

// TestClientIgnoresProxyAndRedirects covers S3 and F13 for the client itself.
func TestClientIgnoresProxyAndRedirects(t *testing.T) {
	var proxied, redirected atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Add(1) }))
	t.Cleanup(proxy.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			redirected.Add(1)
			return
		}
		http.Redirect(w, r, "/moved", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)

	u, _ := url.Parse(srv.URL)
	resolver := newFakeResolver(t, map[string][]string{"sink.test": {"127.0.0.1"}})
	client := NewHTTPClient(ClientOptions{AllowPrivate: true, Resolver: resolver})
	if tr, ok := client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatal("transport has a Proxy func")
	}
	r := getThrough(t, client, "http://sink.test:"+u.Port()+"/start")
	if r.Outcome != Permanent || r.ErrorClass != ClassRedirect || r.StatusCode != http.StatusFound {
		t.Fatalf("got %s/%s %d, want permanent/redirect 302", r.Outcome, r.ErrorClass, r.StatusCode)
	}
	if proxied.Load() != 0 || redirected.Load() != 0 {
		t.Fatalf("proxy hits %d, redirect target hits %d; want 0 and 0", proxied.Load(), redirected.Load())
	}
}
