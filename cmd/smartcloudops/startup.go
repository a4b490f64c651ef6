package main

import (
	"bytes"
	"log/slog"
	"net"
	"strings"

	"github.com/smartcloudops/smartcloudops/internal/config"
)

// startLine is the one line serve prints on the terminal once it listens,
// so an operator sees where it is and what it runs on without reading the
// log file. Secrets never appear: URLs go through RedactURL.
func startLine(cfg *config.Config, addr string, cacheOn bool) string {
	db := config.RedactURL(cfg.DatabaseURL)
	cache := "off (ENABLE_CACHE=false)"
	if cacheOn {
		cache = "memory (no Redis configured)"
		if u := cfg.EffectiveRedisURL(); u != "" {
			cache = "redis " + config.RedactURL(u)
		}
	}
	auth := string(cfg.RequireAuth)
	switch {
	case cfg.RequireAuth == config.AuthRequired:
		auth = "required"
	case !cfg.AuthConfigured():
		auth += ", no credential: writes refused"
	}
	return "smartcloudops listening on " + addr + "; database " + db + "; cache " + cache +
		"; auth " + auth + "; dashboard " + dashboardURL(cfg, addr)
}

// dashboardURL is the external URL when one is set, else the address the
// service listens on, with localhost for every-interface listens since the
// terminal is on this machine.
func dashboardURL(cfg *config.Config, addr string) string {
	if cfg.ExternalURL != "" {
		return strings.TrimSuffix(cfg.ExternalURL, "/") + "/"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// clientErrorLine reports an access-log record of a client error: the
// access log writes 4xx at WARN and 5xx at ERROR, with the message "http
// request". They stay in the log file; the terminal keeps server faults.
func clientErrorLine(level slog.Level, record []byte) bool {
	return level == slog.LevelWarn && bytes.Contains(record, []byte(`"msg":"http request"`))
}
