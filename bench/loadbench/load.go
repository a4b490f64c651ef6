package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one endpoint to drive: the service's or the bare handler's.
type target struct {
	method string
	url    string
	// path is the bare handler's path until its server's address is known.
	path   string
	header http.Header
	// body returns the i-th request's body; nil for a request without one.
	// Bodies differ per request where the service would otherwise answer
	// every request from one cached result or skip duplicates.
	body func(i int64) []byte
	// want is the status a successful request gets.
	want int
}

// measurement is what one closed-loop run produced.
type measurement struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	// lat holds every successful request's latency, sorted.
	lat []time.Duration
	// firstErr says what the first failure was, for the report.
	firstErr string
}

func (m measurement) rps() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(m.requests) / m.elapsed.Seconds()
}

// quantile returns the q-quantile (nearest rank) of the sorted latencies.
func (m measurement) quantile(q float64) time.Duration {
	if len(m.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(m.lat))+0.5) - 1
	return m.lat[min(max(i, 0), len(m.lat)-1)]
}

// drive runs conns workers in a closed loop (each sends its next request
// when the previous answer has been read) for dur, or until maxRequests
// have been sent when that is positive, and measures every request from
// send to the last body byte. The closed loop bounds the load to conns
// requests in flight, which is what makes it safe to point at a shared box;
// it also means latencies are service times under that concurrency, not
// the open-loop latencies of a fixed arrival rate.
func drive(ctx context.Context, client *http.Client, tg target, conns int, dur time.Duration, maxRequests int64) measurement {
	var (
		seq      atomic.Int64
		mu       sync.Mutex
		all      []time.Duration
		errs     int64
		firstErr string
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			var localErrs int64
			var localFirst string
			for ctx.Err() == nil {
				i := seq.Add(1) - 1
				if maxRequests > 0 && i >= maxRequests {
					break
				}
				d, err := once(ctx, client, tg, i)
				switch {
				case err == nil:
					local = append(local, d)
				case ctx.Err() != nil:
					// Cut off by the end of the run, not a failure of the target.
				default:
					localErrs++
					if localFirst == "" {
						localFirst = err.Error()
					}
				}
			}
			mu.Lock()
			all = append(all, local...)
			errs += localErrs
			if firstErr == "" {
				firstErr = localFirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	return measurement{requests: int64(len(all)) + errs, errors: errs, elapsed: elapsed, lat: all, firstErr: firstErr}
}

// once sends the i-th request and reads the whole answer.
func once(ctx context.Context, client *http.Client, tg target, i int64) (time.Duration, error) {
	var body io.Reader
	if tg.body != nil {
		body = bytes.NewReader(tg.body(i))
	}
	req, err := http.NewRequestWithContext(ctx, tg.method, tg.url, body)
	if err != nil {
		return 0, err
	}
	for k, v := range tg.header {
		req.Header[k] = v
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, cerr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if cerr != nil {
		return 0, cerr
	}
	if resp.StatusCode != tg.want {
		return 0, fmt.Errorf("status %d, want %d", resp.StatusCode, tg.want)
	}
	return d, nil
}

// median returns the middle value (the mean of the two middle ones for an
// even count); medians over repeats keep one disturbed run from moving the
// report.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
