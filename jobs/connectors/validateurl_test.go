package connectors

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	resolver := newFakeResolver(t, map[string][]string{
		"hooks.example.com": {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"evil.test":         {"169.254.169.254"},
		"internal.test":     {"10.0.0.5", "fd00::5"},
		"partly.test":       {"10.0.0.5", "93.184.215.14"},
		"office.test":       {"10.1.0.9"},
	})
	strict := ClientOptions{Resolver: resolver}
	private := ClientOptions{Resolver: resolver, AllowPrivate: true}
	holed := ClientOptions{Resolver: resolver, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}}

	tests := []struct {
		url  string
		opts ClientOptions
		ok   bool
	}{
		{"https://hooks.example.com/in", strict, true},
		{"http://hooks.example.com:8080/in?x=1", strict, true},
		{"https://HOOKS.example.com./in", strict, true},
		{"https://93.184.215.14/in", strict, true},
		{"https://[2606:4700::1111]/in", strict, true},
		{"https://partly.test/", strict, true},           // some addresses are allowed
		{"https://does-not-resolve.test/", strict, true}, // look-up failure is not an error
		{"", strict, false},
		{"hooks.example.com/in", strict, false},
		{"ftp://hooks.example.com/", strict, false},
		{"javascript:alert(1)", strict, false},
		{"file:///etc/passwd", strict, false},
		{"https://user:pass@hooks.example.com/", strict, false},
		{"https://:443/", strict, false},
		{"https://hooks.example.com:0/", strict, false},
		{"https://hooks.example.com:99999/", strict, false},
		{"https://bad_host!.com/", strict, false},
		{"https://a..b/", strict, false},
		// S1 literals.
		{"http://127.0.0.1/", strict, false},
		{"http://[::1]/", strict, false},
		{"http://169.254.169.254/", strict, false},
		{"http://[::ffff:169.254.169.254]/", strict, false},
		{"http://[::ffff:93.184.215.14]/", strict, false}, // mapped form, even if public
		{"http://0.0.0.0/", strict, false},
		{"http://10.0.0.1/", strict, false},
		{"http://100.64.0.1/", strict, false},
		{"http://224.0.0.1/", strict, false},
		{"http://[fd00:ec2::254]/", strict, false},
		{"http://[64:ff9b::a9fe:a9fe]/", strict, false},
		{"http://[fe80::1%25eth0]/", strict, false},
		{"http://2130706433/", strict, false},
		{"http://0177.0.0.1/", strict, false},
		{"http://0x7f.1/", strict, false},
		{"http://127.1/", strict, false},
		{"http://0x5db8d70e/", strict, false}, // public, but obfuscated
		{"http://1.2.3.4.5/", strict, false},
		{"http://example.123/", strict, false},
		{"http://localhost/", strict, false},
		{"http://LocalHost./", strict, false},
		{"http://api.localhost/", strict, false},
		// S2 through DNS.
		{"https://evil.test/", strict, false},
		{"https://internal.test/", strict, false},
		// AllowPrivate allows every address, never bad syntax.
		{"http://127.0.0.1:8080/", private, true},
		{"http://localhost:8080/", private, true},
		{"https://internal.test/", private, true},
		{"http://0x7f.1/", private, false},
		{"ftp://127.0.0.1/", private, false},
		// S4: an operator's hole.
		{"http://10.1.0.7/", holed, true},
		{"http://office.test/", holed, true},
		{"http://10.2.0.7/", holed, false},
		{"https://internal.test/", holed, false},
	}
	for _, tc := range tests {
		err := tc.opts.CheckURL(t.Context(), "config.url", tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("%q (private=%v cidrs=%v): err = %v, want ok = %v", tc.url, tc.opts.AllowPrivate, tc.opts.AllowCIDRs, err, tc.ok)
			continue
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "config.url") {
			t.Errorf("%q: error %#v is not a *FieldError for config.url", tc.url, err)
		}
	}
}

// TestValidateURL runs the convenience form on inputs that need no DNS.
func TestValidateURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://2130706433/", "http://127.0.0.1/", "http://localhost/", "http://[::1]/"} {
		if ValidateURL(u, false) == nil {
			t.Errorf("ValidateURL(%q, false) = nil", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9000/hook", "http://localhost:9000/"} {
		if err := ValidateURL(u, true); err != nil {
			t.Errorf("ValidateURL(%q, true) = %v", u, err)
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"2130706433":      "127.0.0.1",
		"0177.0.0.1":      "127.0.0.1",
		"0x7f.1":          "127.0.0.1",
		"0x7F.0.0.1":      "127.0.0.1",
		"127.1":           "127.0.0.1",
		"127.0.1":         "127.0.0.1",
		"0xa9fea9fe":      "169.254.169.254",
		"169.254.43518":   "169.254.169.254",
		"0":               "0.0.0.0",
		"4294967295":      "255.255.255.255",
		"4294967296":      "",
		"256.0.0.1":       "",
		"1.2.3.256":       "",
		"1.2.65536":       "",
		"08.0.0.1":        "",
		"1.2.3.4.5":       "",
		"0x.0x.0x.0x":     "0.0.0.0",
		"1..1":            "",
		"-1":              "",
		"+1":              "",
		"1_000":           "",
		"0x1_0":           "",
		"99999999999999x": "",
	}
	for in, want := range tests {
		got, ok := parseLegacyIPv4(in)
		if want == "" {
			if ok {
				t.Errorf("parseLegacyIPv4(%q) = %s, want failure", in, got)
			}
			continue
		}
		if !ok || got.String() != want {
			t.Errorf("parseLegacyIPv4(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
}
