package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/detectcli"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

const usage = `usage: smartcloudops <command> [flags]

Commands:
  serve          run the HTTP service (the default when the first argument is a flag)
  migrate        apply database migrations and exit
  detect         score a CSV time series with the streaming detector
  check-config   validate the configuration (env, *_FILE and flags) and print it, without starting
  version        print the version and revision and exit
  help           show this help, or "help <command>" for a command's

Run "smartcloudops <command> --help" for a command's flags. Every serve flag
also has an environment variable; a flag wins over the environment.
`

const serveHead = `usage: smartcloudops serve [flags]

Runs the HTTP service. Each setting is read from its environment variable,
then from its flag (a flag wins); secrets can also come from a file named by
<VARIABLE>_FILE. Boolean flags work alone (--require-auth) or with =false.

Examples:
  smartcloudops serve --addr :8080 --database-url postgres://app@db:5432/smartcloudops
  REDIS_URL=redis://127.0.0.1:6379/0 SMARTCLOUDOPS_ADMIN_TOKEN_FILE=/run/secrets/token smartcloudops serve --require-auth
  smartcloudops check-config --log-level debug   # validate without starting
`

const migrateHead = `usage: smartcloudops migrate [flags]

Applies the database migrations and prints the schema version. Only the
database and log settings apply; each also has an environment variable.

Example:
  DATABASE_URL=postgres://app@db:5432/smartcloudops smartcloudops migrate
`

const checkHead = `usage: smartcloudops check-config [serve flags]

Loads the configuration exactly as serve would (environment, *_FILE secrets,
flags) and validates every setting, DATABASE_URL and PROMWRITE_SELECT
included, without opening the database or listening. Prints the effective
configuration with where each value came from (secrets masked) and exits 0,
or prints the one error and exits 2. It takes serve's flags: see
"smartcloudops serve --help".

Example:
  DATABASE_URL=postgres://app@db/smartcloudops smartcloudops check-config --require-auth
`

// isHelp reports whether args ask for help anywhere before "--".
func isHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// commandHelp prints a command's help to w; false means no such command.
func commandHelp(cmd string, w io.Writer) bool {
	switch cmd {
	case "serve":
		fmt.Fprint(w, serveHead)
		config.WriteUsage(w, nil)
	case "migrate":
		fmt.Fprint(w, migrateHead)
		config.WriteUsage(w, config.MigrateFlags)
	case "check-config":
		fmt.Fprint(w, checkHead)
	case "detect":
		// detect's flag set prints its own usage on -h.
		_ = detectcli.Run(context.Background(), []string{"-h"}, strings.NewReader(""), w, w)
	case "version":
		fmt.Fprint(w, "usage: smartcloudops version\n\nPrints the version, VCS revision and Go version (also: smartcloudops --version).\n")
	case "help":
		fmt.Fprint(w, usage)
	default:
		return false
	}
	return true
}

// loadConfig loads and validates the configuration as serve and migrate
// need it: a returned error is one line for stderr.
func loadConfig(cmd string, args []string, getenv func(string) string, only config.FlagFilter) (*config.Config, error) {
	cfg, err := config.LoadFor(args, getenv, only)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && (ce.Name == "flags" || ce.Name == "arguments") {
			// One line naming the flag and where the list is; the flag
			// package's own message already names it.
			msg := ce.Allowed
			if ce.Name == "arguments" {
				msg += ": " + ce.Value
			}
			return nil, fmt.Errorf("%s (see smartcloudops %s --help)", msg, cmd)
		}
		return nil, err
	}
	// The URL's forms belong to the store (dburl); checking them here keeps a
	// bad DATABASE_URL a one-line configuration error like any other.
	if _, _, err := dburl.Parse(cfg.DatabaseURL); err != nil {
		return nil, &config.Error{Name: "DATABASE_URL", Value: config.RedactURL(cfg.DatabaseURL), Allowed: err.Error()}
	}
	// So are the remote-write selectors, whose syntax belongs to promwrite.
	if _, err := remoteWriteSelect(cfg); err != nil {
		return nil, &config.Error{Name: "PROMWRITE_SELECT", Value: cfg.PromWrite.Select, Allowed: err.Error()}
	}
	return cfg, nil
}

// withConfig loads the configuration and runs f, mapping failures to exit
// statuses: a bad setting or flag is one line on stderr and status 2.
func withConfig(cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer, only config.FlagFilter, f func(*config.Config) error) int {
	if isHelp(args) {
		commandHelp(cmd, stdout)
		return exitOK
	}
	cfg, err := loadConfig(cmd, args, getenv, only)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(cmd, stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "smartcloudops %s: %v\n", cmd, err)
		return exitUsage
	}
	if err := f(cfg); err != nil {
		fmt.Fprintln(stderr, "smartcloudops:", err)
		return exitFailure
	}
	return exitOK
}

// checkConfig prints the effective configuration: one row per setting with
// its source, secrets masked as /performance/config shows them.
func checkConfig(cfg *config.Config, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	for _, e := range cfg.Redacted() {
		v := e.Value
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, v, e.Source)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	fmt.Fprintln(stdout, "configuration OK")
	return nil
}

// runDetect runs the detect command; help goes to stdout like every
// other command's.
func runDetect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if isHelp(args) {
		commandHelp("detect", stdout)
		return exitOK
	}
	if err := detectcli.Run(ctx, args, stdin, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "smartcloudops detect:", err)
		if errors.Is(err, detectcli.ErrUsage) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}
