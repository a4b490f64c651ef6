package dburl

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind Kind
		addr string
		ok   bool
	}{
		{"sqlite:///./x.db", SQLite, "./x.db", true},
		{"sqlite:////var/lib/x.db", SQLite, "/var/lib/x.db", true},
		{"postgres://u:p@db:5432/app?sslmode=disable", Postgres, "postgres://u:p@db:5432/app?sslmode=disable", true},
		{"postgresql://db/app", Postgres, "postgresql://db/app", true},
		{"sqlite://x.db", "", "", false},
		{"sqlite:///x.db?mode=ro", "", "", false},
		{"postgres:///app", "", "", false},
		{"mysql://db/app", "", "", false},
		{"", "", "", false},
	} {
		kind, addr, err := Parse(c.in)
		if (err == nil) != c.ok || kind != c.kind || addr != c.addr {
			t.Errorf("Parse(%q) = %q, %q, %v; want %q, %q, ok=%v", c.in, kind, addr, err, c.kind, c.addr, c.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"sqlite:///./x.db", "sqlite:////tmp/x.db", "postgres://u:p@h:5432/db", "ftp://x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, addr, err := Parse(s)
		if err == nil && (kind == "" || addr == "") {
			t.Fatalf("Parse(%q) accepted with kind %q addr %q", s, kind, addr)
		}
	})
}
