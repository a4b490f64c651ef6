package anomaly

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// Thresholds returns the fallback limits in force.
func (s *Service) Thresholds() Thresholds { return maps.Clone(*s.thresholds.Load()) }

// SetThresholds replaces the fallback limits while the service runs. Metrics
// missing from t lose their limit.
func (s *Service) SetThresholds(t Thresholds) error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("anomaly: %w", err)
	}
	c := maps.Clone(t)
	s.thresholds.Store(&c)
	return nil
}

// Batching returns the batch size and timeout in force; ok is false when
// batching is disabled (ENABLE_BATCH_PROCESSING=false).
func (s *Service) Batching() (size int, timeout time.Duration, ok bool) {
	if s.batch == nil {
		return 0, 0, false
	}
	return int(s.batch.size.Load()), time.Duration(s.batch.timeout.Load()), true
}

// SetBatching changes the batch size and the longest wait for a batch to
// fill; batches being filled pick the change up with their next sample.
func (s *Service) SetBatching(size int, timeout time.Duration) error {
	if s.batch == nil {
		return errors.New("anomaly: batching is disabled (ENABLE_BATCH_PROCESSING=false)")
	}
	if size < 1 || timeout <= 0 {
		return fmt.Errorf("anomaly: batch size %d and timeout %s: need size >= 1 and a positive timeout", size, timeout)
	}
	s.batch.size.Store(int64(size))
	s.batch.timeout.Store(int64(timeout))
	return nil
}
