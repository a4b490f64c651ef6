package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSKABWrapperDropsTrainRows checks the adapter skab-eval calls: whatever
// order the flags come in, the detect CLI receives only --input.
func TestSKABWrapperDropsTrainRows(t *testing.T) {
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Skip("no echo on PATH")
	}
	script := filepath.Join(t.TempDir(), "detect.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrapper, echo, "")), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--train-rows", "400", "--input", "a b.csv"},
		{"--input", "a b.csv", "--train-rows", "400"},
	} {
		out, err := exec.Command("/bin/sh", append([]string{script}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "detect --input a b.csv" {
			t.Errorf("%q: the CLI got %q", args, got)
		}
	}
}
