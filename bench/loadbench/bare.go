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
	"path/filepath"
	"strconv"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// bareChildEnv names the manifest a child process serves; its presence is
// what makes the loadbench binary a bare server instead of a benchmark.
const bareChildEnv = "LOADBENCH_BARE_MANIFEST"

// bareBody is what the bare handler answers for one endpoint: the bytes
// and content type the service answered its probe with.
type bareBody struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Body        []byte `json:"body"`
}

func barePath(name string) string { return "/bare/" + name }

// bareMux is the baseline: net/http with handlers that do nothing but read
// the request body and write a stored answer.
func bareMux(bodies []bareBody) *http.ServeMux {
	mux := http.NewServeMux()
	for _, b := range bodies {
		size := strconv.Itoa(len(b.Body))
		mux.HandleFunc(barePath(b.Name), func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", b.ContentType)
			w.Header().Set("Content-Length", size)
			_, _ = w.Write(b.Body)
		})
	}
	return mux
}

// bareServer is the running baseline, in this process or a child.
type bareServer struct {
	base  string
	close func()
}

// startBare serves the bodies on a loopback port. By default in a child
// process: the service under test is a process of its own, and a handler
// sharing the generator's runtime would compete with the generator's
// goroutines inside one scheduler, which handicaps the baseline and
// flatters the ratios. "inprocess" keeps it here, for comparison.
func startBare(ctx context.Context, mode, dir string, bodies []bareBody) (*bareServer, error) {
	if mode == "inprocess" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: bareMux(bodies), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		return &bareServer{base: "http://" + ln.Addr().String(), close: func() { _ = srv.Close(); <-done }}, nil
	}

	manifest := filepath.Join(dir, "bare.json")
	data, err := json.Marshal(bodies)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		return nil, err
	}
	c, err := svcrun.StartChild(ctx, "bare server", bareChildEnv+"="+manifest)
	if err != nil {
		return nil, err
	}
	return &bareServer{base: c.Base, close: c.Stop}, nil
}

// serveBareChild is the child's whole life: serve the manifest's bodies on
// a loopback port, say where on stdout, and stop on SIGTERM.
func serveBareChild(ctx context.Context, manifest string, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(manifest)
	if err != nil {
		fmt.Fprintln(stderr, "loadbench bare:", err)
		return 1
	}
	var bodies []bareBody
	if err := json.Unmarshal(data, &bodies); err != nil {
		fmt.Fprintln(stderr, "loadbench bare:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "loadbench bare:", err)
		return 1
	}
	srv := &http.Server{Handler: bareMux(bodies), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Fprintln(stdout, "listening", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "loadbench bare:", err)
		return 1
	}
	return 0
}
