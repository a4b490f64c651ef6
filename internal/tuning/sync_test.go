package tuning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// fakeJournal numbers changes from next, or fails.
type fakeJournal struct {
	next int64
	err  error
	got  []Change
}

func (j *fakeJournal) Record(_ context.Context, cs []Change) ([]int64, error) {
	if j.err != nil {
		return nil, j.err
	}
	out := make([]int64, len(cs))
	for i := range cs {
		j.next++
		out[i] = j.next
	}
	j.got = append(j.got, cs...)
	return out, nil
}

// TestJournalFailureAppliesNothing: a change the journal cannot record is
// not applied here either, so replicas never disagree on it.
func TestJournalFailureAppliesNothing(t *testing.T) {
	st := &state{n: 5}
	r := registry(st, &bytes.Buffer{})
	j := &fakeJournal{err: errors.New("database down")}
	r.SetJournal(j)
	if _, err := r.ApplyContext(context.Background(), raw(map[string]string{"anomaly.batch_size": "9"}), "ops"); err == nil || !errors.Is(err, j.err) {
		t.Fatalf("ApplyContext with a failing journal: %v", err)
	}
	if st.n != 5 {
		t.Fatalf("applied %d despite the journal failure", st.n)
	}
	j.err = nil
	cs, err := r.ApplyContext(context.Background(), raw(map[string]string{"anomaly.batch_size": "9"}), "ops")
	if err != nil || st.n != 9 || len(cs) != 1 || cs[0].Revision != 1 || len(j.got) != 1 {
		t.Fatalf("ApplyContext: %+v, %v, n=%d", cs, err, st.n)
	}
}

// TestSync applies values newer than the one in force, once, marks where
// they came from, refuses bad ones without stopping, and never journals.
func TestSync(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		values  []Remote
		wantN   int64
		applied int
		refused int
		from    string
	}{
		{"newer value applies", []Remote{{Key: "anomaly.batch_size", Value: json.RawMessage("20"), Revision: 5, By: "ops", Replica: "b", At: at}}, 20, 1, 0, "b"},
		{"same revision again is a no-op", []Remote{{Key: "anomaly.batch_size", Value: json.RawMessage("20"), Revision: 1, By: "ops", Replica: "b", At: at}}, 9, 0, 0, ""},
		{"older revision is ignored", []Remote{{Key: "anomaly.batch_size", Value: json.RawMessage("30"), Revision: 0, By: "ops", Replica: "b", At: at}}, 9, 0, 0, ""},
		{"unknown key and bad value refused, others applied", []Remote{
			{Key: "no.such", Value: json.RawMessage("1"), Revision: 7, Replica: "b", At: at},
			{Key: "logs.level", Value: json.RawMessage(`"loud"`), Revision: 8, Replica: "b", At: at},
			{Key: "anomaly.batch_size", Value: json.RawMessage("21"), Revision: 9, By: "ops", Replica: "c", At: at}}, 21, 1, 2, "c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &state{}
			r := registry(st, &bytes.Buffer{})
			j := &fakeJournal{}
			r.SetJournal(j)
			if _, err := r.ApplyContext(context.Background(), raw(map[string]string{"anomaly.batch_size": "9"}), "me"); err != nil {
				t.Fatal(err)
			}
			applied, refused := r.Sync(tc.values)
			if st.n != tc.wantN || len(applied) != tc.applied || len(refused) != tc.refused || len(j.got) != 1 {
				t.Fatalf("n=%d applied=%+v refused=%+v journaled=%d", st.n, applied, refused, len(j.got))
			}
			for _, e := range r.Entries() {
				if e.Key == "anomaly.batch_size" && e.AppliedFrom != tc.from {
					t.Fatalf("applied_from %q; want %q", e.AppliedFrom, tc.from)
				}
			}
			// Syncing the same rows again changes nothing.
			if again, _ := r.Sync(tc.values); len(again) != 0 {
				t.Fatalf("second sync applied %+v", again)
			}
		})
	}
}
