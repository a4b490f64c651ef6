package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestShutdownDelayDrains: once shutdown begins, /readyz answers 503 while
// the listener still serves for SMARTCLOUDOPS_SHUTDOWN_DELAY, then the
// listener closes and the process exits 0.
func TestShutdownDelayDrains(t *testing.T) {
	const delay = 2 * time.Second
	r := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t), "SMARTCLOUDOPS_SHUTDOWN_DELAY": delay.String()}, nil)
	var v map[string]any
	if code := getJSON(t, r.base+"/readyz", &v); code != http.StatusOK {
		t.Fatalf("readyz before shutdown: %d", code)
	}
	began := time.Now()
	r.cancel()
	// readyz turns 503 promptly (well within the delay) ...
	for {
		code := getJSON(t, r.base+"/readyz", &v)
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(began) > delay/2 {
			t.Fatalf("readyz still %d %v after shutdown began", code, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v["status"] != "DOWN" {
		t.Fatalf("draining readyz body: %v", v)
	}
	// ... while other routes keep serving.
	if code := getJSON(t, r.base+"/livez", &v); code != http.StatusOK {
		t.Fatalf("livez while draining: %d", code)
	}
	// The listener closes only after the delay.
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(r.base, "http://"), 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Since(began) > delay+20*time.Second {
			t.Fatal("listener still accepting long after the delay")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(began); took < delay {
		t.Fatalf("listener closed after %s; want at least the %s delay", took, delay)
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, r.stderr)
	}
}
