package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// wrapper adapts skab-eval's call (COMMAND --train-rows N --input FILE) to a
// detect CLI that takes no --train-rows: the streaming detector learns online
// from every row, so the fault-free rows are learned as they arrive anyway.
const wrapper = `#!/bin/sh
in=-
while [ $# -gt 0 ]; do
  case "$1" in
    --input) in=$2; shift 2 ;;
    --train-rows) shift 2 ;;
    *) shift ;;
  esac
done
exec %q detect --input "$in"%s
`

// runSKAB builds the service (or uses binary), runs tool (skab-eval) over
// the SKAB folder data with its detect subcommand and prints what it printed.
// streamOnly drops --train-rows even when the CLI takes it, to measure the
// streaming detectors alone; state then also passes --state, so is_anomaly
// is the streams' sustained state rather than their alerts.
func runSKAB(ctx context.Context, w, stderr io.Writer, tool, data, binary string, streamOnly, state bool) error {
	if _, err := os.Stat(tool); err != nil {
		fmt.Fprintf(w, "SKAB: skipped, %s is absent\n\n", tool)
		return nil
	}
	if _, err := os.Stat(filepath.Join(data, "labels")); err != nil {
		fmt.Fprintf(w, "SKAB: skipped, %s has no labels/\n\n", data)
		return nil
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		fmt.Fprintf(w, "SKAB: skipped, python3 is not on PATH (skab-eval needs it)\n\n")
		return nil
	}
	dir, bin, cleanup, err := svcrun.Workdir(ctx, "detecteval", binary, false, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	cmd := []string{bin, "detect"}
	help, _ := exec.CommandContext(ctx, bin, "detect", "-h").CombinedOutput()
	note := "the detect CLI takes --train-rows: it is passed through"
	if streamOnly || !bytes.Contains(help, []byte("train-rows")) {
		script := filepath.Join(dir, "detect.sh")
		extra := ""
		if state {
			if !bytes.Contains(help, []byte("-state")) {
				return fmt.Errorf("skab: -skab-state: %s detect has no --state", bin)
			}
			extra = " --state"
		}
		if err := os.WriteFile(script, []byte(fmt.Sprintf(wrapper, bin, extra)), 0o755); err != nil {
			return fmt.Errorf("skab wrapper: %w", err)
		}
		cmd = []string{"/bin/sh", script}
		note = "the detect CLI has no --train-rows: streaming only, the first 400 rows are learned online like every other row"
		if streamOnly {
			note = "-skab-stream-only: --train-rows dropped, streaming only, the first 400 rows are learned online like every other row"
		}
		if state {
			note += "; --state: is_anomaly is the sustained state"
		}
	}
	args := append([]string{tool, data, filepath.Join(dir, "skab-out"), "--"}, cmd...)
	var out bytes.Buffer
	c := exec.CommandContext(ctx, py, args...)
	c.Stdout, c.Stderr = &out, stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("skab-eval: %w\n%s", err, out.String())
	}
	fmt.Fprintf(w, "SKAB %s through %s (400 training rows; %s):\n\n", data, tool, note)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		fmt.Fprintln(w, "    "+l)
	}
	fmt.Fprintln(w)
	return nil
}
