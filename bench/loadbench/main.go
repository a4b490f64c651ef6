// Command loadbench measures SmartCloudOps under concurrent load beside a
// bare net/http handler, in the same run, and prints a table of throughput
// and latency quantiles with their ratios to the bare handler.
//
// It builds the service from the working tree, starts it on a free loopback
// port with a temporary SQLite file (and the local Redis when reachable),
// waits for /readyz, and then, for each endpoint, alternates closed-loop
// runs against the service and against a handler served by this process
// that answers with a body of the same size. Every measurement is repeated
// and the table shows medians. Usage:
//
//	go run ./bench/loadbench [-duration 5s] [-connections 16] [-repeats 3]
//
// See bench/README.md for how to read the table.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if manifest := os.Getenv(bareChildEnv); manifest != "" {
		// Started by startBare as the bare handler's own process.
		os.Exit(serveBareChild(ctx, manifest, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	duration    time.Duration
	warmup      time.Duration
	connections int
	repeats     int
	requests    int64
	batch       int
	valueSize   int
	redisURL    string
	binary      string
	only        string
	keep        bool
	bare        string
}

// Bounds keep a mistyped flag from turning the benchmark into a soak test
// of a shared machine.
const (
	maxConnections = 512
	maxDuration    = 5 * time.Minute
	maxRepeats     = 25
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured run before each measured one (opens connections, warms caches)")
	fs.IntVar(&o.connections, "connections", 16, "concurrent connections, each with one request in flight")
	fs.IntVar(&o.repeats, "repeats", 3, "measured runs per endpoint and target; the table shows medians")
	fs.Int64Var(&o.requests, "requests", 0, "stop each run after this many requests (0: run for -duration)")
	fs.IntVar(&o.batch, "batch", 50, "samples per batched detect and per ingest request")
	fs.IntVar(&o.valueSize, "value-size", 512, "bytes of the cached value read by the cache GET")
	fs.StringVar(&o.redisURL, "redis", svcrun.DefaultRedisURL(), `Redis for the service's shared tier, used when reachable; "" for none`)
	fs.StringVar(&o.binary, "binary", "", "run this smartcloudops binary instead of building the working tree")
	fs.StringVar(&o.only, "only", "", "comma-separated endpoints to run (health, cache-get, detect-single, detect-batch, ingest)")
	fs.StringVar(&o.bare, "bare", "process", `where the bare handler runs: "process" (a child process, like the service) or "inprocess" (in the generator's own runtime)`)
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, logs, service stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0 || o.duration > maxDuration:
		return o, fmt.Errorf("-duration %s: must be in (0, %s]", o.duration, maxDuration)
	case o.warmup < 0 || o.warmup > maxDuration:
		return o, fmt.Errorf("-warmup %s: must be in [0, %s]", o.warmup, maxDuration)
	case o.connections < 1 || o.connections > maxConnections:
		return o, fmt.Errorf("-connections %d: must be in [1, %d]", o.connections, maxConnections)
	case o.repeats < 1 || o.repeats > maxRepeats:
		return o, fmt.Errorf("-repeats %d: must be in [1, %d]", o.repeats, maxRepeats)
	case o.requests < 0:
		return o, errors.New("-requests: must not be negative")
	case o.batch < 2 || o.batch > 1000:
		return o, fmt.Errorf("-batch %d: must be in [2, 1000]", o.batch)
	case o.bare != "process" && o.bare != "inprocess":
		return o, fmt.Errorf("-bare %q: must be process or inprocess", o.bare)
	case o.valueSize < 1 || o.valueSize > 1<<20:
		return o, fmt.Errorf("-value-size %d: must be in [1, 1MiB]", o.valueSize)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return svcrun.Run(ctx, "loadbench", args, stderr, parseFlags, func(ctx context.Context, o options) error {
		return bench(ctx, o, stdout, stderr)
	})
}

// scenario is one endpoint of the service, probed before it is measured.
type scenario struct {
	name   string
	method string
	path   string
	admin  bool
	body   func(i int64) []byte
	// what describes the request in the table's notes.
	what string
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	dir, bin, cleanup, err := svcrun.Workdir(ctx, "loadbench", o.binary, o.keep, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	version := svcrun.Version(ctx, bin)
	redisURL, redisNote := svcrun.UsableRedis("loadbench", o.redisURL, stderr)
	token := rand.Text()
	env := []string{
		"DATABASE_URL=sqlite://" + filepath.Join(dir, "bench.db"),
		"LOG_DIR=" + filepath.Join(dir, "logs"),
		"SMARTCLOUDOPS_ADMIN_TOKEN=" + token,
		"CACHE_KEY_PREFIX=smartcloudops-loadbench-" + strings.ToLower(rand.Text()[:8]) + ":",
		// One client sends every request: the per-client write limit would
		// measure itself, not the service.
		"SMARTCLOUDOPS_WRITE_RATE_LIMIT=0",
	}
	if redisURL != "" {
		env = append(env, "REDIS_URL="+redisURL)
	}
	svc, err := svcrun.Start(ctx, svcrun.Config{Bin: bin, Env: env, StderrPath: filepath.Join(dir, "service.stderr")})
	if err != nil {
		return err
	}
	defer func() {
		if err := svc.Stop(); err != nil {
			fmt.Fprintln(stderr, "loadbench: stopping the service:", err)
		}
	}()

	probeClient := &http.Client{Timeout: 10 * time.Second}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	jsonAuth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	jsonOnly := http.Header{"Content-Type": {"application/json"}}

	// The cached GET reads one key written once up front; a long TTL keeps it
	// for the whole run, and the namespace is cleared at the end.
	value := cachedValue(o.valueSize)
	cacheKey := "/performance/cache/loadbench/hot"
	code, _, b, err := svcrun.Fetch(ctx, probeClient, http.MethodPut, svc.Base+cacheKey+"?ttl=3600", jsonAuth, value)
	if err != nil || code/100 != 2 {
		return fmt.Errorf("PUT %s: %d %v %s", cacheKey, code, err, b)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _, _ = svcrun.Fetch(cctx, probeClient, http.MethodPost, svc.Base+"/performance/cache/clear", jsonAuth, []byte(`{"namespace":"loadbench"}`))
	}()

	gen := newSamples(time.Now())
	scenarios := []scenario{
		{name: "health", method: http.MethodGet, path: "/performance/health", what: "GET, checks database and Redis"},
		{name: "cache-get", method: http.MethodGet, path: cacheKey, admin: true, what: fmt.Sprintf("GET of one %d-byte value", o.valueSize)},
		{name: "detect-single", method: http.MethodPost, path: "/performance/anomaly/detect", what: "POST, 1 sample",
			body: func(i int64) []byte { return gen.single(i) }},
		{name: "detect-batch", method: http.MethodPost, path: "/performance/anomaly/detect", what: fmt.Sprintf("POST, %d samples", o.batch),
			body: func(i int64) []byte { return gen.batch(i, o.batch) }},
		{name: "ingest", method: http.MethodPost, path: "/api/v1/metrics", admin: true, what: fmt.Sprintf("POST, %d samples", o.batch),
			body: func(i int64) []byte { return gen.batch(i, o.batch) }},
	}
	if o.only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(o.only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		scenarios = slices.DeleteFunc(scenarios, func(s scenario) bool { return !keep[s.name] })
		if len(scenarios) == 0 {
			return fmt.Errorf("-only %q names no endpoint", o.only)
		}
	}

	type pair struct {
		sc       scenario
		svc, raw target
		note     string
		svcRuns  []measurement
		bareRuns []measurement
	}
	var (
		pairs       []*pair
		unavailable []string
		bodies      []bareBody
	)
	for _, sc := range scenarios {
		h := http.Header{}
		switch {
		case sc.admin && sc.body != nil:
			h = jsonAuth
		case sc.admin:
			h = auth
		case sc.body != nil:
			h = jsonOnly
		}
		var probeBody []byte
		if sc.body != nil {
			// A sample far from the measured ones, so probing leaves no state they reuse.
			probeBody = sc.body(1 << 40)
		}
		code, hdr, body, err := svcrun.Fetch(ctx, probeClient, sc.method, svc.Base+sc.path, h, probeBody)
		if err != nil {
			return fmt.Errorf("probe %s: %w", sc.name, err)
		}
		if code != http.StatusOK {
			unavailable = append(unavailable, fmt.Sprintf("%-14s not available: %s %s answers %d %s", sc.name, sc.method, sc.path, code, svcrun.ProblemDetail(body)))
			continue
		}
		note := sc.what
		if xc := hdr.Get("X-Cache"); xc != "" {
			note += ", X-Cache " + xc
		}
		bodies = append(bodies, bareBody{Name: sc.name, ContentType: hdr.Get("Content-Type"), Body: body})
		pairs = append(pairs, &pair{
			sc:   sc,
			svc:  target{method: sc.method, url: svc.Base + sc.path, header: h, body: sc.body, want: http.StatusOK},
			raw:  target{method: sc.method, path: barePath(sc.name), header: h, body: sc.body, want: http.StatusOK},
			note: fmt.Sprintf("%s; %d-byte answer", note, len(body)),
		})
	}
	if len(pairs) == 0 {
		return errors.New("no endpoint answered its probe:\n" + strings.Join(unavailable, "\n"))
	}
	bare, err := startBare(ctx, o.bare, dir, bodies)
	if err != nil {
		return err
	}
	defer bare.close()
	for _, p := range pairs {
		p.raw.url = bare.base + p.raw.path
	}

	fmt.Fprintf(stdout, "SmartCloudOps load benchmark\n")
	fmt.Fprintf(stdout, "  service   %s\n", version)
	fmt.Fprintf(stdout, "  machine   %s/%s, %d CPUs, GOMAXPROCS %d (generator), %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(stdout, "  bare      net/http handler writing the same bytes, %s\n", map[string]string{
		"process": "in its own process", "inprocess": "in the generator's process"}[o.bare])
	fmt.Fprintf(stdout, "  store     SQLite (temporary file); Redis: %s\n", redisNote)
	fmt.Fprintf(stdout, "  load      %d connections, closed loop, %s per run after %s warm-up, %d repeats, medians shown",
		o.connections, o.duration, o.warmup, o.repeats)
	if o.requests > 0 {
		fmt.Fprintf(stdout, ", at most %d requests per run", o.requests)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout)

	measure := func(tg target) measurement {
		tr := svcrun.LoopbackTransport(o.connections)
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		if o.warmup > 0 {
			drive(ctx, client, tg, o.connections, o.warmup, o.requests)
		}
		return drive(ctx, client, tg, o.connections, o.duration, o.requests)
	}
	for rep := range o.repeats {
		for _, p := range pairs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(stderr, "loadbench: run %d/%d %s\n", rep+1, o.repeats, p.sc.name)
			// Alternate which side goes first so a drift over the run (a
			// growing database, a warming CPU) does not favour one of them.
			if rep%2 == 0 {
				p.svcRuns = append(p.svcRuns, measure(p.svc))
				p.bareRuns = append(p.bareRuns, measure(p.raw))
			} else {
				p.bareRuns = append(p.bareRuns, measure(p.raw))
				p.svcRuns = append(p.svcRuns, measure(p.svc))
			}
		}
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\ttarget\treq/s\tp50\tp90\tp99\tmax\terrors\treq/s ratio\tp99 ratio\t")
	var notes []string
	var goal string
	for _, p := range pairs {
		s, b := summarize(p.svcRuns), summarize(p.bareRuns)
		var thr, lat []float64
		for i := range p.svcRuns {
			br, bp := p.bareRuns[i].rps(), p.bareRuns[i].quantile(0.99)
			if br > 0 && bp > 0 {
				thr = append(thr, p.svcRuns[i].rps()/br)
				lat = append(lat, float64(p.svcRuns[i].quantile(0.99))/float64(bp))
			}
		}
		tRatio, pRatio := median(thr), median(lat)
		fmt.Fprintf(tw, "%s\tservice\t%s\t%s\t%s\t%s\t%s\t%d\t%.2f\t%.2f\t\n", p.sc.name, s.rps, s.p50, s.p90, s.p99, s.max, s.errors, tRatio, pRatio)
		fmt.Fprintf(tw, "\tbare\t%s\t%s\t%s\t%s\t%s\t%d\t\t\t\n", b.rps, b.p50, b.p90, b.p99, b.max, b.errors)
		notes = append(notes, fmt.Sprintf("%-14s %s", p.sc.name, p.note))
		for _, m := range append(append([]measurement{}, p.svcRuns...), p.bareRuns...) {
			if m.firstErr != "" {
				notes = append(notes, fmt.Sprintf("%-14s first error: %s", "", m.firstErr))
				break
			}
		}
		if p.sc.name == "cache-get" {
			verdict := "met"
			if tRatio < 0.5 || pRatio > 2 {
				verdict = "NOT met"
			}
			goal = fmt.Sprintf("cached GET goal (req/s ratio >= 0.50 and p99 ratio <= 2.00): %s (%.2f, %.2f)", verdict, tRatio, pRatio)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, n := range append(notes, unavailable...) {
		fmt.Fprintln(stdout, n)
	}
	if goal != "" {
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, goal)
	}
	return nil
}

// row is one line of the table, already formatted.
type row struct {
	rps, p50, p90, p99, max string
	errors                  int64
}

// summarize takes the median of each figure over the repeats and the sum of
// the errors.
func summarize(ms []measurement) row {
	var rps, p50, p90, p99, mx []float64
	var errs int64
	for _, m := range ms {
		rps = append(rps, m.rps())
		p50 = append(p50, float64(m.quantile(0.50)))
		p90 = append(p90, float64(m.quantile(0.90)))
		p99 = append(p99, float64(m.quantile(0.99)))
		mx = append(mx, float64(m.quantile(1)))
		errs += m.errors
	}
	d := func(xs []float64) string { return svcrun.FmtDuration(time.Duration(median(xs))) }
	return row{rps: strconv.FormatFloat(median(rps), 'f', 0, 64), p50: d(p50), p90: d(p90), p99: d(p99), max: d(mx), errors: errs}
}

// samples generates metric samples: distinct hosts and increasing
// timestamps per request, so ingest does not collapse into duplicate
// skips and detect does not answer every request from its result cache.
type samples struct {
	base time.Time
}

const benchHosts = 64

func newSamples(now time.Time) *samples {
	// A day back leaves room for many hours of samples before they would
	// reach the future the API rejects.
	return &samples{base: now.Add(-24 * time.Hour).Truncate(time.Second)}
}

func (s *samples) append(dst []byte, g int64) []byte {
	host := g % benchHosts
	// Wrap after 20 hours of sample time; samples that then repeat are
	// skipped as duplicates by ingest, which is also real behaviour.
	ts := s.base.Add(time.Duration((g/benchHosts)%(20*3600)) * time.Second)
	// Values follow a smooth daily-ish shape per host with a little
	// deterministic jitter: the detectors see plausible series.
	j := float64((g*2654435761)%1000) / 1000
	cpu := 30 + 20*float64(host%5)/5 + 10*j
	dst = append(dst, `{"host":"loadbench-`...)
	dst = strconv.AppendInt(dst, host, 10)
	dst = append(dst, `","timestamp":`...)
	dst = strconv.AppendInt(dst, ts.Unix(), 10)
	dst = append(dst, `,"metrics":{"cpu_usage":`...)
	dst = strconv.AppendFloat(dst, cpu, 'f', 2, 64)
	dst = append(dst, `,"memory_usage":`...)
	dst = strconv.AppendFloat(dst, 55+5*j, 'f', 2, 64)
	dst = append(dst, `,"disk_usage":`...)
	dst = strconv.AppendFloat(dst, 70+float64(host%3), 'f', 2, 64)
	dst = append(dst, `,"load_average":`...)
	dst = strconv.AppendFloat(dst, cpu/25, 'f', 2, 64)
	dst = append(dst, `,"response_time_ms":`...)
	dst = strconv.AppendFloat(dst, 80+40*j, 'f', 1, 64)
	return append(dst, `}}`...)
}

func (s *samples) single(i int64) []byte { return s.append(make([]byte, 0, 256), i) }

func (s *samples) batch(i int64, n int) []byte {
	dst := make([]byte, 0, 220*n+16)
	dst = append(dst, `{"samples":[`...)
	for j := range int64(n) {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = s.append(dst, i*int64(n)+j)
	}
	return append(dst, `]}`...)
}

// cachedValue is a JSON document of about n bytes.
func cachedValue(n int) []byte {
	const head, tail = `{"v":"`, `"}`
	if n <= len(head)+len(tail) {
		return []byte(strings.Repeat("x", n))
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}
