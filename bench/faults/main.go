// Command faults runs SmartCloudOps through a matrix of dependency and
// process faults under a steady mixed load, and checks that nothing it
// acknowledged was lost.
//
// It builds the service, starts a private redis-server and a private
// PostgreSQL cluster on free loopback ports, runs the service on them, and
// for each fault in turn injects it, keeps the load up, removes it, waits
// for health to be UP again, and then looks for every acknowledged write:
// each ingested sample in system_metrics (read from PostgreSQL directly)
// and each cache PUT read back through the API. Usage:
//
//	go run ./bench/faults [-rate 100] [-hold 5s] [-only redis-kill,pg-kill]
//
// It prints one table and exits 1 when acknowledged data was lost. See
// bench/README.md and docs/reliability.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func main() { svcrun.Main(run) }

// options are the command's flags.
type options struct {
	rate             int
	workers          int
	lead, hold, tail time.Duration
	recoverWithin    time.Duration
	timeout          time.Duration
	slowStall        time.Duration
	logTmpfs         string
	durabilityHeader string
	nonDurable       string
	binary           string
	only             string
	keep             bool
}

// Bounds keep the whole matrix to a few minutes of loopback traffic.
const (
	maxRate = 2000
	maxHold = time.Minute
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rate, "rate", 100, "requests a second of the mixed load (ingest, cache PUT, cache GET, detect in turn)")
	fs.IntVar(&o.workers, "workers", 64, "most requests in flight; a tick that finds all busy is not sent, and counted")
	fs.DurationVar(&o.lead, "lead", 2*time.Second, "load before each fault goes in")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "how long each fault stays in")
	fs.DurationVar(&o.tail, "tail", 2*time.Second, "load after recovery, before the phase's writes are checked")
	fs.DurationVar(&o.recoverWithin, "recover-within", time.Minute, "longest wait for health UP after a fault is removed")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout of the load")
	fs.DurationVar(&o.slowStall, "slow-stall", 400*time.Millisecond, "redis-slow: each DEBUG SLEEP (the service's REDIS_TIMEOUT is 500ms)")
	fs.StringVar(&o.logTmpfs, "log-tmpfs", "32m", `size of the tmpfs mounted for LOG_DIR when running as root ("" to use a plain directory and skip log-full)`)
	fs.StringVar(&o.durabilityHeader, "durability-header", "X-Cache-Durability", "answer header of a cache PUT that says whether the write outlives a Redis outage")
	fs.StringVar(&o.nonDurable, "non-durable", "memory", "comma-separated values of -durability-header that mark a write as not durable: reported, not counted as lost")
	fs.StringVar(&o.binary, "binary", "", "run this smartcloudops binary instead of building the working tree")
	fs.StringVar(&o.only, "only", "", "comma-separated faults to run (default all): "+strings.Join(faultNames(), ", "))
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (service, Redis and PostgreSQL logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.rate < 1 || o.rate > maxRate:
		return o, fmt.Errorf("-rate %d: must be in [1, %d]", o.rate, maxRate)
	case o.workers < 1 || o.workers > 512:
		return o, fmt.Errorf("-workers %d: must be in [1, 512]", o.workers)
	case o.hold <= 0 || o.hold > maxHold, o.lead < 0 || o.lead > maxHold, o.tail < 0 || o.tail > maxHold:
		return o, fmt.Errorf("-lead, -hold, -tail: must be at most %s (and -hold above 0)", maxHold)
	case o.recoverWithin <= 0 || o.recoverWithin > 5*time.Minute:
		return o, errors.New("-recover-within: must be in (0, 5m]")
	case o.timeout <= 0 || o.timeout > time.Minute:
		return o, errors.New("-timeout: must be in (0, 1m]")
	case o.slowStall <= 0 || o.slowStall > 5*time.Second:
		return o, errors.New("-slow-stall: must be in (0, 5s]")
	}
	if o.only != "" {
		for _, n := range strings.Split(o.only, ",") {
			if !slices.Contains(faultNames(), strings.TrimSpace(n)) {
				return o, fmt.Errorf("-only: unknown fault %q (known: %s)", n, strings.Join(faultNames(), ", "))
			}
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return svcrun.Run(ctx, "faults", args, stderr, parseFlags, func(ctx context.Context, o options) error {
		lost, err := matrix(ctx, o, stdout, stderr)
		if err == nil && lost > 0 {
			fmt.Fprintf(stdout, "\nFAIL: %d acknowledged writes were lost\n", lost)
			return svcrun.ErrVerdict
		}
		return err
	})
}

// rig is the running system the faults act on.
type rig struct {
	o      options
	dir    string
	logDir string
	tmpfs  bool
	redis  *redisProc
	pg     *pgCluster
	svcCfg svcrun.Config
	svcMu  sync.Mutex
	svc    *svcrun.Service
	gen    *loadGen
	client *http.Client
	stderr io.Writer
}

func (r *rig) service() *svcrun.Service {
	r.svcMu.Lock()
	defer r.svcMu.Unlock()
	return r.svc
}

func matrix(ctx context.Context, o options, stdout, stderr io.Writer) (lost int, err error) {
	if why := pgAvailable(); why != "" {
		return 0, errors.New("cannot run: " + why)
	}
	r := &rig{o: o, stderr: stderr, client: &http.Client{Transport: svcrun.LoopbackTransport(8), Timeout: 5 * time.Second}}
	var bin string
	var cleanup func()
	if r.dir, bin, cleanup, err = svcrun.Workdir(ctx, "faults", o.binary, o.keep, stderr); err != nil {
		return 0, err
	}
	defer cleanup()
	version := svcrun.Version(ctx, bin)

	redisAddr, err := svcrun.FreeLoopbackAddr()
	if err != nil {
		return 0, err
	}
	if r.redis, err = startRedis(ctx, r.dir, redisAddr); err != nil {
		return 0, err
	}
	defer func() { r.redis.kill() }()

	pgPort, err := freePort()
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(stderr, "faults: initdb and start a private PostgreSQL …")
	if r.pg, err = newPGCluster(ctx, pgPort); err != nil {
		return 0, err
	}
	defer func() {
		if o.keep {
			_ = r.pg.stop(context.Background(), "immediate")
			return
		}
		r.pg.remove()
	}()

	r.logDir = filepath.Join(r.dir, "logs")
	if err := os.Mkdir(r.logDir, 0o755); err != nil {
		return 0, err
	}
	tmpfsNote := "a plain directory"
	if why := mountTmpfs(r.logDir, o.logTmpfs); why == "" {
		r.tmpfs = true
		tmpfsNote = "a " + o.logTmpfs + " tmpfs"
		defer unmount(r.logDir, stderr)
	} else {
		tmpfsNote += " (" + why + ")"
	}

	token := rand.Text()
	r.svcCfg = svcrun.Config{
		Bin:        bin,
		StderrPath: filepath.Join(r.dir, "service.stderr"),
		Env: []string{
			"DATABASE_URL=" + r.pg.url(),
			"REDIS_URL=redis://" + redisAddr + "/0",
			"LOG_DIR=" + r.logDir,
			// Small files keep the log tmpfs from filling by itself.
			"LOG_MAX_FILE_SIZE=1MiB",
			"LOG_MAX_FILES=4",
			"SMARTCLOUDOPS_ADMIN_TOKEN=" + token,
		},
	}
	if r.svc, err = svcrun.Start(ctx, r.svcCfg); err != nil {
		return 0, err
	}
	r.svcCfg.Addr = r.svc.Addr
	defer func() {
		if err := r.service().Stop(); err != nil {
			fmt.Fprintln(stderr, "faults: stopping the service:", err)
		}
	}()
	// Runs before the service is stopped: an interrupt during redis-stop
	// would otherwise leave the service's shutdown waiting on a frozen Redis.
	defer func() { _ = r.redis.signal(syscall.SIGCONT) }()

	runID := strings.ToLower(rand.Text()[:8])
	r.gen = newLoadGen(r.svc.Base, token, runID, o.durabilityHeader, o.nonDurable, o.rate, o.workers, o.timeout)
	defer r.gen.client.CloseIdleConnections()
	if err := r.probe(ctx); err != nil {
		return 0, err
	}
	genCtx, stopGen := context.WithCancel(ctx)
	var genDone sync.WaitGroup
	genDone.Go(func() { r.gen.drive(genCtx) })
	defer func() { stopGen(); genDone.Wait() }()

	fmt.Fprintf(stdout, "SmartCloudOps fault matrix\n")
	fmt.Fprintf(stdout, "  service   %s\n", version)
	fmt.Fprintf(stdout, "  machine   %s\n", svcrun.Machine())
	fmt.Fprintf(stdout, "  stores    private PostgreSQL 15 on 127.0.0.1:%s, private redis-server on %s (no persistence), LOG_DIR on %s\n", pgPort, redisAddr, tmpfsNote)
	fmt.Fprintf(stdout, "  load      %d req/s in turn: ingest (%d samples), cache PUT, cache GET, detect; at most %d in flight\n", o.rate, samplesPerIngest, o.workers)
	fmt.Fprintf(stdout, "  phases    %s load, fault in for %s, removed, wait for health UP (at most %s), %s load, then every acknowledged write is looked up\n\n",
		o.lead, o.hold, o.recoverWithin, o.tail)

	var rows []result
	for _, f := range selectFaults(o.only) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fmt.Fprintf(stderr, "faults: %s …\n", f.name)
		res, err := r.runFault(ctx, f)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f.name, err)
		}
		if res.skipped == "" {
			fmt.Fprintf(stderr, "faults: %s: %d requests, lost %s, recovery %s\n", f.name, res.requests, lostCell(res.loss), svcrun.FmtDuration(res.recovery))
		}
		rows = append(rows, res)
		lost += res.loss.lost()
	}
	if err := writeTable(stdout, rows); err != nil {
		return lost, err
	}
	fmt.Fprintln(stdout)
	for _, res := range rows {
		for _, n := range res.notes {
			fmt.Fprintf(stdout, "%-16s %s\n", res.name, n)
		}
	}
	if d := r.gen.pacer.Dropped(); d > 0 {
		fmt.Fprintf(stdout, "\n%d ticks were not sent because %d requests were already in flight\n", d, o.workers)
	}
	return lost, nil
}

// probe sends one request of each kind and insists on a 200, so a
// misconfigured service fails the run before any fault is counted.
func (r *rig) probe(ctx context.Context) error {
	ph := newPhase("probe")
	for k := range numKinds {
		o := r.gen.one(ctx, k)
		if o.status != http.StatusOK && !(k == kindCacheGet && o.status == http.StatusNotFound) {
			return fmt.Errorf("probe %s: status %d %s: %s", k, o.status, o.err, r.service().StderrTail())
		}
		ph.record(o)
	}
	return nil
}

// runFault is one phase: lead-in, fault in, hold, fault out, recovery,
// tail, quiesce, and the search for every acknowledged write.
func (r *rig) runFault(ctx context.Context, f fault) (result, error) {
	res := result{name: f.name}
	if f.skip != nil {
		if why := f.skip(r); why != "" {
			res.skipped = why
			return res, nil
		}
	}
	ph := newPhase(f.name)
	watch := r.watchHealth(ctx)
	defer watch() // stops the poller on an early return; a second call is harmless
	r.gen.cur.Store(ph)
	if err := sleep(ctx, r.o.lead); err != nil {
		return res, err
	}
	ph.mu.Lock()
	ph.injectedAt = time.Now()
	ph.mu.Unlock()
	if f.inject != nil {
		if err := f.inject(ctx, r); err != nil {
			r.gen.quiesce(r.o.timeout)
			return res, fmt.Errorf("inject: %w", err)
		}
	}
	if err := sleep(ctx, f.holdFor(r.o.hold)); err != nil {
		return res, err
	}
	removedAt := time.Now()
	if f.remove != nil {
		if err := f.remove(ctx, r); err != nil {
			r.gen.quiesce(r.o.timeout)
			return res, fmt.Errorf("remove: %w", err)
		}
	}
	res.recovery = -1
	if upAt, err := r.waitUp(ctx, r.o.recoverWithin); err == nil {
		res.recovery = max(upAt.Sub(removedAt), 0)
		if f.inject == nil {
			res.recovery = 0 // nothing to recover from: shown as "-"
		}
	} else if ctx.Err() != nil {
		return res, ctx.Err()
	} else {
		res.notes = append(res.notes, err.Error())
	}
	if err := sleep(ctx, r.o.tail); err != nil {
		return res, err
	}
	r.gen.quiesce(r.o.timeout + time.Second)
	res.notes = append(res.notes, "health seen: "+watch())

	stored, err := r.storedSamples(ctx)
	if err != nil {
		return res, fmt.Errorf("reading system_metrics: %w", err)
	}
	readable := r.readableKeys(ctx, ph)
	res.loss = ph.account(func(k sampleKey) bool { return stored[k] }, func(p putRecord) bool { return readable[p.key] }, f.wipesCache)
	ph.mu.Lock()
	res.requests, res.classes = ph.requests, ph.classes
	ph.mu.Unlock()
	res.p99 = ph.p99()
	res.notes = append(res.notes, phaseNotes(ph, res.loss)...)
	return res, nil
}

// healthDoc is the part of /performance/health the matrix reads.
type healthDoc struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status string `json:"status"`
	} `json:"components"`
}

// summary is the status with every component that is not UP, e.g.
// "DEGRADED (redis DOWN, cache DEGRADED)".
func (h healthDoc) summary() string {
	var bad []string
	for name, c := range h.Components {
		if c.Status != "UP" && c.Status != "DISABLED" {
			bad = append(bad, name+" "+c.Status)
		}
	}
	slices.Sort(bad)
	if len(bad) == 0 {
		return h.Status
	}
	return h.Status + " (" + strings.Join(bad, ", ") + ")"
}

func (r *rig) health(ctx context.Context) string {
	code, _, body, err := svcrun.Fetch(ctx, r.client, http.MethodGet, r.gen.base+"/performance/health", nil, nil)
	if err != nil {
		return "no answer"
	}
	var h healthDoc
	if json.Unmarshal(body, &h) != nil || h.Status == "" {
		return fmt.Sprintf("status %d", code)
	}
	return h.summary()
}

// waitUp polls health until it says UP with every component UP, and
// returns when that answer's request was sent: the health check's own
// latency under load is not part of the recovery.
func (r *rig) waitUp(ctx context.Context, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		sent := time.Now()
		last := r.health(ctx)
		if last == "UP" {
			return sent, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("not recovered within %s: health %s", limit, last)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// watchHealth polls health every 250 ms until the returned function is
// called, which says the sequence of distinct states seen.
func (r *rig) watchHealth(ctx context.Context) func() string {
	ctx, cancel := context.WithCancel(ctx)
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s := r.health(ctx)
			if ctx.Err() == nil && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
			_ = sleep(ctx, 250*time.Millisecond)
		}
	}()
	return func() string {
		cancel()
		<-done
		return strings.Join(seen, " → ")
	}
}

// storedSamples reads this run's samples straight from PostgreSQL: the
// service's own answers are what is being checked.
func (r *rig) storedSamples(ctx context.Context) (map[sampleKey]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.pg.url())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT host, extract(epoch FROM ts)::bigint FROM system_metrics WHERE host LIKE $1`, "faults-"+r.gen.run+"-%")
	if err != nil {
		return nil, err
	}
	found := map[sampleKey]bool{}
	for rows.Next() {
		var k sampleKey
		if err := rows.Scan(&k.host, &k.ts); err != nil {
			return nil, err
		}
		found[k] = true
	}
	return found, rows.Err()
}

// readableKeys reads every PUT the phase acknowledged back through the
// API and says which returned the bytes written.
func (r *rig) readableKeys(ctx context.Context, ph *phase) map[string]bool {
	ph.mu.Lock()
	puts := slices.Clone(ph.puts)
	ph.mu.Unlock()
	var mu sync.Mutex
	ok := map[string]bool{}
	work := make(chan putRecord)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for p := range work {
				h := http.Header{"Authorization": {"Bearer " + r.gen.token}}
				code, _, body, err := svcrun.Fetch(ctx, r.client, http.MethodGet, r.gen.base+"/performance/cache/faults/"+p.key, h, nil)
				if err == nil && code == http.StatusOK && string(body) == p.value {
					mu.Lock()
					ok[p.key] = true
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range puts {
		work <- p
	}
	close(work)
	wg.Wait()
	return ok
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
