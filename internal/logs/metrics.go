package logs

import (
	"github.com/prometheus/client_golang/prometheus"
)

const ns = "smartcloudops_log_"

// Metric descriptions. They are read from the same counters as Stats at
// scrape time, so the endpoint and /metrics never disagree and logging a
// record touches no Prometheus code.
var (
	descRecords     = prometheus.NewDesc(ns+"records_total", "Records written, by sink: file, or fallback when the file could not take them.", []string{"sink"}, nil)
	descAttempted   = prometheus.NewDesc(ns+"records_attempted_total", "Records handed to the pipeline.", nil, nil)
	descDropped     = prometheus.NewDesc(ns+"records_dropped_total", "Records lost, by reason.", []string{"reason"}, nil)
	descBytes       = prometheus.NewDesc(ns+"written_bytes_total", "Bytes written to log files.", nil, nil)
	descQueueLen    = prometheus.NewDesc(ns+"queue_length", "Records waiting in the queue.", nil, nil)
	descQueueCap    = prometheus.NewDesc(ns+"queue_capacity", "Records the queue holds before the overflow policy applies.", nil, nil)
	descQueueBytes  = prometheus.NewDesc(ns+"queue_bytes", "Bytes waiting in the queue.", nil, nil)
	descQueueCapB   = prometheus.NewDesc(ns+"queue_capacity_bytes", "Bytes the queue holds before the overflow policy applies.", nil, nil)
	descEnqueue     = prometheus.NewDesc(ns+"enqueue_duration_seconds", "Caller's cost per record, encoding and queueing, observed on one record in 128.", nil, nil)
	descRotations   = prometheus.NewDesc(ns+"rotations_total", "Rotations, by cause.", []string{"cause"}, nil)
	descRemoved     = prometheus.NewDesc(ns+"files_removed_total", "Rotated files removed by retention, by reason.", []string{"reason"}, nil)
	descCompressed  = prometheus.NewDesc(ns+"compressed_files_total", "Rotated files gzipped.", nil, nil)
	descCompIn      = prometheus.NewDesc(ns+"compression_input_bytes_total", "Bytes of rotated files before gzip.", nil, nil)
	descCompOut     = prometheus.NewDesc(ns+"compression_output_bytes_total", "Bytes of rotated files after gzip.", nil, nil)
	descFiles       = prometheus.NewDesc(ns+"files", "Log files on disk, the current one included.", nil, nil)
	descFilesBytes  = prometheus.NewDesc(ns+"files_bytes", "Bytes of log files on disk, the current one included.", nil, nil)
	descCurrentSize = prometheus.NewDesc(ns+"current_file_bytes", "Size of the current log file.", nil, nil)
	descErrors      = prometheus.NewDesc(ns+"errors_total", "Failed operations, by op.", []string{"op"}, nil)
	descDegraded    = prometheus.NewDesc(ns+"degraded", "1 while lines go to the fallback writer instead of the file, or until a write to the file succeeds after one failed.", nil, nil)
)

// histBounds are the Prometheus buckets: powers of two nanoseconds from
// 64ns to about 1s, each an exact bucket edge of latencyHist.
var histBounds = func() (b []uint) {
	for k := uint(6); k <= 30; k += 2 {
		b = append(b, k)
	}
	return b
}()

type collector struct{ l *Logger }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descAttempted, descDropped, descBytes, descQueueLen,
		descQueueCap, descQueueBytes, descQueueCapB, descEnqueue, descRotations, descRemoved, descCompressed,
		descCompIn, descCompOut, descFiles, descFilesBytes, descCurrentSize, descErrors, descDegraded} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descRecords, st.RecordsWritten, "file")
	counter(descRecords, st.RecordsFallback, "fallback")
	counter(descAttempted, st.RecordsAttempted)
	for r, v := range st.RecordsDropped {
		counter(descDropped, v, r)
	}
	counter(descBytes, st.BytesWritten)
	gauge(descQueueLen, st.QueueLength)
	gauge(descQueueCap, st.QueueCapacity)
	gauge(descQueueBytes, st.QueueBytes)
	gauge(descQueueCapB, st.QueueCapacityBytes)
	for r, v := range st.Rotations {
		counter(descRotations, v, r)
	}
	for r, v := range st.FilesRemoved {
		counter(descRemoved, v, r)
	}
	counter(descCompressed, st.FilesCompressed)
	counter(descCompIn, st.CompressionBytesIn)
	counter(descCompOut, st.CompressionBytesOut)
	gauge(descFiles, st.FilesOnDisk)
	gauge(descFilesBytes, st.FilesBytes)
	gauge(descCurrentSize, st.CurrentFileBytes)
	for op, v := range st.Errors {
		counter(descErrors, v, op)
	}
	var deg int64
	if st.Degraded {
		deg = 1
	}
	gauge(descDegraded, deg)

	h := &c.l.c.enqueue
	counts, total := h.snapshot()
	buckets := make(map[float64]uint64, len(histBounds))
	var cum uint64
	i := 0
	for _, k := range histBounds {
		// Buckets below index 4k-4 lie entirely under 2^k ns.
		for ; i < int(4*k-4) && i < histBuckets; i++ {
			cum += counts[i]
		}
		buckets[float64(uint64(1)<<k)/1e9] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descEnqueue, total, float64(h.sum.Load())/1e9, buckets)
}
