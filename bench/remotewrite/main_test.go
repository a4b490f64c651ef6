package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-series", "100000", "-db", "postgres", "-shards", "10"}},
		{args: []string{"-series", "1050"}, wantErr: "-series-per-host"},
		{args: []string{"-series-per-host", "10", "-series", "100"}, wantErr: "-series-per-host"},
		{args: []string{"-shards", "0"}, wantErr: "-shards"},
		{args: []string{"-batch", "0"}, wantErr: "-batch"},
		{args: []string{"-db", "mysql"}, wantErr: "-db"},
		{args: []string{"-floor", "elsewhere"}, wantErr: "-floor"},
		{args: []string{"-floor-only", "-floor", "off"}, wantErr: "-floor-only"},
		{args: []string{"-stored", "a{b}"}, wantErr: "-stored"},
		{args: []string{"-counters", "("}, wantErr: "-counters"},
		{args: []string{"-url", "http://127.0.0.1:1", "-perf", "/tmp/x"}, wantErr: "-perf"},
		{args: []string{"-env", "NOEQUALS"}, wantErr: "KEY=VALUE"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("parseFlags(%q) = %v; want error containing %q", tc.args, err, tc.wantErr)
		}
	}
}

// stubService is a stand-in receiver: the floor's decoding plus the
// counters a receiver exposes, so the whole report can be checked before
// the service has one.
func stubService(t *testing.T, token string) *httptest.Server {
	fs := &floorStore{}
	floor := floorMux(fs)
	var reads atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/write", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		floor.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /performance/metrics", func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		st := fs.stats()
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", float64(reads.Load())/10)
		fmt.Fprintf(w, "# TYPE smartcloudops_db_bulk_rows_total counter\nsmartcloudops_db_bulk_rows_total{operation=\"insert\"} %d\n", st.Samples/100)
		fmt.Fprintf(w, "# TYPE smartcloudops_ingest_samples_total counter\nsmartcloudops_ingest_samples_total{outcome=\"kept\",source=\"remote_write\"} %d\n", st.Samples/2)
		fmt.Fprintf(w, "smartcloudops_ingest_samples_total{outcome=\"not_selected\",source=\"remote_write\"} %d\n", st.Samples/2)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestBenchAgainstAStubService(t *testing.T) {
	srv := stubService(t, "s3cret")
	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"-url", srv.URL, "-token", "s3cret", "-series", "1000", "-shards", "4",
		"-batch", "500", "-duration", "300ms", "-warmup", "100ms", "-repeats", "2", "-floor", "inprocess", "-settle", "2s"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	report := out.String()
	for _, want := range []string{
		"service/floor: samples/s",
		"service  attempts by status (all measured runs): 204:",
		"floor    attempts by status (all measured runs): 204:",
		`smartcloudops_ingest_samples_total{outcome="kept",source="remote_write"} +`,
		"1000 series = 10 hosts × 100",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// The stub has no scored counter: that column says n/a, the others
	// (kept, stored, CPU from process_cpu_seconds_total) have figures.
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "service ") && strings.Contains(l, "%") && strings.Count(l, "n/a") != 1 {
			t.Errorf("service row: want one n/a (scored): %s", l)
		}
	}

	// A wrong token is a 401 from the probe, not a hang or a 404 message.
	out.Reset()
	errs.Reset()
	code = run(context.Background(), []string{"-url", srv.URL, "-token", "wrong", "-series", "1000", "-repeats", "1", "-duration", "100ms"}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "401") {
		t.Fatalf("wrong token: exit %d, stderr %s", code, errs.String())
	}
}
