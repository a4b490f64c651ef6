package anomaly

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/pca"
)

// Artifact layouts. Version 1 (magic SCOANOM1): uint32 header length, JSON
// header (columns, imputation medians, calibration), one forest. Version 2
// (SCOANOM2): uint32 header length, JSON header (columns, then per model its
// host, "" for the fleet model first, type, imputation medians, calibration
// for a forest, and byte length), then the models' bytes in header order.
// Both load; only version 2 is written.
var (
	artifactMagic   = []byte("SCOANOM1")
	artifactMagicV2 = []byte("SCOANOM2")
)

type artifactHeader struct {
	Columns []string    `json:"columns"`
	Impute  []float64   `json:"impute"`
	Calib   calibration `json:"calibration"`
}

type artifactModel struct {
	Host   string       `json:"host,omitempty"`
	Type   string       `json:"type"`
	Impute []float64    `json:"impute"`
	Calib  *calibration `json:"calibration,omitempty"`
	Bytes  int          `json:"bytes"`
}

type artifactHeaderV2 struct {
	Columns []string        `json:"columns"`
	Models  []artifactModel `json:"models"`
}

func encodeArtifact(m *activeModel) ([]byte, error) {
	hdr := artifactHeaderV2{Columns: m.columns}
	var blobs [][]byte
	add := func(host string, h *hostModel) error {
		var b []byte
		var err error
		am := artifactModel{Host: host, Type: h.typ, Impute: h.impute}
		switch h.typ {
		case TypeIForest:
			b, err = h.forest.MarshalBinary()
			c := h.calib
			am.Calib = &c
		case TypePCA:
			b, err = h.pca.MarshalBinary()
		default:
			err = fmt.Errorf("unknown model type %q", h.typ)
		}
		if err != nil {
			return fmt.Errorf("anomaly: serialize model %q: %w", host, err)
		}
		am.Bytes = len(b)
		hdr.Models = append(hdr.Models, am)
		blobs = append(blobs, b)
		return nil
	}
	if err := add("", m.fleet); err != nil {
		return nil, err
	}
	for _, host := range sortedKeys(m.hosts) {
		if err := add(host, m.hosts[host]); err != nil {
			return nil, err
		}
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("anomaly: serialize model header: %w", err)
	}
	out := append(slices.Clone(artifactMagicV2), binary.LittleEndian.AppendUint32(nil, uint32(len(hj)))...)
	out = append(out, hj...)
	for _, b := range blobs {
		out = append(out, b...)
	}
	return out, nil
}

// header splits b past its magic into the JSON header and the rest.
func splitArtifact(version string, b []byte) (hdr, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("anomaly: model %s: truncated artifact header", version)
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > len(b) {
		return nil, nil, fmt.Errorf("anomaly: model %s: truncated artifact header", version)
	}
	return b[:n], b[n:], nil
}

func decodeArtifact(info ModelInfo, b []byte) (*activeModel, error) {
	switch {
	case bytes.HasPrefix(b, artifactMagicV2):
		return decodeArtifactV2(info, b[len(artifactMagicV2):])
	case !bytes.HasPrefix(b, artifactMagic):
		return nil, fmt.Errorf("anomaly: model %s: artifact is not a SmartCloudOps model", info.Version)
	}
	hb, rest, err := splitArtifact(info.Version, b[len(artifactMagic):])
	if err != nil {
		return nil, err
	}
	var hdr artifactHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: artifact header: %w", info.Version, err)
	}
	f := new(iforest.Forest)
	if err := f.UnmarshalBinary(rest); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: %w", info.Version, err)
	}
	if len(hdr.Columns) == 0 || len(hdr.Columns) != f.NumFeatures() || len(hdr.Impute) != len(hdr.Columns) ||
		!hdr.Calib.valid() {
		return nil, fmt.Errorf("anomaly: model %s: artifact header does not match its forest", info.Version)
	}
	info.ModelType = TypeIForest
	return &activeModel{info: info, columns: hdr.Columns,
		fleet: &hostModel{typ: TypeIForest, forest: f, calib: hdr.Calib, impute: hdr.Impute, scope: info.Version}}, nil
}

func decodeArtifactV2(info ModelInfo, b []byte) (*activeModel, error) {
	hb, rest, err := splitArtifact(info.Version, b)
	if err != nil {
		return nil, err
	}
	var hdr artifactHeaderV2
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: artifact header: %w", info.Version, err)
	}
	cols := len(hdr.Columns)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("anomaly: model %s: artifact: %s", info.Version, fmt.Sprintf(format, args...))
	}
	if cols == 0 || len(hdr.Models) == 0 || hdr.Models[0].Host != "" || len(hdr.Models) > maxHostModels+1 {
		return nil, bad("no columns, no fleet model first, or more than %d host models", maxHostModels)
	}
	am := &activeModel{info: info, columns: hdr.Columns}
	for i, mh := range hdr.Models {
		if mh.Bytes < 0 || mh.Bytes > len(rest) {
			return nil, bad("model %d claims %d bytes, %d left", i, mh.Bytes, len(rest))
		}
		blob := rest[:mh.Bytes]
		rest = rest[mh.Bytes:]
		if len(mh.Impute) != cols {
			return nil, bad("model %d has %d imputation values for %d columns", i, len(mh.Impute), cols)
		}
		for _, v := range mh.Impute {
			if !(math.Abs(v) <= MaxMetricMagnitude) {
				return nil, bad("model %d has an imputation value out of range", i)
			}
		}
		h := &hostModel{typ: mh.Type, impute: mh.Impute, scope: info.Version}
		switch mh.Type {
		case TypeIForest:
			h.forest = new(iforest.Forest)
			if err := h.forest.UnmarshalBinary(blob); err != nil {
				return nil, fmt.Errorf("anomaly: model %s: host %q: %w", info.Version, mh.Host, err)
			}
			if h.forest.NumFeatures() != cols || mh.Calib == nil || !mh.Calib.valid() {
				return nil, bad("forest %d does not match the header", i)
			}
			h.calib = *mh.Calib
		case TypePCA:
			h.pca = new(pca.Model)
			if err := h.pca.UnmarshalBinary(blob); err != nil {
				return nil, fmt.Errorf("anomaly: model %s: host %q: %w", info.Version, mh.Host, err)
			}
			if h.pca.Columns() != cols {
				return nil, bad("PCA model %d does not match the header", i)
			}
		default:
			return nil, bad("model %d has unknown type %q", i, mh.Type)
		}
		if i == 0 {
			am.fleet = h
			info.ModelType = h.typ
			continue
		}
		if _, dup := am.hosts[mh.Host]; dup || mh.Host == "" {
			return nil, bad("host %q named twice or empty", mh.Host)
		}
		if am.hosts == nil {
			am.hosts = map[string]*hostModel{}
		}
		h.scope = info.Version + "@" + mh.Host
		am.hosts[mh.Host] = h
	}
	if len(rest) != 0 {
		return nil, bad("%d trailing bytes", len(rest))
	}
	info.HostModels = len(am.hosts)
	am.info = info
	return am, nil
}
