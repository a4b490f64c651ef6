package otlp

import (
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// codeT is a google.rpc.Code. OTLP/HTTP says clients do not act on it,
// but it is what a gRPC-minded reader of the status expects.
type codeT int32

const (
	codeInvalidArgument   codeT = 3
	codeResourceExhausted codeT = 8
	codeUnavailable       codeT = 14
)

// marshal encodes m as enc says.
func marshal(enc Encoding, m proto.Message) ([]byte, error) {
	if enc == JSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

// marshalStatus is the body of a failure: OTLP/HTTP's error body is a
// google.rpc.Status, not problem+json, because OTLP clients read it to
// report the cause.
func marshalStatus(enc Encoding, code codeT, msg string) ([]byte, error) {
	return marshal(enc, &status.Status{Code: int32(code), Message: msg})
}
