package svcrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Child is a server the bench runs as a copy of itself in another process,
// so its CPU is measured apart from the load generator's.
type Child struct {
	// Base is the child's URL, from the "listening ADDR" line it prints first.
	Base string
	// Pid is the child's process id.
	Pid int
	// Stop sends SIGTERM and waits for the child to exit.
	Stop func()
}

// StartChild runs this executable again with env (NAME=value) added, which
// the child's main reads to serve instead, and waits up to 30 s for its
// first stdout line, "listening ADDR". name labels errors.
func StartChild(ctx context.Context, name, env string) (*Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			stop()
			return nil, fmt.Errorf("%s: unexpected first line %q", name, l)
		}
		return &Child{Base: "http://" + addr, Pid: cmd.Process.Pid, Stop: stop}, nil
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("%s did not start within 30s", name)
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}
