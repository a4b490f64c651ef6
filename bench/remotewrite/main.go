// Command remotewrite measures the service's Prometheus remote_write 1.0
// receiver (POST /api/v1/write) under load shaped like Prometheus's own
// queue, beside a floor handler that only decodes the same requests, in the
// same run, and prints medians over repeats and the service/floor ratios.
//
// The requests come from simulated node_exporters: -series series over
// hosts of -series-per-host series each, scraped every -interval of
// simulated time (faster than real time), split over -shards shards by a
// hash of their labels, -batch samples a request. They are built with the
// prompb types and sent with client_golang's remote API client. Usage:
//
//	go run ./bench/remotewrite [-series 10000] [-db sqlite|postgres] [-duration 10s] [-repeats 3]
//	go run ./bench/remotewrite -url http://127.0.0.1:8080 -token T   # a running service
//
// See bench/README.md for how to read the report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(floorChildEnv) != "" {
		// Started by startFloor as the floor's own process.
		os.Exit(serveFloorChild(ctx, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// options are the command's flags.
type options struct {
	url, token, metricsPath string
	db, postgres            string
	binary, redisURL        string
	env                     envList
	keep                    bool

	series, perHost, batch, shards, retries int
	capacity                                int
	interval, history                       time.Duration
	duration, warmup, settle                time.Duration
	repeats                                 int
	floor                                   string
	floorOnly                               bool

	stored, scored, kept []counterSel
	counters             *regexp.Regexp
	perf                 string
}

// Bounds keep a mistyped flag from turning the benchmark into a soak test
// of a shared machine.
const (
	maxSeries   = 1_000_000
	maxShards   = 200
	maxBatch    = 100_000
	maxDuration = 5 * time.Minute
	maxRepeats  = 25
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("remotewrite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "measure the service already running at this loopback URL instead of starting one")
	fs.StringVar(&o.token, "token", os.Getenv("RWBENCH_TOKEN"), "bearer token for the receiver and the metrics (default $RWBENCH_TOKEN); a started service gets its own")
	fs.StringVar(&o.metricsPath, "metrics-path", "/performance/metrics", "the service's Prometheus exposition")
	fs.StringVar(&o.db, "db", "sqlite", "the started service's database: sqlite (temporary file) or postgres (-postgres)")
	fs.StringVar(&o.postgres, "postgres", "postgres://postgres@127.0.0.1:5432/bench_rw?sslmode=disable",
		"PostgreSQL database for -db postgres; a database named bench_* is dropped and made anew at the start")
	fs.StringVar(&o.binary, "binary", "", "run this smartcloudops binary instead of building the working tree")
	fs.StringVar(&o.redisURL, "redis", svcrun.DefaultRedisURL(), `Redis for the started service's shared cache tier, used when reachable; "" for none`)
	fs.Var(&o.env, "env", "KEY=VALUE added to the started service's environment (repeatable), e.g. a receiver's mapping setting")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, logs, service stderr)")
	fs.IntVar(&o.series, "series", 10_000, "series in all (a multiple of -series-per-host)")
	fs.IntVar(&o.perHost, "series-per-host", 100, "series of each simulated node_exporter")
	fs.IntVar(&o.batch, "batch", 2000, "samples per request (Prometheus's max_samples_per_send)")
	fs.IntVar(&o.shards, "shards", 50, "concurrent shards, each with one request in flight (Prometheus's max_shards, where its queue goes when it is behind)")
	fs.IntVar(&o.capacity, "capacity", 10_000, "samples a shard's queue holds (Prometheus's queue_config.capacity): no shard runs further ahead of the slowest; 0 = unbounded")
	fs.IntVar(&o.retries, "retries", 3, "retries of a 5xx or 429 answer, backing off 30ms..5s as Prometheus does; 0 = none")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "simulated scrape interval")
	fs.DurationVar(&o.history, "history", 23*time.Hour, "how far in the past the simulated time starts (the receiver drops samples older than PROMWRITE_MAX_AGE, 24h by default)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured run before each measured one")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "most time to wait after a run for the service's counters to stop moving")
	fs.IntVar(&o.repeats, "repeats", 3, "measured runs per target; the report shows medians")
	fs.StringVar(&o.floor, "floor", "process", `where the decode floor runs: "process" (a child process), "inprocess" or "off"`)
	fs.BoolVar(&o.floorOnly, "floor-only", false, "measure the floor alone (no service)")
	stored := fs.String("stored", `smartcloudops_db_bulk_rows_total{operation="insert"}`, "comma-separated counters whose sum is what the service stored")
	kept := fs.String("kept", `smartcloudops_ingest_samples_total{source="remote_write",outcome="kept"}`, "comma-separated counters whose sum is the samples the receiver kept (stored as a row's value)")
	scored := fs.String("scored", "smartcloudops_anomaly_samples_scored_total", "comma-separated counters whose sum is what the service scored")
	counters := fs.String("counters", `^smartcloudops_.*(remote_?write|promwrite|ingest|receiver).*`, "regexp of metric names whose changes over the last run are listed")
	fs.StringVar(&o.perf, "perf", "", "record the started service with perf during the measured runs into this file and print its top functions")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.stored, err = parseSelectors(*stored); err != nil {
		return o, fmt.Errorf("-stored: %w", err)
	}
	if o.kept, err = parseSelectors(*kept); err != nil {
		return o, fmt.Errorf("-kept: %w", err)
	}
	if o.scored, err = parseSelectors(*scored); err != nil {
		return o, fmt.Errorf("-scored: %w", err)
	}
	if o.counters, err = regexp.Compile(*counters); err != nil {
		return o, fmt.Errorf("-counters: %w", err)
	}
	switch {
	case o.series < 1 || o.series > maxSeries:
		return o, fmt.Errorf("-series %d: must be in [1, %d]", o.series, maxSeries)
	case o.perHost < minPerHost() || o.series%o.perHost != 0:
		return o, fmt.Errorf("-series-per-host %d: must be at least %d and divide -series %d", o.perHost, minPerHost(), o.series)
	case o.batch < 1 || o.batch > maxBatch:
		return o, fmt.Errorf("-batch %d: must be in [1, %d]", o.batch, maxBatch)
	case o.shards < 1 || o.shards > maxShards:
		return o, fmt.Errorf("-shards %d: must be in [1, %d]", o.shards, maxShards)
	case o.capacity < 0:
		return o, errors.New("-capacity: must not be negative")
	case o.retries < 0 || o.retries > 100:
		return o, fmt.Errorf("-retries %d: must be in [0, 100]", o.retries)
	case o.interval < time.Millisecond || o.history < time.Minute:
		return o, errors.New("-interval must be at least 1ms and -history at least 1m")
	case o.duration <= 0 || o.duration > maxDuration || o.warmup < 0 || o.warmup > maxDuration:
		return o, fmt.Errorf("-duration and -warmup must be in (0, %s]", maxDuration)
	case o.repeats < 1 || o.repeats > maxRepeats:
		return o, fmt.Errorf("-repeats %d: must be in [1, %d]", o.repeats, maxRepeats)
	case o.floor != "process" && o.floor != "inprocess" && o.floor != "off":
		return o, fmt.Errorf("-floor %q: must be process, inprocess or off", o.floor)
	case o.floorOnly && o.floor == "off":
		return o, errors.New("-floor-only needs a floor")
	case o.db != "sqlite" && o.db != "postgres":
		return o, fmt.Errorf("-db %q: must be sqlite or postgres", o.db)
	case o.perf != "" && o.url != "":
		return o, errors.New("-perf records a service this command starts; not with -url")
	}
	return o, nil
}

func parseSelectors(s string) ([]counterSel, error) {
	var out []counterSel
	for _, part := range splitSelectors(s) {
		sel, err := parseSelector(part)
		if err != nil {
			return nil, err
		}
		out = append(out, sel)
	}
	return out, nil
}

// splitSelectors splits on commas outside braces.
func splitSelectors(s string) []string {
	var out []string
	depth, from := 0, 0
	for i, r := range s {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[from:i])
				from = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[from:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return svcrun.Run(ctx, "remotewrite", args, stderr, parseFlags, func(ctx context.Context, o options) error {
		return bench(ctx, o, stdout, stderr)
	})
}
