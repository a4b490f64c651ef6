package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/smartcloudops/smartcloudops/internal/ingest/otlp"
)

// oaOTLPReceiver is the OTLP receiver over the test server's anomaly part,
// as cmd wires it.
func oaOTLPReceiver(t *testing.T, sink AnomalyService, reg prometheus.Registerer) OTLPReceiver {
	t.Helper()
	r, err := otlp.New(otlp.Options{Sink: sink, Registerer: reg, MaxDecodedBytes: 1 << 20, MaxDataPoints: 1000, AlignWindow: 0,
		Now: func() time.Time { return oaNow }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// oaOTLPRequest is one host's CPU utilisation a minute before oaNow, and,
// when future, a point a day ahead that partial success reports.
func oaOTLPRequest(host string, future bool) *colmetricpb.ExportMetricsServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	pt := func(at time.Time, v float64, state string) *metricpb.NumberDataPoint {
		return &metricpb.NumberDataPoint{TimeUnixNano: uint64(at.UnixNano()), Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: v},
			Attributes: []*commonpb.KeyValue{str("state", state)}}
	}
	t := oaNow.Add(-time.Minute)
	pts := []*metricpb.NumberDataPoint{pt(t, 0.3, "user"), pt(t, 0.7, "idle")}
	if future {
		pts = append(pts, pt(oaNow.Add(24*time.Hour), 0.5, "user"))
	}
	return &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("host.name", host)}},
		ScopeMetrics: []*metricpb.ScopeMetrics{{Metrics: []*metricpb.Metric{{Name: "system.cpu.utilization",
			Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: pts}}}}}},
	}}}
}

func oaOTLPJSON(host string) string {
	t := oaNow.Add(-time.Minute).UnixNano()
	return fmt.Sprintf(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":%q}}]},`+
		`"scopeMetrics":[{"metrics":[{"name":"system.cpu.load_average.1m","gauge":{"dataPoints":[{"timeUnixNano":"%d","asDouble":1.5}]}}]}]}]}`, host, t)
}

// oaOTLP drives POST /v1/metrics through every answer the receiver gives
// on a working server.
func oaOTLP(t *testing.T, x *oaServer) {
	t.Helper()
	admin := "Bearer " + oaAdmin
	pb, err := proto.Marshal(oaOTLPRequest("otlp-1", false))
	if err != nil {
		t.Fatal(err)
	}
	partial, _ := proto.Marshal(oaOTLPRequest("otlp-1", true))
	// An accepted binary request answers an empty body, which the
	// document checker takes for a missing one: the binary 200s here
	// carry a partial success.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(partial)
	_ = zw.Close()

	x.want(t, http.StatusOK, "POST", "/v1/metrics", admin, "application/json", oaOTLPJSON("otlp-1"))
	w := x.want(t, http.StatusOK, "POST", "/v1/metrics", admin, "application/x-protobuf", gz.String(), "Content-Encoding", "gzip")
	var resp colmetricpb.ExportMetricsServiceResponse
	if err := proto.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.GetPartialSuccess().GetRejectedDataPoints() != 1 {
		t.Errorf("partial success: %v %v", &resp, err)
	}
	x.want(t, http.StatusBadRequest, "POST", "/v1/metrics", admin, "application/x-protobuf", string(pb[:len(pb)-2]))
	x.want(t, http.StatusBadRequest, "POST", "/v1/metrics", admin, "application/json", `{"resourceMetrics":`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/v1/metrics", admin, "application/x-protobuf", strings.Repeat("\x00", 100<<10))
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/v1/metrics", admin, "text/plain", "hello")
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/v1/metrics", admin, "application/x-protobuf", string(pb), "Content-Encoding", "br")

	// A tenant's hosts are its own.
	x.want(t, http.StatusOK, "POST", "/v1/metrics", oaJWT(t, "user", "team-a"), "application/json", oaOTLPJSON("otlp-2"))
	w = x.want(t, http.StatusOK, "GET", "/api/v1/hosts", admin, "", "")
	for _, h := range []string{`"otlp-1"`, `"team-a/otlp-2"`} {
		if !strings.Contains(w.Body.String(), h) {
			t.Errorf("hosts lack %s: %s", h, truncate(w.Body.String(), 500))
		}
	}
}
