package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is the injected clock: it moves only when the test moves it.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// readLogLines returns every line of every file of stem in dir, rotated
// files (gunzipped) in name order, then the current file. While the
// logger runs, the compressor may replace a rotated file with its .gz
// between the listing and the read; the read then starts over.
func readLogLines(t *testing.T, dir, stem string) (lines []string, backups []string) {
	t.Helper()
	for range 100 {
		lines, backups, vanished := readLogLinesOnce(t, dir, stem)
		if !vanished {
			return lines, backups
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("rotated files in %s kept vanishing while being read", dir)
	return nil, nil
}

func readLogLinesOnce(t *testing.T, dir, stem string) (lines []string, backups []string, vanished bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, _, ok := parseBackup(stem, e.Name()); ok {
			backups = append(backups, e.Name())
		}
	}
	sort.Strings(backups)
	for _, b := range backups {
		if slices.Contains(backups, b+".gz") {
			// Compressed, original not yet removed: both hold the lines.
			return nil, nil, true
		}
	}
	files := append(append([]string(nil), backups...), stem+".log")
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			if name == stem+".log" {
				continue
			}
			return nil, nil, true
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}
	return lines, backups, false
}

// parked reports whether the writer has parked (see queue.park).
func (q *queue) parked() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idle
}

// eventually polls cond; the deadline is generous because a loaded
// machine may be slow, and the test asserts states, not timings.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func closeLogger(t *testing.T, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
