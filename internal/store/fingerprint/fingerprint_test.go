package fingerprint

import "testing"

func TestFingerprint(t *testing.T) {
	same := [][]string{
		{"SELECT * FROM t WHERE a = 1", "select *  from T where A = 42", "SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a = $1", "SELECT * FROM t WHERE a = -7.5e3 -- note"},
		{"SELECT * FROM t WHERE name = 'x'", "SELECT * FROM t WHERE name = 'it''s'", "SELECT * FROM t WHERE name = E'a\\'b'", "SELECT * FROM t /* c */ WHERE name = $$x$$"},
		{"SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)", "SELECT * FROM t WHERE id IN ($1,$2,$3,$4)"},
		{"INSERT INTO t (a, b) VALUES (?, ?)", "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", "insert into t (a, b) values ($1, $2), ($3, $4);"},
		{"SELECT count(*) FROM t LIMIT 10", "SELECT count(*) FROM t LIMIT 20"},
	}
	differ := []string{
		"SELECT * FROM t WHERE a = 1",
		"SELECT * FROM t WHERE b = 1",
		"SELECT * FROM u WHERE a = 1",
		`SELECT * FROM "T" WHERE a = 1`, // a quoted identifier keeps its case
		"SELECT * FROM t WHERE a IS NULL",
		"SELECT * FROM t WHERE a > 1",
		"SELECT * FROM t WHERE a = 1 ORDER BY a",
		"SELECT a - 1 FROM t",
		"SELECT a FROM t",
	}
	for _, group := range same {
		want := Normalize(group[0])
		for _, q := range group[1:] {
			if got := Normalize(q); got != want {
				t.Errorf("Normalize(%q) = %q %s; want %q %s", q, got.Normalized, got.ID, want.Normalized, want.ID)
			}
		}
	}
	seen := map[string]string{}
	for _, q := range differ {
		fp := Normalize(q)
		if prev, ok := seen[fp.ID]; ok {
			t.Errorf("%q and %q collapse to %q; they must not", prev, q, fp.Normalized)
		}
		seen[fp.ID] = q
	}
	if got := Normalize("SELECT * FROM t WHERE a = 1 AND b IN (1,2)").Normalized; got != "select * from t where a = ? and b in (?)" {
		t.Errorf("normalized form = %q", got)
	}
	if id := Normalize("SELECT 1").ID; len(id) != 16 || id != Normalize("select 2").ID {
		t.Errorf("query id %q is not a stable 16-hex id", id)
	}
}
