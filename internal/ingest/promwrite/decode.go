package promwrite

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// Error is a refusal of a request, with the HTTP status Prometheus's
// sender reads: 400 and 413 drop the batch (a retry would fail the same
// way), 415 tells the operator the protocol is wrong. Detail is safe to
// show the client.
type Error struct {
	Status int
	Detail string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("promwrite: %s: %v", e.Detail, e.Err)
	}
	return "promwrite: " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(status int, err error, format string, args ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, args...), Err: err}
}

func tooLarge(format string, args ...any) *Error {
	return refuse(http.StatusRequestEntityTooLarge, ingest.ErrTooLarge, format, args...)
}

// Version is the remote-write protocol of a request.
type Version int

// The protocol versions.
const (
	V1 Version = 1
	V2 Version = 2
)

// protoV1 and protoV2 are the content type's proto= values.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// parseContentType reads the protocol from Content-Type: no type, or
// application/x-protobuf without proto=, is 1.0, as the 1.0 spec's senders
// send it.
func parseContentType(ct string) (Version, error) {
	if strings.TrimSpace(ct) == "" {
		return V1, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-protobuf" {
		return 0, refuse(http.StatusUnsupportedMediaType, err, "Content-Type must be application/x-protobuf (remote write 1.0 or 2.0), got %q", ct)
	}
	switch params["proto"] {
	case "", protoV1:
		return V1, nil
	case protoV2:
		return V2, nil
	}
	return 0, refuse(http.StatusUnsupportedMediaType, nil, "proto=%q is not accepted; this receiver takes %s and %s", params["proto"], protoV1, protoV2)
}

// readBody reads at most limit bytes (0: no limit) of body into buf.
func readBody(body io.Reader, length, limit int64, buf []byte) ([]byte, error) {
	if limit > 0 && length > limit {
		return nil, tooLarge("the compressed body is %d bytes; at most %d are accepted", length, limit)
	}
	if length > 0 && int64(cap(buf)) <= length {
		// One byte more than declared, so reading to EOF does not grow it.
		buf = make([]byte, 0, length+1)
	}
	buf = buf[:0]
	r := body
	if limit > 0 {
		r = io.LimitReader(body, limit+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge("the compressed body is over %d bytes", mbe.Limit)
			}
			return nil, refuse(http.StatusBadRequest, err, "reading the body failed")
		}
	}
	if limit > 0 && int64(len(buf)) > limit {
		return nil, tooLarge("the compressed body is over %d bytes", limit)
	}
	return buf, nil
}

// decompress checks the snappy block's decoded length against limit before
// allocating anything for it, then decodes into buf.
func decompress(src []byte, limit int64, buf []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, err, "the body is not a snappy block")
	}
	if limit > 0 && int64(n) > limit {
		return nil, tooLarge("the decompressed body would be %d bytes; at most %d are accepted", n, limit)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := snappy.Decode(buf[:cap(buf)], src)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, err, "the body is not a valid snappy block")
	}
	return out, nil
}

// wire field numbers of the two messages, for countWire.
var (
	v1Fields = wireFields{series: 1, samples: 2, histograms: 4}
	v2Fields = wireFields{series: 5, samples: 2, histograms: 3}
)

type wireFields struct{ series, samples, histograms protowire.Number }

// countWire counts the series and samples (histogram samples included) of
// an encoded request without decoding it, so a request over the limits is
// refused before its millions of series are allocated. It walks the wire
// format with the protobuf module's own reader; the message is then
// decoded by its generated code.
func countWire(b []byte, f wireFields, maxSeries, maxSamples int) error {
	series, samples := 0, 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return refuse(http.StatusBadRequest, protowire.ParseError(n), "the body is not a valid protobuf message")
		}
		b = b[n:]
		if num == f.series && typ == protowire.BytesType {
			ts, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return refuse(http.StatusBadRequest, protowire.ParseError(n), "the body is not a valid protobuf message")
			}
			b = b[n:]
			series++
			if maxSeries > 0 && series > maxSeries {
				return tooLarge("the request holds more than %d series; lower the sender's max_samples_per_send", maxSeries)
			}
			for len(ts) > 0 {
				inum, ityp, m := protowire.ConsumeTag(ts)
				if m < 0 {
					return refuse(http.StatusBadRequest, protowire.ParseError(m), "the body is not a valid protobuf message")
				}
				ts = ts[m:]
				if (inum == f.samples || inum == f.histograms) && ityp == protowire.BytesType {
					samples++
				}
				m = protowire.ConsumeFieldValue(inum, ityp, ts)
				if m < 0 {
					return refuse(http.StatusBadRequest, protowire.ParseError(m), "the body is not a valid protobuf message")
				}
				ts = ts[m:]
			}
			if maxSamples > 0 && samples > maxSamples {
				return tooLarge("the request holds more than %d samples; lower the sender's max_samples_per_send", maxSamples)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return refuse(http.StatusBadRequest, protowire.ParseError(n), "the body is not a valid protobuf message")
		}
		b = b[n:]
	}
	return nil
}

// unmarshal decodes the message with Prometheus's generated code into the
// reused request of its version.
func (st *state) unmarshal(v Version, raw []byte) error {
	var err error
	switch v {
	case V1:
		ts := st.v1.Timeseries[:0]
		md := st.v1.Metadata[:0]
		st.v1 = prompb.WriteRequest{Timeseries: ts, Metadata: md}
		err = st.v1.Unmarshal(raw)
	case V2:
		ts := st.v2.Timeseries[:0]
		sy := st.v2.Symbols[:0]
		st.v2 = writev2.Request{Timeseries: ts, Symbols: sy}
		err = st.v2.Unmarshal(raw)
	}
	if err != nil {
		return refuse(http.StatusBadRequest, err, "the body is not a valid remote write %d message", v)
	}
	return nil
}
