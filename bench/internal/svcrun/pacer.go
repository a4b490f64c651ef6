package svcrun

import (
	"context"
	"sync/atomic"
	"time"
)

// Pacer sends requests at a fixed rate (open loop) with a bound on how many
// are in flight. A fixed rate is what a fault or a soak needs: a stalled
// service keeps being asked at the same pace instead of slowing the
// generator down with it, and the bound keeps a hung service from piling
// up an ever-growing number of waiting requests.
type Pacer struct {
	slots    chan struct{}
	rate     int
	inflight atomic.Int64
	dropped  atomic.Int64
}

// NewPacer paces rate calls a second, at most workers at once.
func NewPacer(rate, workers int) *Pacer {
	return &Pacer{slots: make(chan struct{}, workers), rate: rate}
}

// Run calls fn(i) with i = 1, 2, … on its own goroutine at each tick until
// ctx ends, then waits for the calls in flight. A tick that finds every
// worker busy is not sent and counts in Dropped.
func (p *Pacer) Run(ctx context.Context, fn func(i int64)) {
	t := time.NewTicker(time.Second / time.Duration(p.rate))
	defer t.Stop()
	var i int64
	for {
		select {
		case <-ctx.Done():
			for p.inflight.Load() > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			return
		case <-t.C:
		}
		select {
		case p.slots <- struct{}{}:
		default:
			p.dropped.Add(1)
			continue
		}
		i++
		p.inflight.Add(1)
		go func(i int64) {
			defer func() { <-p.slots; p.inflight.Add(-1) }()
			fn(i)
		}(i)
	}
}

// Inflight is the number of calls running now.
func (p *Pacer) Inflight() int64 { return p.inflight.Load() }

// Dropped is the number of ticks not sent because every worker was busy.
func (p *Pacer) Dropped() int64 { return p.dropped.Load() }
