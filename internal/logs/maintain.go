package logs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// maintainer compresses rotated files and applies retention on its own
// goroutine, so neither ever delays a write.
type maintainer struct {
	o    Options
	c    *counters
	lim  *limits
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// ctx is cancelled when Close's deadline passes, aborting a compression.
	ctx    context.Context
	cancel context.CancelFunc
	// tick drives the sink's recovery in synchronous mode; nil otherwise.
	tick func()
	buf  []byte
}

func newMaintainer(o Options, c *counters, lim *limits) *maintainer {
	ctx, cancel := context.WithCancel(context.Background())
	return &maintainer{
		o:      o,
		c:      c,
		lim:    lim,
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		buf:    make([]byte, 64<<10),
	}
}

func (m *maintainer) notify() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *maintainer) run() {
	defer close(m.done)
	t := time.NewTicker(m.o.RecoveryInterval)
	defer t.Stop()
	m.pass()
	for {
		select {
		case <-m.kick:
			m.pass()
		case <-t.C:
			if m.tick != nil {
				m.tick()
			}
			// A failed compression is retried here; a healthy pipeline
			// has nothing to do between rotations.
			if m.c.compFail.Load() {
				m.pass()
			}
		case <-m.stop:
			m.pass()
			return
		}
	}
}

type backup struct {
	name  string
	stamp time.Time
	gz    bool
	size  int64
}

// scan lists rotated files oldest first and removes debris of an earlier
// crash: a stale .gz.tmp, or an original whose .gz was already published.
func (m *maintainer) scan() ([]backup, error) {
	entries, err := os.ReadDir(m.o.Dir)
	if err != nil {
		return nil, err
	}
	stem := m.o.FileName
	byStamp := make(map[time.Time]int)
	var out []backup
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, stem+"-") {
			continue
		}
		if strings.HasSuffix(name, ".gz.tmp") {
			_ = os.Remove(filepath.Join(m.o.Dir, name))
			continue
		}
		stamp, gz, ok := parseBackup(stem, name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		var size int64
		if fi, err := e.Info(); err == nil {
			size = fi.Size()
		}
		b := backup{name: name, stamp: stamp, gz: gz, size: size}
		if i, dup := byStamp[stamp]; dup {
			// The .gz is complete (it was fsynced before its rename).
			orig := out[i]
			if gz {
				orig, out[i] = out[i], b
			}
			_ = os.Remove(filepath.Join(m.o.Dir, orig.name))
			continue
		}
		byStamp[stamp] = len(out)
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b backup) int { return a.stamp.Compare(b.stamp) })
	return out, nil
}

// pass applies retention, then compresses what is left. The current file
// never matches a backup name, and compression runs on this goroutine
// only, so retention never touches the current file or one being
// compressed.
func (m *maintainer) pass() {
	files, err := m.scan()
	if err != nil {
		if !os.IsNotExist(err) {
			m.c.fail(opRetention, fmt.Errorf("logs: retention: %w", err))
		}
		return
	}
	now := m.o.Now()
	maxAge, maxFiles := time.Duration(m.lim.maxAge.Load()), int(m.lim.maxFiles.Load())
	keep := make([]bool, len(files))
	n := 0
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		reason := -1
		switch {
		case maxAge > 0 && now.Sub(f.stamp) > maxAge:
			reason = removedAge
		case maxFiles > 0 && n >= maxFiles:
			reason = removedCount
		}
		if reason < 0 {
			keep[i] = true
			n++
			continue
		}
		if err := os.Remove(filepath.Join(m.o.Dir, f.name)); err != nil && !os.IsNotExist(err) {
			m.c.fail(opRetention, fmt.Errorf("logs: retention: %w", err))
			keep[i] = true
			continue
		}
		m.c.removed[reason].Add(1)
	}
	var kept []backup
	for i, f := range files {
		if keep[i] {
			kept = append(kept, f)
		}
	}
	failed := false
	if m.o.CompressionLevel > 0 {
		for i := range kept {
			if kept[i].gz {
				continue
			}
			if m.ctx.Err() != nil {
				failed = true
				break
			}
			size, err := m.compress(kept[i])
			if err != nil {
				m.c.fail(opCompress, err)
				failed = true
				continue
			}
			kept[i].gz, kept[i].size = true, size
		}
	}
	m.c.compFail.Store(failed)
	var total int64
	for _, f := range kept {
		total += f.size
	}
	m.c.backups.Store(int64(len(kept)))
	m.c.backupSize.Store(total)
}

// ctxReader lets Close's deadline abort a long compression between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// compress writes <name>.gz.tmp, fsyncs it, renames it to <name>.gz,
// fsyncs the directory and only then removes the original, so a crash at
// any point leaves at least one complete copy. Any failure keeps the
// original for the next pass.
func (m *maintainer) compress(b backup) (int64, error) {
	src := filepath.Join(m.o.Dir, b.name)
	dst := src + ".gz"
	tmp := dst + ".tmp"
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	abort := func(err error) (int64, error) {
		_ = out.Close()
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	zw, err := gzip.NewWriterLevel(out, m.o.CompressionLevel)
	if err != nil {
		return abort(err)
	}
	zw.Name = b.name
	zw.ModTime = b.stamp
	if _, err := io.CopyBuffer(zw, ctxReader{m.ctx, in}, m.buf); err != nil {
		return abort(err)
	}
	if err := zw.Close(); err != nil {
		return abort(err)
	}
	if err := out.Sync(); err != nil {
		return abort(err)
	}
	ofi, err := out.Stat()
	if err != nil {
		return abort(err)
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("logs: compress %s: %w", b.name, err)
	}
	syncDir(m.o.Dir)
	if err := os.Remove(src); err != nil {
		// The .gz is complete; the next scan removes the original.
		return ofi.Size(), fmt.Errorf("logs: compress %s: remove original: %w", b.name, err)
	}
	m.c.compressed.Add(1)
	m.c.compressIn.Add(fi.Size())
	m.c.compressOut.Add(ofi.Size())
	return ofi.Size(), nil
}

// syncDir makes a rename durable before the original is removed.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
