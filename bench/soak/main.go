// Command soak runs SmartCloudOps for a long while at a fixed mixed request
// rate over all its routes and watches its resources for leaks.
//
// It builds the service, starts it on a loopback port (SQLite by default,
// the local Redis when one answers, PostgreSQL with -postgres), drives the
// load, and every -interval samples RSS (/proc), heap, goroutines and open
// file descriptors (the service's own /performance/metrics) and database
// connections (its pool metric, and pg_stat_activity on PostgreSQL). It
// prints a table, a flatness verdict per series with the rule's figures,
// and draws the series as a PNG. Usage:
//
//	go run ./bench/soak [-duration 10m] [-interval 10s] [-rate 50] [-png soak.png]
//
// It exits 1 when a series grew past the rule. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func main() { svcrun.Main(run) }

// options are the command's flags.
type options struct {
	duration, interval time.Duration
	rate, workers      int
	redisURL           string
	postgres           string
	png                string
	binary             string
	keep               bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load runs")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "time between samples")
	fs.IntVar(&o.rate, "rate", 50, "requests a second over the route mix")
	fs.IntVar(&o.workers, "workers", 32, "most requests in flight; a tick that finds all busy is not sent, and counted")
	fs.StringVar(&o.redisURL, "redis", svcrun.DefaultRedisURL(), `Redis for the cache's shared tier, used when reachable; "" for none`)
	fs.StringVar(&o.postgres, "postgres", "", "run on PostgreSQL at this URL (a schema of its own, dropped afterwards) instead of a temporary SQLite file")
	fs.StringVar(&o.png, "png", "soak.png", "where to write the chart")
	fs.StringVar(&o.binary, "binary", "", "run this smartcloudops binary instead of building the working tree")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, logs, service stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0 || o.duration > 24*time.Hour:
		return o, fmt.Errorf("-duration %s: must be in (0, 24h]", o.duration)
	case o.interval < 100*time.Millisecond || o.interval > o.duration:
		return o, fmt.Errorf("-interval %s: must be in [100ms, -duration]", o.interval)
	case o.rate < 1 || o.rate > 2000:
		return o, fmt.Errorf("-rate %d: must be in [1, 2000]", o.rate)
	case o.workers < 1 || o.workers > 512:
		return o, fmt.Errorf("-workers %d: must be in [1, 512]", o.workers)
	case o.png == "":
		return o, errors.New("-png: must name a file")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return svcrun.Run(ctx, "soak", args, stderr, parseFlags, func(ctx context.Context, o options) error {
		flat, err := soak(ctx, o, stdout, stderr)
		if err == nil && !flat {
			fmt.Fprintln(stdout, "\nFAIL: a series grew past the rule")
			return svcrun.ErrVerdict
		}
		return err
	})
}

// counts are the load's answers since the last sample.
type counts struct {
	requests, clientErrs, errs atomic.Int64
	mu                         sync.Mutex
	firstErr                   string
	// clientByRoute says which routes answered 4xx, for the report: a
	// soak expects none but the few the mix provokes.
	clientByRoute map[string]int
}

func soak(ctx context.Context, o options, stdout, stderr io.Writer) (bool, error) {
	dir, bin, cleanup, err := svcrun.Workdir(ctx, "soak", o.binary, o.keep, stderr)
	if err != nil {
		return false, err
	}
	defer cleanup()

	token := rand.Text()
	suffix := strings.ToLower(rand.Text()[:8])
	env := []string{
		"LOG_DIR=" + filepath.Join(dir, "logs"),
		"SMARTCLOUDOPS_ADMIN_TOKEN=" + token,
		"CACHE_KEY_PREFIX=smartcloudops-soak-" + suffix + ":",
	}
	storeNote := "SQLite (temporary file)"
	var pgURL, appName string
	if o.postgres != "" {
		appName = "smartcloudops-soak-" + suffix
		var drop func()
		if pgURL, drop, err = pgSchema(ctx, o.postgres, "soak_"+suffix, appName); err != nil {
			return false, err
		}
		defer drop()
		env = append(env, "DATABASE_URL="+pgURL)
		storeNote = "PostgreSQL " + svcrun.Redacted(o.postgres) + ", schema soak_" + suffix
	} else {
		env = append(env, "DATABASE_URL=sqlite://"+filepath.Join(dir, "soak.db"))
	}
	redisURL, redisNote := svcrun.UsableRedis("soak", o.redisURL, stderr)
	if redisURL != "" {
		env = append(env, "REDIS_URL="+redisURL)
	}
	svc, err := svcrun.Start(ctx, svcrun.Config{Bin: bin, Env: env, StderrPath: filepath.Join(dir, "service.stderr")})
	if err != nil {
		return false, err
	}
	client := &http.Client{Transport: svcrun.LoopbackTransport(o.workers + 2), Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
		_, _, _, _ = svcrun.Fetch(cctx, client, http.MethodPost, svc.Base+"/performance/cache/clear", h, []byte(`{"namespace":"soak"}`))
		if err := svc.Stop(); err != nil {
			fmt.Fprintln(stderr, "soak: stopping the service:", err)
		}
	}()

	ss := watched(pgURL != "")
	m := newMix()
	fmt.Fprintf(stdout, "SmartCloudOps soak\n")
	fmt.Fprintf(stdout, "  service   %s\n", svcrun.Version(ctx, bin))
	fmt.Fprintf(stdout, "  machine   %s\n", svcrun.Machine())
	fmt.Fprintf(stdout, "  store     %s; Redis: %s\n", storeNote, redisNote)
	fmt.Fprintf(stdout, "  load      %d req/s over %d routes (a cycle of %d requests), at most %d in flight, for %s; a sample every %s\n\n",
		o.rate, len(m.routes), len(m.slots), o.workers, o.duration, o.interval)

	c := counts{clientByRoute: map[string]int{}}
	pacer := svcrun.NewPacer(o.rate, o.workers)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadDone sync.WaitGroup
	loadDone.Go(func() {
		pacer.Run(loadCtx, func(i int64) { send(loadCtx, client, svc.Base, token, m.pick(i), i, &c) })
	})
	defer func() { stopLoad(); loadDone.Wait() }()

	start := time.Now()
	var pts []point
	take := func() {
		pt := point{at: time.Since(start), requests: c.requests.Swap(0), clientErrs: c.clientErrs.Swap(0), errs: c.errs.Swap(0)}
		pt.values = sample(ctx, client, svc, token, pgURL, appName)
		pts = append(pts, pt)
		fmt.Fprintf(stderr, "soak: %s %d requests, %v\n", fmtAt(pt.at), pt.requests, pt.values)
	}
	take()
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	// One sample every interval up to the duration (rounded down to whole
	// intervals), the first at the start.
loop:
	for range int(o.duration / o.interval) {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			take()
		}
		if svc.Exited() {
			return false, fmt.Errorf("the service exited during the soak: %s", svc.StderrTail())
		}
	}
	stopLoad()
	loadDone.Wait()

	if err := writeTable(stdout, ss, pts); err != nil {
		return false, err
	}
	warm := warmupOf(o.duration, o.interval)
	at := make([]time.Duration, len(pts))
	for i, p := range pts {
		at[i] = p.at
	}
	vs := make([]verdict, len(ss))
	flat := true
	for i, s := range ss {
		ys := make([]float64, len(pts))
		for j, p := range pts {
			ys[j] = p.values[i]
		}
		vs[i] = judge(at, ys, warm, s.floor)
		flat = flat && vs[i].flat
	}
	fmt.Fprintf(stdout, "\nRule: samples of the first %s (warm-up) are left out; the rest are split into halves by time. A series is flat\n"+
		"when its last half's mean exceeds its first half's by no more than the largest of its floor (RSS and heap 16 MiB,\n"+
		"goroutines and fds 10, connections 4), 10%% of the first half's mean and twice the first half's standard deviation.\n\n", warm)
	if err := writeVerdicts(stdout, ss, vs); err != nil {
		return false, err
	}
	if d := pacer.Dropped(); d > 0 {
		fmt.Fprintf(stdout, "\n%d ticks were not sent because %d requests were already in flight\n", d, o.workers)
	}
	c.mu.Lock()
	if c.firstErr != "" {
		fmt.Fprintln(stdout, "\nfirst error:", c.firstErr)
	}
	if len(c.clientByRoute) > 0 {
		var parts []string
		for k, n := range c.clientByRoute {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, n))
		}
		slices.Sort(parts)
		fmt.Fprintln(stdout, "\n4xx answers:", strings.Join(parts, ", "))
	}
	c.mu.Unlock()
	title := fmt.Sprintf("SmartCloudOps soak: %d req/s for %s, %s, Redis %s", o.rate, o.duration, storeNote, redisNote)
	if err := writeChart(o.png, title, ss, pts, vs, warm.Minutes()); err != nil {
		return false, fmt.Errorf("chart: %w", err)
	}
	fmt.Fprintf(stdout, "\nchart: %s\n", o.png)
	if ctx.Err() != nil {
		return false, errors.New("interrupted; the table shows the samples taken")
	}
	return flat, nil
}

// send makes the i-th request of the mix and counts its answer.
func send(ctx context.Context, client *http.Client, base, token string, r *route, i int64, c *counts) {
	h := http.Header{}
	if r.admin {
		h.Set("Authorization", "Bearer "+token)
	}
	var body []byte
	if r.body != nil {
		body = r.body(i)
		h.Set("Content-Type", "application/json")
	}
	code, _, data, err := svcrun.Fetch(ctx, client, r.method, base+r.path(i), h, body)
	if ctx.Err() != nil {
		return // cut off by the end of the run
	}
	c.requests.Add(1)
	switch {
	case err == nil && (code/100 == 2 || code == r.expect):
	case err == nil && code/100 == 4:
		c.clientErrs.Add(1)
		c.mu.Lock()
		c.clientByRoute[fmt.Sprintf("%s %d", r.name, code)]++
		c.mu.Unlock()
	default:
		c.errs.Add(1)
		c.mu.Lock()
		if c.firstErr == "" {
			if err != nil {
				c.firstErr = fmt.Sprintf("%s: %v", r.name, err)
			} else {
				c.firstErr = fmt.Sprintf("%s: %d %s", r.name, code, svcrun.ProblemDetail(data))
			}
		}
		c.mu.Unlock()
	}
}

// sample takes one reading of every watched series; a reading that fails
// is NaN (shown as "-") rather than a guess.
func sample(ctx context.Context, client *http.Client, svc *svcrun.Service, token, pgURL, appName string) []float64 {
	rss, _ := rssMiB(svc.PID())
	pm := procMetrics{goroutines: math.NaN(), openFDs: math.NaN(), heapMiB: math.NaN(), dbConns: math.NaN()}
	h := http.Header{"Authorization": {"Bearer " + token}}
	if code, _, body, err := svcrun.Fetch(ctx, client, http.MethodGet, svc.Base+"/performance/metrics", h, nil); err == nil && code == http.StatusOK {
		if parsed, err := parseMetrics(body); err == nil {
			pm = parsed
		}
	}
	vals := []float64{rss, pm.heapMiB, pm.goroutines, pm.openFDs, pm.dbConns}
	if pgURL != "" {
		vals = append(vals, pgBackends(ctx, pgURL, appName))
	}
	return vals
}

// pgSchema makes a schema of its own on the server at base and returns a
// URL whose search_path points at it and whose application_name marks the
// service's connections in pg_stat_activity, and a function dropping it.
func pgSchema(ctx context.Context, base, schema, appName string) (string, func(), error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres %s: %w", svcrun.Redacted(base), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(dctx, base); err == nil {
			_, _ = c.Exec(dctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(dctx)
		}
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// pgBackends counts the server's connections from the service, found by
// the application_name pgSchema put in its URL.
func pgBackends(ctx context.Context, pgURL, appName string) float64 {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u, _ := url.Parse(pgURL)
	q := u.Query()
	q.Set("application_name", appName+"-sampler")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(cctx, u.String())
	if err != nil {
		return math.NaN()
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(cctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&n); err != nil {
		return math.NaN()
	}
	return float64(n)
}
