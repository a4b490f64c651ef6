package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// fault is one row of the matrix: how to put it in and take it out.
type fault struct {
	name string
	// wipesCache marks a fault that kills the cache server itself: the
	// writes it held before are gone with it, whatever the service does.
	wipesCache bool
	// noHold: take the fault out as soon as it is in (a supervisor restarts
	// a stopped service at once).
	noHold bool
	skip   func(*rig) string
	inject func(context.Context, *rig) error
	remove func(context.Context, *rig) error
}

func (f fault) holdFor(hold time.Duration) time.Duration {
	if f.noHold {
		return 0
	}
	return hold
}

// faults is the matrix, in the order it runs. A baseline without a fault
// comes first: loss there would be a bug of the generator or the ledger.
func faults() []fault {
	var stallStop context.CancelFunc
	var stallDone chan error
	return []fault{
		{name: "baseline"},
		{
			name:       "redis-kill",
			wipesCache: true,
			inject:     func(_ context.Context, r *rig) error { r.redis.kill(); return nil },
			remove: func(ctx context.Context, r *rig) error {
				rp, err := startRedis(ctx, r.dir, r.redis.addr)
				if err != nil {
					return err
				}
				r.redis = rp
				return nil
			},
		},
		{
			name:   "redis-stop",
			inject: func(_ context.Context, r *rig) error { return r.redis.signal(syscall.SIGSTOP) },
			remove: func(_ context.Context, r *rig) error { return r.redis.signal(syscall.SIGCONT) },
		},
		{
			name: "redis-slow",
			inject: func(ctx context.Context, r *rig) error {
				var sctx context.Context
				sctx, stallStop = context.WithCancel(ctx)
				stallDone = make(chan error, 1)
				go func() { stallDone <- r.redis.stall(sctx, r.o.slowStall, 50*time.Millisecond) }()
				return nil
			},
			remove: func(context.Context, *rig) error {
				stallStop()
				return <-stallDone
			},
		},
		{
			name:   "pg-restart",
			inject: func(ctx context.Context, r *rig) error { return r.pg.stop(ctx, "fast") },
			remove: func(ctx context.Context, r *rig) error { return r.pg.start(ctx) },
		},
		{
			name:   "pg-kill",
			inject: func(_ context.Context, r *rig) error { return r.pg.killPostmaster() },
			remove: func(ctx context.Context, r *rig) error { return r.pg.start(ctx) },
		},
		{
			name: "log-full",
			skip: func(r *rig) string {
				if !r.tmpfs {
					return "LOG_DIR is not on a tmpfs of its own (needs root and mount permission)"
				}
				return ""
			},
			inject: func(_ context.Context, r *rig) error { return fillDisk(filepath.Join(r.logDir, "filler")) },
			remove: func(_ context.Context, r *rig) error { return os.Remove(filepath.Join(r.logDir, "filler")) },
		},
		{
			name:   "service-sigterm",
			noHold: true,
			inject: func(_ context.Context, r *rig) error {
				svc := r.service()
				if err := svc.Signal(syscall.SIGTERM); err != nil {
					return err
				}
				exited, err := svc.Wait(time.Minute)
				if !exited {
					return errors.New("the service did not exit within a minute of SIGTERM")
				}
				if err != nil {
					return fmt.Errorf("the service exited with %w after SIGTERM: %s", err, svc.StderrTail())
				}
				return nil
			},
			remove: func(ctx context.Context, r *rig) error {
				svc, err := svcrun.Start(ctx, r.svcCfg)
				if err != nil {
					return err
				}
				r.svcMu.Lock()
				r.svc = svc
				r.svcMu.Unlock()
				return nil
			},
		},
	}
}

func faultNames() []string {
	var names []string
	for _, f := range faults() {
		names = append(names, f.name)
	}
	return names
}

// selectFaults keeps the faults named in only (all when empty), in the
// matrix's order.
func selectFaults(only string) []fault {
	all := faults()
	if only == "" {
		return all
	}
	keep := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		keep[strings.TrimSpace(n)] = true
	}
	var out []fault
	for _, f := range all {
		if keep[f.name] {
			out = append(out, f)
		}
	}
	return out
}

// mountTmpfs mounts a tmpfs of the given size on dir, or says why not.
func mountTmpfs(dir, size string) string {
	switch {
	case size == "":
		return "-log-tmpfs is empty"
	case os.Geteuid() != 0:
		return "not running as root"
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("mount -t tmpfs: %v %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

func unmount(dir string, stderr io.Writer) {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		// A lazy unmount still frees the tmpfs once nothing holds it.
		if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
			fmt.Fprintf(stderr, "faults: umount %s: %v %s; %v %s\n", dir, err, out, err2, out2)
		}
	}
}

// fillDisk writes zeros to path until the file system is full.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Fill the last partial block too, so even a short line finds no room.
				for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
					for {
						if _, err := f.Write(chunk[:n]); err != nil {
							break
						}
					}
				}
				return nil
			}
			return err
		}
	}
}
