package otlp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// Encoding is the body encoding of an OTLP/HTTP exchange: the response is
// encoded as the request was.
type Encoding uint8

// The encodings OTLP/HTTP defines.
const (
	// Protobuf is binary protobuf, application/x-protobuf.
	Protobuf Encoding = iota
	// JSON is the OTLP/JSON mapping of the protobuf, application/json.
	JSON
)

// ContentType is the media type of the encoding.
func (e Encoding) ContentType() string {
	if e == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// Errors a request's decoding may wrap; Receiver.Export maps each to its
// HTTP status.
var (
	// ErrUnsupportedMedia: a Content-Type or Content-Encoding the receiver
	// does not read (415).
	ErrUnsupportedMedia = errors.New("otlp: unsupported media type")
	// ErrMalformed: a body that does not decode (400, not retryable).
	ErrMalformed = errors.New("otlp: malformed request")
)

// ParseContentType reads the request's Content-Type. OTLP/HTTP has two;
// parameters (charset) are ignored.
func ParseContentType(ct string) (Encoding, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return Protobuf, fmt.Errorf("%w: Content-Type %q: want application/x-protobuf or application/json", ErrUnsupportedMedia, ct)
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return Protobuf, nil
	case "application/json":
		return JSON, nil
	}
	return Protobuf, fmt.Errorf("%w: Content-Type %q: want application/x-protobuf or application/json", ErrUnsupportedMedia, mt)
}

// readBody reads body, undoing contentEncoding, into at most limit bytes
// (0 is no limit). A body that decompresses past limit is refused as soon as
// it gets there, so a small gzip bomb costs limit bytes of memory and no more.
func readBody(body io.Reader, contentEncoding string, limit int64) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		r = body
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, wireError(err, "gzip")
		}
		defer zr.Close()
		r = zr
	case "zstd":
		opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true)}
		if limit > 0 {
			// The window is memory the decoder takes before writing a byte;
			// a frame asking for more than the decoded limit is refused.
			opts = append(opts, zstd.WithDecoderMaxMemory(uint64(max(limit, 1<<20))))
		}
		zr, err := zstd.NewReader(body, opts...)
		if err != nil {
			return nil, wireError(err, "zstd")
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: Content-Encoding %q: want gzip, zstd or none", ErrUnsupportedMedia, contentEncoding)
	}
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, wireError(err, strings.ToLower(contentEncoding))
	}
	if limit > 0 && int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%w: the body is over %d bytes decoded (OTLP_MAX_DECODED_BYTES)", ingest.ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// tooManyPoints is the refusal of a request over the data point limit;
// more says the count stopped at the limit.
func tooManyPoints(n, limit int, more bool) error {
	over := ""
	if more {
		over = "more than "
	}
	return fmt.Errorf("%w: %s%d data points; at most %d are accepted in one request (OTLP_MAX_DATA_POINTS)", ingest.ErrTooLarge, over, limit, limit)
}

// wireError tells a body over the server's wire limit (413) from a corrupt
// compressed stream (400).
func wireError(err error, coding string) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return fmt.Errorf("%w: the body is over %d bytes on the wire (SMARTCLOUDOPS_MAX_BODY_BYTES)", ingest.ErrTooLarge, big.Limit)
	}
	if coding == "" || coding == "identity" {
		return fmt.Errorf("%w: read body: %v", ErrMalformed, err)
	}
	return fmt.Errorf("%w: %s body: %v", ErrMalformed, coding, err)
}

// jsonOptions follow the OTLP/JSON rules protojson does not make its
// default: unknown fields are ignored (a newer sender's additions), not
// refused.
var jsonOptions = protojson.UnmarshalOptions{DiscardUnknown: true}

// Decode reads an ExportMetricsServiceRequest from body in enc, undoing
// contentEncoding, with maxDecoded bytes at most after decompression
// (0 is no limit). Errors wrap ErrUnsupportedMedia, ErrMalformed or
// ingest.ErrTooLarge.
//
// A binary body's data points are counted before it is decoded, and one of
// more than maxPoints (0 is no limit) is refused with ingest.ErrTooLarge;
// a JSON body is bounded by its size alone.
func Decode(body io.Reader, enc Encoding, contentEncoding string, maxDecoded int64, maxPoints int) (*colmetricpb.ExportMetricsServiceRequest, error) {
	raw, err := readBody(body, contentEncoding, maxDecoded)
	if err != nil {
		return nil, err
	}
	if enc == Protobuf && maxPoints > 0 {
		n, err := wireCount(raw, maxPoints)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if n > maxPoints {
			return nil, tooManyPoints(n, maxPoints, true)
		}
	}
	req := &colmetricpb.ExportMetricsServiceRequest{}
	switch enc {
	case JSON:
		if len(bytes.TrimSpace(raw)) == 0 {
			return nil, fmt.Errorf("%w: empty JSON body", ErrMalformed)
		}
		err = jsonOptions.Unmarshal(raw, req)
	default:
		err = proto.Unmarshal(raw, req)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return req, nil
}
