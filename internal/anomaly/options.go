package anomaly

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// Options configure New. Zero values mean the documented defaults.
type Options struct {
	// Store persists samples, anomalies and models; without it Ingest, Train
	// and Activate fail with ErrNoStore and only Detect works.
	Store Store
	// Cache holds forest predictions; nil disables the prediction cache.
	Cache PredictionCache
	// CacheTTL is how long a prediction is reused (default 300s).
	CacheTTL time.Duration
	// Registerer receives the smartcloudops_anomaly_* metrics; nil registers
	// into a private registry.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Clock drives batching windows, the retraining schedule and training
	// timestamps (SystemClock when nil).
	Clock Clock

	// Stream configures every series' detector; Stream.Threshold is set to
	// Threshold.
	Stream stream.Options
	// Threshold is the score at which every component decides "anomaly" (default 0.5).
	Threshold float64
	// Thresholds are the fallback's static limits (DefaultThresholds when nil).
	Thresholds Thresholds
	// MaxSeries bounds the series kept in memory (default 100000); the least
	// recently updated are evicted past it or past MaxSeriesBytes.
	MaxSeries int
	// MaxSeriesBytes bounds the estimated heap bytes of the series (default
	// 256 MiB; a series is about 2.3 KB of live heap, 4–5 KB of RSS at the
	// default GOGC).
	MaxSeriesBytes int64

	// DisableBatching scores the forest inline in the caller
	// (ENABLE_BATCH_PROCESSING=false).
	DisableBatching bool
	// BatchSize is the largest batch (default 100).
	BatchSize int
	// BatchTimeout is the longest a sample waits for its batch to fill (default 0.5s).
	BatchTimeout time.Duration
	// MaxWorkers bounds the goroutines scoring batches (default 4).
	MaxWorkers int
	// QueueSize bounds the samples waiting for a worker (default 10000); a
	// request that does not fit is refused whole with a *QueueFullError.
	QueueSize int
	// MaxBatch is the most samples one request may carry (default 1000).
	MaxBatch int

	// TrainingWindow is how far back training reads history (default 7 days).
	TrainingWindow time.Duration
	// MaxTrainingRows caps the samples read for training, the most recent
	// kept (default 50000).
	MaxTrainingRows int
	// MinTrainingRows is the fewest samples a forest is trained on (default 256).
	MinTrainingRows int
	// Contamination is the share of training samples the forest's threshold
	// lets through as anomalies (default 0.005).
	Contamination float64
	// Trees and SampleSize configure the forest (defaults 100 and 256, as scikit-learn).
	Trees, SampleSize int
	// RetrainInterval trains and activates a new forest this often; 0 disables it.
	RetrainInterval time.Duration
	// IsLeader gates scheduled retraining when replicas share the store: a
	// tick retrains only while it reports true, so one replica trains and
	// activates for all. nil: this process always retrains. A call to
	// Train (the API's) runs regardless.
	IsLeader func() bool

	// Notifier hears when an incident opens and when it closes, on the
	// ingest path (events.go); nil tells nobody.
	Notifier Notifier
	// MaxScoreSeries caps the series of smartcloudops_anomaly_score, one per
	// series in an open incident (default DefaultMaxScoreSeries).
	MaxScoreSeries int

	// TracerProvider records spans of Detect, Ingest, Train and each scoring
	// batch (see tracing.go); nil or a no-op provider records nothing and
	// costs nothing.
	TracerProvider trace.TracerProvider
}

func (o *Options) defaults() {
	if o.CacheTTL == 0 {
		o.CacheTTL = 300 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Threshold == 0 {
		o.Threshold = 0.5
	}
	if o.Thresholds == nil {
		o.Thresholds = DefaultThresholds()
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = 100000
	}
	if o.MaxSeriesBytes == 0 {
		o.MaxSeriesBytes = 256 << 20
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.BatchTimeout == 0 {
		o.BatchTimeout = 500 * time.Millisecond
	}
	if o.MaxWorkers == 0 {
		o.MaxWorkers = 4
	}
	if o.QueueSize == 0 {
		o.QueueSize = 10000
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1000
	}
	if o.TrainingWindow == 0 {
		o.TrainingWindow = 7 * 24 * time.Hour
	}
	if o.MaxTrainingRows == 0 {
		o.MaxTrainingRows = 50000
	}
	if o.MinTrainingRows == 0 {
		o.MinTrainingRows = 256
	}
	if o.Contamination == 0 {
		o.Contamination = 0.005
	}
	if o.MaxScoreSeries == 0 {
		o.MaxScoreSeries = DefaultMaxScoreSeries
	}
	o.Stream.Threshold = o.Threshold
}

func (o *Options) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(!(o.Threshold > 0 && o.Threshold < 1), "threshold %v: must be in (0,1)", o.Threshold)
	check(o.BatchSize < 1, "batch size %d: must be at least 1", o.BatchSize)
	check(o.BatchTimeout < 0, "batch timeout %s: must not be negative", o.BatchTimeout)
	check(o.MaxWorkers < 1, "max workers %d: must be at least 1", o.MaxWorkers)
	check(o.MaxBatch < 1, "max batch %d: must be at least 1", o.MaxBatch)
	check(o.QueueSize < o.MaxBatch, "queue size %d: must hold at least one full request (%d)", o.QueueSize, o.MaxBatch)
	check(o.CacheTTL < 0, "cache TTL %s: must not be negative", o.CacheTTL)
	check(o.MaxScoreSeries < 1, "max score series %d: must be at least 1", o.MaxScoreSeries)
	check(o.MaxSeries < 1, "max series %d: must be at least 1", o.MaxSeries)
	check(o.MaxSeriesBytes < 1<<20, "max series bytes %d: must be at least 1 MiB", o.MaxSeriesBytes)
	check(o.TrainingWindow < 0 || o.RetrainInterval < 0, "training window and retrain interval must not be negative")
	check(o.MinTrainingRows < 2 || o.MaxTrainingRows < o.MinTrainingRows, "training rows: need 2 ≤ min (%d) ≤ max (%d)", o.MinTrainingRows, o.MaxTrainingRows)
	check(!(o.Contamination > 0 && o.Contamination < 0.5), "contamination %v: must be in (0, 0.5)", o.Contamination)
	if err := o.Thresholds.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := stream.New(o.Stream); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("anomaly: options: %w", err)
	}
	return nil
}
