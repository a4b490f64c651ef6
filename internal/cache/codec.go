package cache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codec names how Go values are serialized before they are stored.
type Codec string

// The codecs. Every stored value records its codec in its header, so a
// replica configured with another codec still decodes it.
const (
	// CodecJSON is the default: readable in redis-cli and by non-Go tenants.
	CodecJSON Codec = "json"
	// CodecCBOR round-trips what JSON cannot (NaN, ±Inf, non-UTF-8-safe
	// byte strings as bytes, tagged times); it is also smaller and faster.
	CodecCBOR Codec = "cbor"
)

// Compression names the algorithm applied to encoded values at or above
// Options.CompressionThreshold.
type Compression string

// The compression algorithms. A compressed value is kept only when it is
// smaller than the encoded one.
const (
	// CompressionS2 is the default: several GB/s each way, so it costs the
	// hot path little.
	CompressionS2 Compression = "s2"
	// CompressionZstd trades some CPU for a better ratio when Redis memory
	// matters more than latency.
	CompressionZstd Compression = "zstd"
	// CompressionNone stores every value as encoded.
	CompressionNone Compression = "none"
)

// Wire format of a value stored in Redis:
//
//	[0]    magic 0xC7
//	[1]    format version (1)
//	[2]    codec id
//	[3]    compression id
//	[4:12] absolute expiry, unix milliseconds, big endian; 0 = none
//	raw codec only: uvarint content-type length, content type
//	compressed only: uvarint decoded length
//	payload
//
// The expiry travels with the value so a replica that reads it from Redis
// knows how long it may keep it in memory without another round trip.
const (
	wireMagic   = 0xC7
	wireVersion = 1
	headerLen   = 12
	// maxContentTypeLen bounds the content type stored with raw values.
	maxContentTypeLen = 255
)

type codecID uint8

const (
	codecJSON codecID = 1
	codecCBOR codecID = 2
	codecRaw  codecID = 3
)

type compID uint8

const (
	compNone compID = 0
	compS2   compID = 1
	compZstd compID = 2
)

// envelope is a decoded stored value.
type envelope struct {
	codec       codecID
	contentType string
	expireAtMs  int64
	// payload is the uncompressed encoded value; it may alias a Redis reply
	// or a cached entry and must never be written to.
	payload []byte
}

// codecs holds the per-Cache serialization state: encoder and decoder
// modes and the zstd coder, built once in New and shared by all calls.
type codecs struct {
	def       codecID
	comp      compID
	threshold atomic.Int64 // changeable at run time
	maxValue  int
	cborEnc   cbor.EncMode
	cborDec   cbor.DecMode
	zenc      *zstd.Encoder
	zdec      *zstd.Decoder
}

func newCodecs(def Codec, comp Compression, threshold, maxValue int) (*codecs, error) {
	cs := &codecs{maxValue: maxValue}
	cs.threshold.Store(int64(threshold))
	switch def {
	case CodecJSON:
		cs.def = codecJSON
	case CodecCBOR:
		cs.def = codecCBOR
	default:
		return nil, fmt.Errorf("cache: unknown codec %q", def)
	}
	switch comp {
	case CompressionS2:
		cs.comp = compS2
	case CompressionZstd:
		cs.comp = compZstd
	case CompressionNone:
		cs.comp = compNone
	default:
		return nil, fmt.Errorf("cache: unknown compression %q", comp)
	}
	var err error
	// RFC 3339 with a tag keeps the offset and nanoseconds of a time.Time,
	// which the default numeric encoding would round.
	cs.cborEnc, err = cbor.EncOptions{Time: cbor.TimeRFC3339Nano, TimeTag: cbor.EncTagRequired}.EncMode()
	if err != nil {
		return nil, fmt.Errorf("cache: cbor encoder: %w", err)
	}
	// Values in Redis may come from anyone with access to it: bound what a
	// hostile one can make the decoder allocate.
	cs.cborDec, err = cbor.DecOptions{
		MaxNestedLevels:  64,
		MaxArrayElements: maxValue,
		MaxMapPairs:      maxValue,
		// The encoder writes a Go string's bytes as they are, valid UTF-8
		// or not; refusing them here would make such a value unreadable
		// the moment after Set stored it.
		UTF8: cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("cache: cbor decoder: %w", err)
	}
	cs.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("cache: zstd encoder: %w", err)
	}
	cs.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxValue)+1))
	if err != nil {
		_ = cs.zenc.Close()
		return nil, fmt.Errorf("cache: zstd decoder: %w", err)
	}
	return cs, nil
}

func (cs *codecs) close() {
	_ = cs.zenc.Close()
	cs.zdec.Close()
}

// marshal serializes v with the configured codec. JSON rejects some values
// outright (NaN, ±Inf, channels as map keys...); those go through CBOR
// instead of failing the caller, and the header tells readers which it was.
func (cs *codecs) marshal(v any) ([]byte, codecID, error) {
	if cs.def == codecJSON {
		b, err := json.Marshal(v)
		if err == nil {
			return b, codecJSON, nil
		}
		var uv *json.UnsupportedValueError
		var ut *json.UnsupportedTypeError
		if !errors.As(err, &uv) && !errors.As(err, &ut) {
			return nil, 0, fmt.Errorf("cache: encode json: %w", err)
		}
	}
	b, err := cs.cborEnc.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("cache: encode cbor: %w", err)
	}
	return b, codecCBOR, nil
}

// unmarshal decodes an envelope's payload into dst.
func (cs *codecs) unmarshal(e envelope, dst any) error {
	switch e.codec {
	case codecJSON:
		// The v1 emulation of the json/v2 engine: encoding/json's exact
		// semantics (what encoding/json becomes with GOEXPERIMENT=jsonv2),
		// decoding two to three times faster and with fewer allocations,
		// which is most of an in-process hit's cost.
		return jsonv1.Unmarshal(e.payload, dst)
	case codecCBOR:
		return cs.cborDec.Unmarshal(e.payload, dst)
	case codecRaw:
		switch d := dst.(type) {
		case *[]byte:
			*d = append((*d)[:0], e.payload...)
			return nil
		case *string:
			*d = string(e.payload)
			return nil
		}
		return fmt.Errorf("raw value (%s) into %T: %w", e.contentType, dst, ErrTypeMismatch)
	}
	return ErrCorrupt
}

// wireResult is an encoded value ready for Redis plus the counters the
// compression statistics need.
type wireResult struct {
	wire []byte
	// stored is the payload's size on the wire, header excluded, so the
	// compression ratio reflects compression only.
	stored     int
	compressed bool
}

// seal builds the stored form of payload: header, optional content type and,
// when it pays off, the compressed payload.
func (cs *codecs) seal(codec codecID, contentType string, payload []byte, expireAtMs int64) wireResult {
	hdr := make([]byte, headerLen, headerLen+2*binary.MaxVarintLen64+len(contentType)+len(payload))
	hdr[0], hdr[1], hdr[2], hdr[3] = wireMagic, wireVersion, byte(codec), byte(compNone)
	binary.BigEndian.PutUint64(hdr[4:12], uint64(expireAtMs))
	if codec == codecRaw {
		hdr = binary.AppendUvarint(hdr, uint64(len(contentType)))
		hdr = append(hdr, contentType...)
	}
	if cs.comp != compNone && int64(len(payload)) >= cs.threshold.Load() {
		var z []byte
		switch cs.comp {
		case compS2:
			z = s2.Encode(nil, payload)
		case compZstd:
			z = cs.zenc.EncodeAll(payload, nil)
		}
		// The varint length costs up to 3 bytes for 1 MiB: only keep the
		// compressed form when it still wins after paying for it.
		if len(z)+binary.MaxVarintLen32 < len(payload) {
			hdr[3] = byte(cs.comp)
			hdr = binary.AppendUvarint(hdr, uint64(len(payload)))
			return wireResult{wire: append(hdr, z...), stored: len(z), compressed: true}
		}
	}
	return wireResult{wire: append(hdr, payload...), stored: len(payload)}
}

// open parses a stored value. Anything that is not exactly what seal
// produces — a foreign value, a truncated one, a decompression bomb — is
// ErrCorrupt, never a panic: Redis is shared and its content is not trusted.
func (cs *codecs) open(b []byte) (envelope, error) {
	var e envelope
	if len(b) < headerLen || b[0] != wireMagic {
		return e, fmt.Errorf("%w: not a cache value", ErrCorrupt)
	}
	if b[1] != wireVersion {
		return e, fmt.Errorf("%w: format version %d", ErrCorrupt, b[1])
	}
	e.codec = codecID(b[2])
	if e.codec < codecJSON || e.codec > codecRaw {
		return e, fmt.Errorf("%w: codec %d", ErrCorrupt, b[2])
	}
	comp := compID(b[3])
	exp := binary.BigEndian.Uint64(b[4:12])
	if exp > uint64(maxExpireMs) {
		return e, fmt.Errorf("%w: expiry out of range", ErrCorrupt)
	}
	e.expireAtMs = int64(exp)
	rest := b[headerLen:]
	if e.codec == codecRaw {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > maxContentTypeLen || uint64(len(rest)-k) < n {
			return e, fmt.Errorf("%w: content type", ErrCorrupt)
		}
		e.contentType = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	switch comp {
	case compNone:
		if len(rest) > cs.maxValue {
			return e, fmt.Errorf("%w: value larger than the configured maximum", ErrCorrupt)
		}
		e.payload = rest
		return e, nil
	case compS2, compZstd:
	default:
		return e, fmt.Errorf("%w: compression %d", ErrCorrupt, b[3])
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(cs.maxValue) {
		return e, fmt.Errorf("%w: decoded length", ErrCorrupt)
	}
	rest = rest[k:]
	var (
		out []byte
		err error
	)
	switch comp {
	case compS2:
		dl, derr := s2.DecodedLen(rest)
		if derr != nil || uint64(dl) != n {
			return e, fmt.Errorf("%w: s2 length", ErrCorrupt)
		}
		out, err = s2.Decode(make([]byte, dl), rest)
	case compZstd:
		out, err = cs.zdec.DecodeAll(rest, make([]byte, 0, n))
	}
	if err != nil {
		return e, fmt.Errorf("%w: decompress: %w", ErrCorrupt, err)
	}
	if uint64(len(out)) != n {
		return e, fmt.Errorf("%w: decoded length mismatch", ErrCorrupt)
	}
	e.payload = out
	return e, nil
}

// maxExpireMs is 9999-12-31T00:00:00Z: beyond it an expiry is garbage.
const maxExpireMs int64 = 253402214400000

// contentTypeOrDefault tells HTTP readers what a Go-written value is.
func (e envelope) contentTypeOrDefault() string {
	switch e.codec {
	case codecJSON:
		return "application/json"
	case codecCBOR:
		return "application/cbor"
	}
	if e.contentType == "" {
		return "application/octet-stream"
	}
	return e.contentType
}
