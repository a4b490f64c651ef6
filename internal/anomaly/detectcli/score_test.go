package detectcli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// TestScoreMatchesCommand: the exported runner writes byte for byte what the
// command writes, with default options and with a threshold.
func TestScoreMatchesCommand(t *testing.T) {
	in := synth(2000)
	for _, tc := range []struct {
		args []string
		opt  stream.Options
	}{
		{nil, stream.Options{}},
		{[]string{"--threshold", "0.3"}, stream.Options{Threshold: 0.3}},
	} {
		var cmd, errb, lib bytes.Buffer
		if err := Run(context.Background(), tc.args, strings.NewReader(in), &cmd, &errb); err != nil {
			t.Fatal(err)
		}
		if err := Score(context.Background(), strings.NewReader(in), &lib, tc.opt); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cmd.Bytes(), lib.Bytes()) {
			t.Errorf("%v: Score's output differs from the command's", tc.args)
		}
	}
}
