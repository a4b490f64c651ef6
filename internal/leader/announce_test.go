package leader

import (
	"testing"
	"time"
)

func TestParseAnnounce(t *testing.T) {
	since := time.Unix(1_800_000_000, 0).UTC()
	long := "replica-with-a-very-long-name-that-goes-past-the-limit-of-postgres"
	cases := []struct {
		name, in    string
		ok          bool
		wantReplica string
	}{
		{"round trip", announce(since, "web-1"), true, "web-1"},
		{"cut to 63 bytes", announce(since, long), true, long[:maxAppName-len(announcePrefix)-11]},
		{"other application", "psql", false, ""},
		{"no replica", announcePrefix + "1800000000", false, ""},
		{"empty replica", announcePrefix + "1800000000 ", false, ""},
		{"bad time", announcePrefix + "soon web-1", false, ""},
		{"negative time", announcePrefix + "-5 web-1", false, ""},
		{"empty", "", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, replica, ok := parseAnnounce(tc.in)
			if ok != tc.ok || replica != tc.wantReplica {
				t.Fatalf("parseAnnounce(%q) = %v, %q, %v; want %q, %v", tc.in, got, replica, ok, tc.wantReplica, tc.ok)
			}
			if ok && !got.Equal(since) {
				t.Fatalf("since = %v, want %v", got, since)
			}
		})
	}
}

// FuzzParseAnnounce reads application names, which any session may set.
func FuzzParseAnnounce(f *testing.F) {
	f.Add(announce(time.Unix(1_800_000_000, 0), "web-1"))
	f.Add("sco-leader x y")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		since, replica, ok := parseAnnounce(s)
		if !ok {
			return
		}
		if replica == "" || since.Unix() < 0 {
			t.Fatalf("parseAnnounce(%q) = %v, %q", s, since, replica)
		}
	})
}
