package config

import (
	"errors"
	"flag"
	"io"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leaks reports whether shown gives away the secret v. A URL keeps its
// shape when masked (so an operator sees which server is meant): only its
// password may not show. Any other secret may not show at all; short values
// are skipped, since "1" or "on" may occur in any text by chance.
func leaks(shown, v string) bool {
	const minLen = 6
	if u, err := url.Parse(v); err == nil && strings.Contains(v, "://") {
		var pw []string
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				pw = append(pw, p)
			}
		}
		for k, vals := range u.Query() {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				pw = append(pw, vals...)
			}
		}
		for _, p := range pw {
			if len(p) >= minLen && strings.Contains(shown, p) {
				return true
			}
		}
		return false
	}
	return len(v) >= minLen && strings.Contains(shown, v)
}

// flagValues are the values a command line gives to flag: "-flag=v", or
// the word after "-flag".
func flagValues(argv []string, flag string) []string {
	var out []string
	for i, a := range argv {
		if a == "--" {
			break
		}
		name, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-") || name != flag:
		case ok:
			out = append(out, v)
		case i+1 < len(argv):
			out = append(out, argv[i+1])
		}
	}
	return out
}

// checkFields fails on a loaded value no part could use: a negative size,
// count or duration, or a float that is not finite.
func checkFields(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				checkFields(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Int, reflect.Int64:
		if v.Int() < 0 {
			t.Fatalf("%s = %d", path, v.Int())
		}
	case reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			t.Fatalf("%s = %v", path, f)
		}
	}
}

// FuzzLoad sets two settings' environment variables (chosen by index) and
// a command line to arbitrary values: Load never panics, and either refuses
// with an *Error naming a variable or flag that was given (a secret's value
// never shown), or returns a configuration whose values are in range, whose
// sources say env or flag where one was given, and whose redacted view
// hides every secret.
func FuzzLoad(f *testing.F) {
	all := settings()
	index := func(env string) uint8 {
		for i, s := range all {
			if s.env == env {
				return uint8(i)
			}
		}
		f.Fatalf("no setting %s", env)
		return 0
	}
	f.Add(index("DATABASE_URL"), "postgres://u:s3cr3tpw@db:5432/app?sslmode=disable", index("REDIS_URL"), "redis://:hunter2hunter2@r:6379/0", "")
	f.Add(index("LOG_MAX_FILE_SIZE"), "10MiB", index("SLOW_QUERY_THRESHOLD"), "0.25", "-log-level=debug")
	f.Add(index("CACHE_MAX_VALUE_BYTES"), "512MiB", index("ANOMALY_THRESHOLD"), "NaN", "")
	f.Add(index("ANOMALY_MIN_TRAINING_ROWS"), "60000", index("ANOMALY_MAX_TRAINING_ROWS"), "50000", "")
	f.Add(index("SMARTCLOUDOPS_REQUIRE_AUTH"), "yes", index("JWT_SECRET"), "short-secret", "")
	f.Add(index("SLOW_QUERY_THRESHOLD"), "1e300", index("ANOMALY_RETRAIN_INTERVAL"), " 0 ", "-redis-url postgres://x")
	f.Add(index("SMARTCLOUDOPS_ADDR"), "host:99999", index("CACHE_KEY_PREFIX"), "a*b", "-h")
	f.Add(index("LOG_ROTATION_INTERVAL"), "-1h", index("SMARTCLOUDOPS_SHUTDOWN_TIMEOUT"), "0s", "extra")
	f.Add(index("LOG_LEVEL"), "info", index("JWT_SECRET"), "", "-jwt-secret=0123456789abcdef0123456789abcdef -no-such-flag")
	f.Add(index("LOG_LEVEL"), "info", index("JWT_SECRET"), "", "-admin-token correct-horse-battery -log-level")
	f.Add(index("JWT_SECRET"), "6789abcdef8-secret", index("LOG_LEVEL"), "info", "-=x 6789abcdef8-secret")
	f.Fuzz(func(t *testing.T, i uint8, v string, j uint8, w string, args string) {
		a, b := all[int(i)%len(all)], all[int(j)%len(all)]
		env := map[string]string{a.env: v}
		if b.env != a.env {
			env[b.env] = w
		}
		argv := strings.Fields(args)
		cfg, err := Load(argv, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			given := ce.Name == "flags" || ce.Name == "arguments" || strings.HasPrefix(ce.Name, "--")
			for name := range env {
				given = given || ce.Name == name
			}
			if !given {
				t.Fatalf("error names %q, which was not given (env %q, args %q): %v", ce.Name, env, argv, err)
			}
			for _, s := range all {
				if s.secret && (ce.Name == s.env || ce.Name == "--"+s.flag || ce.Name == "flags") {
					for _, sv := range append([]string{env[s.env]}, flagValues(argv, s.flag)...) {
						if leaks(withoutUnknownFlagNames(err.Error(), argv, all), sv) {
							t.Fatalf("error shows secret %s: %v", s.env, err)
						}
					}
				}
			}
			return
		}
		checkFields(t, reflect.ValueOf(*cfg), "Config")
		if cfg.Anomaly.MinTrainingRows > cfg.Anomaly.MaxTrainingRows {
			t.Fatalf("min training rows %d > max %d", cfg.Anomaly.MinTrainingRows, cfg.Anomaly.MaxTrainingRows)
		}
		if cfg.RequireAuth == AuthRequired && !cfg.AuthConfigured() {
			t.Fatal("auth required but not configured")
		}
		if cfg.LogRotationInterval > 0 && cfg.LogRotationInterval < time.Second {
			t.Fatalf("rotation interval %v", cfg.LogRotationInterval)
		}
		for name, val := range env {
			if val != "" && len(argv) == 0 && cfg.Source(name) != SourceEnv {
				t.Fatalf("%s given but its source is %s", name, cfg.Source(name))
			}
		}
		for _, e := range cfg.Redacted() {
			if !e.Secret || e.Value == "" {
				continue
			}
			for _, sv := range append([]string{env[e.Name]}, flagValues(argv, strings.TrimPrefix(e.Flag, "--"))...) {
				if leaks(e.Value, sv) {
					t.Fatalf("redacted %s = %q shows its secret", e.Name, e.Value)
				}
			}
		}
	})
}

// FuzzParsers checks each value parser Load uses against its own bounds: an
// accepted value is within [lo, hi]; a refused one leaves dst unchanged.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"0", "1.0", "250ms", "-1", "10MiB", "1e300", "NaN", "+Inf", " 42 ", "9223372036854775807", "yes", "2562047h", "0x10", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		const sentinel = -7
		n := sentinel
		if err := parseInt(v, 1, 1000, &n); (err == nil && (n < 1 || n > 1000)) || (err != nil && n != sentinel) {
			t.Fatalf("parseInt(%q) = %d, %v", v, n, err)
		}
		var sz int64 = sentinel
		if err := parseSize(v, 1024, 1<<40, &sz); (err == nil && (sz < 1024 || sz > 1<<40)) || (err != nil && sz != sentinel) {
			t.Fatalf("parseSize(%q) = %d, %v", v, sz, err)
		}
		var d time.Duration = sentinel
		if err := parseDuration(v, time.Second, 24*time.Hour, &d); (err == nil && (d < time.Second || d > 24*time.Hour)) || (err != nil && d != sentinel) {
			t.Fatalf("parseDuration(%q) = %v, %v", v, d, err)
		}
		d = sentinel
		if err := parseSeconds(v, time.Hour, &d); (err == nil && (d < 0 || d > time.Hour)) || (err != nil && d != sentinel) {
			t.Fatalf("parseSeconds(%q) = %v, %v", v, d, err)
		}
		fl := float64(sentinel)
		if err := parseFloat(v, 0.01, 0.99, &fl); (err == nil && !(fl >= 0.01 && fl <= 0.99)) || (err != nil && fl != sentinel) {
			t.Fatalf("parseFloat(%q) = %v, %v", v, fl, err)
		}
		bo := true
		if err := parseBool(v, &bo); err != nil && !bo {
			t.Fatalf("parseBool(%q) changed dst on error", v)
		}
		_ = validAddr(v)
		_ = validRedisURL(v)
		_ = RedactURL(v)
	})
}

// withoutUnknownFlagNames removes from shown the names of the flags in argv
// that Load does not know: the error echoes them by design (they are what
// the operator typed wrong), so a secret that happens to be part of such a
// name is not a leak of the secret's value.
func withoutUnknownFlagNames(shown string, argv []string, all []setting) string {
	known := map[string]bool{}
	for _, s := range all {
		known[s.flag] = true
	}
	for _, a := range argv {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "" && !known[name] {
			// Shown raw in the flag package's message and escaped (as %q
			// does) in the error's value.
			q := strconv.Quote(name)
			shown = strings.ReplaceAll(strings.ReplaceAll(shown, name, ""), q[1:len(q)-1], "")
		}
	}
	return shown
}
