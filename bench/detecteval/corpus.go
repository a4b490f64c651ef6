package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/detectcli"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// Candidate is one detector configuration the folds may choose from.
type Candidate struct {
	Name string
	Opt  stream.Options
}

// ParseGrid turns "Refractory=25,50 Short=10,20" into the cartesian product
// of those Options fields (unnamed fields keep their defaults). An empty grid
// is the default detector alone: nothing but the threshold is tuned.
func ParseGrid(spec string) ([]Candidate, error) {
	cands := []Candidate{{Name: "default"}}
	for _, part := range strings.Fields(spec) {
		key, vals, ok := strings.Cut(part, "=")
		if !ok || vals == "" {
			return nil, fmt.Errorf("-grid: %q: want Field=v1,v2", part)
		}
		var next []Candidate
		for _, c := range cands {
			for _, v := range strings.Split(vals, ",") {
				o := c.Opt
				if err := setOption(&o, key, v); err != nil {
					return nil, err
				}
				if _, err := stream.New(o); err != nil {
					return nil, fmt.Errorf("-grid: %s=%s: %w", key, v, err)
				}
				name := key + "=" + v
				if c.Name != "default" {
					name = c.Name + " " + name
				}
				next = append(next, Candidate{Name: name, Opt: o})
			}
		}
		cands = next
	}
	return cands, nil
}

// setOption sets the Options field, or the Tuning field, named key to v.
// Tuning is copied, so candidates never share one.
func setOption(o *stream.Options, key, v string) error {
	t := stream.DefaultTuning()
	if o.Tuning != nil {
		t = *o.Tuning
	}
	if key == "Threshold" {
		return fmt.Errorf("-grid: Threshold is what every fold tunes on its own; it is not a candidate option")
	}
	var f reflect.Value
	if sf, ok := reflect.TypeOf(*o).FieldByName(key); ok && sf.Name != "Tuning" && sf.IsExported() {
		f = reflect.ValueOf(o).Elem().FieldByIndex(sf.Index)
	} else if sf, ok := reflect.TypeOf(t).FieldByName(key); ok && sf.IsExported() {
		f = reflect.ValueOf(&t).Elem().FieldByIndex(sf.Index)
	} else {
		return fmt.Errorf("-grid: unknown field %q (a field of stream.Options or stream.Tuning)", key)
	}
	switch f.Kind() {
	case reflect.Int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("-grid: %s=%q: not an integer", key, v)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("-grid: %s=%q: not a number", key, v)
		}
		f.SetFloat(x)
	case reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("-grid: %s=%q: not a boolean", key, v)
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("-grid: %s: a %s cannot be set from the command line", key, f.Kind())
	}
	o.Tuning = &t
	return nil
}

// LoadNAB runs every candidate over every labelled file under root (a NAB
// layout: labels/combined_windows.json and data/) with the same runner as
// `smartcloudops detect`, using up to workers files at once. only, when not
// empty, keeps the files whose name contains it.
func LoadNAB(ctx context.Context, root string, cands []Candidate, workers int, only string) ([]File, error) {
	labels, err := nab.ReadLabels(filepath.Join(root, "labels", "combined_windows.json"))
	if err != nil {
		return nil, err
	}
	var names []string
	for n := range labels {
		if only == "" || strings.Contains(n, only) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	files := make([]File, len(names))
	errs := make([]error, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				files[i], errs[i] = runFile(ctx, root, names[i], labels[names[i]], cands)
			}
		}()
	}
	for i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// runFile scores one file with every candidate.
func runFile(ctx context.Context, root, name string, wins [][2]string, cands []Candidate) (File, error) {
	cat, _, _ := strings.Cut(name, "/")
	f := File{Name: name, Category: cat}
	data, err := os.ReadFile(filepath.Join(root, "data", name))
	if err != nil {
		return f, fmt.Errorf("nab data: %w", err)
	}
	for _, c := range cands {
		var out bytes.Buffer
		if err := detectcli.Score(ctx, bytes.NewReader(data), &out, c.Opt); err != nil {
			return f, fmt.Errorf("%s (%s): %w", name, c.Name, err)
		}
		ts, scores, err := nab.ReadResult(bytes.NewReader(out.Bytes()), "anomaly_score")
		if err != nil {
			return f, fmt.Errorf("%s: %w", name, err)
		}
		_, own, err := nab.ReadResult(bytes.NewReader(out.Bytes()), "is_anomaly")
		if err != nil {
			return f, fmt.Errorf("%s: %w", name, err)
		}
		if f.Windows == nil {
			if f.Windows, err = nab.Locate(ts, wins); err != nil {
				return f, fmt.Errorf("%s: %w", name, err)
			}
		}
		f.Runs = append(f.Runs, Run{Scores: scores, Own: own})
	}
	return f, nil
}
