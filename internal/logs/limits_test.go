package logs

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSetLimitsLive(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	o := DefaultOptions()
	o.Dir, o.FileName, o.CompressionLevel, o.Copy, o.Fallback, o.Now = dir, "app", 0, io.Discard, io.Discard, clock.Now
	l, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Limits{{MaxFileSize: 10, MaxFiles: 1, MaxAge: time.Hour}, {MaxFileSize: 4096, MaxFiles: -1, MaxAge: time.Hour}, {MaxFileSize: 4096, MaxFiles: 1, MaxAge: -time.Hour}} {
		if err := l.SetLimits(bad); err == nil {
			t.Errorf("SetLimits(%+v) accepted", bad)
		}
	}
	if got := l.Limits(); got.MaxFileSize != DefaultMaxFileSize || got.MaxFiles != DefaultMaxFiles {
		t.Fatalf("a refused change altered the limits: %+v", got)
	}
	want := Limits{MaxFileSize: 4096, MaxFiles: 2, MaxAge: 0}
	if err := l.SetLimits(want); err != nil || l.Limits() != want {
		t.Fatalf("SetLimits: %v, %+v", err, l.Limits())
	}
	msg := strings.Repeat("x", 200)
	for i := range 200 {
		l.Slog().Info(msg, "i", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Rotations["size"] == 0 {
		t.Fatalf("no size rotation after lowering the limit to 4 KiB: %+v", st.Rotations)
	}
	_, backups := readLogLines(t, dir, "app")
	if len(backups) > 2 {
		t.Fatalf("%d rotated files kept; the live limit is 2", len(backups))
	}
}
