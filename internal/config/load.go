package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Load builds the configuration: defaults, then environment variables read
// through getenv, then flags from args (without the program or subcommand name).
// usage is unused (kept for callers): the command prints help itself (WriteUsage). An invalid value returns *Error; -h returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, _ io.Writer) (*Config, error) {
	return LoadFor(args, getenv, nil)
}

// LoadFor is Load for a command that takes only the flags only accepts
// (nil: all); every setting is still read from the environment.
func LoadFor(args []string, getenv func(string) string, only FlagFilter) (*Config, error) {
	all := settings()
	fs, flagVals := newFlagSet(all, only)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &Error{Name: "flags", Value: maskEnvSecrets(shownArgs(args, all), all, getenv),
			Allowed: maskEnvSecrets(shownFlagError(err.Error(), args, all), all, getenv), secrets: secretValues(args, all, getenv)}
	}
	if fs.NArg() > 0 {
		return nil, &Error{Name: "arguments", Value: strings.Join(fs.Args(), " "), Allowed: "no positional arguments are accepted"}
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	c := &Config{sources: make(map[string]Source, len(all)), raw: make(map[string]string, len(all))}
	for _, s := range all {
		v, src, name := s.def, SourceDefault, s.env
		ev, esrc, err := fromEnv(s, getenv)
		if err != nil {
			return nil, err
		}
		if esrc != "" {
			v, src = ev, esrc
		}
		if esrc == SourceFile {
			name = s.env + "_FILE"
		}
		if setFlags[s.flag] {
			v, src, name = flagVals[s.flag].v, SourceFlag, "--"+s.flag
		}
		if err := s.set(c, v); err != nil {
			shown := v
			if s.secret {
				shown = mask(s, v)
			}
			return nil, &Error{Name: name, Value: shown, Allowed: err.Error()}
		}
		c.sources[s.env] = src
		c.raw[s.env] = v
	}
	if c.Anomaly.MinTrainingRows > c.Anomaly.MaxTrainingRows {
		// Name the setting the operator gave: a maximum set below the
		// default minimum is the maximum's fault, not the default's.
		if c.sources["ANOMALY_MIN_TRAINING_ROWS"] == SourceDefault {
			return nil, &Error{Name: "ANOMALY_MAX_TRAINING_ROWS", Value: strconv.Itoa(c.Anomaly.MaxTrainingRows),
				Allowed: fmt.Sprintf("must be at least ANOMALY_MIN_TRAINING_ROWS (%d)", c.Anomaly.MinTrainingRows)}
		}
		return nil, &Error{Name: "ANOMALY_MIN_TRAINING_ROWS", Value: strconv.Itoa(c.Anomaly.MinTrainingRows),
			Allowed: fmt.Sprintf("must not exceed ANOMALY_MAX_TRAINING_ROWS (%d)", c.Anomaly.MaxTrainingRows)}
	}
	if c.MetricsRawRetention > 0 && c.MetricsRollupRetention > 0 && c.MetricsRollupRetention < c.MetricsRawRetention {
		// Reads before the raw window go to the rollups: they must reach further.
		return nil, &Error{Name: "METRICS_ROLLUP_RETENTION", Value: c.MetricsRollupRetention.String(),
			Allowed: fmt.Sprintf("must be 0 or at least METRICS_RAW_RETENTION (%s)", c.MetricsRawRetention)}
	}
	if c.RequireAuth == AuthRequired && !c.AuthConfigured() {
		return nil, &Error{Name: "SMARTCLOUDOPS_REQUIRE_AUTH", Value: "true",
			Allowed: "needs SMARTCLOUDOPS_ADMIN_TOKEN or JWT_SECRET to be set, or no request could ever be authorised"}
	}
	if c.MetricsToken != "" && c.MetricsToken == c.AdminToken {
		return nil, &Error{Name: "SMARTCLOUDOPS_METRICS_TOKEN", Value: "****",
			Allowed: "must differ from SMARTCLOUDOPS_ADMIN_TOKEN: the scrape token is read-only"}
	}
	return c, nil
}

// shownFlagError is the flag package's message with every argument it
// quotes replaced by its shown form: the message repeats the argument it
// choked on ("bad flag syntax: -=…"), which may hold a secret that
// shownArgs masks.
func shownFlagError(msg string, args []string, all []setting) string {
	for _, a := range args {
		if shown := shownArgs([]string{a}, all); shown != a && a != "" {
			msg = strings.ReplaceAll(msg, a, shown)
		}
	}
	return maskCopies(msg, args, all)
}

// shownArgs is the command line as a flag error shows it: the values of
// secret flags masked, and so those of unknown flags, which may be a
// secret's misspelling (-jwt-secert=…).
func shownArgs(args []string, all []setting) string {
	byFlag := make(map[string]setting, len(all))
	for _, s := range all {
		byFlag[s.flag] = s
	}
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		s, known := byFlag[name]
		if known && !s.secret {
			continue
		}
		masked := Masked
		if known {
			masked = mask(s, v)
		}
		switch {
		case hasValue && v != "":
			out[i] = a[:len(a)-len(v)] + masked
		case !hasValue && i+1 < len(out) && known:
			// The flag package takes the next word as the value, even one
			// starting with "-".
			out[i+1] = mask(s, out[i+1])
			i++
		case !hasValue && i+1 < len(out) && !strings.HasPrefix(out[i+1], "-"):
			out[i+1] = masked
			i++
		}
	}
	return maskCopies(strings.Join(out, " "), args, all)
}

// maskEnvSecrets masks, in a flag error that quotes the command line, any
// copy of a secret given by the environment: a word typed on the command
// line may repeat it (a password pasted as an argument), and the error must
// not show it whichever way the secret came in. For a URL only the
// password is a secret.
func maskEnvSecrets(shown string, all []setting, getenv func(string) string) string {
	for _, s := range all {
		if !s.secret {
			continue
		}
		v := getenv(s.env)
		if v == "" {
			continue
		}
		secrets := []string{v}
		if strings.Contains(v, "://") {
			secrets = urlPasswords(v)
		}
		for _, sv := range secrets {
			if sv != "" && sv != Masked {
				shown = strings.ReplaceAll(shown, sv, Masked)
			}
		}
	}
	return shown
}

// secretValues are the plain secrets a command line and the environment
// give (for a URL, its passwords): what a flag error must not show, however
// it renders them.
func secretValues(args []string, all []setting, getenv func(string) string) []string {
	var out []string
	for _, s := range all {
		if !s.secret {
			continue
		}
		vals := []string{getenv(s.env)}
		for i, a := range args {
			if a == "--" {
				break
			}
			name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !strings.HasPrefix(a, "-") || name != s.flag:
			case hasValue:
				vals = append(vals, v)
			case i+1 < len(args):
				vals = append(vals, args[i+1])
			}
		}
		for _, v := range vals {
			if strings.Contains(v, "://") {
				out = append(out, urlPasswords(v)...)
			} else if v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// urlPasswords are the passwords a database or Redis URL carries: its
// userinfo's and any password query parameter's.
func urlPasswords(v string) []string {
	u, err := url.Parse(v)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	for k, vals := range u.Query() {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			out = append(out, vals...)
		}
	}
	return out
}

// maskCopies masks every further copy, anywhere in shown, of a plain secret
// given on the command line (-admin-token X … X): an error must not show a
// secret wherever else the operator typed it. URL secrets are masked by
// RedactURL, which knows where their passwords stand.
func maskCopies(shown string, args []string, all []setting) string {
	secret := make(map[string]bool, len(all))
	for _, s := range all {
		secret[s.flag] = s.secret
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !secret[name] {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v = args[i+1]
		}
		if v != "" && v != Masked && !strings.Contains(v, "://") {
			shown = strings.ReplaceAll(shown, v, Masked)
		}
	}
	return shown
}
