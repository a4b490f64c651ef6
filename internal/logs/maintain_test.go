package logs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// makeBackups writes rotated files stamped at each of times, plus a
// current file that retention must never touch.
func makeBackups(t *testing.T, dir string, times []time.Time) []string {
	t.Helper()
	var names []string
	for _, ts := range times {
		name := backupName("app", ts)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"msg":"x"}`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte("current\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return names
}

func remaining(t *testing.T, dir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// TestRetention applies count and age limits with an injected clock; the
// current file always stays.
func TestRetention(t *testing.T) {
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		maxFiles         int
		maxAge           time.Duration
		ages             []time.Duration // of the backups, oldest first
		wantKept         []int           // indexes into ages
		wantCount, wantA int64
	}{
		{"count", 3, 0, []time.Duration{6 * time.Hour, 5 * time.Hour, 4 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour}, []int{3, 4, 5}, 3, 0},
		{"age", 0, 72 * time.Hour, []time.Duration{100 * time.Hour, 73 * time.Hour, 71 * time.Hour, time.Hour}, []int{2, 3}, 0, 2},
		{"both", 2, 72 * time.Hour, []time.Duration{100 * time.Hour, 50 * time.Hour, 40 * time.Hour, 30 * time.Hour}, []int{2, 3}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var times []time.Time
			for _, a := range tc.ages {
				times = append(times, now.Add(-a))
			}
			names := makeBackups(t, dir, times)
			c := &counters{}
			o := Options{Dir: dir, FileName: "app", MaxFiles: tc.maxFiles, MaxAge: tc.maxAge, Now: func() time.Time { return now }}
			m := newMaintainer(o, c, newLimits(o))
			defer m.cancel()
			m.pass()
			got := remaining(t, dir)
			want := map[string]bool{"app.log": true}
			for _, i := range tc.wantKept {
				want[names[i]] = true
			}
			if len(got) != len(want) {
				t.Errorf("kept %v, want %v", got, want)
			}
			for n := range want {
				if !got[n] {
					t.Errorf("%s removed, want kept", n)
				}
			}
			if c.removed[removedCount].Load() != tc.wantCount || c.removed[removedAge].Load() != tc.wantA {
				t.Errorf("removed count %d age %d, want %d %d", c.removed[removedCount].Load(), c.removed[removedAge].Load(), tc.wantCount, tc.wantA)
			}
			if c.backups.Load() != int64(len(tc.wantKept)) {
				t.Errorf("inventory %d files, want %d", c.backups.Load(), len(tc.wantKept))
			}
		})
	}
}

// TestCompressionFailureKeepsOriginal blocks the .gz.tmp path with a
// non-empty directory (root ignores permissions): the original survives,
// the failure is counted, and the next pass compresses it.
func TestCompressionFailureKeepsOriginal(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	name := makeBackups(t, dir, []time.Time{now.Add(-time.Hour)})[0]
	orig, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, name+".gz.tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &counters{}
	o := Options{Dir: dir, FileName: "app", MaxFiles: 10, MaxAge: time.Hour * 24, CompressionLevel: 6, Now: func() time.Time { return now }}
	m := newMaintainer(o, c, newLimits(o))
	defer m.cancel()
	m.pass()
	got := remaining(t, dir)
	if !got[name] || got[name+".gz"] {
		t.Fatalf("after a failed compression: %v; want the original and no .gz", got)
	}
	if c.errors[opCompress].Load() != 1 || !c.compFail.Load() || c.compressed.Load() != 0 {
		t.Errorf("compress errors %d, failing %v, compressed %d", c.errors[opCompress].Load(), c.compFail.Load(), c.compressed.Load())
	}

	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	m.pass()
	got = remaining(t, dir)
	if got[name] || !got[name+".gz"] || got[name+".gz.tmp"] {
		t.Fatalf("after retry: %v; want only the .gz", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, orig) {
		t.Fatalf("gunzipped %q (%v), want %q", plain, err, orig)
	}
	if c.compFail.Load() || c.compressed.Load() != 1 || c.compressIn.Load() != int64(len(orig)) {
		t.Errorf("failing %v, compressed %d, in %d", c.compFail.Load(), c.compressed.Load(), c.compressIn.Load())
	}
}

// TestScanCleansCrashDebris: a stale .gz.tmp is removed, and an original
// whose .gz was already published is removed in favour of the .gz.
func TestScanCleansCrashDebris(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	name := makeBackups(t, dir, []time.Time{now.Add(-time.Hour)})[0]
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"msg":"x"}` + "\n"))
	_ = zw.Close()
	if err := os.WriteFile(filepath.Join(dir, name+".gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	other := backupName("app", now.Add(-time.Minute)) + ".gz.tmp"
	if err := os.WriteFile(filepath.Join(dir, other), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, FileName: "app", MaxFiles: 10, MaxAge: 24 * time.Hour, CompressionLevel: 6, Now: func() time.Time { return now }}
	m := newMaintainer(o, &counters{}, newLimits(o))
	defer m.cancel()
	m.pass()
	got := remaining(t, dir)
	if len(got) != 2 || !got[name+".gz"] || !got["app.log"] {
		t.Fatalf("after scan: %v", got)
	}
}
