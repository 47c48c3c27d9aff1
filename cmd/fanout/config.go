package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs/connectors"
)

// Config is every setting, read from FANOUT_* environment variables.
type Config struct {
	Addr                 string
	BaseURL              string
	DataDir              string
	DatabaseURL          string
	RedisURL             string
	SecretKey            string
	MaxEventBytes        int64
	AllowPrivateNetworks bool
	AllowCIDRs           []netip.Prefix
	TrustedProxies       []netip.Prefix
	Concurrency          int
	DatabaseMaxConns     int
	IngestRateLimit      int
	PollInterval         time.Duration
	ShutdownTimeout      time.Duration
	ReconcileEvery       time.Duration
	LogLevel             slog.Level
	LogFormat            string
	OAuth                connectors.OAuthConfig
}

// LoadConfig reads the environment and reports the first malformed value.
func LoadConfig() (Config, error) {
	c := Config{
		Addr:            env("FANOUT_ADDR", "127.0.0.1:8080"),
		BaseURL:         os.Getenv("FANOUT_BASE_URL"),
		DataDir:         env("FANOUT_DATA_DIR", "data"),
		DatabaseURL:     os.Getenv("FANOUT_DATABASE_URL"),
		RedisURL:        os.Getenv("FANOUT_REDIS_URL"),
		SecretKey:       os.Getenv("FANOUT_SECRET_KEY"),
		LogFormat:       env("FANOUT_LOG_FORMAT", "text"),
		ShutdownTimeout: 25 * time.Second,
	}
	var err error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("FANOUT_ADDR: want host:port, got %q", c.Addr)
	}
	if err := (db.Config{URL: c.DatabaseURL}).Validate(); err != nil {
		return c, err
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		return c, fmt.Errorf("FANOUT_REDIS_URL: want redis://host:port/db (or empty for the embedded server)")
	}
	if c.MaxEventBytes, err = envInt("FANOUT_MAX_EVENT_BYTES", 1<<20, 1024, 64<<20); err != nil {
		return c, err
	}
	conc, err := envInt("FANOUT_CONCURRENCY", 64, 1, 10000)
	if err != nil {
		return c, err
	}
	c.Concurrency = int(conc)
	maxConns, err := envInt("FANOUT_DATABASE_MAX_CONNS", 0, 0, 1000)
	if err != nil {
		return c, err
	}
	c.DatabaseMaxConns = int(maxConns)
	rl, err := envInt("FANOUT_INGEST_RATE_LIMIT", 1000, 0, 1_000_000)
	if err != nil {
		return c, err
	}
	c.IngestRateLimit = int(rl)
	if c.PollInterval, err = envDuration("FANOUT_POLL_INTERVAL", 20*time.Millisecond); err != nil {
		return c, err
	}
	if c.ReconcileEvery, err = envDuration("FANOUT_RECONCILE_EVERY", 10*time.Second); err != nil {
		return c, err
	}
	if c.AllowPrivateNetworks, err = envBool("FANOUT_ALLOW_PRIVATE_NETWORKS"); err != nil {
		return c, err
	}
	if c.AllowCIDRs, err = envPrefixes("FANOUT_ALLOW_CIDRS"); err != nil {
		return c, err
	}
	if c.TrustedProxies, err = envPrefixes("FANOUT_TRUSTED_PROXIES"); err != nil {
		return c, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(env("FANOUT_LOG_LEVEL", "info"))); err != nil {
		return c, fmt.Errorf("FANOUT_LOG_LEVEL: want debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("FANOUT_LOG_FORMAT: want text or json")
	}
	c.OAuth = connectors.OAuthConfig{
		BaseURL: c.BaseURL, HubSpot: oauthApp("HUBSPOT"), Mailchimp: oauthApp("MAILCHIMP"),
		Intercom: oauthApp("INTERCOM"), Slack: oauthApp("SLACK"),
	}
	if err := c.OAuth.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// oauthApp reads FANOUT_<VENDOR>_CLIENT_ID, _CLIENT_SECRET, _AUTH_URL, _TOKEN_URL,
// _METADATA_URL, _REDIRECT_URL and _SCOPES (comma-separated).
func oauthApp(vendor string) connectors.OAuthApp {
	get := func(name string) string { return os.Getenv("FANOUT_" + vendor + "_" + name) }
	app := connectors.OAuthApp{
		ClientID: get("CLIENT_ID"), ClientSecret: get("CLIENT_SECRET"), AuthURL: get("AUTH_URL"),
		TokenURL: get("TOKEN_URL"), MetadataURL: get("METADATA_URL"), RedirectURL: get("REDIRECT_URL"),
	}
	if scopes := get("SCOPES"); scopes != "" {
		app.Scopes = strings.Split(scopes, ",")
	}
	return app
}

func (c Config) db() db.Config {
	return db.Config{URL: c.DatabaseURL, DataDir: c.DataDir, MaxOpenConns: c.DatabaseMaxConns}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def, lo, hi int64) (int64, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: want a whole number from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: want a positive duration such as 10s, got %q", name, v)
	}
	return d, nil
}

func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: want 1 or 0, got %q", name, v)
	}
	return b, nil
}

func newLogger(c Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func envPrefixes(name string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.FieldsFunc(os.Getenv(name), func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR prefix", name, s)
		}
		out = append(out, p)
	}
	return out, nil
}
