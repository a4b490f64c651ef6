package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestOneReadsTheAnswer checks what a request of the load records from
// the service's answer: the durability a PUT was promised, and that a
// refused ingest acknowledges none of its samples.
func TestOneReadsTheAnswer(t *testing.T) {
	tests := []struct {
		name       string
		kind       kind
		status     int
		header     map[string]string
		wantTier   string
		durable    bool
		retryAfter bool
	}{
		{"put to Redis, no header", kindCachePut, 200, map[string]string{"X-Cache": "L2"}, "L2", true, false},
		{"put journaled for replay", kindCachePut, 200, map[string]string{"X-Cache": "FALLBACK", "X-Cache-Durability": "replay"}, "FALLBACK/replay", true, false},
		{"put held in memory only", kindCachePut, 200, map[string]string{"X-Cache": "FALLBACK", "X-Cache-Durability": "Memory"}, "FALLBACK/Memory", false, false},
		{"ingest refused", kindIngest, 503, map[string]string{"Retry-After": "5"}, "", false, true},
		{"ingest stored", kindIngest, 200, nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer tok" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(`{"title":"x","detail":"y"}`))
			}))
			defer srv.Close()
			g := newLoadGen(srv.URL, "tok", "run", "X-Cache-Durability", "memory, none", 10, 2, 5*time.Second)
			defer g.client.CloseIdleConnections()
			o := g.one(context.Background(), tt.kind)
			if o.status != tt.status || o.retryAfter != tt.retryAfter || o.took <= 0 {
				t.Fatalf("outcome %+v", o)
			}
			switch {
			case tt.kind == kindCachePut:
				if o.put == nil || o.put.tier != tt.wantTier || o.put.durable != tt.durable || !strings.HasPrefix(o.put.key, "run-") {
					t.Errorf("put %+v; want tier %q durable %v", o.put, tt.wantTier, tt.durable)
				}
			case tt.status == 200:
				if len(o.samples) != samplesPerIngest || !strings.HasPrefix(o.samples[0].host, "faults-run-") {
					t.Errorf("samples %+v", o.samples)
				}
			default:
				if o.samples != nil || !strings.Contains(o.err, "x: y") {
					t.Errorf("a refused ingest acknowledged %v (err %q)", o.samples, o.err)
				}
			}
		})
	}
}
