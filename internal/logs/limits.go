package logs

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// minFileSize keeps a live change from rotating on every record.
const minFileSize = 1024

// Limits are the rotation and retention limits an operator may change while
// the service runs (PUT /performance/config).
type Limits struct {
	// MaxFileSize rotates the current file before it passes this many
	// bytes; 0 turns size rotation off.
	MaxFileSize int64 `json:"max_file_size"`
	// MaxFiles bounds the rotated files kept; 0 keeps all.
	MaxFiles int `json:"max_files"`
	// MaxAge removes rotated files older than this; 0 keeps them.
	MaxAge time.Duration `json:"max_age"`
}

// limits holds the live Limits. The writer goroutine and the maintenance
// goroutine read them on every decision, so a change takes effect with the
// next record and the next retention pass without a restart.
type limits struct {
	maxFileSize atomic.Int64
	maxFiles    atomic.Int64
	maxAge      atomic.Int64
}

func newLimits(o Options) *limits {
	l := &limits{}
	l.maxFileSize.Store(o.MaxFileSize)
	l.maxFiles.Store(int64(o.MaxFiles))
	l.maxAge.Store(int64(o.MaxAge))
	return l
}

func (l Limits) validate() error {
	var errs []error
	if l.MaxFileSize != 0 && l.MaxFileSize < minFileSize {
		errs = append(errs, fmt.Errorf("max file size %d: must be 0 (off) or at least %d bytes", l.MaxFileSize, minFileSize))
	}
	if l.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("max files %d: must be 0 (keep all) or more", l.MaxFiles))
	}
	if l.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age %s: must be 0 (keep regardless of age) or more", l.MaxAge))
	}
	if len(errs) > 0 {
		return fmt.Errorf("logs: limits: %w", errors.Join(errs...))
	}
	return nil
}

// Limits returns the rotation and retention limits in force.
func (l *Logger) Limits() Limits {
	return Limits{
		MaxFileSize: l.lim.maxFileSize.Load(),
		MaxFiles:    int(l.lim.maxFiles.Load()),
		MaxAge:      time.Duration(l.lim.maxAge.Load()),
	}
}

// SetLimits changes the rotation and retention limits. A smaller size takes
// effect before the next record; tighter retention runs at once.
func (l *Logger) SetLimits(n Limits) error {
	if err := n.validate(); err != nil {
		return err
	}
	l.lim.maxFileSize.Store(n.MaxFileSize)
	l.lim.maxFiles.Store(int64(n.MaxFiles))
	l.lim.maxAge.Store(int64(n.MaxAge))
	l.maint.notify()
	return nil
}
