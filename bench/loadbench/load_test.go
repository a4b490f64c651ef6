package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func TestDriveCountsRequestsAndErrors(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Every third request fails, so the error path is counted too.
		if seen.Add(1)%3 == 0 || string(body) == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	tr := svcrun.LoopbackTransport(4)
	defer tr.CloseIdleConnections()
	tg := target{method: http.MethodPost, url: srv.URL, body: func(i int64) []byte { return []byte("x") }, want: http.StatusOK}
	m := drive(context.Background(), &http.Client{Transport: tr}, tg, 4, time.Minute, 300)
	if m.requests != 300 || m.errors != 100 || len(m.lat) != 200 {
		t.Fatalf("requests %d errors %d latencies %d; want 300, 100, 200", m.requests, m.errors, len(m.lat))
	}
	if !strings.Contains(m.firstErr, "status 503") {
		t.Errorf("first error %q", m.firstErr)
	}
	if m.quantile(0.5) > m.quantile(0.99) || m.quantile(0.99) > m.quantile(1) {
		t.Errorf("quantiles out of order")
	}
}

func TestTransportRefusesNonLoopback(t *testing.T) {
	tr := svcrun.LoopbackTransport(1)
	_, err := (&http.Client{Transport: tr}).Get("http://192.0.2.1:80/")
	if err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("err = %v", err)
	}
}

func TestQuantileAndMedian(t *testing.T) {
	m := measurement{}
	for i := 1; i <= 100; i++ {
		m.lat = append(m.lat, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0: 1} {
		if got := m.quantile(q); got != want {
			t.Errorf("quantile(%v) = %v; want %v", q, got, want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
}

// TestSamplesAreValidAndDistinct checks the generated bodies decode as the
// API's sample shapes and never repeat a (host, timestamp) within a run,
// which would turn ingest into duplicate skipping.
func TestSamplesAreValidAndDistinct(t *testing.T) {
	g := newSamples(time.Now())
	type sample struct {
		Host      string             `json:"host"`
		Timestamp int64              `json:"timestamp"`
		Metrics   map[string]float64 `json:"metrics"`
	}
	type hostTime struct {
		host string
		ts   int64
	}
	seen := map[hostTime]bool{}
	for i := range int64(200) {
		var b struct {
			Samples []sample `json:"samples"`
		}
		if err := json.Unmarshal(g.batch(i, 50), &b); err != nil || len(b.Samples) != 50 {
			t.Fatalf("batch %d: %v (%d samples)", i, err, len(b.Samples))
		}
		for _, s := range b.Samples {
			key := hostTime{s.Host, s.Timestamp}
			if seen[key] {
				t.Fatalf("batch %d repeats %+v", i, key)
			}
			seen[key] = true
			if len(s.Metrics) != 5 || s.Timestamp > time.Now().Unix() {
				t.Fatalf("sample %+v", s)
			}
		}
	}
	var one sample
	if err := json.Unmarshal(g.single(7), &one); err != nil || one.Host == "" {
		t.Fatalf("single: %v %+v", err, one)
	}
}

func TestFlagBounds(t *testing.T) {
	for _, args := range [][]string{
		{"-connections", "0"}, {"-connections", "100000"}, {"-duration", "1h"}, {"-repeats", "0"},
		{"-bare", "elsewhere"}, {"-batch", "1"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	o, err := parseFlags(nil, io.Discard)
	if err != nil || o.repeats != 3 || o.connections != 16 || o.duration != 5*time.Second {
		t.Errorf("defaults %+v %v", o, err)
	}
}

func TestBareMuxAnswersStoredBody(t *testing.T) {
	srv := httptest.NewServer(bareMux([]bareBody{{Name: "health", ContentType: "application/json", Body: []byte(`{"status":"UP"}`)}}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+barePath("health"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"status":"UP"}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
}
