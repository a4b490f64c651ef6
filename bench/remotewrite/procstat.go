package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go runs on (the kernel reports in it whatever its own HZ).
const clockTicks = 100

// procCPU is a process's user+system CPU seconds from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

// parseProcStatCPU reads utime and stime (fields 14 and 15). The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseProcStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: utime %q stime %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// machineCPU is the machine's busy and total CPU seconds since boot from
// /proc/stat's first line; idle and iowait are not busy.
func machineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (busy, total float64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var idle float64
	// user nice system idle iowait irq softirq steal; guest and guest_nice
	// are already inside user and nice.
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", s, err)
		}
		total += float64(v)
		if i == 3 || i == 4 {
			idle += float64(v)
		}
	}
	return (total - idle) / clockTicks, total / clockTicks, nil
}

// counterSel picks series out of a scrape: a metric name and optional
// label matchers, written as in PromQL without operators other than =,
// for example smartcloudops_db_bulk_rows_total{operation="insert"}.
type counterSel struct {
	name   string
	labels map[string]string
}

var selRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$`)
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*$`)

func parseSelector(s string) (counterSel, error) {
	m := selRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return counterSel{}, fmt.Errorf("counter %q: want name or name{label=\"value\",…}", s)
	}
	sel := counterSel{name: m[1], labels: map[string]string{}}
	if strings.TrimSpace(m[2]) != "" {
		for _, part := range strings.Split(m[2], ",") {
			lm := matcherRE.FindStringSubmatch(part)
			if lm == nil {
				return counterSel{}, fmt.Errorf("counter %q: matcher %q: want label=\"value\"", s, part)
			}
			sel.labels[lm[1]] = lm[2]
		}
	}
	return sel, nil
}

func (c counterSel) String() string {
	if len(c.labels) == 0 {
		return c.name
	}
	var parts []string
	for k, v := range c.labels {
		parts = append(parts, k+`="`+v+`"`)
	}
	sort.Strings(parts)
	return c.name + "{" + strings.Join(parts, ",") + "}"
}

// scrape is one read of the service's exposition: every counter, gauge
// and untyped series by its name and labels.
type scrape map[string]float64

// seriesKey writes a series' identity as name{a="x",b="y"} with labels
// sorted, so scrapes can be compared key by key.
func seriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// parseScrape reads the text exposition format.
func parseScrape(r io.Reader) (scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := scrape{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			out[seriesKey(name, m.GetLabel())] = v
		}
	}
	return out, nil
}

// sum adds the series that match sel; ok is false when none does (a
// counter the build does not have yet, or one never incremented).
func (s scrape) sum(sel counterSel) (v float64, ok bool) {
	for key, val := range s {
		name, rest, _ := strings.Cut(key, "{")
		if name != sel.name {
			continue
		}
		if matchLabels(rest, sel.labels) {
			v += val
			ok = true
		}
	}
	return v, ok
}

func matchLabels(rest string, want map[string]string) bool {
	for k, v := range want {
		if !strings.Contains(rest, k+`="`+v+`"`) {
			return false
		}
	}
	return true
}

// fetchScrape reads the service's metrics.
func fetchScrape(ctx context.Context, client *http.Client, url string, header http.Header) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return parseScrape(resp.Body)
}

// deltas lists after−before for every series whose name matches re, with
// a change, sorted by key.
func deltas(before, after scrape, re *regexp.Regexp) []string {
	var out []string
	for key, v := range after {
		name, _, _ := strings.Cut(key, "{")
		if !re.MatchString(name) {
			continue
		}
		d := v - before[key]
		if d == 0 {
			continue
		}
		sign := "+"
		if d < 0 {
			sign = ""
		}
		out = append(out, key+" "+sign+strconv.FormatFloat(d, 'f', -1, 64))
	}
	sort.Strings(out)
	return out
}
