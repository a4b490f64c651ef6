package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// flagValue holds a flag's raw text: every setting is parsed by its own
// parser after env and flags are merged, so the flag only records what was
// typed. boolean makes "--require-auth" alone mean "true".
type flagValue struct {
	v       string
	boolean bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(v string) error { f.v = v; return nil }

// IsBoolFlag lets the flag package accept the flag without a value.
func (f *flagValue) IsBoolFlag() bool { return f.boolean }

// newFlagSet builds the serve flags. It prints nothing itself: the command
// prints one line for a bad flag, and its own grouped help for -h.
func newFlagSet(all []setting, only FlagFilter) (*flag.FlagSet, map[string]*flagValue) {
	fs := flag.NewFlagSet("smartcloudops", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := make(map[string]*flagValue, len(all))
	for _, s := range all {
		if only != nil && !only(s.flag) {
			continue
		}
		v := &flagValue{v: s.def, boolean: s.boolean}
		vals[s.flag] = v
		fs.Var(v, s.flag, s.usage)
	}
	return fs, vals
}

// FlagFilter says which flags a command takes, by flag name; nil takes
// all. The environment is read for every setting either way.
type FlagFilter func(flag string) bool

// MigrateFlags are the migrate command's flags: the database settings it
// opens the store with, and the log level.
func MigrateFlags(flag string) bool {
	switch flag {
	case "database-url", "database-pool-size", "database-pool-min-idle", "database-conn-max-lifetime",
		"slow-query-threshold", "slow-query-log-params", "log-level":
		return true
	}
	return false
}

// groups orders the help: a setting belongs to the first group whose
// prefix its flag has; the rest fall into "server".
var groups = []struct{ name, title string }{
	{"server", "Server"},
	{"database", "Database and metrics storage"},
	{"cache", "Cache (Redis or in-process)"},
	{"logs", "Logs"},
	{"anomaly", "Anomaly detection"},
	{"ingest", "Ingest (Prometheus remote write, OTLP)"},
	{"auth", "Authentication and limits"},
	{"alerting", "Alerting"},
}

func groupOf(s setting) string {
	f := s.flag
	switch {
	case f == "metrics-token":
		return "auth"
	case strings.HasPrefix(f, "database-"), strings.HasPrefix(f, "db-"), strings.HasPrefix(f, "slow-query-"),
		strings.HasPrefix(f, "metrics-"), f == "shared-state-resync", f == "replica-id":
		return "database"
	case strings.HasPrefix(f, "redis-"), strings.HasPrefix(f, "cache-"), f == "enable-cache":
		return "cache"
	case strings.HasPrefix(f, "log-"), f == "enable-async-logging":
		return "logs"
	case strings.HasPrefix(f, "anomaly-"), f == "enable-batch-processing":
		return "anomaly"
	case strings.HasPrefix(f, "promwrite-"), strings.HasPrefix(f, "otlp-"):
		return "ingest"
	case f == "admin-token", f == "jwt-secret", f == "require-auth", strings.HasPrefix(f, "auth-"),
		f == "write-rate-limit", f == "trusted-proxies", f == "max-body-bytes":
		return "auth"
	case strings.HasPrefix(f, "alertmanager-"):
		return "alerting"
	}
	return "server"
}

// WriteUsage prints the serve flags grouped by subsystem, each with its
// type, environment variable and default; secrets also name their *_FILE
// variable.
func WriteUsage(w io.Writer, only FlagFilter) {
	all := settings()
	for _, g := range groups {
		title := false
		for _, s := range all {
			if groupOf(s) != g.name || (only != nil && !only(s.flag)) {
				continue
			}
			if !title {
				fmt.Fprintf(w, "\n%s:\n", g.title)
				title = true
			}
			typ := typeOf(s)
			fmt.Fprintf(w, "  --%s %s\n      %s\n", s.flag, typ, s.usage)
			env := "env " + s.env
			if s.secret {
				env += " or " + s.env + "_FILE"
			}
			def := s.def
			if def == "" {
				def = "(none)"
			} else {
				def = fmt.Sprintf("%q", def)
			}
			fmt.Fprintf(w, "      %s; default %s\n", env, def)
		}
	}
}

// fromEnv is a setting's environment value: X itself, or for a secret the
// trimmed content of the file X_FILE names. Giving both is an error, since
// which one wins would be a guess.
func fromEnv(s setting, getenv func(string) string) (v string, src Source, err error) {
	v = getenv(s.env)
	if !s.secret {
		if v != "" {
			return v, SourceEnv, nil
		}
		return "", "", nil
	}
	path := getenv(s.env + "_FILE")
	if path == "" {
		if v != "" {
			return v, SourceEnv, nil
		}
		return "", "", nil
	}
	if v != "" {
		return "", "", &Error{Name: s.env + "_FILE", Value: path, Allowed: "must not be set together with " + s.env + "; give one"}
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		return "", "", &Error{Name: s.env + "_FILE", Value: path, Allowed: "must name a readable file: " + rerr.Error()}
	}
	v = strings.TrimSpace(string(b))
	if v == "" {
		return "", "", &Error{Name: s.env + "_FILE", Value: path, Allowed: "names an empty file"}
	}
	return v, SourceFile, nil
}

// typeOf names a flag's kind in the help from its default, which every
// parser accepts: close enough to guide, and the error names the real rule.
func typeOf(s setting) string {
	d := strings.TrimSpace(s.def)
	if s.boolean {
		return "[=bool]"
	}
	if d == "" {
		return "string"
	}
	if _, err := strconv.Atoi(d); err == nil {
		return "int"
	}
	if _, err := strconv.ParseFloat(d, 64); err == nil {
		return "number"
	}
	if _, err := time.ParseDuration(d); err == nil {
		return "duration"
	}
	if _, err := ParseSize(d); err == nil {
		return "size"
	}
	return "string"
}
