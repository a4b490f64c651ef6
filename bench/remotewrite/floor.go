package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// floorChildEnv makes the remotewrite binary serve the floor instead of
// running the benchmark; startFloor sets it for its child.
const floorChildEnv = "RWBENCH_FLOOR_CHILD"

// floorStats is what the floor has decoded, read before and after a run
// the way the service's counters are.
type floorStats struct {
	Requests int64 `json:"requests"`
	Samples  int64 `json:"samples"`
	Failed   int64 `json:"failed"`
}

// floorStore is the least a receiver must do with a request: read the
// body the library's snappy middleware has decompressed and unmarshal it
// into prompb.WriteRequest. It stores nothing.
type floorStore struct {
	requests, samples, failed atomic.Int64
}

// Store implements the library's write storage.
func (f *floorStore) Store(r *http.Request, _ remote.WriteMessageType) (*remote.WriteResponse, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.failed.Add(1)
		return badRequest(), fmt.Errorf("floor: read body: %w", err)
	}
	n, err := decodeWriteRequest(body)
	if err != nil {
		f.failed.Add(1)
		return badRequest(), err
	}
	f.requests.Add(1)
	f.samples.Add(int64(n))
	return remote.NewWriteResponse(), nil
}

func badRequest() *remote.WriteResponse {
	wr := remote.NewWriteResponse()
	wr.SetStatusCode(http.StatusBadRequest)
	return wr
}

// decodeWriteRequest unmarshals an uncompressed remote_write 1.0 body and
// returns its sample count; the Go benchmark measures it alone.
func decodeWriteRequest(body []byte) (int, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(body); err != nil {
		return 0, fmt.Errorf("floor: unmarshal prometheus.WriteRequest: %w", err)
	}
	n := 0
	for i := range req.Timeseries {
		n += len(req.Timeseries[i].Samples)
	}
	return n, nil
}

func (f *floorStore) stats() floorStats {
	return floorStats{Requests: f.requests.Load(), Samples: f.samples.Load(), Failed: f.failed.Load()}
}

// floorMux serves the floor at the receiver's path and its counters at
// /floor/stats.
func floorMux(f *floorStore) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("POST "+writePath, remote.NewWriteHandler(f, remote.MessageTypes{remote.WriteV1MessageType}))
	mux.HandleFunc("GET /floor/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.stats())
	})
	return mux
}

// floorServer is the running floor, in this process or a child.
type floorServer struct {
	base string
	// pid is the process whose CPU the floor uses: a child's, or this
	// process's own in-process (then the generator's CPU is in it too).
	pid   int
	close func()
}

// startFloor serves the floor on a loopback port, by default in a child
// process: the service is a process of its own, and a handler sharing the
// generator's runtime competes with the shards' goroutines in one
// scheduler and its CPU cannot be told apart from theirs.
func startFloor(ctx context.Context, mode string) (*floorServer, error) {
	if mode == "inprocess" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: floorMux(&floorStore{}), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		return &floorServer{base: "http://" + ln.Addr().String(), pid: os.Getpid(), close: func() { _ = srv.Close(); <-done }}, nil
	}
	c, err := svcrun.StartChild(ctx, "floor server", floorChildEnv+"=1")
	if err != nil {
		return nil, err
	}
	return &floorServer{base: c.Base, pid: c.Pid, close: c.Stop}, nil
}

// serveFloorChild is the child's whole life: serve the floor on a loopback
// port, say where on stdout, and stop on SIGTERM.
func serveFloorChild(ctx context.Context, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "remotewrite floor:", err)
		return 1
	}
	srv := &http.Server{Handler: floorMux(&floorStore{}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintln(stdout, "listening", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "remotewrite floor:", err)
		return 1
	}
	return 0
}
