package logs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Overflow names what a producer does when the queue is full.
type Overflow string

// The overflow policies. ERROR and above are never dropped under either.
const (
	// OverflowBlock waits up to Options.BlockTimeout for room, then drops.
	OverflowBlock Overflow = "block"
	// OverflowDrop drops at once, so a burst never slows a request.
	OverflowDrop Overflow = "drop"
)

// Defaults, named so config and docs can quote them.
const (
	DefaultDir              = "./logs"
	DefaultFileName         = "smartcloudops"
	DefaultMaxFileSize      = 10 << 20
	DefaultRotationInterval = 24 * time.Hour
	DefaultCompressionLevel = 6
	DefaultMaxFiles         = 10
	DefaultMaxAge           = 30 * 24 * time.Hour
	DefaultQueueRecords     = 65536
	DefaultQueueBytes       = 16 << 20
	DefaultBlockTimeout     = 5 * time.Millisecond
	DefaultRecoveryInterval = time.Second
	DefaultCopyLevel        = "WARN"
	// DefaultFallbackBytesPerSecond bounds what a full disk can push to
	// stderr: enough for the errors that explain it, not for a flood that
	// fills the journal or the container runtime's log instead.
	DefaultFallbackBytesPerSecond = 256 << 10
)

// Options configures a Logger. Zero means off for every limit that can be
// switched off (size and time rotation, compression, retention by count and
// by age, the fallback's rate bound), as it does in the configuration, so
// nothing between the two flips a sign; DefaultOptions holds the documented
// defaults. Every other zero field (directory, names, queue, levels, clock)
// takes the default documented beside it.
type Options struct {
	// Dir holds the current file and the rotated ones. Default "./logs".
	// It is created if missing; if it cannot be, New still succeeds and
	// the pipeline starts DEGRADED, writing to Fallback until it can.
	Dir string
	// FileName is the stem of every file: the current file is
	// "<FileName>.log", rotated ones "<FileName>-<UTC time>.log[.gz]" so
	// that names sort by time. Default "smartcloudops".
	FileName string
	// MaxFileSize rotates the current file before a record would take it
	// past this many bytes; 0 turns size rotation off. DefaultOptions: 10 MiB
	// (config.ParseSize reads the text forms operators write).
	MaxFileSize int64
	// RotationInterval rotates at wall-clock boundaries of this length
	// (midnight-aligned in Location when it divides a day); 0 turns time
	// rotation off. DefaultOptions: 24h.
	RotationInterval time.Duration
	// Location aligns time rotation. Default time.UTC.
	Location *time.Location
	// CompressionLevel is the gzip level (1-9) of rotated files; 0 keeps
	// them uncompressed. DefaultOptions: 6.
	CompressionLevel int
	// MaxFiles bounds the rotated files kept; 0 keeps all. DefaultOptions: 10.
	MaxFiles int
	// MaxAge removes rotated files rotated longer ago than this; 0 keeps
	// them regardless of age. DefaultOptions: 30 days.
	MaxAge time.Duration

	// Synchronous writes on the caller's goroutine instead of through the
	// queue (ENABLE_ASYNC_LOGGING=false). Default false.
	Synchronous bool
	// QueueRecords and QueueBytes bound the queue. Defaults 65536 records
	// and 16 MiB. ERROR and above may use a reserve of a quarter more.
	QueueRecords int
	QueueBytes   int64
	// OnFull is the policy for a full queue. Default OverflowBlock.
	OnFull Overflow
	// BlockTimeout bounds the wait under OverflowBlock. Default 5ms.
	BlockTimeout time.Duration

	// Level is the lowest level logged. Default slog.LevelInfo; pass a
	// *slog.LevelVar to change it at run time.
	Level slog.Leveler
	// Copy receives a copy of every record at or above CopyLevel.
	// Default os.Stderr.
	Copy io.Writer
	// CopyLevel is "off" or a slog level name ("DEBUG", "INFO", "WARN",
	// "ERROR", optionally with an offset like "WARN+2"). Default "WARN".
	CopyLevel string
	// CopySkip, when set, keeps a record at or above CopyLevel off the
	// copy (it still reaches the file): the terminal is for the operator,
	// and some warnings (a client's 4xx) are only noise there.
	CopySkip func(level slog.Level, record []byte) bool
	// Fallback receives the records that could not reach the file (an
	// unwritable directory, a full disk). Default os.Stderr.
	Fallback io.Writer
	// FallbackBytesPerSecond bounds the bytes written to Fallback in each
	// second; whole records past it are dropped and counted with reason
	// "fallback_limit"; 0 means no bound. DefaultOptions: 256 KiB.
	FallbackBytesPerSecond int64

	// RecoveryInterval is how often a faulted pipeline retries the
	// directory, re-checks that the current file is still at its path,
	// and retries a failed compression. Default 1s.
	RecoveryInterval time.Duration
	// Now is the clock for rotation and retention. Default time.Now.
	Now func() time.Time

	// beforeWrite lets tests stall the sink.
	beforeWrite func()
}

// DefaultOptions returns the documented defaults of every limit that zero
// turns off; callers change what they need and pass the result to New.
func DefaultOptions() Options {
	return Options{
		MaxFileSize:            DefaultMaxFileSize,
		RotationInterval:       DefaultRotationInterval,
		CompressionLevel:       DefaultCompressionLevel,
		MaxFiles:               DefaultMaxFiles,
		MaxAge:                 DefaultMaxAge,
		FallbackBytesPerSecond: DefaultFallbackBytesPerSecond,
	}
}

// withDefaults returns o with the zero fields that cannot be off replaced
// by their defaults.
func (o Options) withDefaults() Options {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.FileName == "" {
		o.FileName = DefaultFileName
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.QueueRecords == 0 {
		o.QueueRecords = DefaultQueueRecords
	}
	if o.QueueBytes == 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.OnFull == "" {
		o.OnFull = OverflowBlock
	}
	if o.BlockTimeout == 0 {
		o.BlockTimeout = DefaultBlockTimeout
	}
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	if o.CopyLevel == "" {
		o.CopyLevel = DefaultCopyLevel
	}
	if o.RecoveryInterval == 0 {
		o.RecoveryInterval = DefaultRecoveryInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validate reports every invalid field at once, so one restart fixes them all.
func (o Options) validate() error {
	var errs []error
	if o.MaxFileSize < 0 {
		errs = append(errs, fmt.Errorf("MaxFileSize %d is negative (0 turns size rotation off)", o.MaxFileSize))
	}
	if o.CompressionLevel < 0 || o.CompressionLevel > 9 {
		errs = append(errs, fmt.Errorf("CompressionLevel %d is not 0 (off) to 9", o.CompressionLevel))
	}
	if o.RotationInterval < 0 {
		errs = append(errs, fmt.Errorf("RotationInterval %s is negative (0 turns time rotation off)", o.RotationInterval))
	}
	if o.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("MaxFiles %d is negative (0 keeps all)", o.MaxFiles))
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("MaxAge %s is negative (0 keeps files regardless of age)", o.MaxAge))
	}
	if o.FallbackBytesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("FallbackBytesPerSecond %d is negative (0 means no bound)", o.FallbackBytesPerSecond))
	}
	if strings.ContainsAny(o.FileName, `/\`) {
		errs = append(errs, fmt.Errorf("FileName %q contains a path separator", o.FileName))
	}
	if o.QueueRecords < 0 {
		errs = append(errs, fmt.Errorf("QueueRecords %d is negative", o.QueueRecords))
	}
	if o.QueueBytes < 0 {
		errs = append(errs, fmt.Errorf("QueueBytes %d is negative", o.QueueBytes))
	}
	if o.OnFull != OverflowBlock && o.OnFull != OverflowDrop {
		errs = append(errs, fmt.Errorf("OnFull %q is neither %q nor %q", o.OnFull, OverflowBlock, OverflowDrop))
	}
	if o.BlockTimeout < 0 {
		errs = append(errs, fmt.Errorf("BlockTimeout %s is negative", o.BlockTimeout))
	}
	if o.RecoveryInterval < 0 {
		errs = append(errs, fmt.Errorf("RecoveryInterval %s is negative", o.RecoveryInterval))
	}
	if _, _, err := parseCopyLevel(o.CopyLevel); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("logs: invalid options: %w", err)
	}
	return nil
}

// parseCopyLevel turns CopyLevel into a level; off reports that no copy is made.
func parseCopyLevel(s string) (lvl slog.Level, off bool, err error) {
	if strings.EqualFold(s, "off") || strings.EqualFold(s, "none") {
		return 0, true, nil
	}
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return 0, false, fmt.Errorf("CopyLevel %q: %w", s, err)
	}
	return lvl, false, nil
}
