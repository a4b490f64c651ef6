package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// reading is a target's counters at one moment.
type reading struct {
	stored, scored, kept       float64
	storedOK, scoredOK, keptOK bool
	// cpu is the target's CPU seconds: from /proc when its pid is known,
	// else process_cpu_seconds_total.
	cpu   float64
	cpuOK bool
	raw   scrape
}

// target is where a run sends: the service or the floor.
type target struct {
	name string
	snd  *sender
	read func(ctx context.Context) (reading, error)
}

// runStats is one measured run with what the counters and /proc say
// about it.
type runStats struct {
	res result
	// window is the run plus the time the counters took to settle after it:
	// the service may still be storing or scoring what it acknowledged.
	window                     time.Duration
	stored, scored, kept, cpu  float64
	storedOK, scoredOK, keptOK bool
	cpuOK                      bool
	machineBusy, machineAll    float64
	selfCPU                    float64
	deltas                     []string
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	u, err := newUniverse(o.series, o.perHost)
	if err != nil {
		return err
	}
	start := time.Now().Add(-o.history).Truncate(time.Second)
	limit := time.Now().Add(-time.Minute)
	transport := svcrun.LoopbackTransport(o.shards + 2)
	defer transport.CloseIdleConnections()
	metricsClient := &http.Client{Transport: svcrun.LoopbackTransport(2), Timeout: 30 * time.Second}

	var (
		targets   []*target
		svcNote   = "none (-floor-only)"
		storeNote = "-"
		svcPID    int
	)
	if !o.floorOnly {
		base, header, pid, note, stop, err := startOrUseService(ctx, o, stderr)
		if err != nil {
			return err
		}
		defer stop()
		svcPID, svcNote, storeNote = pid, base, note
		if err := probe(ctx, base, transport, header, time.Now().Add(-5*time.Minute)); err != nil {
			return err
		}
		snd, err := newSender(senderConfig{base: base, transport: transport, header: header, universe: u, shards: o.shards,
			batch: o.batch, start: start, interval: o.interval, retries: o.retries, limit: limit, capacity: o.capacity})
		if err != nil {
			return err
		}
		metricsURL := base + o.metricsPath
		targets = append(targets, &target{name: "service", snd: snd, read: func(ctx context.Context) (reading, error) {
			sc, err := fetchScrape(ctx, metricsClient, metricsURL, header)
			if err != nil {
				return reading{}, err
			}
			r := reading{raw: sc}
			r.stored, r.storedOK = sumAll(sc, o.stored)
			r.scored, r.scoredOK = sumAll(sc, o.scored)
			r.kept, r.keptOK = sumAll(sc, o.kept)
			if pid > 0 {
				r.cpu, err = procCPU(pid)
				r.cpuOK = err == nil
			} else {
				r.cpu, r.cpuOK = sc.sum(counterSel{name: "process_cpu_seconds_total"})
			}
			return r, nil
		}})
	}
	floorNote := "off"
	if o.floor != "off" {
		fl, err := startFloor(ctx, o.floor)
		if err != nil {
			return err
		}
		defer fl.close()
		floorNote = map[string]string{"process": "child process", "inprocess": "in the generator's process"}[o.floor]
		snd, err := newSender(senderConfig{base: fl.base, transport: transport, universe: u, shards: o.shards,
			batch: o.batch, start: start, interval: o.interval, retries: o.retries, limit: limit, capacity: o.capacity})
		if err != nil {
			return err
		}
		statsURL := fl.base + "/floor/stats"
		targets = append(targets, &target{name: "floor", snd: snd, read: func(ctx context.Context) (reading, error) {
			fs, err := fetchFloorStats(ctx, metricsClient, statsURL)
			if err != nil {
				return reading{}, err
			}
			r := reading{stored: float64(fs.Samples), storedOK: true}
			r.cpu, err = procCPU(fl.pid)
			r.cpuOK = err == nil
			return r, nil
		}})
	}

	fmt.Fprintf(stdout, "SmartCloudOps remote_write benchmark\n")
	fmt.Fprintf(stdout, "  service   %s\n", svcNote)
	fmt.Fprintf(stdout, "  store     %s\n", storeNote)
	fmt.Fprintf(stdout, "  floor     snappy + prompb.WriteRequest unmarshal (client_golang exp/api/remote handler), %s\n", floorNote)
	fmt.Fprintf(stdout, "  machine   %s\n", svcrun.Machine())
	fmt.Fprintf(stdout, "  load      %d series = %d hosts × %d, scrape every %s simulated from %s, %d shards closed loop (capacity %d), %d samples a request, %d retries\n",
		o.series, u.hosts, o.perHost, o.interval, start.UTC().Format(time.RFC3339), o.shards, o.capacity, o.batch, o.retries)
	fmt.Fprintf(stdout, "  runs      %s each after %s warm-up, %d repeats, medians shown\n\n", o.duration, o.warmup, o.repeats)

	var stopPerf func() error
	if o.perf != "" && svcPID > 0 {
		if stopPerf, err = startPerf(ctx, o.perf, svcPID, stderr); err != nil {
			return err
		}
	}
	runs := make([][]runStats, len(targets))
	for rep := range o.repeats {
		for k := range targets {
			// Alternate which side goes first so a drift over the run (a
			// growing database, a warming CPU) does not favour one of them.
			i := k
			if rep%2 == 1 {
				i = len(targets) - 1 - k
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(stderr, "remotewrite: run %d/%d %s\n", rep+1, o.repeats, targets[i].name)
			rs, err := measure(ctx, o, targets[i])
			if err != nil {
				return fmt.Errorf("%s run %d: %w", targets[i].name, rep+1, err)
			}
			runs[i] = append(runs[i], rs)
		}
	}
	if stopPerf != nil {
		if err := stopPerf(); err != nil {
			fmt.Fprintln(stderr, "remotewrite: perf:", err)
		}
	}
	report(stdout, o, u, targets, runs)
	if o.perf != "" && svcPID > 0 {
		perfReport(ctx, stdout, o.perf)
	}
	return nil
}

func sumAll(sc scrape, sels []counterSel) (float64, bool) {
	var v float64
	var any bool
	for _, s := range sels {
		if x, ok := sc.sum(s); ok {
			v += x
			any = true
		}
	}
	return v, any
}

// measure warms up, lets the warm-up's backlog drain, then runs once and
// waits for the counters to settle.
func measure(ctx context.Context, o options, t *target) (runStats, error) {
	if o.warmup > 0 {
		t.snd.run(ctx, o.warmup)
		if _, _, err := settle(ctx, t, o.settle); err != nil {
			return runStats{}, err
		}
	}
	before, err := t.read(ctx)
	if err != nil {
		return runStats{}, err
	}
	busy0, all0, _ := machineCPU()
	self0, _ := procCPU(os.Getpid())
	res := t.snd.run(ctx, o.duration)
	after, settled, err := settle(ctx, t, o.settle)
	if err != nil {
		return runStats{}, err
	}
	window := res.elapsed + settled
	busy1, all1, _ := machineCPU()
	self1, _ := procCPU(os.Getpid())
	rs := runStats{res: res, window: window,
		stored: after.stored - before.stored, storedOK: after.storedOK,
		scored: after.scored - before.scored, scoredOK: after.scoredOK,
		kept: after.kept - before.kept, keptOK: after.keptOK,
		cpu: after.cpu - before.cpu, cpuOK: before.cpuOK && after.cpuOK,
		machineBusy: busy1 - busy0, machineAll: all1 - all0, selfCPU: self1 - self0,
	}
	if after.raw != nil {
		rs.deltas = deltas(before.raw, after.raw, o.counters)
	}
	return rs, nil
}

// settle polls the target's counters until what it stored and scored
// stops moving for two polls in a row, at most limit, and returns the last
// reading and how long the wait was.
func settle(ctx context.Context, t *target, limit time.Duration) (reading, time.Duration, error) {
	const poll = 250 * time.Millisecond
	start := time.Now()
	prev, err := t.read(ctx)
	if err != nil {
		return reading{}, 0, err
	}
	still := 0
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return reading{}, 0, ctx.Err()
		case <-time.After(poll):
		}
		cur, err := t.read(ctx)
		if err != nil {
			return reading{}, 0, err
		}
		if cur.stored == prev.stored && cur.scored == prev.scored && cur.kept == prev.kept {
			still++
		} else {
			still = 0
		}
		prev = cur
		if still >= 2 {
			// The two quiet polls are not part of the work.
			return cur, max(time.Since(start)-2*poll, 0), nil
		}
	}
	return prev, time.Since(start), nil
}

// startOrUseService returns the receiver's base URL, the header its
// requests need and, when this command started it, its pid; stop ends what
// was started.
func startOrUseService(ctx context.Context, o options, stderr io.Writer) (base string, header http.Header, pid int, storeNote string, stop func(), err error) {
	header = http.Header{}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || u.Host == "" {
			return "", nil, 0, "", nil, fmt.Errorf("-url %q: not a URL", o.url)
		}
		if o.token != "" {
			header.Set("Authorization", "Bearer "+o.token)
		}
		return strings.TrimRight(o.url, "/"), header, 0, "(the running service's own; CPU from its process_cpu_seconds_total)", func() {}, nil
	}
	dir, bin, cleanup, err := svcrun.Workdir(ctx, "remotewrite", o.binary, o.keep, stderr)
	if err != nil {
		return "", nil, 0, "", nil, err
	}
	token := rand.Text()
	env := []string{
		"LOG_DIR=" + filepath.Join(dir, "logs"),
		"SMARTCLOUDOPS_ADMIN_TOKEN=" + token,
		"CACHE_KEY_PREFIX=smartcloudops-rwbench-" + strings.ToLower(rand.Text()[:8]) + ":",
		// Shards of one client send every request: the per-client write
		// limit would measure itself, not the receiver.
		"SMARTCLOUDOPS_WRITE_RATE_LIMIT=0",
	}
	storeNote = "SQLite (temporary file)"
	if o.db == "postgres" {
		if err := freshDatabase(ctx, o.postgres); err != nil {
			cleanup()
			return "", nil, 0, "", nil, err
		}
		env = append(env, "DATABASE_URL="+o.postgres)
		storeNote = "PostgreSQL " + svcrun.Redacted(o.postgres)
	} else {
		env = append(env, "DATABASE_URL=sqlite://"+filepath.Join(dir, "bench.db"))
	}
	redisURL, redisNote := svcrun.UsableRedis("remotewrite", o.redisURL, stderr)
	if redisURL != "" {
		env = append(env, "REDIS_URL="+redisURL)
	}
	storeNote += "; Redis: " + redisNote
	env = append(env, o.env...)
	svc, err := svcrun.Start(ctx, svcrun.Config{Bin: bin, Env: env, StderrPath: filepath.Join(dir, "service.stderr")})
	if err != nil {
		cleanup()
		return "", nil, 0, "", nil, err
	}
	header.Set("Authorization", "Bearer "+token)
	stop = func() {
		if err := svc.Stop(); err != nil {
			fmt.Fprintln(stderr, "remotewrite: stopping the service:", err)
		}
		cleanup()
	}
	return svc.Base, header, svc.PID(), storeNote + "; " + svcrun.Version(ctx, bin), stop, nil
}

// freshDatabase drops and recreates the database rawURL names when its
// name starts with bench_ (so every run starts from empty tables), and
// creates it when missing otherwise.
func freshDatabase(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("-postgres: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.ContainsAny(name, `"/`) {
		return fmt.Errorf("-postgres %s: name a database", svcrun.Redacted(rawURL))
	}
	admin := *u
	admin.Path = "/postgres"
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin.String())
	if err != nil {
		return fmt.Errorf("-postgres %s: %w", svcrun.Redacted(admin.String()), err)
	}
	defer conn.Close(cctx)
	ident := pgx.Identifier{name}.Sanitize()
	if strings.HasPrefix(name, "bench_") {
		if _, err := conn.Exec(cctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
	} else {
		var exists bool
		if err := conn.QueryRow(cctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			return fmt.Errorf("look up database %s: %w", name, err)
		}
		if exists {
			return nil
		}
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
