package svcrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPacerDropsTicksWhenAllWorkersAreBusy(t *testing.T) {
	p := NewPacer(200, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var calls atomic.Int64
	release := make(chan struct{})
	go func() { time.Sleep(150 * time.Millisecond); close(release) }()
	p.Run(ctx, func(int64) {
		calls.Add(1)
		<-release // both workers hang until release: later ticks are dropped
	})
	if p.Inflight() != 0 {
		t.Errorf("Run returned with %d calls in flight", p.Inflight())
	}
	if calls.Load() < 2 || p.Dropped() == 0 {
		t.Errorf("calls %d dropped %d; want the two workers busy and ticks dropped meanwhile", calls.Load(), p.Dropped())
	}
}

func TestAppendSampleIsValidJSON(t *testing.T) {
	var doc struct {
		Host      string             `json:"host"`
		Timestamp int64              `json:"timestamp"`
		Metrics   map[string]float64 `json:"metrics"`
	}
	if err := json.Unmarshal(AppendSample(nil, "web-1", 1700000000, 42), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Host != "web-1" || doc.Timestamp != 1700000000 || len(doc.Metrics) != 3 {
		t.Errorf("sample = %+v", doc)
	}
}

func TestProblemDetail(t *testing.T) {
	tests := map[string]string{
		`{"title":"Service Unavailable","detail":"database is down"}`: "(Service Unavailable: database is down)",
		`plain text`:             `"plain text"`,
		strings.Repeat("x", 200): `"` + strings.Repeat("x", 120) + `"`,
	}
	for in, want := range tests {
		if got := ProblemDetail([]byte(in)); got != want {
			t.Errorf("ProblemDetail(%.20q) = %q; want %q", in, got, want)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	parse := func(args []string, _ io.Writer) (string, error) {
		switch {
		case len(args) == 0:
			return "", nil
		case args[0] == "-h":
			return "", flag.ErrHelp
		case args[0] == "bad":
			return "", errors.New("bad flag")
		}
		return args[0], nil
	}
	body := func(_ context.Context, o string) error {
		switch o {
		case "fail":
			return errors.New("it broke")
		case "verdict":
			return ErrVerdict
		}
		return nil
	}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{[]string{"-h"}, 0, ""},
		{[]string{"bad"}, 2, "x: bad flag\n"},
		{[]string{"fail"}, 1, "x: it broke\n"},
		{[]string{"verdict"}, 1, ""},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := Run(context.Background(), "x", tt.args, &stderr, parse, body); code != tt.code || stderr.String() != tt.stderr {
			t.Errorf("Run(%q) = %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "-", 250 * time.Microsecond: "250µs", 2500 * time.Microsecond: "2.50ms", 25 * time.Millisecond: "25.0ms", 2500 * time.Millisecond: "2.50s"} {
		if got := FmtDuration(d); got != want {
			t.Errorf("FmtDuration(%s) = %q; want %q", d, got, want)
		}
	}
}
