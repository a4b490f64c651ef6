package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

func encode(batch []Alert) ([]byte, error) {
	for i := range batch {
		// Alertmanager reads times as RFC 3339; UTC keeps them uniform.
		batch[i].StartsAt = batch[i].StartsAt.UTC()
		batch[i].EndsAt = batch[i].EndsAt.UTC()
	}
	return json.Marshal(batch)
}

// statusError is a refused POST.
type statusError struct {
	code       int
	body       string
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("status %d: %s", e.code, e.body)
}

// retryable says whether another attempt may succeed: a server error, a
// rate limit, or no answer at all; any other 4xx means the alerts are bad
// and would be refused again.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests
	}
	return true
}

// send posts body (n alerts) to t, with retries.
func (n *Notifier) send(t *target, body []byte, count int) {
	wait := n.opt.MinBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := n.attempt(t, body)
		n.m.duration.WithLabelValues(t.name).Observe(time.Since(start).Seconds())
		if err == nil {
			n.m.sent.WithLabelValues(t.name).Add(float64(count))
			return
		}
		reason := "network"
		var se *statusError
		if errors.As(err, &se) {
			reason = "status_" + strconv.Itoa(se.code/100) + "xx"
			if se.code == http.StatusTooManyRequests {
				reason = "status_429"
			}
		}
		if n.ctx.Err() != nil {
			reason = "shutdown"
		}
		if !retryable(err) || attempt >= n.opt.MaxAttempts || n.ctx.Err() != nil {
			n.m.failed.WithLabelValues(t.name, reason).Add(float64(count))
			n.opt.Logger.Warn("alerting: alerts not delivered", slog.String("alertmanager", t.name), slog.Int("alerts", count),
				slog.Int("attempts", attempt), slog.String("error", err.Error()))
			return
		}
		n.m.retries.WithLabelValues(t.name, reason).Inc()
		d := wait
		if se != nil && se.retryAfter > 0 {
			d = se.retryAfter
		}
		d = min(d, n.opt.MaxBackoff)
		// Jitter keeps replicas that failed together from retrying together.
		d = d/2 + rand.N(d/2+1)
		wait = min(2*wait, n.opt.MaxBackoff)
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-n.ctx.Done():
			timer.Stop()
		}
	}
}

// attempt is one POST.
func (n *Notifier) attempt(t *target, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.post, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alerting: post to %s: %w", t.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smartcloudops")
	resp, err := n.opt.Client.Do(req)
	if err != nil {
		return fmt.Errorf("alerting: post to %s: %w", t.name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	se := &statusError{code: resp.StatusCode, body: string(bytes.TrimSpace(msg))}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.retryAfter = time.Duration(s) * time.Second
	}
	return se
}
