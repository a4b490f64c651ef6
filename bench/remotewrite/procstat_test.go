package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestParseProcStatCPU(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		// A command name with a space and a parenthesis must not shift the fields.
		{in: "4242 (smart cloud) ops) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1234 0 0", want: 3.25},
		{in: "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0", want: 0},
		{in: "1 (x) S 0 1", wantErr: true},
		{in: "no parenthesis", wantErr: true},
		{in: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 a b 0", wantErr: true},
	} {
		got, err := parseProcStatCPU([]byte(tc.in))
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseProcStatCPU(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU(self): %v", err)
	}
}

func TestParseMachineCPU(t *testing.T) {
	busy, total, err := parseMachineCPU([]byte("cpu  100 10 50 800 40 0 5 0 0 0\ncpu0 1 2 3 4\n"))
	if err != nil || busy != 1.65 || total != 10.05 {
		t.Fatalf("busy %v total %v err %v; want 1.65 10.05", busy, total, err)
	}
	if _, _, err := parseMachineCPU([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("a file without the cpu line parsed")
	}
	if _, _, err := machineCPU(); err != nil {
		t.Errorf("machineCPU: %v", err)
	}
}

func TestSelectorsAndScrape(t *testing.T) {
	f, err := os.Open("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc, err := parseScrape(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sel    string
		want   float64
		wantOK bool
	}{
		{`smartcloudops_db_bulk_rows_total{operation="insert"}`, 1500, true},
		{`smartcloudops_db_bulk_rows_total`, 1507, true},
		{`smartcloudops_remote_write_samples_total{ result = "mapped" }`, 9000, true},
		{`process_cpu_seconds_total`, 12.5, true},
		{`smartcloudops_not_there_total`, 0, false},
		{`smartcloudops_db_bulk_rows_total{operation="delete"}`, 0, false},
	} {
		sel, err := parseSelector(tc.sel)
		if err != nil {
			t.Fatalf("parseSelector(%q): %v", tc.sel, err)
		}
		if got, ok := sc.sum(sel); got != tc.want || ok != tc.wantOK {
			t.Errorf("sum(%s) = %v, %v; want %v, %v", tc.sel, got, ok, tc.want, tc.wantOK)
		}
	}
	for _, bad := range []string{`a{b}`, `1abc`, `a{b="c"`, `a{b=c}`} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("parseSelector(%q) accepted", bad)
		}
	}
	sels, err := parseSelectors(`a_total{x="1",y="2"}, b_total`)
	if err != nil || len(sels) != 2 || sels[0].String() != `a_total{x="1",y="2"}` || sels[1].String() != "b_total" {
		t.Fatalf("parseSelectors: %v %v", sels, err)
	}

	after := scrape{}
	for k, v := range sc {
		after[k] = v
	}
	after[`smartcloudops_remote_write_samples_total{result="mapped"}`] += 2000
	after[`smartcloudops_remote_write_samples_total{result="rejected"}`] = 5
	got := deltas(sc, after, regexp.MustCompile(`remote_write`))
	want := `smartcloudops_remote_write_samples_total{result="mapped"} +2000|smartcloudops_remote_write_samples_total{result="rejected"} +5`
	if strings.Join(got, "|") != want {
		t.Fatalf("deltas = %q; want %q", got, want)
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`a`, `a{b="c"}`, `a{b="c", d="e"}`, `{`, `a{b="}"}`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := parseSelector(s)
		if err != nil {
			return
		}
		// What parses prints as a selector that parses to the same thing.
		again, err := parseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Fatalf("%q → %q → %q, %v", s, sel.String(), again.String(), err)
		}
	})
}

func FuzzParseProcStatCPU(f *testing.F) {
	f.Add([]byte("4242 (smart cloud) ops) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0"))
	f.Add([]byte("1 (x) S"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := parseProcStatCPU(b); err == nil && v < 0 {
			t.Fatalf("negative CPU %v", v)
		}
		_, _, _ = parseMachineCPU(b)
	})
}
