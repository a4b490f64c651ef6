package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func testSender(t *testing.T, base string, retries int) *sender {
	t.Helper()
	u, err := newUniverse(1000, 100)
	if err != nil {
		t.Fatal(err)
	}
	tr := svcrun.LoopbackTransport(8)
	t.Cleanup(tr.CloseIdleConnections)
	s, err := newSender(senderConfig{base: base, transport: tr, header: http.Header{"Authorization": {"Bearer t0k"}},
		universe: u, shards: 4, batch: 500, start: time.Now().Add(-time.Hour), interval: time.Second,
		retries: retries, limit: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The floor is also the stub target the bench was developed against: every
// sample the sender counts as accepted must be one the floor decoded.
func TestSenderAgainstFloor(t *testing.T) {
	fs := &floorStore{}
	srv := httptest.NewServer(floorMux(fs))
	defer srv.Close()
	s := testSender(t, srv.URL, 3)
	var total int64
	for range 2 {
		r := s.run(context.Background(), 300*time.Millisecond)
		if r.failed != 0 || r.firstErr != "" {
			t.Fatalf("failed %d, first error %q", r.failed, r.firstErr)
		}
		if r.requests == 0 || r.samples != 500*r.requests || r.byStatus["204"] < r.requests {
			t.Fatalf("requests %d samples %d statuses %v", r.requests, r.samples, r.byStatus)
		}
		if len(r.lat) != int(r.byStatus["204"]) || r.quantile(0.5) > r.quantile(0.99) {
			t.Fatalf("%d latencies for %d 2xx attempts", len(r.lat), r.byStatus["204"])
		}
		total += r.samples
	}
	if got := fs.stats(); got.Samples < total || got.Failed != 0 {
		t.Fatalf("floor decoded %d samples (%d failed); the sender counted %d accepted", got.Samples, got.Failed, total)
	}
}

func TestSenderSendsRemoteWrite10Headers(t *testing.T) {
	var bad atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range map[string]string{
			"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
			"X-Prometheus-Remote-Write-Version": "0.1.0", "Authorization": "Bearer t0k",
		} {
			if got := r.Header.Get(k); got != v {
				bad.Store(k + ": " + got)
			}
		}
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			bad.Store("snappy: " + err.Error())
		} else if _, err := decodeWriteRequest(raw); err != nil {
			bad.Store(err.Error())
		}
		if r.URL.Path != writePath {
			bad.Store("path " + r.URL.Path)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	r := testSender(t, srv.URL, 0).run(context.Background(), 200*time.Millisecond)
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if r.requests == 0 {
		t.Fatal("no request accepted")
	}
}

func TestSenderCountsStatusesAndRetries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		retries int
		// wantAttempts is attempts per Write: a 4xx is not retried.
		wantAttempts int64
	}{
		{"4xx is final", http.StatusBadRequest, 3, 1},
		{"5xx is retried", http.StatusServiceUnavailable, 2, 3},
		{"429 is retried", http.StatusTooManyRequests, 1, 2},
		{"retries 0 means none", http.StatusInternalServerError, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				n.Add(1)
				http.Error(w, "no", tc.status)
			}))
			defer srv.Close()
			s := testSender(t, srv.URL, tc.retries)
			s.shards = s.shards[:1]
			r := s.run(context.Background(), time.Second)
			code := http.StatusText(tc.status)
			if r.requests != 0 || r.failed == 0 {
				t.Fatalf("requests %d failed %d", r.requests, r.failed)
			}
			got := r.byStatus[strconv.Itoa(tc.status)]
			if got < r.failed*tc.wantAttempts || got > (r.failed+1)*tc.wantAttempts {
				t.Fatalf("%d attempts answered %d (%s) for %d failed writes; want %d each", got, tc.status, code, r.failed, tc.wantAttempts)
			}
			if !strings.Contains(r.firstErr, strconv.Itoa(tc.status)) || !strings.Contains(r.firstErr, "no") {
				t.Errorf("first error %q", r.firstErr)
			}
		})
	}
}

func TestProbeSaysWhenTheReceiverIsMissing(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	err := probe(context.Background(), srv.URL, svcrun.LoopbackTransport(1), nil, time.Now().Add(-time.Hour))
	if err == nil || !strings.Contains(err.Error(), "answers 404") || !strings.Contains(err.Error(), "no remote_write receiver") {
		t.Fatalf("probe of a 404 target: %v", err)
	}
	fl := httptest.NewServer(floorMux(&floorStore{}))
	defer fl.Close()
	if err := probe(context.Background(), fl.URL, svcrun.LoopbackTransport(1), nil, time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("probe of the floor: %v", err)
	}
}

func TestSenderStopsAtThePresent(t *testing.T) {
	srv := httptest.NewServer(floorMux(&floorStore{}))
	defer srv.Close()
	s := testSender(t, srv.URL, 0)
	s.limit = time.Now().Add(-time.Hour).Add(3 * time.Second)
	r := s.run(context.Background(), 5*time.Second)
	if !strings.Contains(r.firstErr, "simulated time reached the present") {
		t.Fatalf("first error %q", r.firstErr)
	}
	// A request of 500 samples spans two scrapes of a shard's ~250 series.
	if r.simEnd.After(s.limit.Add(3 * time.Second)) {
		t.Fatalf("simulated time went to %s past the limit %s", r.simEnd, s.limit)
	}
}

func TestShardsStayWithinTheQueueCapacity(t *testing.T) {
	var n atomic.Int64
	fl := floorMux(&floorStore{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every other request is slow, so shards would drift apart unbounded.
		if n.Add(1)%2 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		fl.ServeHTTP(w, r)
	}))
	defer srv.Close()
	u, _ := newUniverse(1000, 100)
	s, err := newSender(senderConfig{base: srv.URL, transport: svcrun.LoopbackTransport(8), universe: u, shards: 4, batch: 100,
		start: time.Now().Add(-time.Hour), interval: time.Second, limit: time.Now(), capacity: 500})
	if err != nil {
		t.Fatal(err)
	}
	if s.skew < 2 || s.skew > 4 {
		t.Fatalf("skew %d scrapes for capacity 500 over ~250 series a shard", s.skew)
	}
	r := s.run(context.Background(), 500*time.Millisecond)
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, g := range s.shards {
		lo, hi = min(lo, g.progress.Load()), max(hi, g.progress.Load())
	}
	if r.requests == 0 || hi-lo > s.skew+1 {
		t.Fatalf("%d requests; shards between scrape %d and %d, skew bound %d", r.requests, lo, hi, s.skew)
	}
}
