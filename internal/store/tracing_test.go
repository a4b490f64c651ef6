package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/spantest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestTracingOneSpanPerStatement(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		tp, rec := spantest.Recorder(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2, TracerProvider: tp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		system := "sqlite"
		if s.Kind() == "postgres" {
			system = "postgresql"
		}
		// Outside any span: nothing is recorded (startup, background work).
		if _, err := s.Exec(ctx, "CREATE TABLE traced (id INTEGER PRIMARY KEY, secret TEXT)"); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Ended()); n != 0 {
			t.Fatalf("%d spans without a parent", n)
		}

		rctx, root := tp.Tracer("test").Start(ctx, "request")
		const secret = "hunter2-do-not-trace"
		insert, query := "INSERT INTO traced (id, secret) VALUES (?, ?)", "SELECT id, secret FROM traced WHERE secret = ?"
		if _, err := s.Exec(rctx, insert, 1, secret); err != nil {
			t.Fatal(err)
		}
		rows, err := s.Query(rctx, query, secret)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		if _, err := s.Exec(rctx, insert, 1, secret); err == nil {
			t.Fatal("duplicate key accepted")
		}
		root.End()

		spans := rec.Ended()
		if len(spans) != 4 {
			t.Fatalf("%d spans, want 3 statements and the root", len(spans))
		}
		want := []struct{ name, op, text string }{
			{"INSERT traced", "INSERT", fingerprint.Normalize(insert).Normalized},
			{"SELECT", "SELECT", fingerprint.Normalize(query).Normalized},
			{"INSERT traced", "INSERT", fingerprint.Normalize(insert).Normalized},
		}
		for i, w := range want {
			sp := spans[i]
			a := map[string]any{}
			for _, kv := range sp.Attributes() {
				a[string(kv.Key)] = kv.Value.AsInterface()
				if strings.Contains(kv.Value.String(), secret) {
					t.Errorf("%s: attribute %s carries a bound value", sp.Name(), kv.Key)
				}
			}
			if sp.Name() != w.name || sp.SpanKind() != trace.SpanKindClient {
				t.Errorf("span %d: %q kind %v, want %q client", i, sp.Name(), sp.SpanKind(), w.name)
			}
			if sp.Parent().SpanID() != root.SpanContext().SpanID() {
				t.Errorf("%s: not a child of the caller's span", sp.Name())
			}
			if a["db.system.name"] != system || a["db.operation.name"] != w.op || a["db.query.text"] != w.text {
				t.Errorf("%s: attributes %v", sp.Name(), a)
			}
			if id, _ := a["smartcloudops.db.query_id"].(string); id != fingerprint.Normalize(w.text).ID {
				t.Errorf("%s: query id %q, want the fingerprint's %q", sp.Name(), id, fingerprint.Normalize(w.text).ID)
			}
			if sp.EndTime().Before(sp.StartTime()) {
				t.Errorf("%s: ends before it starts", sp.Name())
			}
		}
		if got := spans[1].Attributes(); !hasInt(got, "smartcloudops.db.rows", 1) {
			t.Errorf("SELECT rows attribute: %v", got)
		}
		if spans[0].Status().Code != codes.Unset || spans[2].Status().Code != codes.Error {
			t.Errorf("statuses %v, %v; want unset for the insert, error for the duplicate", spans[0].Status(), spans[2].Status())
		}
	})
}

func hasInt(kvs []attribute.KeyValue, key string, v int64) bool {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.AsInt64() == v
		}
	}
	return false
}
