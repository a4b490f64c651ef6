package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlagBounds(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-only", "baseline,pg-kill"}, true},
		{[]string{"-only", "baseline,nope"}, false},
		{[]string{"-rate", "0"}, false},
		{[]string{"-rate", "100000"}, false},
		{[]string{"-hold", "0s"}, false},
		{[]string{"-hold", "2h"}, false},
		{[]string{"-workers", "0"}, false},
		{[]string{"-recover-within", "1h"}, false},
		{[]string{"-slow-stall", "0s"}, false},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("parseFlags(%q) = %v; want ok %v", tt.args, err, tt.ok)
		}
	}
}

func TestSelectFaultsKeepsMatrixOrder(t *testing.T) {
	var got []string
	for _, f := range selectFaults("service-sigterm, baseline") {
		got = append(got, f.name)
	}
	if strings.Join(got, ",") != "baseline,service-sigterm" {
		t.Errorf("selectFaults = %v", got)
	}
	if n := len(selectFaults("")); n != len(faultNames()) || n < 8 {
		t.Errorf("all faults: %d", n)
	}
}

func TestFillDiskStopsAtENOSPC(t *testing.T) {
	dir := t.TempDir()
	if why := mountTmpfs(dir, "256k"); why != "" {
		t.Skip("no tmpfs to fill:", why)
	}
	defer unmount(dir, io.Discard)
	path := filepath.Join(dir, "filler")
	if err := fillDisk(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "more"), []byte("x"), 0o600); err == nil {
		t.Error("a write after fillDisk succeeded; the tmpfs is not full")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestMatrixSmoke runs the command's own path end to end on a trimmed
// matrix: a private Redis and PostgreSQL, the service, the baseline and one
// fault with short phases. It needs redis-server, PostgreSQL's binaries and
// a go toolchain, and skips without them or under -short.
func TestMatrixSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis, PostgreSQL and the service; skipped under -short")
	}
	if why := pgAvailable(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	o, err := parseFlags([]string{"-only", "baseline,redis-stop", "-rate", "40", "-lead", "300ms", "-hold", "1s", "-tail", "300ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := matrix(ctx, o, &out, &errb); err != nil {
		t.Fatalf("matrix: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	text := out.String()
	var baseline string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "baseline ") {
			baseline = l
			break
		}
	}
	// Nothing is lost without a fault; redis-stop's figures depend on
	// the service, which this test does not judge.
	if !strings.Contains(baseline, " 0/") || !strings.Contains(baseline, "ingest, 0/") {
		t.Errorf("baseline row %q; want no loss\n%s", baseline, text)
	}
	if !strings.Contains(text, "redis-stop ") {
		t.Errorf("no redis-stop row:\n%s", text)
	}
}
